"""Packet loss concealment for G.711 per ITU-T G.711 Appendix I (pitch waveform replication).

The receive path (DESIGN.md, "One 20 ms tick") hands every port's frame to `Plc.process` with a
`lost` flag per port: good frames are recorded in a history and passed on, lost ones are replaced by
a continuation synthesised from the history. ITU-T G.711 Appendix I (09/1999), "A high quality
low-complexity algorithm for packet loss concealment with G.711", as implemented here:

- History of 390 samples (48.75 ms). On the first lost frame the pitch period is the lag (40..120
  samples, 5..15 ms) that maximises the normalised cross-correlation between the last 20 ms and the
  history; coarse search at 2:1 decimation, then a full-resolution search of the best lag +/- 1.
- The lost signal repeats the last pitch period, then the last 2 periods after 10 ms and the last
  3 after 20 ms of erasure (repeating one period for long sounds buzzy). Every join in the pitch
  buffer, and every switch to a longer buffer, is a quarter-pitch overlap-add (OLA).
- After the first 10 ms of erasure the synthesis is attenuated linearly by 20 % (of amplitude) per
  10 ms, so it is silent 60 ms after the loss began.
- On the first good frame after an erasure the synthetic continuation is cross-faded into the real
  signal over 4 ms, plus 4 ms per further 10 ms of erasure, at most 10 ms.

Delay: this keeps Appendix I's 3.75 ms (30 samples) output delay. The first OLA has to rewrite the
last quarter pitch (up to 30 samples) of the signal *before* the loss so that it runs smoothly into
the repeated period; with the delay those samples have not been played yet. A zero-delay variant must
instead put a discontinuity or a fade at the start of every loss, and the jitter buffer in front of
us adds tens of ms anyway, so 3.75 ms buys a clean start of concealment cheaply. `Plc.delay` says it
so callers can align (e.g. echo references, tests).

Everything is vectorised over ports: per-port state lives in arrays, and a tick costs a handful of
numpy operations over the lost (or recovering) ports, whatever their number.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

HISTORY = 390
"""History length, 48.75 ms: three periods of the longest pitch plus the OLA overlap (App. I)."""
PITCH_MIN = 40
PITCH_MAX = 120
CORR_LEN = 160
"""The last 20 ms is the segment matched against the history when estimating the pitch."""
DELAY = PITCH_MAX // 4
"""Output delay, 30 samples = 3.75 ms: room for the quarter-pitch OLA at the start of a loss."""
UNIT = 80
"""Appendix I's frame: every schedule (buffer growth, attenuation, recovery OLA) counts 10 ms."""
ATTENUATION = 0.2
"""Amplitude lost per 10 ms of erasure after the first 10 ms."""
RECOVERY_STEP = 32
"""Recovery OLA length per 10 ms of erasure, 4 ms, capped at one `UNIT`."""
MAX_PERIODS = 3
MIN_ENERGY = 250.0
"""Floor of the correlation normaliser so that near-silence does not divide by ~0."""
OCTAVE_PREFERENCE = 0.9
"""Half the found lag wins if its normalised correlation is at least this fraction of the best."""


_SPAN = PITCH_MAX - PITCH_MIN
_COARSE = np.arange(0, _SPAN + 1, 2)[:, None] + np.arange(0, CORR_LEN, 2)[None, :]
"""Sample indices (into the last 280 samples) of the decimated windows at every other lag."""
_WINDOW = np.arange(CORR_LEN)


