"""The gateway in-process on the real-time simulator: the example config (two ports, no PBX), and a
PBX call through a real Kamailio to baresip (marker `peers`); `hookflash run` as a real process."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from dsp.callerid import Absence
from firmware.app import LOOPBACK, Gateway, SipCaller, alert_info_cadence, sip_caller
from firmware.config import Config, load_config
from firmware.line.port import State
from firmware.sip.registration import RegState
from firmware.sip.ua import Event, IncomingCall, MessageWaiting
from hal.sim import SimBoard
from tests.sip_e2e import blocking, run
from tests.sip_peers.audio import dominant_frequency
from tests.sip_peers.fixtures import KamailioFactory, RegisterPhone
from tests.sip_peers.ports import free_port

pytest_plugins = ["tests.sip_peers.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hookflash.toml"
RATE = 8000


def strongest(audio: npt.NDArray[np.int16], n: int) -> list[float]:
    """The `n` strongest frequencies (Hz, 2 Hz resolution over 0.5 s), lowest first."""
    x = audio[-RATE // 2:].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    peaks = [i for i in range(1, len(spectrum) - 1)
             if spectrum[i] >= spectrum[i - 1] and spectrum[i] >= spectrum[i + 1]]
    return sorted(float(freqs[i]) for i in sorted(peaks, key=lambda i: -spectrum[i])[:n])


def sine(hz: float, seconds: float = 1.5) -> npt.NDArray[np.int16]:
    t = np.arange(round(seconds * RATE)) / RATE
    return (6000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def registered_gateway(cfg: Config, accounts: tuple[str, ...] = ("0",),
                             on_sip: Callable[[Event], None] | None = None
                             ) -> AsyncIterator[tuple[Gateway, SimBoard]]:
    """A started gateway on the simulator whose SIP `accounts` ("N", "N.k") have registered (within
    10 s); stopped on the way out. `on_sip` sees every SIP event before the gateway does."""
    gateway = Gateway(cfg)
    board = gateway.board
    assert isinstance(board, SimBoard)
    if on_sip is not None:
        handle = gateway._on_sip

        def record(event: Event) -> None:
            on_sip(event)
            handle(event)
        gateway._on_sip = record  # type: ignore[method-assign]
    await gateway.start()
    try:
        agent = gateway.agent
        assert agent is not None
        await until(lambda: all(agent.registration_state(a)[0] is RegState.REGISTERED for a in accounts),
                    10, f"accounts {', '.join(accounts)} registered")
        yield gateway, board
    finally:
        await gateway.stop()


def near(found: list[float], wanted: list[float], tol: float = 6.0) -> bool:
    return len(found) == len(wanted) and all(abs(f - w) <= tol for f, w in zip(found, wanted, strict=True))


async def intercom_call(tmp_path: Path) -> None:
    cfg = load_config(EXAMPLE)
    cfg = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, data_dir=str(tmp_path)))
    gateway = Gateway(cfg)
    board = gateway.board
    assert isinstance(board, SimBoard) and board.realtime
    one, two = board.phones
    await gateway.start()
    try:
        one.lift(board.now())
        await asyncio.sleep(0.6)
        assert near(strongest(one.earpiece(0.5), 2), [350, 440]), "US dial tone (GR-506: 350+440 Hz)"

        one.dial_dtmf("102", board.now())
        await until(lambda: two.ringing, 5, "phone 2 rings")
        await asyncio.sleep(0.6)  # ringback and ringing start together; ringback's first 2 s are on
        assert near(strongest(one.earpiece(0.5), 2), [440, 480]), "US ringback (440+480 Hz) on phone 1"
        await until(lambda: two.callerid is not None, 10, "caller ID on phone 2's display")
        assert two.callerid is not None and two.callerid.number == "101"
        assert two.callerid.name == "Kitchen"

        two.lift(board.now())
        await until(lambda: gateway.lines[0].state is State.CONNECTED, 3, "phone 1 connected")
        await asyncio.sleep(0.5)  # both sessions up
        one.speak(sine(1000), board.now())
        await asyncio.sleep(1.2)
        assert near(strongest(two.earpiece(0.5), 1), [1000]), "1 kHz from phone 1 in phone 2's earpiece"
        two.speak(sine(440), board.now())
        await asyncio.sleep(1.2)
        assert near(strongest(one.earpiece(0.5), 1), [440]), "440 Hz from phone 2 in phone 1's earpiece"

        one.hang_up(board.now())
        await until(lambda: gateway.lines[1].state is State.TONE, 3, "phone 2 gets the disconnect tone")
        await asyncio.sleep(0.7)
        assert near(strongest(two.earpiece(0.5), 2), [480, 620]), "reorder (480+620 Hz) on phone 2"
        assert gateway.history is not None
        rows = gateway.history.recent()
        assert {(r.port, r.direction, r.caller, r.callee) for r in rows} == {
            (0, "local", "101", "102"), (1, "local", "101", "102")}
        assert all(r.answer is not None and r.duration > 1.0 and r.stats is not None for r in rows)
    finally:
        await gateway.stop()
    assert not any(phone.ringing for phone in board.phones)


def test_intercom_call_between_the_two_simulated_ports(tmp_path: Path) -> None:
    asyncio.run(intercom_call(tmp_path))


def test_hookflash_run_starts_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "hookflash.toml"
    config.write_text(EXAMPLE.read_text().replace('data_dir = "var"', f'data_dir = "{tmp_path}"')
                      .replace('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{free_port()}"'))
    proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("hookflash: ready"), line + proc.stderr.read() if proc.stderr else line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert (tmp_path / "history.db").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_hookflash_run_lists_every_config_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[hardware]\nbackend = "nope"\n[[ports]]\nextension = "1"\n')
    out = subprocess.run([sys.executable, "-m", "firmware.cli", "run", "--config", str(config)],
                         capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert out.returncode == 2
    errors = out.stderr.splitlines()
    assert len(errors) == 2, out.stderr
    assert any("hardware.backend" in e for e in errors) and any("ports[0].extension" in e for e in errors)


PBX_CONFIG = """
[system]
data_dir = "{data}"
[sip]
registrar = "127.0.0.1:{port}"
local_port = 0
[[ports]]
extension = "201"
password = "pw-201"
display_name = "Kitchen"
[[ports]]
extension = "203"
password = "pw-203"
"""


@pytest.mark.peers
def test_pbx_call_through_kamailio_to_baresip(tmp_path: Path, kamailio_factory: KamailioFactory,
                                              register_phone: RegisterPhone) -> None:
    """Port 1 registers as 201, dials 202 (baresip, auto-answer, plays 440 Hz) by DTMF through Kamailio:
    audio both ways, our hang-up ends the call at baresip, an "out" history row. Then baresip calls 201:
    port 1 rings with caller ID 202, answers, hears 440 Hz, and gets reorder when baresip hangs up."""
    kamailio = kamailio_factory(users={"201": "pw-201", "202": "pw-202", "203": "pw-203"})
    far = register_phone(kamailio, "202", tone_hz=440.0, answermode="auto")
    assert kamailio.ports is not None
    cfg = load_config(PBX_CONFIG.format(data=tmp_path, port=kamailio.ports.udp))

    async def scenario() -> None:
        async with registered_gateway(cfg, ("0", "1")) as (gateway, board):
            phone = board.phones[0]
            phone.lift(board.now())
            await asyncio.sleep(0.5)
            phone.dial_dtmf("202", board.now())
            await until(lambda: gateway.lines[0].state is State.CONNECTED, 10, "call answered")
            await blocking(far.phone.wait_event, "CALL_ESTABLISHED", timeout=10)
            phone.speak(sine(1000, 4.0), board.now())
            await asyncio.sleep(3.0)
            assert near(strongest(phone.earpiece(1.0), 1), [440], tol=15), "baresip's 440 Hz"
            phone.hang_up(board.now())
            await blocking(far.phone.wait_event, "CALL_CLOSED", timeout=10)
            assert gateway.history is not None
            await until(lambda: bool(gateway.history and gateway.history.recent()), 3, "history row")
            (row,) = gateway.history.recent()
            assert (row.port, row.direction, row.caller, row.callee) == (0, "out", "201", "202")
            assert row.stats is not None and row.stats.packets_received > 100
            got = dominant_frequency(far.phone.received_wav(), skip_s=0.5)
            assert abs(got - 1000) < 15, f"baresip heard {got} Hz"

            await asyncio.sleep(1.0)  # the on-hook is confirmed after the flash window
            assert (await blocking(far.phone.dial, kamailio.uri("201")))["ok"]
            await until(lambda: phone.ringing, 10, "port 1 rings for the PBX call")
            await until(lambda: phone.callerid is not None and phone.callerid.number == "202", 10,
                        "caller ID 202 on port 1's display")
            phone.lift(board.now())
            await blocking(far.phone.wait_event, "CALL_ESTABLISHED", timeout=10)
            await asyncio.sleep(1.5)
            assert near(strongest(phone.earpiece(1.0), 1), [440], tol=15), "baresip's 440 Hz, inbound"
            await blocking(far.phone.hangup)
            await until(lambda: gateway.lines[0].state is State.TONE, 5, "reorder after the far end's BYE")
            await asyncio.sleep(0.5)
            assert near(strongest(phone.earpiece(0.4), 2), [480, 620]), "reorder (480+620 Hz)"
            assert [r.direction for r in gateway.history.recent()] == ["in", "out"]

    run(scenario, timeout=60)


def invite(from_uri: str = "sip:5551234@pbx.example", display_name: str | None = None, *,
           asserted: str | None = None, privacy: str | None = None, alert_info: str | None = None,
           call: str = "c1") -> IncomingCall:
    return IncomingCall(call=call, account="0", from_uri=from_uri, display_name=display_name,
                        asserted_identity=asserted, privacy=privacy, alert_info=alert_info, remote_sdp=b"")


@pytest.mark.parametrize(("call", "expected"), [
    (invite("sip:5551234@pbx", "Alice"), SipCaller("5551234", "Alice", False)),
    (invite("sip:+1-555-123-4567@pbx;user=phone"), SipCaller("15551234567", None, False)),
    (invite("sip:alice@pbx", "Alice", asserted='"Alice Smith" <sip:+15550001111@pbx>'),
     SipCaller("15550001111", "Alice Smith", False)),
    (invite("sip:alice@pbx", "Alice", asserted="<sip:alice@pbx>, <tel:+1-555-000-2222>"),
     SipCaller("15550002222", "Alice", False)),
    (invite("sip:200@pbx", "Front", asserted="<sip:unknown@pbx>"), SipCaller("200", "Front", False)),
    (invite("sip:5551234@pbx", "Alice", asserted="<sip:5559999@pbx>", privacy="id"),
     SipCaller("", None, True)),
    (invite("sip:5551234@pbx", "Alice", privacy="user; critical"), SipCaller("", None, True)),
    (invite("sip:5551234@pbx", "Alice", privacy="header"), SipCaller("", None, True)),
    (invite("sip:5551234@pbx", "Alice", privacy="none"), SipCaller("5551234", "Alice", False)),
    (invite("sip:anonymous@anonymous.invalid", "Anonymous"), SipCaller("", None, True)),
    (invite("sip:unknown@pbx"), SipCaller("", None, False)),
    (invite("sip:pbx.example", "Lobby"), SipCaller("", "Lobby", False)),
])
def test_caller_id_from_sip_headers(call: IncomingCall, expected: SipCaller) -> None:
    """Number from P-Asserted-Identity over From (RFC 3325), digits only (GR-30-CORE); privacy per
    RFC 3323/3325 gives absence 'P' (private), no number gives 'O' (sip_caller's `private`)."""
    assert sip_caller(call) == expected


class FakeAgent:
    """Stands in for the SIP agent: records what the gateway answers to an injected INVITE."""

    local_addr = (LOOPBACK, 5060)

    def __init__(self) -> None:
        self.ringing_calls: list[str] = []
        self.rejected: list[tuple[str, int]] = []

    def ringing(self, call: str) -> None:
        self.ringing_calls.append(call)

    def reject(self, call: str, status: int) -> None:
        self.rejected.append((call, status))

    def hangup(self, call: str) -> None:
        pass

    def set_presence(self, account: str, dialog: object) -> None:
        pass

    async def stop(self) -> None:
        pass


async def sip_invite_rings(tmp_path: Path, call: IncomingCall,
                           check: Callable[[Gateway, SimBoard], Coroutine[Any, Any, None]]) -> None:
    """Start the example gateway, put a fake agent in, inject `call` for port 1, run `check`."""
    cfg = load_config(EXAMPLE)
    cfg = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, data_dir=str(tmp_path)))
    gateway = Gateway(cfg)
    board = gateway.board
    assert isinstance(board, SimBoard)
    await gateway.start()
    agent = FakeAgent()
    gateway.agent = agent  # type: ignore[assignment]
    try:
        gateway._on_sip(call)
        assert agent.ringing_calls == [call.call]
        await check(gateway, board)
    finally:
        await gateway.stop()


