"""`Gateway.apply_config`: only changed ports are re-created and re-register; a port in a call keeps
it and takes its new settings after hang-up; the status snapshot and subscribers follow along."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path
from typing import Any

import pytest

from dsp.level import power_dbm0
from dsp.synth import to_int16, tone
from firmware.app import Gateway
from firmware.config import Config, Secret, load_config
from firmware.line.port import State
from hal.sim import SimBoard
from tests.firmware.test_app import until
from tests.sip_e2e import blocking, run
from tests.sip_peers.fixtures import KamailioFactory

pytest_plugins = ["tests.sip_peers.fixtures"]

INTERCOM = """
[system]
data_dir = "{data}"
[hardware]
ports = 3
[[ports]]
extension = "101"
[[ports]]
extension = "102"
[[ports]]
extension = "103"
"""


def with_port(cfg: Config, index: int, **changes: Any) -> Config:
    ports = list(cfg.ports)
    ports[index] = dataclasses.replace(ports[index], **changes)
    return dataclasses.replace(cfg, ports=tuple(ports))


async def local_call(gateway: Gateway, board: SimBoard, number: str = "102") -> None:
    """Port 1 calls port 2 (`number`), port 2 answers."""
    one, two = board.phones[0], board.phones[1]
    one.lift(board.now())
    await asyncio.sleep(0.3)
    one.dial_dtmf(number, board.now())
    await until(lambda: two.ringing, 5, "port 2 rings")
    two.lift(board.now())
    await until(lambda: gateway.lines[0].state is State.CONNECTED, 5, "call connected")


def test_changed_idle_port_is_recreated_and_a_busy_one_waits_for_hang_up(tmp_path: Path) -> None:
    cfg = load_config(INTERCOM.format(data=tmp_path))

    async def scenario() -> None:
        gateway = Gateway(cfg)
        board = gateway.board
        assert isinstance(board, SimBoard)
        seen: list[dict[str, Any]] = []
        unsubscribe = gateway.subscribe(seen.append)
        await gateway.start()
        try:
            await local_call(gateway, board)
            assert gateway.port_status(0)["peer"] == "102" and gateway.port_status(0)["call"] == "connected"
            lines = dict(gateway.lines)
            new = with_port(with_port(cfg, 0, hotline="103"), 2, extension="104", hotline="101")
            applied = await gateway.apply_config(new)
            assert (applied.reconfigured, applied.deferred) == ((2,), (0,))
            assert not applied.sip_restarted and applied.restart_required == ()
            assert gateway.lines[0] is lines[0] and gateway.lines[1] is lines[1]  # the call goes on
            assert gateway.lines[2] is not lines[2] and gateway.lines[2].hotline == "101"
            assert gateway.extensions == {"101": 0, "102": 1, "104": 2}
            assert gateway.port_status(0)["pending_config"]
            assert gateway.lines[0].state is State.CONNECTED
            board.phones[0].hang_up(board.now())
            board.phones[1].hang_up(board.now())
            await until(lambda: gateway.lines[0].hotline == "103", 5, "port 1 reconfigured after hang-up")
            assert not gateway.port_status(0)["pending_config"]
            assert any(s["port"] == 1 and s["call"] == "connected" and s["peer"] == "102" for s in seen)
            assert any(s["port"] == 1 and s["hook"] == "on" and s["call"] == "idle" for s in seen)
            unsubscribe()
            count = len(seen)
            board.phones[2].lift(board.now())
            await until(lambda: board.phones[0].ringing, 5, "port 3's new hotline rings port 1")
            assert len(seen) == count
            applied = await gateway.apply_config(dataclasses.replace(
                new, hardware=dataclasses.replace(new.hardware, ports=4)))
            assert applied.restart_required == ("hardware",)
        finally:
            await gateway.stop()

    run(scenario, timeout=60)


def test_a_held_call_keeps_the_port_busy_until_both_calls_are_over(tmp_path: Path) -> None:
    """Flash puts the call on hold (recall dial tone), on-hook rings the phone back for it: the port
    has a call all along, so its new settings wait until the held call is over too."""
    cfg = load_config(INTERCOM.format(data=tmp_path))

    async def scenario() -> None:
        gateway = Gateway(cfg)
        board = gateway.board
        assert isinstance(board, SimBoard)
        await gateway.start()
        try:
            one = board.phones[0]
            await local_call(gateway, board)
            one.flash(board.now())
            await until(lambda: gateway.lines[0].state is State.DIALTONE, 5, "recall dial tone")
            applied = await gateway.apply_config(with_port(cfg, 0, hotline="103"))
            assert applied.deferred == (0,)
            one.hang_up(board.now())
            await until(lambda: one.ringing, 5, "the held call rings back")
            assert gateway.port_status(0)["pending_config"] and gateway.lines[0].hotline == ""
            one.lift(board.now())
            await until(lambda: gateway.lines[0].state is State.CONNECTED, 5, "held call resumed")
            one.hang_up(board.now())
            board.phones[1].hang_up(board.now())
            await until(lambda: gateway.lines[0].hotline == "103", 5, "port 1 reconfigured once idle")
        finally:
            await gateway.stop()

    run(scenario, timeout=60)


def test_calls_kept_for_a_transfer_keep_the_port_busy(tmp_path: Path) -> None:
    """After our REFER the line is idle but the gateway still holds both SIP calls until the transfer
    reports: the port is not idle for reconfiguration until they are gone."""
    gateway = Gateway(load_config(INTERCOM.format(data=tmp_path)))
    try:
        assert gateway._idle(0)
        leg = gateway._new_leg("sip", "kept@pbx", 0, "0:1")
        leg.transfer = True
        gateway._by_call[leg.id] = leg
        assert gateway.lines[0].state is State.IDLE
        assert not gateway._idle(0) and gateway._idle(1)
        del gateway._by_call[leg.id]
        assert gateway._idle(0)
    finally:
        gateway.board.close()


PBX = """
[system]
data_dir = "{data}"
[hardware]
ports = 3
[sip]
registrar = "127.0.0.1:{port}"
local_port = 0
[[ports]]
extension = "201"
password = "pw-201"
[[ports]]
extension = "202"
password = "pw-202"
[[ports]]
extension = "203"
password = "pw-203"
"""


@pytest.mark.peers
def test_only_the_changed_port_re_registers_while_another_talks(tmp_path: Path,
                                                                kamailio_factory: KamailioFactory) -> None:
    """Ports 1 and 2 talk (intercom); port 3 changes from 203 to 204 at Kamailio: 203's binding is
    removed, 204 registers, and the call and the other registrations are untouched."""
    kamailio = kamailio_factory(users={"201": "pw-201", "202": "pw-202", "203": "pw-203", "204": "pw-204"})
    assert kamailio.ports is not None
    cfg = load_config(PBX.format(data=tmp_path, port=kamailio.ports.udp))

    async def scenario() -> None:
        gateway = Gateway(cfg)
        board = gateway.board
        assert isinstance(board, SimBoard)
        await gateway.start()
        try:
            await until(lambda: all(gateway.port_status(p)["registered"] for p in range(3)), 10,
                        "three ports registered")
            agent = gateway.agent
            await local_call(gateway, board, "202")
            renamed = with_port(cfg, 2, extension="204", password=Secret("pw-204"))
            applied = await gateway.apply_config(renamed)
            assert applied.reconfigured == (2,) and gateway.agent is agent
            await until(lambda: gateway.port_status(2)["registered"], 10, "204 registered")
            assert await blocking(kamailio.is_registered, "204")
            assert not await blocking(kamailio.is_registered, "203")
            assert gateway.port_status(0)["registered"] and gateway.port_status(1)["registered"]
            assert gateway.lines[0].state is State.CONNECTED
            bad = with_port(gateway.config, 2, password=Secret("wrong"))
            await gateway.apply_config(bad)
            await until(lambda: gateway.port_status(2)["registration"] == "failed", 10, "wrong password")
            assert "password" in (gateway.port_status(2)["registration_error"] or "")
        finally:
            await gateway.stop()

    run(scenario, timeout=90)


def test_sip_settings_that_cannot_start_are_reported_per_port(tmp_path: Path) -> None:
    """A registrar added with a local SIP port someone else holds: the save still applies, and each
    port says why it cannot register instead of the gateway failing."""
    cfg = load_config(INTERCOM.format(data=tmp_path))

    async def scenario() -> None:
        gateway = Gateway(cfg)
        await gateway.start()
        await asyncio.sleep(0.1)  # let the media clock start: MediaClock.stop() before run() is lost
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("0.0.0.0", 0))
            busy = taken.getsockname()[1]
            try:
                new = dataclasses.replace(cfg, sip=dataclasses.replace(cfg.sip, registrar="127.0.0.1:9",
                                                                       local_port=busy))
                applied = await gateway.apply_config(new)
                assert applied.sip_restarted and gateway.agent is None
                status = gateway.port_status(0)
                assert status["registration"] == "failed"
                assert "SIP cannot start" in status["registration_error"]
            finally:
                await gateway.stop()

    run(scenario, timeout=30)


def test_gains_change_live_on_an_intercom_call(tmp_path: Path) -> None:
    """Port 1 says a -20 dBm0 1004 Hz tone to port 2. Saving port 2's rx gain at +6 dB makes port 2
    hear it 6 dB louder at once; port 1's tx gain at -6 dB then brings it back. Gains touch no call
    state, so neither port is re-created or waits for hang-up."""
    cfg = load_config(INTERCOM.format(data=tmp_path))

    async def scenario() -> None:
        gateway = Gateway(cfg)
        board = gateway.board
        assert isinstance(board, SimBoard)
        await gateway.start()
        try:
            await local_call(gateway, board)
            lines = dict(gateway.lines)
            board.phones[0].speak(to_int16(tone([1004.0], -20.0, 30 * 8000)), board.now())

            async def heard() -> float:
                await asyncio.sleep(0.6)  # past the jitter buffer, and a fresh window
                return float(power_dbm0(board.phones[1].earpiece(0.4)))

            before = await heard()
            assert abs(before - -20.0) < 1.0, before
            louder = with_port(cfg, 1, rx_gain_db=6.0)
            applied = await gateway.apply_config(louder)
            assert (applied.reconfigured, applied.deferred) == ((), ())
            assert abs(await heard() - (before + 6.0)) < 0.3
            applied = await gateway.apply_config(with_port(louder, 0, tx_gain_db=-6.0))
            assert (applied.reconfigured, applied.deferred) == ((), ())
            assert abs(await heard() - before) < 0.3
            assert gateway.lines == lines and gateway.lines[0].state is State.CONNECTED
        finally:
            await gateway.stop()

    run(scenario, timeout=60)
