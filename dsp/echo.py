"""Line echo canceller for the SLIC's 2-to-4-wire hybrid (ITU-T G.168), vectorised over ports.

What we play to a phone (Rin, the far end) leaks back through the SLIC's hybrid into what we read
(Sin): a delayed, dispersed, attenuated copy (the echo path, ERL >= 6 dB in G.168's tests). The
canceller models that path with an adaptive FIR filter and subtracts its estimate from Sin: Sout.
In the media tick (DESIGN.md), Rin is the frame written last tick and Sin the frame hal.read() gives.

* Filter: partitioned-block frequency-domain adaptive filter (PBFDAF, the "multidelay" filter of Soo
  & Pang 1990): block B samples (default 160, one per 20 ms tick: numpy's per-call cost, not
  arithmetic, dominates at a few ports), FFT 2B, ceil(tail / B) partitions (64 ms -> 4 x 20 ms),
  per-bin NLMS step normalised by that bin's far-end power over the whole tail, floored at 1 % of
  the mean bin power (speech leaves the bins between its harmonics nearly empty: without the floor
  their steps are mostly noise, which the next sound has to unlearn), gradient constraint on every
  partition (the partitions stay a true linear convolution). That is how the background tracks once
  the start-up below is over: a step per block, or every other block while its error is SETTLED_DB
  under Sin (the step is the canceller's largest cost). All ports,
  partitions and bins go through one set of numpy calls per block, in float32 / complex64 (half the
  memory traffic of float64; rounding sits ~100 dB below the echo, far under any ERLE we measure).
  The FFTs and the products skip ports with nothing to do: a port whose Rin was silent over the
  whole tail has a zero echo estimate (no product, no inverse FFT), and only the ports adapting this
  block compute the background estimate and its gradient; the rest of the block's state is updated
  for all ports at once. Batched or one port at a time, the results are the same to the bit.
* Start-up (the first second or so of each call): NLMS on speech is slow (it learns a bin only while
  the talker excites it; 30 dB took up to 2 s and more on recorded speech), so until the background
  reaches STARTUP_UNTIL_DB it is instead the least-squares path of the signal so far (double talk
  left out), solved every LS_EVERY blocks from running correlation sums (Rin's autocorrelation and its
  cross-correlation with Sin, one batched FFT correlation per block) by Levinson's recursion on
  the Toeplitz normal equations (scipy.linalg.solve_toeplitz, ~0.35 ms for 512 taps). The sums'
  Toeplitz form assumes Rin zero outside the summed stretch; its echo past the stretch's end is
  put back with the previous solution (`_tail`), so the solutions settle on the exact least-squares
  path. Double talk (with the far end active) drops the sums; a new stretch starts once Rin has
  gone quiet over the tail (REOPEN_DB), so no earlier talk still echoes into it; meanwhile NLMS
  steps. 30 dB within 0.3..0.8 s of talk on 15 recorded clips x 4 paths (median 0.5 s). The
  start-up ends for good at STARTUP_UNTIL_DB or after LS_MAX_S of far-end talk (near-end noise may
  keep the error above it), and costs nothing once every port is past it.
* Two paths (Ochiai et al. 1977; Speex's mdf.c does the same): a background filter adapts; the
  foreground filter, which makes the output, is a copy taken only while the background does
  measurably better over the blocks it adapts on (double talk and far-end silence excluded: a
  background that adapted on near-end speech the detector missed does worse, so it is not copied),
  and a foreground whose output is louder than Sin
  (the echo path went away: G.168's infinite-return-loss test) falls back to the zero filter.
  Divergence therefore does not reach the output, and with nothing to cancel the foreground stays
  at zero: Sout = Sin. A background far worse than the foreground (`RESET_RATIO`) has diverged and
  restarts from the foreground.
* Double talk: Geigel detector (near-end peak > 0.5 x the Rin peak over the tail, i.e. ERL >= 6 dB
  assumed) with a 60 ms hangover; it freezes adaptation and the two-path copy. The near-end peak is
  that of Sin or of Sout, whichever is smaller: once converged, Sout has no echo left to mistake for
  talk, so a 6 dB path whose echo peaks reach half the Rin peak no longer stalls adaptation, while
  near-end speech is in both and still detected.
* NLP (non-linear processor): while the far end is active, no double talk is flagged, the residual
  is at least 12 dB below the echo estimate and within 12 dB of what the best ERLE so far would
  leave of it, the block is replaced by comfort noise (white) at the near-end background level,
  tracked by a minimum follower on Sout, so the line never goes dead. The second condition keeps
  near-end speech the Geigel detector misses (quieter than the echo of two loud far ends in a
  conference, or on a 6 dB hybrid) out of the NLP's reach.
* Tone disabler (ITU-T G.165 behaviour): a 2100 Hz answer tone with phase reversals (V.25 ANS with
  reversals every 450 ms: fax and modems that want no canceller), on Rin or Sin, bypasses the
  canceller; a 2100 Hz tone without reversals does not (it disables only G.164 echo suppressors).
  The bypass holds while any signal is present and releases after 250 ms with both directions below
  -36 dBm0. The media layer can also force bypass per port (fax pass-through).
"""

