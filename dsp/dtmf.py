"""DTMF (Q.23 touch-tone) generation and detection, vectorised over ports and samples.

A decision is made for every sliding window of 120 samples (15 ms, 67 Hz bins, enough to separate the
73 Hz-spaced low group), hopping by one 40-sample (5 ms) sub-block. One real matrix multiply per frame
gives, for every port and window, the DFT at the eight DTMF frequencies and at the 2nd harmonics of the
high group; a cheap gate on it ends the work for speech and music. A window that passes the gate checks:

* both strongest tones above an absolute threshold (sensitivity, Q.24 operate level);
* twist within the normal/reverse limits (Q.24: 8 dB low group stronger, 4 dB high group stronger);
* each tone dominates the other bins of its group (relative peak); the high tone's 2nd harmonic is weak
  (the low tones' harmonics fall among the high group's own tones);
* the two tones carry most of the window's energy (talk-off: speech spreads energy over many
  harmonics and formants);
* energy is even across the three sub-blocks (the window is inside the tone, not on its edge);
* the frequency measured from the phase advance between the window's first and last 80 samples is
  within +-2.5 % of nominal:
  Q.24 requires acceptance at +-1.5 % and rejection at +-3.5 %, which a 15 ms magnitude window alone
  cannot tell apart.

Duration (Q.24 / ES 201 235-3: accept 40 ms, reject 23 ms or less) comes from counting windows. A tone
of L samples yields at most ceil((L - 40) / 40) windows whose three sub-blocks all touch it, and at
least floor((L - 120) / 40) + 1 windows wholly inside it, whatever its phase against the sub-block
grid (a window with a silent sub-block fails the evenness check). Requiring START_WINDOWS = 5
consecutive windows therefore always accepts 320 samples (40 ms) and always rejects 200 samples (25 ms)
or less. A digit ends after END_WINDOWS failing windows: a 10 ms
drop-out spoils at most 6 windows, a 40 ms pause at least 9.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

from dsp.level import DBM0_RMS
from dsp.synth import to_int16, tone

SAMPLE_RATE = 8000
DIGITS = "123A456B789C*0#D"
"""Keypad layout: row = low-group tone, column = high-group tone (ITU-T Q.23)."""
LOW_HZ = (697.0, 770.0, 852.0, 941.0)
HIGH_HZ = (1209.0, 1336.0, 1477.0, 1633.0)

SUB = 40
"""Samples per sub-block (5 ms): the hop of the sliding window."""
WIN_SUBS = 3
WIN = SUB * WIN_SUBS
START_WINDOWS = 5
"""Consecutive windows of one digit that start it (see the duration argument above)."""
END_WINDOWS = 7
"""Consecutive windows without it that end a digit: bridges 10 ms drop-outs, splits at 40 ms pauses."""
CHUNK = 4
"""Windows the state machine advances per array step (one 20 ms frame); must stay below START_WINDOWS."""

MIN_TONE_DBM0 = -40.0
"""Per-tone threshold (Q.24 AT&T column asks for operation from 0 to -25 dBm0); tones of -39 dBm0
still operate, -41 dBm0 never."""
NORMAL_TWIST_DB = 10.0
"""Low group may exceed high group by this much (Q.24: accept 8 dB; 2 dB for leakage of the strong tone)."""
REVERSE_TWIST_DB = 6.0
"""High group may exceed low group by this much (Q.24: accept 4 dB; 2 dB for leakage of the strong tone)."""
RELATIVE_PEAK_DB = 8.0
"""Each tone must exceed every other bin of its group by this much (as spandsp)."""
HARMONIC_DB = 12.0
"""The high tone's 2nd harmonic must be this much below it (speech has strong harmonics)."""
TONE_TO_TOTAL = 0.7
"""Share of the window's energy the two tones must carry (0.7: no hits in the music corpus, digits
still pass at 8 dB SNR in white noise)."""
EVENNESS = 0.4
"""Each sub-block must carry at least this share of the window's mean sub-block energy."""
FREQ_TOL = 0.025
"""Accepted frequency error, midway between Q.24's must-accept 1.5 % and must-reject 3.5 %."""

_FREQS = np.array(LOW_HZ + HIGH_HZ + tuple(2.0 * f for f in HIGH_HZ))
_NF = _FREQS.size
_TONE_ENERGY_FLOOR = (DBM0_RMS * 10.0 ** (MIN_TONE_DBM0 / 20.0)) ** 2 * WIN
"""Window energy of a sine at MIN_TONE_DBM0."""