def test_private_sip_caller_shows_p_on_the_phone(tmp_path: Path) -> None:
    async def check(gateway: Gateway, board: SimBoard) -> None:
        phone = board.phones[0]
        await until(lambda: phone.callerid is not None, 10, "caller ID on phone 1's display")
        assert phone.callerid is not None
        assert phone.callerid.number is None and phone.callerid.name is None
        assert phone.callerid.number_absence is Absence.PRIVATE
        assert phone.callerid.name_absence is Absence.PRIVATE

    call = invite("sip:5551234@pbx", "Alice", asserted="<sip:5551234@pbx>", privacy="id")
    asyncio.run(sip_invite_rings(tmp_path, call, check))


@pytest.mark.parametrize(("alert_info", "expected"), [
    ("<http://127.0.0.1/Bellcore-dr2>", "bellcore-dr2"),
    ("<http://127.0.0.1/bellcore-dr5>", "bellcore-dr5"),
    ("<http://www.notused>;info=Bellcore-dr3", "bellcore-dr3"),
    ('<http://www.notused>;info="Bellcore-dr1"', "bellcore-dr1"),
    ("<http://127.0.0.1>;info=alert-internal", "bellcore-dr2"),
    ("info=alert-internal", "bellcore-dr2"),
    ("Bellcore-dr4", "bellcore-dr4"),
    ("<http://127.0.0.1/Bellcore-r3>", "bellcore-dr3"),
    ("<http://pbx.example/ring.wav>, <http://127.0.0.1/Bellcore-dr4>", "bellcore-dr4"),
    ("<http://127.0.0.1>;info=alert-external", "port"),
    ("<http://127.0.0.1/Bellcore-dr9>", "port"),
    ("<http://pbx.example/ring.wav>", "port"),
    ("<http://127.0.0.1>;info=normal", "port"),
    (",", "port"),
    (None, "port"),
])
def test_distinctive_ring_from_alert_info(alert_info: str | None, expected: str) -> None:
    """Alert-Info (RFC 3261 §20.4) -> a GR-506 Bellcore cadence; anything else -> the port's own."""
    assert alert_info_cadence(alert_info, "US", "port") == expected