from __future__ import annotations

import cmath
import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import fft as sfft  # numpy's rfft of a zero-padded input (the constraint) is ~1.5x slower
from scipy.linalg import solve_toeplitz

from dsp.level import DBM0_RMS, rms_to_dbm0
from dsp.synth import to_int16

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Int16Array = npt.NDArray[np.int16]
Float32Array = npt.NDArray[np.float32]
ComplexArray = npt.NDArray[np.complexfloating[Any, Any]]
RealArray = npt.NDArray[np.floating[Any]]

MAX_TAIL_MS = 128.0
GEIGEL_THRESHOLD = 0.5
"""Sin peak / Rin peak above which near-end speech is assumed: an echo is >= 6 dB down (G.168 ERL)."""
DOUBLE_TALK_HANGOVER_S = 0.060
STEP = 1.0
"""Normalised step of the background filter: per-bin NLMS, normalised by the bin's power over the tail."""
FAR_ACTIVE_DBM0 = -40.0
"""Far-end block level above which we adapt and the NLP may act."""
REGULARISE_DBM0 = -50.0
"""Per-bin power floor (as a white signal at this level) so quiet far-end bins do not get huge steps."""
STARTUP_UNTIL_DB = 30.0
"""The least-squares start-up runs until the background's error is this far below Sin (smoothed over
the blocks it adapts on); from then on, until `reset`, the background tracks by NLMS alone."""
BIN_FLOOR = 0.01
"""Per-bin power floor relative to the mean bin power over the tail (-20 dB): bins the far end barely
excites (between speech harmonics) get a bounded step whatever the talker's level."""
PATH_SMOOTH_S = 0.040
"""Time constant of the error energies the two-path logic compares."""
COPY_RATIO = 0.8
"""Background error energy below this fraction of the foreground's: copy background to foreground."""
RESET_RATIO = 8.0
"""Background error energy above this multiple of the foreground's (or not finite): the background
diverged (narrowband far ends such as pure tones can drive the partitioned NLMS off) and restarts from
the foreground, as Speex's mdf.c resets it; in float32 it would otherwise overflow within seconds."""
SETTLED_DB = 35.0
"""A background whose error is this far below Sin (smoothed) steps on every other block only: half
the cost of the gradient (the largest in the canceller) once a call's echo is well cancelled; a path
change or a near end it learned pushes the error up and it steps every block again."""
LS_RIDGE = 1e-6
"""Ridge added to the start-up solve's zero-lag autocorrelation, relative to it (60 dB down): keeps the
Toeplitz system well conditioned where speech leaves bands unexcited (results move < 0.05 s between
1e-8 and 1e-4 here)."""
LS_EVERY = 2
"""A port in start-up solves on every LS_EVERY-th block it adapts on (a solve is O(taps^2), ~0.35 ms
for 512 taps here): half the cost for a few tens of ms of convergence. Counted per port, so a port's
audio never depends on what the other ports do."""
LS_MAX_S = 3.0
"""Seconds of far-end-only blocks after which a port that has still not reached STARTUP_UNTIL_DB
(near-end noise can cap the error there) ends its start-up anyway and tracks by NLMS."""
REOPEN_DB = 20.0
"""A start-up segment closed by double talk reopens once Rin's energy over the tail is this far below
the loudest block so far: what still echoes from before it is then that far under the talk to come
(15..25 dB all give the same convergence on our 15 clips x 4 paths; 30 dB waits too long for a pause
on one of them)."""
ADDING_RATIO = 2.0
"""Foreground error energy above this multiple of Sin's: the foreground is dropped (zero filter)."""
ERLE_SMOOTH_S = 0.200
CONVERGED_ERLE_DB = 20.0
NLP_RESIDUAL_DB = -12.0
NLP_MARGIN_DB = 12.0
"""...and only while the residual is within this of what the canceller's best ERLE so far leaves of
the echo estimate: near-end speech too quiet for the Geigel detector (two loud far ends in a
conference, a 6 dB hybrid) stands far above that and passes, where the -12 dB rule alone cut it."""
NLP_BEST_DECAY_DB_PER_S = 1.0
"""How fast that best ERLE is forgotten (so an echo path change gets its NLP back within seconds)."""
"""NLP acts only while the residual is this far below the echo estimate (so near-end speech passes)."""
COMFORT_BLOCKS = 401
"""Blocks of white noise in the comfort-noise table (8 s at 20 ms: no loop a listener could hear in
a background at -65 dBm0; prime, so the ports' offsets never line up)."""
COMFORT_PORT_STRIDE = 97
NOISE_RISE_DB_PER_S = 3.0
"""How fast the background-noise follower may rise (it falls at once to a quieter block)."""
TONE_HZ = 2100.0
TONE_PURITY = 0.7
"""Fraction of a block's power that must lie at 2100 Hz for it to count as answer tone."""
TONE_MIN_DBM0 = -33.0
"""Tone detection threshold, between -31 dBm0 (must detect) and -36 dBm0 (must not): G.165's figures
as I recall them, not checked against the text."""
TONE_RELEASE_DBM0 = -36.0
TONE_RELEASE_S = 0.250
"""Re-enable after 250 ms (G.165: 250 +- 150 ms, as recalled) with both directions below -36 dBm0."""
TONE_GAP_BLOCKS_S = 0.030
"""A tone may drop out this long (a phase reversal mid-block dims it) and still be one tone."""
REVERSAL_REFRACTORY_S = 0.200


