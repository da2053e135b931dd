"""Signal levels in dBm0, the unit every telephony standard quotes.

Convention (ITU-T G.711 / G.168 practice, as spandsp uses it): a full-scale int16 sine
(peak 32768) is **+3.14 dBm0**, so a 0 dBm0 sine has a peak of 32768 * 10**(-3.14/20) ~ 22 827
and an RMS of ~ 16 141. Levels of non-sinusoidal signals are power levels: the RMS relative to
that of a 0 dBm0 sine.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FULL_SCALE = 32768.0
FULL_SCALE_SINE_DBM0 = 3.14
DBM0_PEAK = FULL_SCALE * 10.0 ** (-FULL_SCALE_SINE_DBM0 / 20.0)
DBM0_RMS = DBM0_PEAK / np.sqrt(2.0)
SILENCE_DBM0 = -120.0
"""Floor reported for digital silence instead of -inf."""

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]


def dbm0_to_peak(dbm0: ArrayLike) -> FloatArray:
    """Peak amplitude (int16 scale) of a sine at `dbm0`."""
    return np.asarray(DBM0_PEAK * 10.0 ** (np.asarray(dbm0, dtype=np.float64) / 20.0))


def dbm0_to_rms(dbm0: ArrayLike) -> FloatArray:
    """RMS (int16 scale) of any signal whose power is `dbm0`."""
    return np.asarray(DBM0_RMS * 10.0 ** (np.asarray(dbm0, dtype=np.float64) / 20.0))


def rms_to_dbm0(rms: ArrayLike) -> FloatArray:
    """Power level in dBm0 of a signal with RMS `rms`, floored at SILENCE_DBM0."""
    r = np.asarray(rms, dtype=np.float64)
    floor = DBM0_RMS * 10.0 ** (SILENCE_DBM0 / 20.0)
    return np.asarray(20.0 * np.log10(np.maximum(r, floor) / DBM0_RMS))


def power_dbm0(samples: ArrayLike, axis: int = -1) -> FloatArray:
    """Power level in dBm0 of `samples` along `axis` (one figure per port for a [ports, n] block)."""
    x = np.asarray(samples, dtype=np.float64)
    return rms_to_dbm0(np.sqrt(np.mean(x * x, axis=axis)))


class LevelMeter:
    """Smoothed power meter for several ports, fed one [ports, n] frame at a time.

    Fast attack, slow release (like a VU/PPM meter on a status page): the mean-square of each frame
    is followed by a one-pole smoother whose coefficient depends on whether the level rises or falls.
    Vectorized over ports; no per-sample work beyond the frame's mean-square.
    """

    def __init__(self, ports: int, frame_s: float = 0.020, attack_s: float = 0.010,
                 release_s: float = 0.300) -> None:
        self._attack = 1.0 - np.exp(-frame_s / attack_s)
        self._release = 1.0 - np.exp(-frame_s / release_s)
        self._ms = np.zeros(ports, dtype=np.float64)

    def update(self, frame: ArrayLike) -> FloatArray:
        """Feed one [ports, n] frame; return each port's level in dBm0."""
        x = np.asarray(frame, dtype=np.float64)
        self.feed(np.mean(x * x, axis=-1))
        return self.dbm0

    def feed(self, mean_square: FloatArray) -> None:
        """Feed one frame's mean square per port, for a caller that already has it (the media tick
        shares its frame powers with the fax detector); the dBm0 conversion waits for `dbm0`."""
        step = mean_square - self._ms  # > 0 exactly when the level rises (IEEE: a - b > 0 iff a > b)
        step *= np.where(step > 0.0, self._attack, self._release)
        self._ms += step

    @property
    def dbm0(self) -> FloatArray:
        """Current level of each port in dBm0."""
        return rms_to_dbm0(np.sqrt(self._ms))
