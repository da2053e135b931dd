"""Hook-flash features through the whole gateway on the real-time simulator, three ports calling each
other locally (no PBX): call waiting with type II caller ID decoded by the virtual phone and a flash
swap, the held call's recall ring, and a three-way conference whose mix is checked by frequency
analysis (each phone speaks its own tone; each hears the other two)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from dsp.callerid import detect_alert
from firmware.app import Gateway
from firmware.config import load_config
from firmware.line.port import State
from hal.sim import SimBoard, VirtualPhone
from tests.firmware.test_app import near, sine, strongest, until

CONFIG = """
[system]
data_dir = "{data}"
[hardware]
ports = 3
[[ports]]
extension = "101"
display_name = "Kitchen"
[[ports]]
extension = "102"
display_name = "Workshop"
[[ports]]
extension = "103"
display_name = "Garage"
"""


def run_gateway(tmp_path: Path, scenario: Callable[[Gateway, SimBoard], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        gateway = Gateway(load_config(CONFIG.format(data=tmp_path)))
        board = gateway.board
        assert isinstance(board, SimBoard) and board.realtime
        await gateway.start()
        try:
            await asyncio.wait_for(scenario(gateway, board), 60)
        finally:
            await gateway.stop()
    asyncio.run(main())


async def call(gateway: Gateway, board: SimBoard, a: int, b: int) -> None:
    """Phone `a` lifts and dials phone `b`'s extension; `b` answers."""
    caller, callee = board.phones[a], board.phones[b]
    caller.lift(board.now())
    await asyncio.sleep(0.4)
    caller.dial_dtmf(f"10{b + 1}", board.now())
    await until(lambda: callee.ringing, 5, f"phone {b + 1} rings")
    callee.lift(board.now())
    await until(lambda: gateway.lines[a].state is State.CONNECTED, 3, f"phone {a + 1} connected")
    await asyncio.sleep(0.5)  # both sessions up


async def hears(phone: VirtualPhone, board: SimBoard, speaker: VirtualPhone, hz: float, what: str) -> None:
    speaker.speak(sine(hz, 1.5), board.now())
    await asyncio.sleep(1.2)
    assert near(strongest(phone.earpiece(0.5), 1), [hz], tol=8), what


def test_call_waiting_type_ii_caller_id_flash_swap_and_recall(tmp_path: Path) -> None:
    async def scenario(gateway: Gateway, board: SimBoard) -> None:
        one, two, three = board.phones
        await call(gateway, board, 0, 1)
        one.callerid = None
        three.lift(board.now())
        await asyncio.sleep(0.4)
        three.dial_dtmf("101", board.now())
        await until(lambda: one.callerid is not None, 6, "type II caller ID on phone 1 (after SAS, CAS, 'D')")
        assert one.callerid is not None and one.callerid.number == "103" and one.callerid.name == "Garage"
        assert not one.ringing and gateway.lines[2].state is State.CALLING  # phone 3 hears ringback
        assert detect_alert(one.earpiece(4.0), 8000), "the CAS (2130 + 2750 Hz) in phone 1's earpiece"

        one.flash(board.now())  # answer the waiting call, phone 2 on hold
        await until(lambda: gateway.lines[2].state is State.CONNECTED, 3, "phone 3 answered by the flash")
        await asyncio.sleep(0.5)
        await hears(one, board, three, 700, "phone 3's 700 Hz on phone 1 after the flash")
        await hears(three, board, one, 1000, "phone 1's 1 kHz on phone 3")
        two.speak(sine(1300, 1.5), board.now())
        await asyncio.sleep(1.2)
        assert not near(strongest(one.earpiece(0.5), 1), [1300], tol=8), "the held phone 2 is not heard"

        one.flash(board.now())  # swap back to phone 2
        await asyncio.sleep(0.9)
        await hears(one, board, two, 1300, "phone 2's 1300 Hz after the second flash")

        one.hang_up(board.now())  # phone 3 is still on hold: the phone rings again for it
        await until(lambda: one.ringing, 5, "phone 1 rings again for the held call")
        await until(lambda: gateway.lines[1].state in (State.DISCONNECT, State.TONE), 2,
                    "phone 2 gets the disconnect")
        one.lift(board.now())
        await until(lambda: gateway.lines[0].state is State.CONNECTED, 3, "the held call resumed")
        await asyncio.sleep(0.6)
        await hears(one, board, three, 900, "phone 3 again after the recall")

    run_gateway(tmp_path, scenario)


def test_three_way_conference_mixes_everyone_and_flash_drops_the_last_party(tmp_path: Path) -> None:
    async def scenario(gateway: Gateway, board: SimBoard) -> None:
        one, two, three = board.phones
        await call(gateway, board, 0, 1)
        one.flash(board.now())  # hold phone 2, recall dial tone
        await until(lambda: gateway.lines[0].state is State.DIALTONE, 3, "recall dial tone")
        await asyncio.sleep(0.3)
        one.dial_dtmf("103", board.now())
        await until(lambda: three.ringing, 5, "phone 3 rings for the consultation")
        three.lift(board.now())
        await until(lambda: gateway.lines[0].state is State.CONNECTED, 3, "consultation answered")
        await asyncio.sleep(0.4)
        one.flash(board.now())  # join all three
        await until(lambda: gateway.lines[0].state is State.CONFERENCE, 3, "conference")
        await asyncio.sleep(0.8)
        # Two talk at a time, the listener silent: with all three talking at once the virtual
        # phone's own sidetone is within a few dB of the conference audio, so "the two strongest
        # tones" would not be a safe check (docs/call-features.md).
        tones = {0: 1000, 1: 700, 2: 1300}
        for listener in (0, 1, 2):
            t = board.now()
            for talker, hz in tones.items():
                if talker != listener:
                    board.phones[talker].speak(sine(hz, 2.0), t)
            await asyncio.sleep(1.6)
            others = sorted(hz for talker, hz in tones.items() if talker != listener)
            assert near(strongest(board.phones[listener].earpiece(0.5), 2), others, tol=8), \
                f"phone {listener + 1} hears the other two"
            await asyncio.sleep(0.5)

        one.flash(board.now())  # drop the last party added (phone 3)
        await until(lambda: gateway.lines[2].state is State.TONE, 3, "phone 3 released")
        assert gateway.lines[0].state is State.CONNECTED and gateway.lines[1].state is State.CONNECTED
        await asyncio.sleep(0.5)
        await hears(one, board, two, 1300, "phone 2 still connected to phone 1")

    run_gateway(tmp_path, scenario)
