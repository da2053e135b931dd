"""Fax and modem tone detection for the media path, vectorised over ports.

* CNG (ITU-T T.30 §5.2.1.1): the calling fax's 1100 Hz +-38 Hz, 0.5 s on / 3 s off. A burst whose
  length falls in CNG_ON_S counts; one burst is enough (the next one is 3.5 s away, too late to switch
  the call to pass-through before the answering side speaks).
* CED / ANS (T.30 §5.2.1.2, ITU-T V.25): the answering side's 2100 Hz +-15 Hz, 2.6..4 s, with phase
  reversals every 450 ms when a modem wants echo cancellers off (ANS with reversals, V.25 §4.2.3).
  Detected after CED_MIN_S of tone either way: both need G.711 pass-through. The frame a reversal
  falls in has little energy at 2100 Hz (the two halves cancel), so a one-frame dropout is bridged.

`dsp.echo`'s tone disabler sees the reversals too, but only reports its bypass decision, which also
covers forced bypass and ignores CED without reversals; the media layer needs the tones themselves.

Each frame costs one [ports, n] x [n, 4] matmul (a single-bin DFT at both frequencies) plus a few
[ports] updates; the frame must be 10..40 ms for the timing counters to mean what they say.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dsp.level import DBM0_RMS

BoolArray = npt.NDArray[np.bool_]

CNG_HZ = 1100.0
CED_HZ = 2100.0
PURITY = 0.6
"""Fraction of a frame's power that must lie in the tone's single DFT bin. Over a 20 ms frame that
holds within about +-18 Hz of nominal: all of V.25's +-15 Hz, but less than T.30's +-38 Hz for CNG
(real fax machines sit well inside it)."""
MIN_DBM0 = -43.0
"""Weakest tone detected: T.30's minimum transmit level minus the line loss it allows for."""
CNG_ON_S = (0.40, 0.65)
"""Accepted CNG burst lengths around the nominal 0.5 s (T.30 allows +-15 %, plus frame granularity)."""
CED_MIN_S = 0.40
GAP_FRAMES = 1
"""Toneless frames bridged inside a tone (a phase reversal's frame)."""


class FaxDetector:
    """CNG and CED/ANS detection for `ports` ports, one [ports, n] frame per call."""

    def __init__(self, ports: int, sample_rate: int = 8000, frame: int = 160) -> None:
        if not 0.010 <= frame / sample_rate <= 0.040:
            raise ValueError(f"fax detector: frame must be 10..40 ms, not {frame} samples")
        self.ports = ports
        self.frame = frame
        n = np.arange(frame)
        w = 2.0 * np.pi * np.array([CNG_HZ, CED_HZ]) / sample_rate
        self._ref = np.concatenate([np.cos(np.outer(n, w)), np.sin(np.outer(n, w))], axis=1)
        self._min_power = frame * (DBM0_RMS * 10 ** (MIN_DBM0 / 20)) ** 2
        self._purity = PURITY * frame
        """Scale of the purity test: a tone's bin holds 2 |X|^2 / (n * sum x^2) of the frame's power."""
        frame_s = frame / sample_rate
        self._cng_min, self._cng_max = (round(s / frame_s) for s in CNG_ON_S)
        self._ced_min = round(CED_MIN_S / frame_s)
        self._run = np.zeros((2, ports), dtype=np.int64)
        """Tone frames in the current burst, [CNG, CED]."""
        self._gap = np.zeros((2, ports), dtype=np.int64)
        self._ced_seen = np.zeros(ports, dtype=bool)
        self._in_burst = False
        """Some port is inside a tone burst (`_run` not all zero): the counters must be updated."""
        self._nothing = np.zeros(ports, dtype=bool)
        self._nothing.flags.writeable = False
        """The answer of a frame without tone, shared (read-only) instead of allocated per frame."""

    def process(self, frame: npt.ArrayLike, power: npt.NDArray[np.float64] | None = None,
                ) -> tuple[BoolArray, BoolArray]:
        """Feed one [ports, n] frame; return (cng, ced): the ports on which either was recognised now.

        `power`: the frame's sum of squares per port, if the caller has it already (the media tick
        shares it with the level meters). CNG is reported once per qualifying burst (as it ends); CED
        once per tone (after CED_MIN_S). The arrays may be read-only.
        """
        x = np.asarray(frame, dtype=np.float64)
        if x.shape != (self.ports, self.frame):
            raise ValueError(f"fax detector: want a [{self.ports}, {self.frame}] frame, got {x.shape}")
        if power is None:
            power = np.vecdot(x, x)
        bins = x @ self._ref
        np.square(bins, out=bins)
        mag2 = bins[:, :2] + bins[:, 2:]  # [ports, 2]
        tone = ((2.0 * mag2 > self._purity * power[:, None]) & (power > self._min_power)[:, None]).T
        if not self._in_burst and not np.count_nonzero(tone):  # no tone anywhere: the common case
            return self._nothing, self._nothing
        self._gap = np.where(tone, 0, self._gap + 1)
        ended = (self._gap > GAP_FRAMES) & (self._run > 0)
        cng = ended[0] & (self._run[0] >= self._cng_min) & (self._run[0] <= self._cng_max)
        self._run = np.where(tone, self._run + 1, np.where(ended, 0, self._run))
        ced = (self._run[1] >= self._ced_min) & ~self._ced_seen
        self._ced_seen = (self._ced_seen | ced) & (self._run[1] > 0)
        self._in_burst = bool(np.count_nonzero(self._run))
        return cng, ced
