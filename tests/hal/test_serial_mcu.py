"""SerialMcuBoard over a real pseudo-terminal, against the firmware model in tests/hal/mcu_model.py."""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from dsp.tones import RingCadence
from hal.board import FRAME, HardwareError, Int16Array
from hal.events import HookEvent, HookKind
from hal.serial_mcu import SerialMcuBoard
from tests.hal.mcu_model import McuModel

pytest.importorskip("serial")
pytestmark = pytest.mark.timeout(20)


class MemoryAudio:
    """Two silent ports; remembers what was played."""

    def __init__(self, ports: int = 2) -> None:
        self.ports = ports
        self.played: list[Int16Array] = []
        self.closed = False

    def read(self) -> Int16Array:
        return np.zeros((self.ports, FRAME), dtype=np.int16)

    def write(self, frames: Int16Array) -> None:
        self.played.append(frames)

    def close(self) -> None:
        self.closed = True


def wait_until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def poll_until(board: SerialMcuBoard, kind: HookKind, timeout: float = 3.0) -> list[HookEvent]:
    """Poll the board like the app does (every 5 ms) until an event of `kind`; all events seen."""
    seen: list[HookEvent] = []
    deadline = time.monotonic() + timeout
    while not any(e.kind is kind for e in seen):
        assert time.monotonic() < deadline, f"no {kind} (saw {seen})"
        seen += board.poll()
        time.sleep(0.005)
    return seen


def poll_for(board: SerialMcuBoard, seconds: float) -> list[HookEvent]:
    seen: list[HookEvent] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen += board.poll()
        time.sleep(0.005)
    return seen


@pytest.fixture
def mcu() -> Iterator[McuModel]:
    model = McuModel()
    yield model
    model.close()


@pytest.fixture
def board(mcu: McuModel) -> Iterator[SerialMcuBoard]:
    b = SerialMcuBoard(mcu.path, 2, MemoryAudio())
    yield b
    b.close()


def test_handshake_and_initial_line_state(mcu: McuModel, board: SerialMcuBoard) -> None:
    assert board.link_up and board.ports == 2 and mcu.hellos == 1
    assert board.info.firmware == "model-1.0" and board.info.max_burst_s == 3.0
    wait_until(lambda: [f.cmd for f in mcu.commands].count("FEED") == 2)
    assert all(p.feed == "A" and not p.reversed and not p.ringer for p in mcu.ports)
    t, frames = board.read()
    assert frames.shape == (2, FRAME) and t <= board.now()


def test_incompatible_mcu_is_refused_with_a_clear_error() -> None:
    model = McuModel(protocol="2.0")
    try:
        with pytest.raises(HardwareError, match=r"refused HELLO: VERSION"):
            SerialMcuBoard(model.path, 2, MemoryAudio())
    finally:
        model.close()


def test_too_few_ports_is_refused(mcu: McuModel) -> None:
    with pytest.raises(HardwareError, match="has 2 ports, the configuration wants 4"):
        SerialMcuBoard(mcu.path, 4, MemoryAudio())


def test_missing_device_lists_what_is_available(tmp_path: Path) -> None:
    with pytest.raises(HardwareError, match=rf"serial device {tmp_path}/ttyX not found; available: "):
        SerialMcuBoard(str(tmp_path / "ttyX"), 2, MemoryAudio())


def test_missing_pyserial_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(HardwareError, match=r"pyserial is not installed: pip install 'hookflash\[pi\]'"):
        SerialMcuBoard("/dev/ttyUSB0", 2, MemoryAudio())


def test_ring_cadence_is_executed_by_the_mcu(mcu: McuModel, board: SerialMcuBoard) -> None:
    line = board.lines[1]
    assert line.ring(RingCadence("test", ((200, 100), (300, 400))), board.now())
    poll_for(board, 1.25)
    line.stop_ring(board.now())
    wait_until(lambda: not mcu.ports[1].ringer)
    bursts = [(on, off) for port, on, off in mcu.ring_log if port == 1]
    assert len(bursts) == 3
    lengths = [off - on for on, off in bursts]
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(bursts)]
    assert lengths[:2] == [pytest.approx(0.2, abs=0.03), pytest.approx(0.3, abs=0.03)]
    assert gaps == [pytest.approx(0.1, abs=0.03), pytest.approx(0.4, abs=0.03)]
    assert not mcu.ports[0].ringer and not any(p == 0 for p, _, _ in mcu.ring_log)


