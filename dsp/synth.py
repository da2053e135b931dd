"""Sine synthesis shared by the tone, DTMF and caller-ID generators."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from dsp.level import dbm0_to_peak


def tone(freqs_hz: Sequence[float], levels_dbm0: float | Sequence[float], n: int,
         sample_rate: int = 8000, start: int = 0) -> npt.NDArray[np.float64]:
    """Sum of sines, each at its own level in dBm0, samples `start` .. `start + n` of the tone.

    Passing the running sample index as `start` keeps a tone phase-continuous across frames.
    """
    f = np.asarray(freqs_hz, dtype=np.float64).reshape(-1, 1)
    peaks = np.broadcast_to(dbm0_to_peak(levels_dbm0), (f.shape[0],)).reshape(-1, 1)
    t = (start + np.arange(n, dtype=np.float64)) / sample_rate
    return np.asarray(np.sum(peaks * np.sin(2.0 * np.pi * f * t), axis=0))


def to_int16(x: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """Round to int16 with saturation (never wrap around)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64)), -32768, 32767).astype(np.int16)