def test_alert_info_bellcore_dr2_rings_long_long(tmp_path: Path) -> None:
    async def check(gateway: Gateway, board: SimBoard) -> None:
        phone = board.phones[0]
        await until(lambda: len(phone.ring_bursts) >= 2 and phone.ring_bursts[1][1] is not None, 5,
                    "two ring bursts")
        (a, b), (c, d) = phone.ring_bursts[:2]
        assert b is not None and d is not None
        assert [round(b - a, 1), round(c - b, 1), round(d - c, 1)] == [0.8, 0.4, 0.8], phone.ring_bursts

    call = invite("sip:5551234@pbx", "Alice", alert_info="<http://127.0.0.1/Bellcore-dr2>")
    asyncio.run(sip_invite_rings(tmp_path, call, check))


def test_polarity_reversal_on_answer_and_on_far_end_disconnect(tmp_path: Path) -> None:
    """Both ports with `polarity_reversal`: the loop reverses on each phone when the call is answered
    and is normal again on the caller's hang-up and on the callee's far-end disconnect."""
    async def scenario() -> None:
        cfg = load_config(EXAMPLE)
        cfg = dataclasses.replace(
            cfg, system=dataclasses.replace(cfg.system, data_dir=str(tmp_path)),
            ports=tuple(dataclasses.replace(p, polarity_reversal=True) for p in cfg.ports))
        gateway = Gateway(cfg)
        board = gateway.board
        assert isinstance(board, SimBoard)
        one, two = board.phones
        await gateway.start()
        try:
            one.lift(board.now())
            await asyncio.sleep(0.3)
            one.dial_dtmf("102", board.now())
            await until(lambda: two.ringing, 5, "phone 2 rings")
            assert not one.polarity_reversed and not two.polarity_reversed
            two.lift(board.now())
            await until(lambda: one.polarity_reversed and two.polarity_reversed, 3, "reversed on answer")
            one.hang_up(board.now())
            await until(lambda: gateway.lines[1].state is State.DISCONNECT, 3, "far-end disconnect on 2")
            assert not one.polarity_reversed and not two.polarity_reversed
        finally:
            await gateway.stop()

    asyncio.run(scenario())


