"""Live audio levels for the Status page: each port's mouthpiece and earpiece power in dBm0.

`LevelWindow` is the arithmetic (frames in, figures out, no clock): it sums each port's energy over
the ticks since the last reading, so a reading is the power level (dsp.level's dBm0 convention) of
all the audio in that window, not of one sampled frame. `LevelStream` holds a `Pipeline` tap only
while somebody watches, and hands a reading to every watcher once per `LEVEL_TICKS` media ticks:
the rate is set by the media clock (20 ms ticks), whatever the number of pages open.

The mouthpiece is what the tap sees of the phone after echo cancellation (what the far end gets);
the earpiece is what the port plays to the phone (call audio, tones, caller ID).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dsp.level import rms_to_dbm0
from firmware.media.pipeline import Pipeline, TickResult
from hal.board import FRAME_S, Int16Array

LEVEL_TICKS = 12
"""One reading per 12 ticks of 20 ms: every 240 ms, ~4 a second (a meter reads smoothly at that
rate, and a page on a Pi's Wi-Fi gets 4 small messages a second, not 50)."""

Reading = list[dict[str, Any]]
"""`[{"port": 1, "mouthpiece_dbm0": -21.3, "earpiece_dbm0": -120.0}, ...]`, ports counted from 1."""


class LevelWindow:
    """Energy of every port's mouthpiece and earpiece since the last `take()`."""

    def __init__(self, ports: int) -> None:
        self._energy = np.zeros((2, ports), dtype=np.float64)
        self._samples = 0

    def push(self, mouthpiece: Int16Array, earpiece: Int16Array) -> None:
        """Add one tick: two [ports, 160] int16 frames (summed as float64: no int16 overflow)."""
        self._energy[0] += np.einsum("ij,ij->i", mouthpiece, mouthpiece, dtype=np.float64)
        self._energy[1] += np.einsum("ij,ij->i", earpiece, earpiece, dtype=np.float64)
        self._samples += mouthpiece.shape[-1]

    def take(self) -> Reading:
        """The power level of each port and direction over the window (silence floor when empty),
        rounded to 0.1 dB; the window starts again."""
        rms = np.sqrt(self._energy / max(self._samples, 1))
        dbm0 = np.round(rms_to_dbm0(rms), 1).tolist()
        self._energy[:] = 0.0
        self._samples = 0
        return [{"port": port + 1, "mouthpiece_dbm0": up, "earpiece_dbm0": down}
                for port, (up, down) in enumerate(zip(dbm0[0], dbm0[1], strict=True))]


class LevelStream:
    """Readings for watchers of `pipeline`; the tap exists only while `subscribe` has callers."""

    def __init__(self, pipeline: Pipeline, every: int = LEVEL_TICKS) -> None:
        self.pipeline = pipeline
        self.every = every
        self.window = LevelWindow(pipeline.ports)
        self._ticks = 0
        self._watchers: list[Callable[[Reading], None]] = []

    @property
    def interval_s(self) -> float:
        return self.every * FRAME_S

    @property
    def watched(self) -> bool:
        return bool(self._watchers)

    def subscribe(self, callback: Callable[[Reading], None]) -> Callable[[], None]:
        """Call `callback(reading)` every `interval_s` of media clock until the returned function is
        called. The first watcher adds the tap (with a fresh window), the last one removes it."""
        if not self._watchers:
            self.window = LevelWindow(self.pipeline.ports)
            self._ticks = 0
            self.pipeline.add_tap(self._tap)
        self._watchers.append(callback)

        def unsubscribe() -> None:
            if callback in self._watchers:
                self._watchers.remove(callback)
                if not self._watchers:
                    self.pipeline.remove_tap(self._tap)
        return unsubscribe

    def close(self) -> None:
        self._watchers.clear()
        self.pipeline.remove_tap(self._tap)

    def _tap(self, near: Int16Array, result: TickResult) -> None:
        self.window.push(near, result.frames)
        self._ticks += 1
        if self._ticks >= self.every:
            self._ticks = 0
            reading = self.window.take()
            for callback in list(self._watchers):
                callback(reading)