def _real_dft(freqs: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """[WIN, 2 * len(freqs)] matrix: real then imaginary parts of the DFT at `freqs` over the masked
    samples of a window (a real matmul is cheaper than a complex one on int16 audio)."""
    n = np.arange(WIN, dtype=np.float64).reshape(-1, 1)
    w = 2.0 * np.pi * freqs / SAMPLE_RATE
    return np.hstack([np.cos(w * n), -np.sin(w * n)]) * mask.reshape(-1, 1)


_ALL = np.ones(WIN, dtype=bool)
_HEAD = np.arange(WIN) < WIN - SUB
_TAIL = np.arange(WIN) >= SUB
_WIN_DFT = _real_dft(_FREQS, _ALL)
_HEAD_TAIL_DFT = np.hstack([_real_dft(_FREQS[:8], _HEAD), _real_dft(_FREQS[:8], _TAIL)])
"""The window's first and last 80 samples at the eight DTMF frequencies, for the frequency estimate."""
_PEAK = 10.0 ** (RELATIVE_PEAK_DB / 10.0)
_HARMONIC = 10.0 ** (HARMONIC_DB / 10.0)
_NORMAL = 10.0 ** (NORMAL_TWIST_DB / 10.0)
_REVERSE = 10.0 ** (REVERSE_TWIST_DB / 10.0)
_MAX_GAIN = float(np.sinc(0.015 * HIGH_HZ[-1] * WIN / SAMPLE_RATE) ** -2)
"""Largest window loss undone for an off-nominal tone: 1.9 dB, Q.24's must-accept 1.5 % at 1633 Hz.
Capping it keeps the cheap gate tight (0.3 % of speech windows get past it instead of 9 %)."""
_QUIET_TOTAL = _TONE_ENERGY_FLOOR / (4.0 * _MAX_GAIN)
"""Window energy below which no tone of the window can pass the gate, with a factor 2 to spare: a
bin's energy (2 / WIN) |sum x[n] e^(-jwn)|^2 is at most 2 * sum x[n]^2 (Cauchy-Schwarz), and the gate
needs both tones' energies times _MAX_GAIN at or above _TONE_ENERGY_FLOOR. About -50 dBm0 over a
window: a silent or idle-noise line (mouthpiece not in use) costs no DFT."""


def _check(win: npt.NDArray[np.float64], tone_e: npt.NDArray[np.float64],
           total: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Full checks of the windows [k, WIN] that passed the gate: digit index 0..15, or -1."""
    r = np.arange(win.shape[0])
    low, high = tone_e[:, 0:4], tone_e[:, 4:8]
    li, hi = low.argmax(axis=1), high.argmax(axis=1)
    le, he = low[r, li], high[r, hi]
    ok = (np.sort(low, axis=1)[:, -2] * _PEAK <= le) & (np.sort(high, axis=1)[:, -2] * _PEAK <= he)
    ok &= tone_e[r, 8 + hi] * _HARMONIC <= he
    # Frequency from the phase advance of the two peak bins between the window's overlapping head and
    # tail (80 samples each: sub-blocks alone would let the other group's tone leak in).
    ht = win @ _HEAD_TAIL_DFT
    rr, both = r[:, None], np.stack([li, hi + 4], axis=1)
    adv = (ht[rr, both + 16] + 1j * ht[rr, both + 24]) * (ht[rr, both] - 1j * ht[rr, both + 8])
    df = np.angle(adv) * (SAMPLE_RATE / (2.0 * np.pi * SUB))
    ok &= np.all(np.abs(df) <= FREQ_TOL * _FREQS[both], axis=1)
    # Undo the window's loss for an off-nominal tone (up to 1.9 dB at 1.5 %) so that level, twist and
    # energy share are judged on the true tone levels.
    gain = np.minimum(np.sinc(df * (WIN / SAMPLE_RATE)) ** -2, _MAX_GAIN)
    le, he = le * gain[:, 0], he * gain[:, 1]
    ok &= (le >= _TONE_ENERGY_FLOOR) & (he >= _TONE_ENERGY_FLOOR)
    ok &= (he <= le * _REVERSE) & (le <= he * _NORMAL)
    ok &= le + he >= TONE_TO_TOTAL * total
    blocks = win.reshape(-1, WIN_SUBS, SUB)
    ok &= np.einsum("ksi,ksi->ks", blocks, blocks).min(axis=1) * WIN_SUBS >= EVENNESS * total
    return np.where(ok, li * 4 + hi, -1)


class _Workspace:
    """The detector's arrays for one frame length, reused while the length stays (the media tick
    always feeds 160 samples: nothing is allocated per tick for them).

    `audio` is the history (the previous frame's last WIN - SUB samples) followed by the frame;
    `view` its overlapping windows, a strided view, and `windows` their contiguous copy, so that the
    DFT of every window of every port is one 2-D matmul into `dft`.
    """

    def __init__(self, history: npt.NDArray[np.float64], n_sub: int) -> None:
        ports = history.shape[0]
        self.n_sub = n_sub
        self.audio = np.empty((ports, WIN - SUB + n_sub * SUB))
        self.audio[:, :WIN - SUB] = history
        s0, s1 = self.audio.strides
        self.view: npt.NDArray[np.float64] = np.ndarray((ports, n_sub, WIN), np.float64, self.audio, 0,
                                                        (s0, SUB * s1, s1))
        self.windows = np.empty((ports, n_sub, WIN))
        self.dft = np.empty((ports * n_sub, 2 * _NF))

    @property
    def history(self) -> npt.NDArray[np.float64]:
        """The last WIN - SUB samples of `audio`: the next frame's history."""
        return self.audio[:, self.n_sub * SUB:]


@dataclass(frozen=True)
class DtmfEvent:
    """A digit starting or ending on one port; `time_s` counts from the detector's first sample."""

    port: int
    digit: str
    start: bool
    time_s: float


_Ordered = tuple[int, int, int, DtmfEvent]
"""An event with its sort key: window, end (0) before start (1), port."""


class DtmfDetector:
    """Streaming DTMF receiver for all ports at once, fed [ports, n] int16 frames of any length n.

    State per port: the last two sub-blocks of audio (windows straddle frames), the run of
    identical window decisions, the digit in progress and its count of failing windows.
    `present` tells which ports hear a digit now (for in-band DTMF suppression).
    """

    def __init__(self, ports: int, sample_rate: int = SAMPLE_RATE) -> None:
        if sample_rate != SAMPLE_RATE:
            raise ValueError("DtmfDetector runs at 8000 Hz; resample first (detect_dtmf does)")
        self.ports = ports
        self._no_pending = self._pending = np.zeros((ports, 0), dtype=np.float64)
        self._work = _Workspace(np.zeros((ports, WIN - SUB)), 0)
        self._subs = 0
        """Sub-blocks consumed so far (all ports advance together)."""
        self._run_digit = np.full(ports, -1, dtype=np.int64)
        self._run_len = np.zeros(ports, dtype=np.int64)
        self._run_start = np.zeros(ports, dtype=np.int64)
        self._cur = np.full(ports, -1, dtype=np.int64)
        self._miss = np.zeros(ports, dtype=np.int64)
        self._last_hit = np.zeros(ports, dtype=np.int64)
        self._busy = False
        """Some port has a digit or a run of windows in progress: the state machine must run."""

    @property
    def present(self) -> npt.NDArray[np.bool_]:
        """Ports on which a digit is currently being received."""
        return np.asarray(self._cur >= 0)

    def process(self, frame: npt.ArrayLike) -> list[DtmfEvent]:
        """Feed one [ports, n] block of audio; return the digit start/end events it completed."""
        x = np.asarray(frame)
        if x.ndim != 2 or x.shape[0] != self.ports:
            raise ValueError(f"expected a [{self.ports}, n] frame, got shape {x.shape}")
        if self._pending.shape[1]:
            x = np.concatenate([self._pending, x], axis=1, dtype=np.float64)
        n_sub = x.shape[1] // SUB
        whole = n_sub * SUB == x.shape[1]  # the media tick's 160 samples: no remainder to keep
        self._pending = self._no_pending if whole else x[:, n_sub * SUB:]
        if n_sub == 0:
            return []
        digits = self._decide(x if whole else x[:, :n_sub * SUB])
        events = self._track(digits, n_sub) if digits is not None or self._busy else []
        self._subs += n_sub
        return events

    def _decide(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.int64] | None:
        """Window decisions [ports, n_sub] for `x` [ports, n_sub * SUB]: digit index 0..15, or -1;
        None when no window of any port comes near a digit (the common case, kept cheap)."""
        n_sub = x.shape[1] // SUB
        work = self._work
        if work.n_sub == n_sub:
            work.audio[:, :WIN - SUB] = work.history  # the last frame's tail (does not overlap it)
        else:
            work = self._work = _Workspace(work.history, n_sub)
        work.audio[:, WIN - SUB:] = x
        win = work.windows
        np.copyto(win, work.view)
        # Exact for integer samples (the media path's int16): sums of squares far below 2**53.
        total = np.vecdot(win, win)
        if not np.count_nonzero(total >= _QUIET_TOTAL):
            return None  # every window too quiet to hold a digit (see _QUIET_TOTAL)
        ri = np.matmul(win.reshape(-1, WIN), _WIN_DFT, out=work.dft).reshape(self.ports, n_sub, -1)
        ri *= ri
        tone_e = (ri[..., :_NF] + ri[..., _NF:]) * (2.0 / WIN)
        pairs = np.maximum(tone_e[..., 0:8:2], tone_e[..., 1:8:2])  # fewer calls than max(axis=-1)
        peaks = np.maximum(pairs[..., 0::2], pairs[..., 1::2])
        le, he = peaks[..., 0], peaks[..., 1]
        # Cheap gate (the off-nominal gain below is at most _MAX_GAIN): most speech and music stops here.
        gate = (le + he) * _MAX_GAIN >= TONE_TO_TOTAL * total
        gate &= np.minimum(le, he) * _MAX_GAIN >= _TONE_ENERGY_FLOOR
        if not np.count_nonzero(gate):
            return None

        cand = np.flatnonzero(gate)
        port, j = np.divmod(cand, n_sub)
        digits = np.full(gate.shape, -1, dtype=np.int64)
        digits.flat[cand] = _check(win[port, j], tone_e[port, j], total[port, j])
        return digits

    def _track(self, digits: npt.NDArray[np.int64] | None, n_win: int) -> list[DtmfEvent]:
        """Run the start/end state machine over the window decisions, vectorised over ports and over
        up to CHUNK windows at a time; chunks where every port is idle and hears nothing are skipped."""
        events: list[_Ordered] = []
        if digits is None:
            digits = np.full((self.ports, n_win), -1, dtype=np.int64)
        hot = np.flatnonzero((digits >= 0).any(axis=0))
        j = 0
        while j < n_win:
            if not self._busy:
                nxt = int(np.searchsorted(hot, j))
                if nxt == hot.size:
                    break
                j = int(hot[nxt])
            stop = min(j + CHUNK, n_win)
            self._chunk(digits[:, j:stop], self._subs - (WIN_SUBS - 1) + j, events)
            self._busy = bool(np.count_nonzero(self._cur >= 0) or np.count_nonzero(self._run_len))
            j = stop
        events.sort(key=lambda e: e[:3])
        return [e[3] for e in events]

    def _chunk(self, d: npt.NDArray[np.int64], k0: int, events: list[_Ordered]) -> None:
        """Advance the state over windows d [ports, <= CHUNK] whose first sub-block is k0.

        With CHUNK < START_WINDOWS < END_WINDOWS a port can end at most one digit and then start at most
        one in a chunk, which lets every step be an array operation over the chunk.
        """
        n = d.shape[1]
        jj = np.arange(n)
        valid = d >= 0
        # Runs of identical decisions.
        prev = np.concatenate([self._run_digit[:, None], d[:, :-1]], axis=1)
        brk = np.maximum.accumulate(np.where((d == prev) & valid, -1, jj), axis=1)
        run_len = np.where(valid, np.where(brk < 0, self._run_len[:, None] + jj + 1, jj - brk + 1), 0)
        run_start = np.where(brk < 0, self._run_start[:, None], k0 + brk)
        # End of the digit in progress after END_WINDOWS windows without it.
        active = self._cur >= 0
        hit = (d == self._cur[:, None]) & active[:, None]
        last = np.maximum.accumulate(np.where(hit, jj, -1), axis=1)
        miss = np.where(last < 0, self._miss[:, None] + jj + 1, jj - last)
        end = (miss >= END_WINDOWS) & active[:, None]
        has_end: npt.NDArray[np.bool_] = np.any(end, axis=1)
        j_end = np.argmax(end, axis=1)
        for p in np.flatnonzero(has_end):
            end_s = float((self._last_hit[p] + WIN_SUBS) * SUB / SAMPLE_RATE)
            ev = DtmfEvent(int(p), DIGITS[self._cur[p]], False, end_s)
            events.append((k0 + int(j_end[p]), 0, int(p), ev))
        # Start of a digit on a free port after START_WINDOWS identical windows.
        free = ~active[:, None] | (has_end[:, None] & (jj >= j_end[:, None]))
        start = free & (run_len >= START_WINDOWS)
        has_start: npt.NDArray[np.bool_] = np.any(start, axis=1)
        j_st = np.argmax(start, axis=1)
        new_cur = d[np.arange(self.ports), j_st]
        for p in np.flatnonzero(has_start):
            t = float(run_start[p, j_st[p]] * SUB / SAMPLE_RATE)
            events.append((k0 + int(j_st[p]), 1, int(p), DtmfEvent(int(p), DIGITS[new_cur[p]], True, t)))
        hit2 = (d == new_cur[:, None]) & (jj >= j_st[:, None])
        last2 = np.maximum.accumulate(np.where(hit2, jj, -1), axis=1)[:, -1]
        keep = active & ~has_end
        self._cur = np.where(has_start, new_cur, np.where(keep, self._cur, -1))
        self._miss = np.where(has_start, n - 1 - last2, np.where(keep, miss[:, -1], self._miss))
        self._last_hit = np.where(has_start, k0 + last2,
                                  np.where(keep & (last[:, -1] >= 0), k0 + last[:, -1], self._last_hit))
        self._run_digit = d[:, -1].copy()
        self._run_len = run_len[:, -1]
        self._run_start = run_start[:, -1]

    def flush(self) -> list[DtmfEvent]:
        """End every digit in progress as if silence followed (end of a recording)."""
        pad = (END_WINDOWS + WIN_SUBS) * SUB - self._pending.shape[1]
        return self.process(np.zeros((self.ports, pad)))


_CHUNK_SAMPLES = 10 * SAMPLE_RATE


def detect_dtmf(samples: npt.ArrayLike, sample_rate: int = SAMPLE_RATE) -> list[tuple[str, float, float]]:
    """Key presses in a mono recording as (digit, start_s, end_s); other rates are resampled to 8 kHz."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if sample_rate != SAMPLE_RATE:
        g = int(np.gcd(int(sample_rate), SAMPLE_RATE))
        x = resample_poly(x, SAMPLE_RATE // g, int(sample_rate) // g)
    det = DtmfDetector(1)
    events = []
    for i in range(0, x.size, _CHUNK_SAMPLES):  # bounded memory for long recordings
        events += det.process(x[None, i:i + _CHUNK_SAMPLES])
    events += det.flush()
    out: list[tuple[str, float, float]] = []
    start: DtmfEvent | None = None
    for ev in events:
        if ev.start:
            start = ev
        elif start is not None:
            out.append((ev.digit, float(start.time_s), float(ev.time_s)))
            start = None
    return out


def dtmf_frequencies(digit: str) -> tuple[float, float]:
    """(low, high) group frequencies in Hz of one keypad digit (ITU-T Q.23)."""
    i = DIGITS.find(digit.upper())
    if len(digit) != 1 or i < 0:
        raise ValueError(f"not a DTMF digit: {digit!r} (expected one of {DIGITS})")
    return LOW_HZ[i // 4], HIGH_HZ[i % 4]


def generate_dtmf(digits: str, sample_rate: int = SAMPLE_RATE, on_ms: float = 100.0, off_ms: float = 100.0,
                  level_dbm0: float = -10.0, twist_db: float = 0.0) -> npt.NDArray[np.int16]:
    """Key presses, each `on_ms` of tone then `off_ms` of silence, as int16.

    `level_dbm0` is the low-group tone's level; the high-group tone is `twist_db` lower (positive =
    normal twist, low group stronger). The defaults (-10 dBm0 per tone, 100 ms / 100 ms) sit inside
    every Q.24 operate limit.
    """
    on = round(on_ms * sample_rate / 1000.0)
    off = round(off_ms * sample_rate / 1000.0)
    parts: list[npt.NDArray[np.float64]] = []
    for ch in digits:
        parts.append(tone(dtmf_frequencies(ch), [level_dbm0, level_dbm0 - twist_db], on, sample_rate))
        parts.append(np.zeros(off))
    return to_int16(np.concatenate(parts) if parts else np.zeros(0))