def test_answering_trips_the_ring_at_the_mcu(mcu: McuModel, board: SerialMcuBoard) -> None:
    line = board.lines[0]
    line.ring(RingCadence("long", ((2000, 4000),)), board.now())
    wait_until(lambda: mcu.ports[0].ringer)
    mcu.set_hook(0, True)
    wait_until(lambda: not mcu.ports[0].ringer, timeout=0.05)  # the MCU, not the host, stops it
    events = poll_until(board, HookKind.OFF_HOOK)
    assert not line.ringing and [e.kind for e in events] == [HookKind.OFF_HOOK]
    assert not line.ring(RingCadence("long", ((2000, 4000),)), board.now())  # never ring off-hook


def test_hook_and_pulse_digit_with_mapped_timestamps(mcu: McuModel, board: SerialMcuBoard) -> None:
    lifted = board.now()
    mcu.set_hook(0, True)
    [off] = poll_until(board, HookKind.OFF_HOOK)
    assert off.port == 0 and off.time == pytest.approx(lifted, abs=0.01)  # across the counter wrap
    mcu.dial(0, 3)
    events = poll_until(board, HookKind.DIGIT)
    assert [(e.kind, e.digit) for e in events] == [(HookKind.DIGIT, "3")]
    hung_up = board.now()
    mcu.set_hook(0, False)
    [on] = poll_until(board, HookKind.ON_HOOK)
    assert on.time == pytest.approx(hung_up, abs=0.01)


def test_noisy_line_is_survived() -> None:
    model = McuModel(corrupt_every=3)
    board = SerialMcuBoard(model.path, 2, MemoryAudio())
    try:
        model.set_hook(1, True)
        poll_until(board, HookKind.OFF_HOOK)
        model.dial(1, 2)
        events = poll_until(board, HookKind.DIGIT)
        assert [(e.port, e.digit) for e in events] == [(1, "2")]
        board.lines[1].set_polarity(True)
        wait_until(lambda: model.ports[1].reversed)
        stats = board.stats
        assert stats.crc_errors + stats.malformed > 0 and stats.noise_bytes > 0 and stats.retransmits > 0
        assert board.link_up
    finally:
        board.close()
        model.close()


def test_unplugged_device_goes_safe_and_reconnects(tmp_path: Path) -> None:
    link = tmp_path / "ttyMCU"
    first = McuModel()
    link.symlink_to(first.path)
    board = SerialMcuBoard(str(link), 2, MemoryAudio())
    second: McuModel | None = None
    try:
        line = board.lines[0]
        line.ring(RingCadence("long", ((2000, 4000),)), board.now())
        wait_until(lambda: first.ports[0].ringer)
        first.close()
        wait_until(lambda: not board.link_up)
        poll_for(board, 0.02)
        assert not line.ringing  # safe meanwhile
        line.set_polarity(True)  # remembered, replayed after the reconnect
        second = McuModel()
        second.set_hook(0, True)
        wait_until(lambda: second is not None and second.ports[0].stable)
        tmp = tmp_path / "new"
        tmp.symlink_to(second.path)
        os.replace(tmp, link)
        wait_until(lambda: board.link_up, timeout=5.0)
        wait_until(lambda: second is not None and second.ports[0].reversed)
        assert second.hellos == 1 and not second.ports[0].ringer
        [off] = poll_until(board, HookKind.OFF_HOOK)
        assert off.port == 0
    finally:
        board.close()
        if second is not None:
            second.close()


def test_hung_mcu_is_detected_and_the_link_reestablished(mcu: McuModel) -> None:
    board = SerialMcuBoard(mcu.path, 2, MemoryAudio(), link_timeout_s=0.4)
    try:
        mcu.silent = True
        wait_until(lambda: not board.link_up)
        mcu.silent = False
        wait_until(lambda: board.link_up and mcu.hellos == 2, timeout=5.0)
    finally:
        board.close()


def test_stalled_app_cannot_leave_the_bell_ringing(mcu: McuModel) -> None:
    with SerialMcuBoard(mcu.path, 2, MemoryAudio(), watchdog_s=0.2) as board:
        board.lines[0].ring(RingCadence("long", ((2000, 4000),)), board.now())
        wait_until(lambda: mcu.ports[0].ringer)
        rang = mcu.now()
        wait_until(lambda: not mcu.ports[0].ringer, timeout=1.0)  # nobody polls; the burst is 2 s
        assert mcu.now() - rang < 0.4 and board.link_up


def test_close_leaves_the_line_safe(mcu: McuModel) -> None:
    audio = MemoryAudio()
    board = SerialMcuBoard(mcu.path, 2, audio)
    board.lines[0].set_polarity(True)
    board.lines[0].ring(RingCadence("long", ((2000, 4000),)), board.now())
    wait_until(lambda: mcu.ports[0].ringer and mcu.ports[0].reversed)
    board.close()
    assert not mcu.ports[0].ringer and not mcu.ports[0].reversed
    assert audio.closed and not board.link_up and not board._thread.is_alive()