def find_pitch(history: npt.ArrayLike) -> IntArray:
    """Pitch period in samples (40..120) of each row of `history` [rows, >= 280] (App. I pitch search).

    The coarse pass correlates every other sample at every other lag (quarter of the work); ties go
    to the shorter lag so that a period is not mistaken for two. The fine pass checks best lag +/- 1.
    Deviation from App. I: the fine pass also checks half the coarse lag +/- 1 (if >= 40) and prefers
    it when nearly as good (`OCTAVE_PREFERENCE`). An odd period below 60 has no even lag close enough
    to match at 2:1 decimation, so the coarse pass finds the (even) double period instead.
    """
    h = np.asarray(history, dtype=np.float64)
    h = h.reshape(-1, h.shape[-1])[:, -(CORR_LEN + PITCH_MAX):]
    target = h[:, -CORR_LEN:]
    # the window starting j samples into h is lag PITCH_MAX - j
    score = _normalised_corr(h[:, _COARSE], target[:, ::2])
    best = 2 * (score.shape[1] - 1 - np.argmax(score[:, ::-1], axis=1))  # last maximum: shortest lag

    rows = np.arange(h.shape[0])[:, None]
    lag = (PITCH_MAX - best)[:, None]
    lags = np.clip(np.concatenate([lag + np.arange(-1, 2), lag // 2 + np.arange(-1, 2)], axis=1),
                   PITCH_MIN, PITCH_MAX)
    score = _normalised_corr(h[rows[:, :, None], (PITCH_MAX - lags)[:, :, None] + _WINDOW], target)
    r = rows[:, 0]
    pick = np.argmax(score[:, :3], axis=1)
    half = 3 + np.argmax(score[:, 3:], axis=1)
    octave = (lag[:, 0] // 2 >= PITCH_MIN) & (score[r, half] >= OCTAVE_PREFERENCE * score[r, pick])
    return np.asarray(np.where(octave, lags[r, half], lags[r, pick]), dtype=np.int64)


def _normalised_corr(windows: FloatArray, target: FloatArray) -> FloatArray:
    corr = np.matmul(windows, target[:, :, None])[:, :, 0]
    energy = np.sum(windows * windows, axis=2)
    return np.asarray(corr / np.sqrt(np.maximum(energy, MIN_ENERGY)))


def _to_int16(x: FloatArray) -> Int16Array:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


class _Ports:
    """What every concealer shares: the frame shape checks and a `delay` (samples) to align by."""

    delay = 0

    def __init__(self, ports: int, frame: int) -> None:
        if ports < 1:
            raise ValueError("ports must be >= 1")
        self.ports = ports
        self.frame = frame

    def _check(self, frames: npt.ArrayLike, lost: npt.ArrayLike) -> tuple[Int16Array, npt.NDArray[np.bool_]]:
        x = np.asarray(frames)
        if x.dtype != np.int16 or x.shape != (self.ports, self.frame):
            raise ValueError(f"frames must be int16[{self.ports}, {self.frame}], "
                             f"not {x.dtype}{list(x.shape)}")
        mask = np.asarray(lost, dtype=np.bool_)
        if mask.shape != (self.ports,):
            raise ValueError(f"lost must be bool[{self.ports}]")
        return x, mask


class SilencePlc(_Ports):
    """Baseline: a lost frame is replaced by silence (what a receiver without PLC plays)."""

    def __init__(self, ports: int, frame: int = 160) -> None:
        super().__init__(ports, frame)

    def process(self, frames: npt.ArrayLike, lost: npt.ArrayLike) -> Int16Array:
        """Return the frames with every lost port's frame zeroed."""
        x, mask = self._check(frames, lost)
        return np.where(mask[:, None], np.int16(0), x)


class RepeatPlc(_Ports):
    """Baseline: a lost frame repeats the last good frame (the naive fix, with its buzz and clicks)."""

    def __init__(self, ports: int, frame: int = 160) -> None:
        super().__init__(ports, frame)
        self._last = np.zeros((ports, frame), dtype=np.int16)

    def process(self, frames: npt.ArrayLike, lost: npt.ArrayLike) -> Int16Array:
        """Return good frames unchanged and the last good frame in place of each lost one."""
        x, mask = self._check(frames, lost)
        out = np.where(mask[:, None], self._last, x)
        self._last = out
        return out


class Plc(_Ports):
    """G.711 Appendix I concealment for `ports` ports fed one [ports, frame] block per tick.

    Output is delayed by `delay` (30) samples, lost or not; good frames otherwise pass bit-exact.
    """

    delay = DELAY

    def __init__(self, ports: int, frame: int = 160) -> None:
        if not UNIT <= frame <= HISTORY - DELAY:
            raise ValueError(f"frame must be {UNIT}..{HISTORY - DELAY} samples")
        super().__init__(ports, frame)
        self._history = np.zeros((ports, HISTORY), dtype=np.int16)
        self._erased = np.zeros(ports, dtype=np.int64)
        """Synthetic samples produced so far in each port's current erasure (0: not erasing)."""
        self._pitch = np.full(ports, PITCH_MAX, dtype=np.int64)
        """Pitch period estimated at the start of each port's current erasure."""
        self._pitch_buffers = np.zeros((ports, MAX_PERIODS, HISTORY), dtype=np.float64)
        """Per port, the history as seen by the 1-, 2- and 3-period pitch buffers (tails OLA'd)."""
        self._erasing = False
        """Some port is in an erasure (`_erased` not all zero): its next good frame is a recovery."""

    def process(self, frames: npt.ArrayLike, lost: npt.ArrayLike) -> Int16Array:
        """Record good frames and conceal lost ones; return the (delayed) output of every port."""
        x, mask = self._check(frames, lost)
        # Nothing lost now and no erasure to end (the common case): the frames go in as they are.
        new = self._conceal(x, mask) if self._erasing or np.count_nonzero(mask) else x
        self._history[:, : HISTORY - self.frame] = self._history[:, self.frame :]
        self._history[:, HISTORY - self.frame :] = new
        return self._history[:, HISTORY - DELAY - self.frame : HISTORY - DELAY].copy()

    def _conceal(self, x: Int16Array, mask: npt.NDArray[np.bool_]) -> Int16Array:
        """The frames with lost ones synthesised and the first good one after an erasure faded in."""
        new = x.copy()
        lost_rows = np.flatnonzero(mask)
        if lost_rows.size:
            starting = lost_rows[self._erased[lost_rows] == 0]
            if starting.size:
                self._start_erasure(starting)
            t = self._erased[lost_rows, None] + np.arange(self.frame)
            new[lost_rows] = _to_int16(self._synthesise(lost_rows, t))
            self._erased[lost_rows] += self.frame
        recovering = np.flatnonzero(~mask & (self._erased > 0))
        if recovering.size:
            new[recovering] = self._recover(recovering, x[recovering])
            self._erased[recovering] = 0
        self._erasing = bool(np.count_nonzero(self._erased))
        return new

    def _start_erasure(self, rows: IntArray) -> None:
        """Estimate the pitch and build the 1/2/3-period pitch buffers (App. I, start of erasure).

        Each k-period buffer wraps from the end of the history back to k periods earlier. Its last
        quarter pitch is cross-faded from the real signal into the samples just before the wrap
        target, so the wrap continues the waveform. The 1-period version is also written into the
        not-yet-played tail of the history: that is what the output delay is for.
        """
        h = self._history[rows].astype(np.float64)
        pitch = find_pitch(h)
        self._pitch[rows] = pitch
        overlap = (pitch >> 2)[:, None, None]
        j = np.arange(DELAY) - (DELAY - overlap)  # index within each port's overlap, < 0 before it
        w = (j + 1) / overlap  # weight of the earlier (wrap-target) samples, reaching 1 at the end
        periods = np.arange(1, MAX_PERIODS + 1)[None, :, None]
        earlier = h[np.arange(rows.size)[:, None, None],
                    HISTORY - DELAY + np.arange(DELAY) - periods * pitch[:, None, None]]
        tail = h[:, None, HISTORY - DELAY :]
        buffers = np.empty((rows.size, MAX_PERIODS, HISTORY))
        buffers[:] = h[:, None, :]
        buffers[:, :, HISTORY - DELAY :] = np.where(j >= 0, (1 - w) * tail + w * earlier, tail)
        self._pitch_buffers[rows] = buffers
        self._history[rows, HISTORY - DELAY :] = _to_int16(buffers[:, 0, HISTORY - DELAY :])

    def _synthesise(self, rows: IntArray, t: IntArray) -> FloatArray:
        """Concealment samples at erasure times `t` [rows, n] (samples since the loss began).

        Reproduces Appendix I's 10 ms schedule sample by sample: a k-period buffer for 10(k-1) ms
        <= t < 10k ms (k <= 3), entered at the phase the previous buffer reached (reduced to within
        one period) and cross-faded from the previous buffer over a quarter pitch; then the
        linear attenuation.
        """
        p = self._pitch[rows][:, None]
        overlap = p >> 2
        phase1 = UNIT % p  # where the 1-period buffer stood after 10 ms
        phase2_old = (phase1 + UNIT) % (2 * p)  # where the 2-period buffer stood after 20 ms
        phase2 = np.where(phase2_old > p, phase2_old - p, phase2_old)
        k = np.minimum(t // UNIT, MAX_PERIODS - 1) + 1
        u = t - UNIT * (k - 1)  # time since this buffer was entered (unbounded for k = 3)
        offset = np.where(k == 1, t % p,
                          np.where(k == 2, (phase1 + u) % (2 * p), (phase2 + u) % (3 * p)))
        r = rows[:, None]
        new = self._pitch_buffers[r, k - 1, HISTORY - k * p + offset]
        k_old = np.maximum(k - 1, 1)
        offset_old = np.where(k_old == 1, (phase1 + u) % p, (phase2_old + u) % (2 * p))
        old = self._pitch_buffers[r, k_old - 1, HISTORY - k_old * p + offset_old]
        fading = (k > 1) & (u < overlap)
        w = (u + 1) / overlap
        x = np.where(fading, (1 - w) * old + w * new, new)
        gain = np.clip(1.0 - (t - UNIT) * (ATTENUATION / UNIT), 0.0, 1.0)
        return np.asarray(x * gain)

    def _recover(self, rows: IntArray, good: Int16Array) -> Int16Array:
        """Cross-fade the synthetic continuation into the first good frame (App. I, end of erasure).

        The fade lasts 4 ms per 10 ms erased, at most 10 ms: the longer the loss, the more the
        synthesis has drifted from the real signal and the gentler the change must be.
        """
        erased = self._erased[rows][:, None]
        length = np.minimum(RECOVERY_STEP * -(-erased // UNIT), UNIT)
        i = np.arange(UNIT)[None, :]
        synthetic = self._synthesise(rows, erased + i)
        w = (i + 1) / length  # weight of the real signal, 1 from the end of the fade on
        head = good[:, :UNIT].astype(np.float64)
        out = good.copy()
        out[:, :UNIT] = _to_int16(np.where(i < length, (1 - w) * synthetic + w * head, head))
        return out


Concealer = SilencePlc | RepeatPlc | Plc


def simulate(concealer: type[Concealer], signal: npt.ArrayLike, lost: npt.ArrayLike,
             frame: int = 160) -> Int16Array:
    """Play `signal` through one port per row of `lost` [trials, frames]; int16[trials, samples] out.

    Offline harness for quality tests and benchmarks: each trial is its own port (so all trials run
    in one pass, as the media path would run them), and the concealer's delay is removed so that
    the output lines up with `signal`.
    """
    x = np.asarray(signal, dtype=np.int16)
    mask = np.asarray(lost, dtype=np.bool_)
    trials, frames = mask.shape
    if x.size < frames * frame:
        raise ValueError("signal is shorter than the loss pattern")
    c = concealer(trials, frame)
    out = [c.process(np.broadcast_to(x[f * frame : (f + 1) * frame], (trials, frame)), mask[:, f])
           for f in range(frames)]
    return np.concatenate(out, axis=1)[:, c.delay :]


def spectral_distance(reference: npt.ArrayLike, test: npt.ArrayLike, start: int, stop: int,
                      step: int = UNIT) -> float:
    """Mean log-spectral distance (dB) between two signals over [start, stop), per 10 ms segment.

    Each segment is compared on a Hann-windowed 20 ms spectrum centred on it; bins are floored at
    -60 dB under the reference's peak so that silence scores as a large but finite distance. A
    phase-blind measure on purpose: waveform replication restores the spectrum of a lost sound, not
    its exact waveform, so waveform SNR scores it no better than silence.
    """
    r = np.asarray(reference, dtype=np.float64)
    t = np.asarray(test, dtype=np.float64)
    half = step // 2
    starts = np.arange(start, stop - step + 1, step)
    if starts.size == 0 or starts[0] < half or starts[-1] + step + half > min(r.size, t.size):
        raise ValueError("segments must lie inside both signals with 5 ms margins")
    idx = starts[:, None] - half + np.arange(2 * step)
    window = np.hanning(2 * step)
    ref_mag = np.abs(np.fft.rfft(r[idx] * window, axis=1))
    test_mag = np.abs(np.fft.rfft(t[idx] * window, axis=1))
    floor = np.maximum(1e-3 * ref_mag.max(axis=1, keepdims=True), 1e-9)
    diff = 20.0 * np.log10(np.maximum(ref_mag, floor) / np.maximum(test_mag, floor))
    return float(np.mean(np.sqrt(np.mean(diff * diff, axis=1))))
