"""The board: every port of one HAT, with audio for all ports as one [ports, 160] array per 20 ms.

A backend subclasses `Board`: it builds one `Line` per port over its own `LineDriver`, reports raw
hook-switch levels with `report_hook()` from wherever it sees them (GPIO edge callbacks, an MCU
reader thread, a status register poll) stamped with its clock, and moves audio in `read()` /
`write()`. `read()` blocking on the audio device is the media clock (DESIGN.md, "One 20 ms tick").
"""

from __future__ import annotations

import importlib
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import ModuleType, TracebackType
from typing import Self

import numpy as np
import numpy.typing as npt

from hal.events import HookEvent
from hal.line import Line

RATE = 8000
FRAME = 160
"""Samples per port per tick: 20 ms at 8 kHz."""
FRAME_S = FRAME / RATE
Int16Array = npt.NDArray[np.int16]


class HardwareError(RuntimeError):
    """The board, its module or its device is missing or misbehaves; the message says what to do."""


def import_hardware_module(module: str, package: str, note: str = "") -> ModuleType:
    """Import a module of the optional `pi` extra, or say which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise HardwareError(f"{package} is not installed: pip install 'hookflash[pi]'{note}") from e


class Board(ABC):
    """All ports of one HAT (see the module docstring for what a backend provides)."""

    lines: Sequence[Line]

    def __init__(self) -> None:
        self._hook_queue: queue.SimpleQueue[tuple[int, bool, float]] = queue.SimpleQueue()
        self._lock = threading.Lock()

    @property
    def ports(self) -> int:
        return len(self.lines)

    @abstractmethod
    def read(self) -> tuple[float, Int16Array]:
        """Wait for the next 20 ms of mouthpiece audio of every port.

        Returns the clock time of the frame's first sample and int16 [ports, FRAME].
        """

    @abstractmethod
    def write(self, frames: Int16Array) -> None:
        """Play int16 [ports, FRAME] of earpiece audio, following the frame last read."""

    @abstractmethod
    def now(self) -> float:
        """The backend's clock (seconds), the one its hook timestamps use."""

    def report_hook(self, port: int, offhook: bool, at: float) -> None:
        """Thread-safe: a backend saw port's raw hook switch at `offhook` at time `at`."""
        self._hook_queue.put((port, offhook, at))

    def poll(self, now: float | None = None) -> list[HookEvent]:
        """Feed reported hook levels through the lines and run their timers up to `now`."""
        now = self.now() if now is None else now
        events: list[HookEvent] = []
        with self._lock:
            pending = []
            while True:
                try:
                    pending.append(self._hook_queue.get_nowait())
                except queue.Empty:
                    break
            for port, level, at in sorted(pending, key=lambda p: p[2]):
                events += self.lines[port].hook_sample(level, min(at, now))
            for line in self.lines:
                events += line.handle_timer(now)
        return sorted(events, key=lambda e: e.time)

    def get_timer(self) -> float | None:
        """Earliest deadline of any line (for the asyncio adapter's one `call_at`)."""
        times = [t for line in self.lines if (t := line.get_timer()) is not None]
        return min(times) if times else None

    def mix_onhook_audio(self, frames: Int16Array, at: float) -> Int16Array:
        """`frames` with each line's scheduled on-hook data (caller ID, alert tones) for time `at` added."""
        out = frames
        for line in self.lines:
            data = line.onhook_audio(at, frames.shape[1])
            if data is not None:
                if out is frames:
                    out = frames.copy()
                mixed = out[line.port].astype(np.int32) + data
                out[line.port] = np.clip(mixed, -32768, 32767).astype(np.int16)
        return out

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Leave every line safe: ringing stopped, normal polarity. Backends add their pin/chip state."""
        now = self.now()
        for line in self.lines:
            line.stop_ring(now)
            line.set_polarity(False)
