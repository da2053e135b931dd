"""Adaptive jitter buffer for G.711 in 20 ms frames, sans-IO: `push` on arrival, `pop` on every tick.

The model is a playout schedule, not a queue. A packet's relative delay is rd = arrival - ts/clock;
the buffer plays timestamp ts at our-clock time ts/clock + P, so a packet waits P - rd and is late
when rd > P. The buffer steers its delay d = P - mean(rd) into [T, T + frame + hysteresis]:

- T = k * J + one frame, J being the RFC 3550 A.8 interarrival jitter; a late packet raises T at once
  to what it would have needed (the peak decays over ~20 s), so spikes are learnt quickly and
  forgotten slowly; clamped to [min_ms, max_ms]. Fixed mode (fax/modem pass-through) pins T.
- P only moves in whole frames: dropping one frame (d too high) or inserting one (d too low),
  preferably where the audio is silent (G.711 payload energy), where it is inaudible; only when d is
  far outside the band does it happen in speech. The same mechanism absorbs clock drift: a far end
  that runs fast makes rd fall and d rise, so silent frames get dropped, and the reverse.
- A missing frame is reported lost (for PLC) and the schedule moves on: a loss must not add
  latency. After IDLE_FRAMES empty ticks the stream is idle (silence suppression, hold, a stall);
  the next packet restarts the schedule at T, which is how a talkspurt start re-aligns it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from dsp.g711 import alaw_decode, ulaw_decode

IDLE_FRAMES = 5
RESYNC_S = 2.0  # a timestamp this far from the schedule is a new timeline, not a late packet
PEAK_DECAY = 0.999  # per tick: the late-packet peak falls by e in 1000 ticks (20 s)
SILENCE_DBFS = -55.0
SEEN_SEQS = 128
_SILENT_POWER = 10 ** (SILENCE_DBFS / 10)


class _SilenceTest:
    """Whether a G.711 frame's mean power is at most SILENCE_DBFS, for one codec.

    The exact test sums the samples' energies (a numpy gather and sum). Most frames are decided
    without it, by C-speed bytes operations on the codes: the sum is at least the largest sample
    energy, and at most n times it. Every energy is an integer times 2**-30 (decoded int16 squared
    over 32768**2) and a frame's total stays far below 2**53 such units, so the sum and n times an
    energy are exact in float64 whatever the order: the bounds decide exactly as the full sum does.
    """

    LOUD, MIDDLE = b"\x02", b"\x01"

    def __init__(self, codec: str) -> None:
        decode = {"PCMU": ulaw_decode, "PCMA": alaw_decode}[codec.upper()]
        self.energy = np.asarray(decode(np.arange(256, dtype=np.uint8)), dtype=np.float64) ** 2 / 32768.0**2
        self._classes: dict[int, bytes] = {}
        """Per frame length n, a bytes.translate table: code -> LOUD (that sample alone makes the frame
        not silent), MIDDLE, or 0 (n such samples would still be silent)."""

    def __call__(self, payload: bytes) -> bool:
        n = len(payload)
        limit = _SILENT_POWER * n  # mean power, cheaply
        table = self._classes.get(n)
        if table is None:
            of_code = np.where(self.energy > limit, 2, np.where(self.energy * n <= limit, 0, 1))
            table = self._classes[n] = of_code.astype(np.uint8).tobytes()
        classes = payload.translate(table)
        if self.LOUD in classes:
            return False
        if self.MIDDLE not in classes:
            return True
        return bool(self.energy.take(np.frombuffer(payload, dtype=np.uint8)).sum() <= limit)


@dataclass
class JitterCounters:
    """Everything the buffer threw away or made up, for the call statistics and debugging."""

    received: int = 0
    duplicates: int = 0
    late: int = 0
    malformed: int = 0
    concealed: int = 0  # ticks that returned lost=True because the frame was missing
    dropped: int = 0  # frames discarded to shorten the delay
    inserted: int = 0  # ticks that held the schedule to lengthen the delay
    resyncs: int = 0
    resets: int = 0


class _Frame:
    """A buffered frame; whether it is silent is worked out only when the schedule looks at moving
    (a drop or an insert looks for silence), and then once: many frames never need it."""

    __slots__ = ("_silent", "_test", "payload")

    def __init__(self, payload: bytes, test: _SilenceTest) -> None:
        self.payload = payload
        self._test = test
        self._silent: bool | None = None

    @property
    def silent(self) -> bool:
        if self._silent is None:
            self._silent = self._test(self.payload)
        return self._silent


class JitterBuffer:
    """One call's receive buffer. Times are seconds on one monotonic clock, ours."""

    def __init__(self, codec: str = "PCMU", clock_rate: int = 8000, frame_ms: int = 20,
                 min_ms: float = 20.0, max_ms: float = 200.0, fixed_ms: float | None = None,
                 k: float = 3.0, hysteresis_ms: float = 10.0) -> None:
        self._silence = _SilenceTest(codec)
        self.clock_rate = clock_rate
        self.frame_samples = clock_rate * frame_ms // 1000
        self.frame_s = frame_ms / 1000.0
        self.min_s = min_ms / 1000.0
        self.max_s = max_ms / 1000.0
        self.fixed_s = None if fixed_ms is None else fixed_ms / 1000.0
        self.k = k
        self.hysteresis_s = hysteresis_ms / 1000.0
        self._window = RESYNC_S * clock_rate
        """RESYNC_S in timestamp units: forward gaps are normal after idle (silence suppression)."""
        self.counters = JitterCounters()
        self.max_delay_ms = 0.0
        self.ssrc: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._frames: dict[int, _Frame] = {}
        self._seen: deque[int] = deque()
        self._seen_set: set[int] = set()
        """The last SEEN_SEQS sequence numbers, in arrival order and as a set (for the look-up)."""
        self._last_raw = 0
        self._last_ext: int | None = None
        self._play_ts: int | None = None  # next timestamp to play; everything before it is history
        self._playing = False
        self._empty_run = 0
        self._last: _Frame | None = None
        """The frame played last (None: nothing yet, which counts as silence)."""
        self._prev: tuple[float, int] | None = None
        self._rd_mean: float | None = None
        self._jitter = 0.0  # A.8 estimate, seconds
        self._peak = 0.0
        self.delay_s = 0.0

    @property
    def target_s(self) -> float:
        if self.fixed_s is not None:
            return self.fixed_s
        # min(max(k * J + frame, peak, min_s), max_s), spelt out: builtin min/max cost 4x more per tick
        t = self.k * self._jitter + self.frame_s
        if self._peak > t:
            t = self._peak
        if self.min_s > t:
            t = self.min_s
        return self.max_s if self.max_s < t else t

    @property
    def target_ms(self) -> float:
        return self.target_s * 1000.0

    @property
    def delay_ms(self) -> float:
        """How long an average packet waits here, as of the last tick: the latency we add."""
        return self.delay_s * 1000.0

    @property
    def buffered_ms(self) -> float:
        """Audio held ahead of the playout point (arrival order permitting)."""
        if not self._frames or self._play_ts is None:
            return 0.0
        return (max(self._frames) + self.frame_samples - self._play_ts) * 1000.0 / self.clock_rate

    @property
    def jitter_ms(self) -> float:
        return self._jitter * 1000.0

    def _last_silent(self) -> bool:
        return self._last is None or self._last.silent

    def pause(self) -> None:
        """The stream was not played for a while (the call was on hold): forget the schedule and
        what was queued, so the next packet restarts playout at the target delay."""
        self._frames.clear()
        self._play_ts, self._playing, self._empty_run = None, False, 0
        self._prev = self._rd_mean = None

    def push(self, payload: bytes, *, seq: int, timestamp: int, ssrc: int, now: float) -> None:
        """A packet arrived at `now`. A payload of several frames (ptime 40, 60) is split."""
        if ssrc != self.ssrc:
            if self.ssrc is not None:
                self.counters.resets += 1
            self.ssrc = ssrc
            self._reset()
        fb = self.frame_samples  # G.711: one byte per sample
        size = len(payload)
        if not size or size % fb:
            self.counters.malformed += 1
            return
        seen = self._seen_set
        if seq in seen:
            self.counters.duplicates += 1
            return
        self._seen.append(seq)
        seen.add(seq)
        if len(seen) > SEEN_SEQS:
            seen.discard(self._seen.popleft())
        self.counters.received += 1
        # Unwrap the 32-bit timestamp against the newest one seen (signed difference: a late packet
        # goes back in time, and only a newer one moves the reference).
        if self._last_ext is None:
            self._last_raw = self._last_ext = ext = timestamp
        else:
            delta = (timestamp - self._last_raw + (1 << 31)) % (1 << 32) - (1 << 31)
            ext = self._last_ext + delta
            if delta > 0:
                self._last_raw, self._last_ext = timestamp, ext
        play = self._play_ts
        reference = play if play is not None else min(self._frames, default=None)
        if reference is not None and (ext < reference - self._window
                                      or (self._playing and ext > reference + self._window)):
            self.counters.resyncs += 1
            self._frames.clear()
            self._play_ts = play = None
            self._playing = False
            self._prev = self._rd_mean = None
        # RFC 3550 A.8 interarrival jitter (in seconds here) and the running mean relative delay.
        rate, prev, mean = self.clock_rate, self._prev, self._rd_mean
        rd = now - ext / rate
        if prev is not None:
            d = (now - prev[0]) - (ext - prev[1]) / rate
            self._jitter += (abs(d) - self._jitter) / 16.0
        self._prev = (now, ext)
        self._rd_mean = rd if mean is None else mean + (rd - mean) / 16.0
        for ts in range(ext, ext + size, fb):
            if play is not None and ts < play:
                self._late(now - ts / self.clock_rate)
            else:  # one frame per packet at ptime 20, where the slice is the payload itself
                self._frames[ts] = _Frame(payload if size == fb else payload[ts - ext:ts - ext + fb],
                                          self._silence)

    def _late(self, rd: float) -> None:
        self.counters.late += 1
        if self._rd_mean is not None:
            self._peak = max(self._peak, rd - self._rd_mean + self.frame_s / 2)

    def pop(self, now: float) -> tuple[bytes | None, bool]:
        """The frame for this tick: (payload, False); (None, True) when it is missing and should be
        concealed; (None, False) when there is no stream to play (not started, or idle)."""
        self._peak *= PEAK_DECAY
        if not self._playing and not self._start(now):
            return None, False
        play, rd_mean, frames = self._play_ts, self._rd_mean, self._frames
        assert play is not None and rd_mean is not None
        fs = self.frame_samples
        target = self.target_s
        d = now - play / self.clock_rate - rd_mean
        self.delay_s = d
        if d * 1000.0 > self.max_delay_ms:
            self.max_delay_ms = d * 1000.0
        cur = frames.get(play)
        high = target + self.frame_s + self.hysteresis_s
        if d > high and (play + fs) in frames:
            if cur is None or cur.silent or d > high + 2 * self.frame_s:
                frames.pop(play, None)
                play += fs
                self.counters.dropped += 1
                cur = frames[play]
        elif d < target and ((self._last_silent() and (cur is None or cur.silent)) or d < target / 2):
            self.counters.inserted += 1
            if self._last is not None and self._last.silent:
                return self._last.payload, False
            return None, True
        self._play_ts = play + fs
        if cur is None:
            self._empty_run = 0 if frames else self._empty_run + 1
            if self._empty_run >= IDLE_FRAMES:
                self._playing = False
                return None, False
            self.counters.concealed += 1
            return None, True
        del frames[play]
        self._empty_run = 0
        self._last = cur
        return cur.payload, False

    def _start(self, now: float) -> bool:
        """Begin (or resume after idle) once the oldest frame has waited the target delay."""
        if not self._frames or self._rd_mean is None:
            return False
        first = min(self._frames)
        if now - first / self.clock_rate - self._rd_mean < self.target_s:
            return False
        self._play_ts, self._playing, self._empty_run = first, True, 0
        return True