def _any(flags: BoolArray) -> bool:
    """`flags.any()` without ndarray.any's Python-level wrapper (a few µs, called ~10 times a tick)."""
    return bool(np.count_nonzero(flags))


def _all(flags: BoolArray) -> bool:
    """`flags.all()`, as cheaply as `_any`."""
    return bool(np.count_nonzero(flags) == flags.size)


def _dbm0_power(dbm0: float) -> float:
    return float((DBM0_RMS * 10.0 ** (dbm0 / 20.0)) ** 2)


class EchoCanceller:
    """G.168 line echo canceller for `ports` lines at once; feed it every tick with `process`."""

    def __init__(self, ports: int, tail_ms: float = 64.0, sample_rate: int = 8000, block: int = 160,
                 nlp: bool = True, seed: int = 0) -> None:
        if ports < 1:
            raise ValueError(f"echo canceller: ports must be >= 1, not {ports}")
        if not 0 < tail_ms <= MAX_TAIL_MS:
            raise ValueError(f"echo canceller: tail_ms must be in (0, {MAX_TAIL_MS}], not {tail_ms}")
        if block * 1000 // sample_rate not in (10, 20):
            raise ValueError(f"echo canceller: block must be 10 or 20 ms (the tone disabler's timing), "
                             f"not {block} samples")
        self.ports = ports
        self.sample_rate = sample_rate
        self.block = block
        self.nlp = nlp
        b = block
        self._parts = math.ceil(tail_ms * sample_rate / 1000.0 / b)
        bins = b + 1
        blocks_per_s = sample_rate / b
        # Comfort noise: white, from a table of COMFORT_BLOCKS blocks (8 s at 20 ms), each port
        # reading it in turn from its own offset: drawing fresh normals for every port each block
        # cost more than any other step of the NLP.
        self._comfort = np.random.default_rng(seed).standard_normal((COMFORT_BLOCKS, b)).astype(np.float32)
        self._comfort_at = np.arange(ports) * COMFORT_PORT_STRIDE % COMFORT_BLOCKS

        def smooth(tau_s: float) -> float:
            return math.exp(-1.0 / (tau_s * blocks_per_s))

        self._a_path = smooth(PATH_SMOOTH_S)
        self._startup_until = 10.0 ** (-STARTUP_UNTIL_DB / 10.0)
        self._settled = 10.0 ** (-SETTLED_DB / 10.0)
        self._a_erle = smooth(ERLE_SMOOTH_S)
        self._noise_rise = 10.0 ** (NOISE_RISE_DB_PER_S / blocks_per_s / 10.0)
        self._best_decay = 10.0 ** (-NLP_BEST_DECAY_DB_PER_S / blocks_per_s / 10.0)
        self._nlp_residual = 10.0 ** (NLP_RESIDUAL_DB / 10.0)
        self._nlp_margin = 10.0 ** (NLP_MARGIN_DB / 10.0)
        self._hangover = max(1, round(DOUBLE_TALK_HANGOVER_S * blocks_per_s))
        # One partition's E|X|^2 for white noise at REGULARISE_DBM0 (2B x its variance).
        self._reg = 2 * b * _dbm0_power(REGULARISE_DBM0)
        self._far_active = (self._parts + 1) * b * _dbm0_power(FAR_ACTIVE_DBM0)
        """Rin energy over the tail's blocks above which the far end is active (their mean level)."""

        self._xx = np.zeros((ports, 2 * b), dtype=np.float32)
        """Rin's FFT window: the previous block, then the current one."""
        self._eb = np.zeros((ports, 2 * b), dtype=np.float32)
        """The background error's FFT window: B zeros, then the error."""
        self._X = np.zeros((ports, self._parts, bins), dtype=np.complex64)
        self._xpow = np.zeros((ports, self._parts, bins), dtype=np.float32)
        """|X|^2 per partition (0 = newest), summed over partitions for the per-bin step."""
        self._W = np.zeros((ports, 2, self._parts, bins), dtype=np.complex64)
        """Foreground (0, makes the output) and background (1, adapts) filters."""
        self._peaks = np.zeros((ports, self._parts + 1))
        self._powers = np.zeros((ports, self._parts + 1))
        """Rin peak and energy of each block over the tail, a ring (`_slot` is the next to write)."""
        self._slot = 0
        self._odd = False
        self._dt_left = np.zeros(ports, dtype=np.int64)
        self._pe = np.zeros((ports, 3))
        """Smoothed error energy of the foreground and background filters, and Sin's energy, over
        the blocks the background adapts on (the two-path comparison; the second-step rule)."""
        self._converged = np.zeros(ports, dtype=np.bool_)
        """The start-up is over (STARTUP_UNTIL_DB reached or LS_MAX_S spent since the last reset)."""
        self._taps = min(round(tail_ms * sample_rate / 1000.0), self._parts * b)
        self._ls_fft = 1 << (self._taps + b - 1).bit_length()
        self._hist = np.zeros((ports, self._taps + b))
        """Rin's last `taps` samples before this block, then this block (the start-up's sums)."""
        self._loudest = np.zeros(ports)
        """Energy of the loudest Rin block since `reset` (the start-up's reopening rule)."""
        self._reopen_below = (self._parts + 1) * 10.0 ** (-REOPEN_DB / 10.0)
        self._open = np.ones(ports, dtype=np.bool_)
        """The port's start-up segment is open: its blocks go into the sums (a call starts silent)."""
        self._rxx = np.zeros((ports, self._taps))
        self._rxd = np.zeros((ports, self._taps))
        """Start-up sums over the open segment: Rin's autocorrelation and the Sin x Rin
        cross-correlation, lags 0..taps-1 (the normal equations of the least-squares path)."""
        self._ls_blocks = np.zeros(ports, dtype=np.int64)
        """Blocks adapted on since `reset` while in start-up (LS_EVERY, LS_MAX_S)."""
        self._ls_max_blocks = round(LS_MAX_S * blocks_per_s)
        self._levels = np.zeros((ports, 4))
        """Smoothed energies, one update for all: the foreground error and Sin over every block
        (PATH_SMOOTH_S, for the G.168 test 5 check), then Sin and Sout over far-end-only blocks
        (ERLE_SMOOTH_S, the ERLE estimate)."""
        self._gains = np.full((ports, 4), 1.0 - self._a_path)
        """Smoothing gains (1 - the time constant's factor) per `_levels` column; 0 holds a value."""
        self._fresh = np.zeros((ports, 4))
        self._noise = np.full(ports, np.inf)
        self._best = np.zeros(ports)
        """Best smoothed ERLE (Sin / Sout power) since `reset`, forgotten at NLP_BEST_DECAY_DB_PER_S."""

        # Tone disabler state, [2 (Rin, Sin), ports].
        self._t0 = 0
        self._tone_w = 2.0 * np.pi * TONE_HZ / sample_rate
        n = np.arange(b)
        self._tone_ref = np.stack([np.cos(self._tone_w * n), -np.sin(self._tone_w * n)], axis=1)
        self._tone_min = b * _dbm0_power(TONE_MIN_DBM0)
        self._release_pow = b * _dbm0_power(TONE_RELEASE_DBM0)
        self._release_blocks = max(1, round(TONE_RELEASE_S * blocks_per_s))
        self._gap_blocks = max(1, round(TONE_GAP_BLOCKS_S * blocks_per_s))
        self._refractory = max(1, round(REVERSAL_REFRACTORY_S * blocks_per_s))
        self._phasors = np.zeros((2, ports, 4), dtype=np.complex128)
        """The last four blocks' 2100 Hz phasors (0 = newest), zero where the block held no tone."""
        self._tone_gap = np.full((2, ports), self._gap_blocks + 1)
        self._since_reversal = np.full((2, ports), self._refractory)
        self._reversed = np.zeros((2, ports), dtype=np.bool_)
        self._quiet = np.zeros(ports, dtype=np.int64)
        self._tone_bypass = np.zeros(ports, dtype=np.bool_)
        self._tone_idle = True
        """No tone in the last blocks and nothing pending: the next toneless block changes nothing."""
        self._forced = np.zeros(ports, dtype=np.bool_)

    # -- the tick -------------------------------------------------------------------------------
    def process(self, far_end: npt.ArrayLike, near_end: npt.ArrayLike) -> Int16Array:
        """Cancel the echo of `far_end` (Rin, played) in `near_end` (Sin, read); both int16 [ports, n].

        `n` must be a multiple of the block size; the result is Sout, int16 [ports, n].
        """
        far, near = np.asarray(far_end), np.asarray(near_end)
        if far.shape != near.shape or far.ndim != 2 or far.shape[0] != self.ports:
            raise ValueError(f"echo canceller: want far_end and near_end of shape [{self.ports}, n], "
                             f"got {far.shape} and {near.shape}")
        n = far.shape[1]
        if n % self.block:
            raise ValueError(f"echo canceller: n = {n} is not a multiple of {self.block}")
        xd = np.array([far, near], dtype=np.float64)  # [Rin, Sin] in one conversion
        if n == self.block:
            return to_int16(self._block(xd))
        out = np.empty((self.ports, n))
        for start in range(0, n, self.block):
            sl = slice(start, start + self.block)
            out[:, sl] = self._block(xd[:, :, sl])
        return to_int16(out)

    def _block(self, xd: FloatArray) -> FloatArray:
        """One block of [Rin, Sin] ([2, ports, B]); returns Sout (float)."""
        b = self.block
        x, d = xd
        power = np.einsum("spn,spn->sp", xd, xd)
        slot = self._slot
        self._slot = (slot + 1) % (self._parts + 1)
        self._odd = not self._odd
        self._powers[:, slot] = power[0]
        tail_energy = self._powers.sum(axis=1)
        # Ports whose Rin was all zero over the tail have X = 0, so their echo estimate is exactly
        # zero and their gradient too: the FFTs run only for the others ("live"), all at once.
        live = tail_energy > 0.0
        # Live ports still in the start-up: its work is theirs only (a port whose Rin was silent over
        # the tail has an all-zero history, and one past the start-up has nothing to do there).
        starting = live & ~self._converged
        any_starting = _any(starting)
        if any_starting:
            rows = np.flatnonzero(starting)
            self._hist[rows, :-b] = self._hist[rows, b:]
            self._hist[rows, -b:] = x[rows]
        self._xx[:, b:] = x
        X0 = sfft.rfft(self._xx, axis=1)
        self._xx[:, :b] = x
        self._X[:, 1:] = self._X[:, :-1]
        self._X[:, 0] = X0
        self._xpow[:, 1:] = self._xpow[:, :-1]
        self._xpow[:, 0] = X0.real ** 2 + X0.imag ** 2
        y = self._estimate(live, 0)
        e_fg = d - y
        pe_fg = np.einsum("pn,pn->p", e_fg, e_fg)

        # Geigel double-talk detector over the tail (plus this block), with hangover; see the module
        # docstring for why it looks at the smaller of Sin and Sout.
        peak = np.abs(xd).max(axis=2)
        self._peaks[:, slot] = peak[0]
        near_peak = np.minimum(peak[1], np.abs(e_fg).max(axis=1))
        e_bg: RealArray | None = None
        if any_starting:  # the background is ahead of the foreground then
            e_bg = d - self._estimate(starting, 1)
            near_peak = np.where(starting, np.minimum(near_peak, np.abs(e_bg).max(axis=1)), near_peak)
        geigel = near_peak > GEIGEL_THRESHOLD * self._peaks.max(axis=1)
        self._dt_left -= 1
        self._dt_left[geigel] = self._hangover
        dt = self._dt_left > 0

        far = tail_energy > self._far_active
        if any_starting:
            self._loudest = np.maximum(self._loudest, power[0])
            self._segment(starting, dt, far, tail_energy, x, d)
        far_only = far & ~dt
        bypass = self._tone_disabler(xd, power) | self._forced
        adapt = far_only & ~bypass

        # Background filter, for the ports that adapt this block only: its echo estimate and error,
        # then a normalised, constrained frequency-domain gradient step.
        if _any(adapt):
            if e_bg is None:
                e_bg = d - self._estimate(adapt, 1)
            elif _any(rest := adapt & ~starting):
                e_bg = e_bg - self._estimate(rest, 1)  # zero estimates elsewhere: rows do not mix
            pe_bg = np.einsum("pn,pn->p", e_bg, e_bg)
            tracking = adapt & (self._converged | ~self._open)  # NLMS: after start-up, or paused
            if self._odd:  # a settled port steps every other block (SETTLED_DB)
                tracking &= ~(self._pe[:, 1] < self._settled * self._pe[:, 2])
            if _any(tracking):
                self._step(tracking, e_bg)
            # Two-path control: the two filters' errors are compared over the blocks the background
            # adapts on (double talk and silence excluded), and a clearly better background is copied.
            fresh = self._fresh[:, :3]
            fresh[:, 0], fresh[:, 1], fresh[:, 2] = pe_fg, pe_bg, power[1]
            self._pe += np.where(adapt, 1.0 - self._a_path, 0.0)[:, None] * (fresh - self._pe)
            # Start-up: count the block, end the start-up where it is done, solve for the rest.
            if any_starting:
                learning = adapt & starting
                self._ls_blocks += learning
                self._converged |= learning & ((self._pe[:, 1] < self._startup_until * self._pe[:, 2])
                                               | (self._ls_blocks >= self._ls_max_blocks))
                again = learning & ~self._converged
                if _any(again):
                    self._solve(again)
            copy = adapt & (self._pe[:, 1] < COPY_RATIO * self._pe[:, 0])
            if _any(copy):
                self._W[copy, 0] = self._W[copy, 1]
                self._pe[copy, 0] = self._pe[copy, 1]
            diverged = tracking & ~(self._pe[:, 1] <= RESET_RATIO * self._pe[:, 0])  # NaN counts too
            if _any(diverged):
                self._W[diverged, 1] = self._W[diverged, 0]
                self._pe[diverged, 1] = self._pe[diverged, 0]
        # Sout well above Sin: the model adds echo rather than removing it (the path has gone,
        # G.168 test 5), so the zero filter beats it; restart the foreground from there. The same
        # update smooths the ERLE metric's energies over far-end-only blocks.
        self._gains[:, 2:] = np.where(far_only, 1.0 - self._a_erle, 0.0)[:, None]
        fresh = self._fresh  # columns written one by one: np.stack costs more than the arithmetic
        fresh[:, 0] = fresh[:, 3] = pe_fg
        fresh[:, 1] = fresh[:, 2] = power[1]
        levels = self._levels
        levels += self._gains * (fresh - levels)
        adds = levels[:, 0] > ADDING_RATIO * levels[:, 1]
        if _any(adds):
            self._W[adds, 0] = 0.0
            levels[adds, 0] = self._pe[adds, 0] = levels[adds, 1]

        # Background noise: minimum follower on the canceller's output.
        fall = np.where(np.isinf(self._noise), pe_fg, 0.5 * (self._noise + pe_fg))
        self._noise = np.where(pe_fg < self._noise, fall, self._noise * self._noise_rise)

        out: FloatArray = e_fg
        if self.nlp:
            y_pow = np.einsum("pn,pn->p", y, y)
            self._best = np.maximum(self._best * self._best_decay, levels[:, 2] / (levels[:, 3] + 1e-9))
            suppress = far_only & (pe_fg < self._nlp_residual * y_pow) & (pe_fg * self._best
                                                                          < self._nlp_margin * y_pow)
            if _any(suppress):
                noise = self._comfort[self._comfort_at] * np.sqrt(self._noise / b)[:, None]
                out = np.where(suppress[:, None], noise, out)
        self._comfort_at = (self._comfort_at + 1) % COMFORT_BLOCKS
        self._t0 = (self._t0 + b) % self.sample_rate  # 2100 Hz makes whole cycles in a second
        if _any(bypass):
            out = np.where(bypass[:, None], d, out)
        return out

    def _step(self, ports: BoolArray, e: RealArray) -> None:
        """One gradient step of the background filter for the ports set, from their error `e`."""
        if _all(ports):
            self._W[:, 1] += self._gradient(self._X, self._xpow, e)
        else:
            rows = np.flatnonzero(ports)
            self._W[rows, 1] += self._gradient(self._X[rows], self._xpow[rows], e[rows])

    def _segment(self, starting: BoolArray, dt: BoolArray, far: BoolArray, tail: FloatArray,
                 x: FloatArray, d: FloatArray) -> None:
        """Start-up bookkeeping for the ports still in it: double talk with the far end active
        drops a port's sums (near-end speech is not echo) and closes its segment; a closed segment
        reopens once Rin's energy over the tail (`tail`) is REOPEN_DB under the loudest block, so
        little said before it still echoes in Sin (its Rin history is zeroed: the sums are then
        exactly those of Rin from that moment on); an open segment adds each block without double
        talk to its sums."""
        closing = starting & dt & self._open & far
        if _any(closing):
            self._open[closing] = False
            for arr in (self._rxx, self._rxd):
                arr[closing] = 0.0
        opening = starting & ~self._open & ~dt & (tail < self._reopen_below * self._loudest)
        if _any(opening):
            self._open[opening] = True
            self._hist[opening] = 0.0
        adding = starting & self._open & ~dt
        if _any(adding):
            self._accumulate(adding, x, d)

    def _accumulate(self, ports: BoolArray, x: FloatArray, d: FloatArray) -> None:
        """Add this block to the ports' correlation sums: Rin's autocorrelation and its
        cross-correlation with Sin, lags 0..taps-1 (those of the segment, Rin before it zero)."""
        b, taps, n = self.block, self._taps, self._ls_fft
        rows = np.flatnonzero(ports)
        now = np.zeros((2, rows.size, n))
        now[0, :, taps:taps + b] = x[rows]
        now[1, :, taps:taps + b] = d[rows]
        # sum_n now[n] * hist[n - k] for k < taps: no circular wrap, as n - k >= 1 within the block.
        lagged = np.conj(sfft.rfft(self._hist[rows], n=n, axis=1))
        corr = sfft.irfft(sfft.rfft(now, axis=2) * lagged, n=n, axis=2)[:, :, :taps]
        self._rxx[rows] += corr[0]
        self._rxd[rows] += corr[1]

    def _solve(self, ports: BoolArray) -> None:
        """Start-up: solve the normal equations (Levinson, a Toeplitz system) for the ports whose
        turn it is and make each solution their background filter. On speech a least-squares path
        converges several times faster than NLMS, which needs the talker to excite each bin for a
        while; the two-path rule still decides whether it reaches the output."""
        b, taps = self.block, self._taps
        for row in np.flatnonzero(ports & (self._ls_blocks % LS_EVERY == 0)).tolist():
            r = self._rxx[row].copy()
            r[0] *= 1.0 + LS_RIDGE
            try:
                h = solve_toeplitz(r, self._rxd[row] + self._tail(row))
            except np.linalg.LinAlgError:
                continue  # a singular sum (rare): the next solve has more signal
            # A hybrid is passive (|H(f)| <= 1, so sum h^2 <= 1): anything else is not its path,
            # and keeping it would feed the next tail correction a runaway (seen at 32 ports).
            if np.dot(h, h) <= 1.0:
                parts = np.zeros((self._parts, b))
                parts.flat[:taps] = h
                self._W[row, 1] = sfft.rfft(parts, n=2 * b, axis=1)

    def _tail(self, row: int) -> FloatArray:
        """What the segment's cross-correlation sums lack at its end, estimated with the current
        background (added to them before the solve).

        The sums are those of Rin cut off after this block, whose echo would ring on past it; Sin
        has no such ring, so the equations are off by the correlation of that ring with the cut-off
        Rin. That is large when the last blocks are loud against the rest (tens of % of the sums as
        a talker starts), and the plain solution is then poor. It is linear in the echo path and
        each solve uses the previous one's, so the solutions settle on the segment's exact
        least-squares path (the covariance method's)."""
        taps = self._taps
        n = 1 << (3 * taps - 1).bit_length()
        h = sfft.irfft(self._W[row, 1], axis=1)[:, :self.block].ravel()[:taps]
        cut = sfft.rfft(self._hist[row, -taps:], n=n)
        ring = sfft.irfft(cut * sfft.rfft(h, n=n), n=n)
        ring[:taps] = 0.0
        ring[2 * taps - 1:] = 0.0
        correction: FloatArray = sfft.irfft(sfft.rfft(ring) * np.conj(cut), n=n)[:taps]
        return correction

    def _gradient(self, X: ComplexArray, xpow: Float32Array, e: RealArray) -> ComplexArray:
        """The background filter's step for these ports: per-bin normalised (NLMS), constrained to
        the first B taps of each partition (so the partitions stay one linear convolution)."""
        b = self.block
        n = e.shape[0]
        eb = self._eb[:n]
        eb[:, b:] = e  # [zeros(B), e]: the error lines up with the second half of X's window
        E = sfft.rfft(eb, axis=1)
        power = xpow.sum(axis=1)
        power += BIN_FLOOR * power.mean(axis=1, keepdims=True) + self._reg
        E *= STEP / power
        g = sfft.irfft(np.conj(X) * E[:, None, :], axis=2)
        step: ComplexArray = sfft.rfft(g[:, :, :b], n=2 * b, axis=2)
        return step

    def _estimate(self, ports: BoolArray, which: int) -> RealArray:
        """The foreground (`which` 0) or background (1) echo estimate [ports, B], computed for the
        ports set only (for ports whose Rin was silent over the tail it is exactly zero)."""
        b = self.block
        if _all(ports):
            y_all: RealArray = sfft.irfft((self._X * self._W[:, which]).sum(axis=1), axis=1)[:, b:]
            return y_all
        y = np.zeros((self.ports, b), dtype=np.float32)
        if _any(ports):
            rows = np.flatnonzero(ports)
            Y = (self._X[rows] * self._W[rows, which]).sum(axis=1)
            y[rows] = sfft.irfft(Y, axis=1)[:, b:]
        return y

    def _tone_disabler(self, xd: FloatArray, power: FloatArray) -> BoolArray:
        """G.165 tone disabler on [Rin, Sin] (`xd`, with their energies); returns the ports it bypasses."""
        b = self.block
        re_im = xd @ self._tone_ref  # real matmul: a complex one takes numpy's slow non-BLAS path
        mag2 = np.einsum("spc,spc->sp", re_im, re_im)
        tone = (2.0 * mag2 > TONE_PURITY * b * power) & (power > self._tone_min)
        if self._tone_idle and not _any(tone):
            return self._tone_bypass  # nothing to track: the common case, kept cheap
        ph = (re_im[..., 0] + 1j * re_im[..., 1]) * cmath.exp(-1j * self._tone_w * self._t0)
        self._phasors[:, :, 1:] = self._phasors[:, :, :-1]
        self._phasors[:, :, 0] = np.where(tone, ph, 0.0)
        self._tone_gap = np.where(tone, 0, self._tone_gap + 1)
        in_tone = self._tone_gap <= self._gap_blocks
        # A reversal: this block's phase against the one two blocks back, less twice the drift
        # between the two blocks before that (the tone may be up to +-15 Hz off), is near pi.
        # Any of the three missing (no tone there) gives turn = 0: no decision.
        p0, p2, p3 = self._phasors[:, :, 0], self._phasors[:, :, 2], self._phasors[:, :, 3]
        turn = p0 * np.conj(p2) * np.conj(p2 * np.conj(p3)) ** 2
        reversal = (turn.real < -0.5 * np.abs(turn)) & (self._since_reversal >= self._refractory)
        self._since_reversal = np.where(reversal, 0, self._since_reversal + 1)
        self._reversed = in_tone & (self._reversed | reversal)
        self._tone_bypass |= np.any(self._reversed, axis=0)
        quiet = np.all(power < self._release_pow, axis=0)
        self._quiet = np.where(quiet, self._quiet + 1, 0)
        self._tone_bypass &= (self._quiet < self._release_blocks) | np.any(in_tone, axis=0)
        self._tone_idle = not (self._phasors.any() or self._tone_bypass.any()
                               or bool(np.any(self._since_reversal < self._refractory)))
        return self._tone_bypass

    # -- control and metrics ----------------------------------------------------------------------
    def force_bypass(self, port: int, on: bool = True) -> None:
        """Pass Sin through untouched on `port` (the media layer does this for fax/modem calls)."""
        self._forced[port] = on

    def reset(self, port: int) -> None:
        """Forget the echo path of `port` (a new call, so a new line and a new hybrid balance)."""
        for arr in (self._W, self._X, self._xpow, self._xx, self._peaks, self._powers, self._dt_left,
                    self._pe, self._levels, self._converged, self._hist, self._rxx, self._rxd,
                    self._loudest, self._ls_blocks, self._best):
            arr[port] = 0.0
        self._open[port] = True
        self._noise[port] = np.inf

    @property
    def bypassed(self) -> BoolArray:
        """Per port: Sin passes untouched (answer tone with phase reversals seen, or forced)."""
        return np.asarray(self._tone_bypass | self._forced)

    @property
    def double_talk(self) -> BoolArray:
        """Per port: the double-talk detector (with hangover) flagged the last block."""
        return np.asarray(self._dt_left > 0)

    @property
    def erle_db(self) -> FloatArray:
        """Per port: smoothed echo return loss enhancement (Sin vs Sout power, far-end-only blocks)."""
        floor = 1e-9
        return np.asarray(10.0 * np.log10((self._levels[:, 2] + floor) / (self._levels[:, 3] + floor)))

    @property
    def noise_dbm0(self) -> FloatArray:
        """Per port: the near-end background noise level the comfort noise is matched to."""
        noise = np.where(np.isfinite(self._noise), self._noise, 0.0)
        return rms_to_dbm0(np.sqrt(noise / self.block))

    @property
    def starting_up(self) -> BoolArray:
        """Per port: still in the least-squares start-up (see the module docstring)."""
        return np.asarray(~self._converged)

    @property
    def converged(self) -> BoolArray:
        """Per port: the ERLE estimate has reached CONVERGED_ERLE_DB.

        Near-end noise caps the estimate (it is in Sout whatever the filter does): with Sin noise only
        15 dB below the echo, a fully converged canceller reads about 15 dB and not converged.
        """
        return np.asarray(self.erle_db >= CONVERGED_ERLE_DB)
