"""Streaming integer-ratio resamplers (48 kHz <-> 8 kHz for codecs that will not run at 8 kHz).

Both directions use one linear-phase FIR low-pass (scipy.signal.firwin, Kaiser window) run at the
high rate with `lfilter` state kept per channel, so 20 ms blocks join sample-exactly: streaming a
signal block by block gives the output of filtering it in one call (to float rounding), with no click at
block edges. All channels are filtered in one vectorised call.

Design for factor M (frequencies relative to the low rate's Nyquist, fs_low / 2): passband up to
0.85 (3.4 kHz at 8 kHz, the top of the telephony band), stopband from 1.0 (4 kHz), Kaiser design
for 70 dB (measured >= 69 dB for M = 6), so nothing above 4 kHz aliases into the band when
decimating and the images of the 8 kHz signal are removed when interpolating. For M = 6 that is
347 taps, a group delay of 173 samples at 48 kHz (3.6 ms), passband ripple 0.003 dB.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import signal

FloatArray = npt.NDArray[np.float64]

PASSBAND = 0.85
"""Passband edge as a fraction of the low rate's Nyquist frequency."""
STOPBAND_DB = 70.0


def design_lowpass(factor: int) -> FloatArray:
    """The anti-alias / anti-image FIR for `factor` (odd length, so the group delay is whole samples)."""
    if factor < 2:
        raise ValueError(f"resampling factor must be an integer >= 2, got {factor}")
    width = (1.0 - PASSBAND) / factor  # transition band, relative to the high rate's Nyquist
    numtaps, beta = signal.kaiserord(STOPBAND_DB, width)
    numtaps |= 1
    cutoff = (1.0 + PASSBAND) / 2 / factor
    taps: FloatArray = signal.firwin(numtaps, cutoff, window=("kaiser", beta))
    return taps


class _StreamingFir:
    """`taps` applied along axis 1 of [channels, n] blocks, state carried between blocks."""

    def __init__(self, taps: FloatArray, channels: int) -> None:
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.taps = taps
        self.channels = channels
        self._zi = np.zeros((channels, len(taps) - 1))

    @property
    def group_delay(self) -> float:
        """Delay of the linear-phase filter in samples at the high rate."""
        return (len(self.taps) - 1) / 2

    def _filter(self, x: FloatArray) -> FloatArray:
        y, self._zi = signal.lfilter(self.taps, 1.0, x, axis=1, zi=self._zi)
        return np.asarray(y, dtype=np.float64)

    def reset(self) -> None:
        """Forget the filter history (after a gap in the stream, e.g. an xrun)."""
        self._zi[:] = 0.0

    def _check(self, x: npt.ArrayLike, multiple: int) -> FloatArray:
        a = np.asarray(x, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != self.channels or a.shape[1] % multiple:
            raise ValueError(f"expected [{self.channels}, n*{multiple}] samples, got shape {a.shape}")
        return a


class Decimator(_StreamingFir):
    """Low-pass then keep every `factor`-th sample: [channels, n*factor] -> [channels, n] (float64)."""

    def __init__(self, factor: int, channels: int = 1) -> None:
        super().__init__(design_lowpass(factor), channels)
        self.factor = factor

    def process(self, x: npt.ArrayLike) -> FloatArray:
        filtered = self._filter(self._check(x, self.factor))
        return filtered[:, :: self.factor]


class Interpolator(_StreamingFir):
    """Zero-stuff by `factor` then low-pass: [channels, n] -> [channels, n*factor] (float64).

    The stuffed signal is scaled by `factor` so the passband gain is unity.
    """

    def __init__(self, factor: int, channels: int = 1) -> None:
        super().__init__(design_lowpass(factor), channels)
        self.factor = factor

    def process(self, x: npt.ArrayLike) -> FloatArray:
        a = self._check(x, 1)
        up = np.zeros((self.channels, a.shape[1] * self.factor))
        up[:, :: self.factor] = a * self.factor
        return self._filter(up)
