"""Dial-side features end to end (marker `peers`): the gateway on the simulator registered to a real
Kamailio, baresip callers. Forwarding by star code answers 302 and the caller reaches the target;
do not disturb refuses with 480 without ringing; a barred number never reaches Kamailio; message
waiting by SUBSCRIBE (to a loopback notifier Kamailio routes to) lights the lamp; a dialog-package
watcher sees the port's presence."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firmware.app import Gateway
from firmware.config import load_config
from firmware.line.port import State
from hal.sim import SimBoard
from tests.firmware.test_app import interrupted, near, registered_gateway, strongest, until
from tests.firmware.test_features_app import program
from tests.sip_e2e import blocking, run
from tests.sip_peers.dialog_watcher import DialogWatcher
from tests.sip_peers.fixtures import KamailioFactory, RegisterPhone
from tests.sip_peers.mwi_notifier import MwiNotifier

pytest_plugins = ["tests.sip_peers.fixtures"]

CONFIG = """
[system]
data_dir = "{data}"
[sip]
registrar = "127.0.0.1:{port}"
local_port = 0
[restriction_classes]
international = "011x."
[[ports]]
extension = "201"
password = "pw-201"
[ports.features]
restrict = ["international"]
"""


@pytest.mark.peers
def test_forwarding_dnd_and_a_barred_number_through_kamailio(
        tmp_path: Path, kamailio_factory: KamailioFactory, register_phone: RegisterPhone) -> None:
    kamailio = kamailio_factory(users={"201": "pw-201", "202": "pw-202", "203": "pw-203"},
                                follow_redirects=True)
    caller = register_phone(kamailio, "202", answermode="manual")
    target = register_phone(kamailio, "203", tone_hz=440.0, answermode="auto")
    assert kamailio.ports is not None
    cfg = load_config(CONFIG.format(data=tmp_path, port=kamailio.ports.udp))

    async def scenario() -> None:
        async with registered_gateway(cfg) as (gw, board):
            phone = board.phones[0]

            # call forwarding always, programmed from the phone: our 302 -> Kamailio recurses to 203
            # (baresip 1.0 does not follow a 3xx itself; a PBX does, RFC 3261 §16.7 step 6)
            await program(gw, board, 0, "*72203#")
            assert (await blocking(caller.phone.dial, kamailio.uri("201")))["ok"]
            await blocking(target.phone.wait_event, "CALL_ESTABLISHED", timeout=15)
            await blocking(caller.phone.wait_event, "CALL_ESTABLISHED", timeout=10)
            assert phone.rings == 0 and not phone.ringing, "the forwarded port never rang"
            log = kamailio.log()
            assert "REPLY 302 Moved Temporarily" in log and "REDIRECT to sip:203@" in log
            await blocking(caller.phone.hangup)
            await blocking(target.phone.wait_event, "CALL_CLOSED", timeout=10)
            caller.phone.clear_events()

            # do not disturb: 480, no ringing
            await program(gw, board, 0, "*73")
            await program(gw, board, 0, "*78")
            assert (await blocking(caller.phone.dial, kamailio.uri("201")))["ok"]
            closed = await blocking(caller.phone.wait_event, "CALL_CLOSED", timeout=10)
            assert "480" in str(closed.get("param")), closed
            assert phone.rings == 0 and not phone.ringing, "a DND phone does not ring"

            # a barred international number is refused locally: Kamailio never sees the INVITE
            invites_before = kamailio.log().count("REQ INVITE")
            phone.lift(board.now())
            await asyncio.sleep(0.4)
            phone.dial_dtmf("01144201234567#", board.now())
            await until(lambda: gw.lines[0].state is State.TONE, 10, "refused locally")
            await asyncio.sleep(0.8)
            assert near(strongest(phone.earpiece(0.5), 2), [480, 620]), "reorder"
            await asyncio.sleep(1.0)  # anything sent would have reached Kamailio by now
            assert kamailio.log().count("REQ INVITE") == invites_before
            assert "01144201234567" not in kamailio.log()
            phone.hang_up(board.now())

    run(scenario, timeout=90)


MWI_CONFIG = """
[system]
data_dir = "{data}"
[sip]
registrar = "127.0.0.1:{port}"
local_port = 0
[[ports]]
extension = "201"
password = "pw-201"
mwi_subscribe = true
"""


@pytest.mark.peers
def test_message_waiting_by_subscription_through_kamailio(
        tmp_path: Path, kamailio_factory: KamailioFactory) -> None:
    """Port 1 SUBSCRIBEs to message-summary (digest-challenged by Kamailio, which routes the event to
    a loopback notifier); the notifier's NOTIFYs come back through Kamailio's Record-Route: the lamp
    lights, dial tone stutters, 'no' turns the lamp off, and stopping the gateway unsubscribes."""
    kamailio = kamailio_factory(users={"201": "pw-201"}, start=False)

    async def scenario() -> None:
        notifier = MwiNotifier()
        kamailio.mwi_server = await notifier.start()
        await blocking(kamailio.start)
        assert kamailio.ports is not None
        proxy = ("127.0.0.1", kamailio.ports.udp)
        gw = Gateway(load_config(MWI_CONFIG.format(data=tmp_path, port=kamailio.ports.udp)))
        board = gw.board
        assert isinstance(board, SimBoard)
        phone = board.phones[0]
        await gw.start()
        try:
            await asyncio.wait_for(notifier.subscribed.wait(), 10)
            sub = notifier.subscribes[-1]
            assert sub.headers.get("Event") == "message-summary" and sub.from_.uri.user == "201"
            assert kamailio.log().count("REQ SUBSCRIBE") >= 2, "challenged, then sent with credentials"
            notifier.notify(True, proxy)
            await until(lambda: phone.mwi_lamp, 10, "the message-waiting lamp lights")
            phone.lift(board.now())
            await asyncio.sleep(0.8)
            assert interrupted(phone.earpiece(0.6)), "stutter dial tone"
            phone.hang_up(board.now())
            await until(lambda: gw.lines[0].state is State.IDLE, 3, "on hook")
            notifier.notify(False, proxy)
            await until(lambda: not phone.mwi_lamp, 10, "the lamp goes off")
            assert notifier.notify_answers == [200, 200]
        finally:
            await gw.stop()
            await asyncio.sleep(0.3)
            notifier.close()
        assert notifier.subscribes[-1].headers.get("Expires") == "0", "unsubscribed on stop"

    run(scenario, timeout=60)


@pytest.mark.peers
def test_presence_notifies_reach_a_subscriber_through_kamailio(
        tmp_path: Path, kamailio_factory: KamailioFactory, register_phone: RegisterPhone) -> None:
    """A busy-lamp watcher (subscriber 202, digest-challenged by Kamailio) SUBSCRIBEs to Event: dialog
    for 201; baresip 203 calls 201: the watcher sees idle, early, confirmed, terminated, with the
    dialog-info version counting up, all routed through Kamailio."""
    kamailio = kamailio_factory(users={"201": "pw-201", "202": "pw-202", "203": "pw-203"})
    caller = register_phone(kamailio, "203", answermode="manual")
    assert kamailio.ports is not None
    cfg = load_config(MWI_CONFIG.replace("mwi_subscribe = true\n", "").format(
        data=tmp_path, port=kamailio.ports.udp))

    async def scenario() -> None:
        assert kamailio.ports is not None
        watcher = DialogWatcher("202", "pw-202", ("127.0.0.1", kamailio.ports.udp))
        await watcher.start()
        try:
            async with registered_gateway(cfg) as (_, board):
                phone = board.phones[0]
                watcher.subscribe("201")
                await watcher.wait_for(lambda seen: len(seen) >= 1 and bool(watcher.final))
                assert watcher.final == [200] and watcher.seen[0].states == ()
                assert watcher.seen[0].subscription_state.startswith("active;expires=")
                assert (await blocking(caller.phone.dial, kamailio.uri("201")))["ok"]
                await watcher.wait_for(lambda seen: seen[-1].states == ("early",))
                await until(lambda: phone.ringing, 5, "port 1 rings")
                phone.lift(board.now())
                await watcher.wait_for(lambda seen: seen[-1].states == ("confirmed",))
                await blocking(caller.phone.wait_event, "CALL_ESTABLISHED", timeout=10)
                await blocking(caller.phone.hangup)
                await watcher.wait_for(lambda seen: seen[-1].states == ("terminated",))
                phone.hang_up(board.now())
                assert [s.version for s in watcher.seen] == list(range(len(watcher.seen)))
                assert [s.states for s in watcher.seen] == [(), ("early",), ("confirmed",), ("terminated",)]
        finally:
            await asyncio.sleep(0.3)
            watcher.close()
        assert watcher.seen[-1].subscription_state == "terminated;reason=noresource", "ended on stop"

    run(scenario, timeout=60)


ACCOUNTS_CONFIG = """
[system]
data_dir = "{data}"
[sip]
registrar = "127.0.0.1:{port}"
local_port = 0
[[ports]]
extension = "201"
password = "pw-201"
[[ports.accounts]]
extension = "301"
password = "pw-301"
ring_cadence = "bellcore-dr2"
prefix = "8"
star_code = "*81"
"""


@pytest.mark.peers
def test_a_second_account_on_one_port_rings_its_own_cadence(
        tmp_path: Path, kamailio_factory: KamailioFactory, register_phone: RegisterPhone) -> None:
    """Port 1 registers 201 (home) and 301 (business, Bellcore-dr2 long-long ring, prefix 8) to
    Kamailio. baresip calls 301: the virtual phone rings 0.8 on 0.4 off 0.8; then 201: the normal 2 s
    burst. Dialling 8 + 202 goes out on the business account (From 301 at Kamailio), and so does *81,
    dial tone, 202."""
    kamailio = kamailio_factory(users={"201": "pw-201", "301": "pw-301", "202": "pw-202"})
    caller = register_phone(kamailio, "202", answermode="auto")
    assert kamailio.ports is not None
    cfg = load_config(ACCOUNTS_CONFIG.format(data=tmp_path, port=kamailio.ports.udp))

    async def scenario() -> None:
        async with registered_gateway(cfg, ("0", "0.1")) as (gw, board):
            phone = board.phones[0]

            async def bursts(uri: str, n: int) -> list[float]:
                phone.ring_bursts.clear()
                assert (await blocking(caller.phone.dial, uri))["ok"]
                await until(lambda: len(phone.ring_bursts) >= n and phone.ring_bursts[n - 1][1] is not None,
                            15, f"{n} ring bursts")
                shape = [round(b - a, 1) for a, b in phone.ring_bursts[:n] if b is not None]
                gaps = [round(phone.ring_bursts[i + 1][0] - (phone.ring_bursts[i][1] or 0), 1)
                        for i in range(n - 1)]
                await blocking(caller.phone.hangup)
                await until(lambda: not phone.ringing and gw.lines[0].state is State.IDLE, 10,
                            "ringing stops")
                caller.phone.clear_events()
                return [x for pair in zip(shape, [*gaps, None], strict=True) for x in pair if x is not None]

            assert await bursts(kamailio.uri("301"), 2) == [0.8, 0.4, 0.8], "business line: Bellcore-dr2"
            assert await bursts(kamailio.uri("201"), 1) == [2.0], "home line: the normal US ring"

            await asyncio.sleep(1.0)
            phone.lift(board.now())
            await asyncio.sleep(0.4)
            phone.dial_dtmf("8202#", board.now())
            await until(lambda: gw.lines[0].state is State.CONNECTED, 10, "answered by baresip 202")
            assert "REQ INVITE sip:202@" in kamailio.log() and "fU=301" in kamailio.log()
            phone.hang_up(board.now())

            def invites(user: str) -> int:
                return sum("REQ INVITE sip:202@" in line and f"fU={user}" in line
                           for line in kamailio.log().splitlines())

            before = invites("301"), invites("201")
            await until(lambda: gw.lines[0].state is State.IDLE, 10, "the prefix call is over")
            await asyncio.sleep(1.0)
            phone.lift(board.now())
            await asyncio.sleep(0.4)
            keyed = phone.dial_dtmf("*81", board.now())
            await until(lambda: board.now() > keyed + 0.3 and gw.lines[0].state is State.DIALTONE, 5,
                        "dial tone again after *81")
            phone.dial_dtmf("202#", board.now())
            await until(lambda: gw.lines[0].state is State.CONNECTED, 10, "answered by baresip 202")
            assert invites("301") > before[0] and invites("201") == before[1], "*81: the business account"
            phone.hang_up(board.now())

    run(scenario, timeout=90)
