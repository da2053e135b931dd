"""Dial-side features through the whole gateway on the real-time simulator (intercom, no PBX):
star codes dialled by DTMF on a virtual phone, the confirmation tone, do not disturb, forwarding,
anonymous calls, restriction classes, and the programmed state surviving a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dsp.callerid import Absence
from firmware.app import Gateway
from firmware.config import load_config
from firmware.line.port import State
from hal.sim import SimBoard
from tests.firmware.test_app import interrupted, near, strongest, until

CONFIG = """
[system]
data_dir = "{data}"
[hardware]
ports = 3
[restriction_classes]
international = "011x."
[[ports]]
extension = "101"
[ports.features]
restrict = ["international"]
[[ports]]
extension = "102"
[ports.features]
forward_no_answer_s = 6
[[ports]]
extension = "103"
"""


def gateway(tmp_path: Path) -> tuple[Gateway, SimBoard]:
    gw = Gateway(load_config(CONFIG.format(data=tmp_path)))
    assert isinstance(gw.board, SimBoard)
    return gw, gw.board


async def program(gw: Gateway, board: SimBoard, port: int, keys: str) -> None:
    """Off hook, dial `keys`, hear the confirmation tone (three bursts, then silence), hang up."""
    phone = board.phones[port]
    phone.lift(board.now())
    await asyncio.sleep(0.4)
    phone.dial_dtmf(keys, board.now())
    await until(lambda: gw.lines[port].state is State.TONE, 10, f"confirmation after {keys}")
    await asyncio.sleep(0.3)
    heard = phone.earpiece(0.3)
    assert interrupted(heard), "confirmation tone: bursts of dial tone"
    await asyncio.sleep(0.5)
    assert abs(phone.earpiece(0.3)).max() < 300, "then silence"
    phone.hang_up(board.now())
    await until(lambda: gw.lines[port].state is State.IDLE, 3, "back on hook")
    await asyncio.sleep(0.8)  # past the flash window: the on-hook is a real one


def test_dnd_by_star_code_refuses_calls_and_survives_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        gw, board = gateway(tmp_path)
        one, two, _ = board.phones
        await gw.start()
        try:
            await program(gw, board, 1, "*78")
            one.lift(board.now())
            await asyncio.sleep(0.4)
            one.dial_dtmf("102", board.now())
            await until(lambda: gw.lines[0].state is State.TONE, 8, "phone 1 refused")
            await asyncio.sleep(0.6)
            assert near(strongest(one.earpiece(0.5), 2), [480, 620]), "reorder for a DND line (480)"
            assert not two.ringing and two.rings == 0, "the DND phone never rang"
        finally:
            await gw.stop()
        gw2, _ = gateway(tmp_path)
        await gw2.start()
        await asyncio.sleep(0.3)  # MediaClock.run sets _running itself: a stop() before it starts is lost
        try:
            features = gw2.lines[1].features
            assert features is not None and features.state.dnd, "programmed state kept in features.db"
        finally:
            await gw2.stop()

    asyncio.run(scenario())


def test_forward_always_rings_the_target_with_the_original_caller_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        gw, board = gateway(tmp_path)
        one, two, three = board.phones
        await gw.start()
        try:
            await program(gw, board, 1, "*72103#")
            two.lift(board.now())
            await asyncio.sleep(0.8)
            assert interrupted(two.earpiece(0.6)), "stutter dial tone: forwarding is on"
            two.hang_up(board.now())
            await asyncio.sleep(0.8)
            one.lift(board.now())
            await asyncio.sleep(0.4)
            one.dial_dtmf("102", board.now())
            await until(lambda: three.ringing, 8, "phone 3 rings for 102")
            assert not two.ringing
            await until(lambda: three.callerid is not None, 10, "caller ID on phone 3")
            assert three.callerid is not None and three.callerid.number == "101"
        finally:
            await gw.stop()

    asyncio.run(scenario())


def test_star_67_call_shows_private_and_a_barred_number_never_leaves(tmp_path: Path) -> None:
    async def scenario() -> None:
        gw, board = gateway(tmp_path)
        one, two, _ = board.phones
        await gw.start()
        try:
            one.lift(board.now())
            await asyncio.sleep(0.4)
            one.dial_dtmf("*67", board.now())
            await asyncio.sleep(0.6)
            assert near(strongest(one.earpiece(0.4), 2), [350, 440]), "second dial tone after *67"
            one.dial_dtmf("102", board.now())
            await until(lambda: two.callerid is not None, 10, "caller ID on phone 2")
            assert two.callerid is not None and two.callerid.number_absence is Absence.PRIVATE
            one.hang_up(board.now())
            await until(lambda: gw.lines[1].state is State.IDLE, 5, "phone 2 stops ringing")
            await asyncio.sleep(0.8)
            one.lift(board.now())
            await asyncio.sleep(0.4)
            one.dial_dtmf("01144201234567#", board.now())
            await until(lambda: gw.lines[0].state is State.TONE, 8, "refused locally")
            assert all(leg.port != 0 for leg in gw._legs.values()), "no call leg: nothing was sent"
            await asyncio.sleep(0.6)
            assert near(strongest(one.earpiece(0.5), 2), [480, 620]), "reorder"
        finally:
            await gw.stop()

    asyncio.run(scenario())


def test_forward_no_answer_moves_the_caller_on_after_the_rings(tmp_path: Path) -> None:
    async def scenario() -> None:
        gw, board = gateway(tmp_path)
        one, two, three = board.phones
        await gw.start()
        try:
            await program(gw, board, 1, "*92103#")
            one.lift(board.now())
            await asyncio.sleep(0.4)
            one.dial_dtmf("102", board.now())
            await until(lambda: two.ringing, 8, "phone 2 rings first")
            await until(lambda: three.ringing, 12, "phone 3 rings after 6 s unanswered")
            assert not two.ringing and gw.lines[1].state is State.IDLE
            three.lift(board.now())
            await until(lambda: gw.lines[0].state is State.CONNECTED, 5, "phone 1 talks to phone 3")
        finally:
            await gw.stop()

    asyncio.run(scenario())