def interrupted(audio: npt.NDArray[np.int16]) -> bool:
    """True if the tone in `audio` has silent gaps (10 ms blocks 20 dB below the loudest)."""
    blocks = audio[:len(audio) // 80 * 80].astype(np.float64).reshape(-1, 80)
    rms = np.sqrt(np.mean(blocks ** 2, axis=1))
    return bool(rms.max() > 100 and rms.min() < rms.max() / 10)


def test_message_waiting_lights_the_lamp_and_stutters_the_dial_tone(tmp_path: Path) -> None:
    """An unsolicited message-summary NOTIFY (as the UA reports it) for port 1: VMWI FSK lights the
    phone's lamp, dial tone is stutter dial tone (GR-506), and 'no' turns the lamp off again."""
    async def scenario() -> None:
        cfg = load_config(EXAMPLE)
        cfg = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, data_dir=str(tmp_path)))
        gateway = Gateway(cfg)
        board = gateway.board
        assert isinstance(board, SimBoard)
        one, two = board.phones
        await gateway.start()
        try:
            two.lift(board.now())
            await asyncio.sleep(0.8)
            assert not interrupted(two.earpiece(0.6)), "steady dial tone without messages"
            gateway._on_sip(MessageWaiting("0", True))
            await until(lambda: one.mwi_lamp, 5, "phone 1's message-waiting lamp lit")
            assert not two.mwi_lamp
            one.lift(board.now())
            await asyncio.sleep(0.8)
            assert interrupted(one.earpiece(0.6)), "stutter dial tone while messages wait"
            assert near(strongest(one.earpiece(0.6), 2), [350, 440]), "stutter on the US dial tone"
            one.hang_up(board.now())
            await until(lambda: gateway.lines[0].state is State.IDLE, 3, "phone 1 back on hook")
            gateway._on_sip(MessageWaiting("0", False))
            await until(lambda: not one.mwi_lamp, 5, "lamp off")
        finally:
            await gateway.stop()

    asyncio.run(scenario())
