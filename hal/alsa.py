"""Audio through ALSA (pyalsaaudio): one channel per port, int16 [channels, 160] every 20 ms.

The capture `read()` blocks for one period; that blocking is the gateway's media clock (DESIGN.md,
"One 20 ms tick"), so nothing here sleeps. The codec is opened S16_LE at 8 kHz with 160-frame
periods. pyalsaaudio applies the rate with ALSA's set_rate_near, so a card that cannot run at
8 kHz silently opens at another rate: we check `info()['rate']` and, if it is not 8 kHz, reopen
at 48 kHz (period 960) and convert with `dsp.resample` (48 kHz is what I2S codecs and USB cards
nearly all support). Overruns and underruns are recovered (pyalsaaudio re-prepares the stream and
reports -EPIPE), counted in `xruns`, and the lost period is replaced by silence.
"""

from __future__ import annotations

import errno
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from dsp.resample import Decimator, Interpolator
from hal.board import HardwareError, import_hardware_module

Int16Array = npt.NDArray[np.int16]

FALLBACK_RATE = 48000
PERIODS = 4
"""Periods in the ALSA buffer: 80 ms of slack for a late tick before an underrun."""
PREFILL = 2
"""Silent periods written at start so playback runs one tick behind capture without underrunning."""


def import_alsaaudio() -> ModuleType:
    """The pyalsaaudio module, imported only when an ALSA board is built (it is the `pi` extra)."""
    return import_hardware_module("alsaaudio", "pyalsaaudio",
                                  " (it needs the ALSA headers: apt install libasound2-dev)")


class AlsaAudio:
    """A capture and a playback PCM with `channels` channels, moved in 20 ms frames at `rate`."""

    def __init__(self, capture_device: str = "default", playback_device: str = "default",
                 channels: int = 1, rate: int = 8000, period: int = 160) -> None:
        self._alsa = import_alsaaudio()
        self.channels = channels
        self.rate = rate
        self.period = period
        self.xruns = 0
        self.device_rate = rate
        if FALLBACK_RATE % rate:
            raise ValueError(f"rate must divide {FALLBACK_RATE} Hz, got {rate}")
        self._capture = self._open(self._alsa.PCM_CAPTURE, capture_device)
        try:
            self._playback = self._open(self._alsa.PCM_PLAYBACK, playback_device)
            if int(self._capture.info()["rate"]) != self.device_rate:  # playback forced the fallback
                self._capture.close()
                self._capture = self._open(self._alsa.PCM_CAPTURE, capture_device)
        except HardwareError:
            self._capture.close()
            raise
        self.factor = self.device_rate // rate
        self._decimator = Decimator(self.factor, channels) if self.factor > 1 else None
        self._interpolator = Interpolator(self.factor, channels) if self.factor > 1 else None
        self._pending = b""
        silence = bytes(2 * channels * period * self.factor)
        for _ in range(PREFILL):
            self._write_device(silence)

    def _open(self, kind: int, device: str) -> Any:
        """Open `device` at our rate, or at FALLBACK_RATE if the card will not do it."""
        pcm = self._open_at(kind, device, self.device_rate)
        actual = int(pcm.info()["rate"])
        if actual != self.device_rate and self.device_rate == self.rate:
            pcm.close()
            self.device_rate = FALLBACK_RATE
            pcm = self._open_at(kind, device, FALLBACK_RATE)
            actual = int(pcm.info()["rate"])
        if actual != self.device_rate:
            pcm.close()
            raise HardwareError(f"ALSA device {device} runs neither {self.rate} Hz nor {FALLBACK_RATE} Hz "
                                f"(it offered {actual} Hz); use a plughw: device or another codec")
        channels = int(pcm.info()["channels"])
        if channels != self.channels:
            pcm.close()
            raise HardwareError(f"ALSA device {device} gives {channels} channels, the board needs "
                                f"{self.channels} (one per port)")
        return pcm

    def _open_at(self, kind: int, device: str, rate: int) -> Any:
        a = self._alsa
        try:
            return a.PCM(type=kind, mode=a.PCM_NORMAL, rate=rate, channels=self.channels,
                         format=a.PCM_FORMAT_S16_LE, periodsize=self.period * rate // self.rate,
                         periods=PERIODS, device=device)
        except a.ALSAAudioError as e:
            what = "capture" if kind == a.PCM_CAPTURE else "playback"
            raise HardwareError(f"ALSA device {device} not found or not usable for {what} ({e}); "
                                f"available: {', '.join(self._available(kind))}") from e

    def _available(self, kind: int) -> list[str]:
        a = self._alsa
        names = [f"hw:{i} ({card})" for i, card in zip(a.card_indexes(), a.cards(), strict=False)]
        return names + [p for p in a.pcms(kind) if p != "null"] or ["no sound cards"]

    # -- audio -------------------------------------------------------------------------------------
    def read(self) -> Int16Array:
        """Block until the next period of mouthpiece audio; int16 [channels, period]."""
        need = 2 * self.channels * self.period * self.factor
        while len(self._pending) < need:
            n, data = self._capture.read()
            if n == -errno.EPIPE:  # overrun: pyalsaaudio re-prepared the stream, the data is gone
                self.xruns += 1
                self._pending = b""
                if self._decimator is not None:
                    self._decimator.reset()
                return np.zeros((self.channels, self.period), dtype=np.int16)
            if n < 0:
                raise HardwareError(f"ALSA capture failed: {errno.errorcode.get(-n, n)}")
            self._pending += data
        block, self._pending = self._pending[:need], self._pending[need:]
        frames = np.frombuffer(block, dtype="<i2").reshape(-1, self.channels).T
        if self._decimator is None:
            return np.ascontiguousarray(frames, dtype=np.int16)
        return _to_int16(self._decimator.process(frames))

    def write(self, frames: Int16Array) -> None:
        """Play int16 [channels, period] of earpiece audio."""
        if frames.shape != (self.channels, self.period):
            raise ValueError(f"expected int16 [{self.channels}, {self.period}], got {frames.shape}")
        out = frames if self._interpolator is None else _to_int16(self._interpolator.process(frames))
        self._write_device(np.ascontiguousarray(out.T, dtype="<i2").tobytes())

    def _write_device(self, data: bytes) -> None:
        if self._playback.write(data) == -errno.EPIPE:
            # underrun: the stream was re-prepared and this period dropped; play it now instead
            self.xruns += 1
            self._playback.write(data)

    def close(self) -> None:
        self._capture.close()
        self._playback.close()


def _to_int16(x: npt.NDArray[np.float64]) -> Int16Array:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)
