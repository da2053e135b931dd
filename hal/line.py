"""One port's line: ring cadence engine, caller-ID slot, polarity and feed, under the safety rules.

Sans-IO like the hook interpreter: every call takes `now` (the backend's clock, seconds), the line
drives its backend through the small `LineDriver` interface, and `get_timer()`/`handle_timer(now)`
move the cadence on. On-hook data (caller ID, VMWI) is scheduled in time and pulled by the audio
path with `onhook_audio(now, n)`, so the burst lands sample-accurately in the 20 ms frames.

Caller-ID slots:
- AFTER_FIRST_RING (Telcordia GR-30-CORE §3.2, Bell 202): the burst starts >= 500 ms after the first
  ring cycle ends and the next ring starts >= 200 ms after the burst (the cadence waits if needed);
- DT_AS (ETSI EN 300 659-1 §6.1.1): line reversal, >= 100 ms, DT-AS (100 ms), 45..500 ms, burst,
  >= 200 ms, then ringing with normal polarity;
- RP_AS (EN 300 659-1 §6.1.3): a 200..300 ms ring burst, 500..2000 ms, burst, >= 200 ms, ringing;
- LINE_REVERSAL: as DT_AS without the alert tone (DTMF caller ID, ETSI ES 200 778-1 annex B).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from dsp.callerid import generate_alert
from dsp.tones import RingCadence
from hal.events import Feed, HookEvent, HookKind
from hal.hook import HookInterpreter, HookTiming

RATE = 8000
Int16Array = npt.NDArray[np.int16]

RING_TIMEOUT_S = 180.0
"""Ringing stops by itself after this long (a lost BYE must not ring a house for ever)."""
FIRST_RING_TO_DATA_S = 0.5
"""GR-30-CORE §3.2: data starts no sooner than 500 ms after the first ring ends."""
DATA_TO_RING_S = 0.2
"""GR-30-CORE §3.2 / EN 300 659-1 §6.1: at least 200 ms of silence between the data and the next ring."""
REVERSAL_TO_ALERT_S = 0.15
"""EN 300 659-1 §6.1.1: DT-AS starts >= 100 ms after the line reversal (we leave 150 ms)."""
ALERT_TO_DATA_S = 0.1
"""EN 300 659-1 §6.1.1: data starts 45..500 ms after the end of DT-AS."""
RP_AS_S = 0.25
"""EN 300 659-1 §6.1.3: RP-AS is a 200..300 ms ring burst."""
RP_AS_TO_DATA_S = 0.6
"""EN 300 659-1 §6.1.3: data starts 500..2000 ms after the end of RP-AS."""


class AlertMode(StrEnum):
    AFTER_FIRST_RING = "after_first_ring"
    DT_AS = "dt_as"
    RP_AS = "rp_as"
    LINE_REVERSAL = "line_reversal"


class LineDriver(Protocol):
    """The electrical primitives a backend offers for one port; the Line decides when to use them."""

    max_ring_duty: float
    """Largest fraction of time the ringer may be on (e.g. 1/3 for the Ag1171's ring mode)."""

    def set_ringer(self, on: bool) -> None:
        """Apply or remove ringing voltage (the backend makes the 20/25 Hz waveform)."""

    def set_polarity(self, reversed_: bool) -> None: ...

    def set_feed(self, feed: Feed) -> None: ...


def limit_duty(cadence: RingCadence, max_duty: float) -> RingCadence:
    """`cadence` with its silences stretched so the ringer is on at most `max_duty` of the time."""
    on = sum(s[0] for s in cadence.segments)
    if on <= max_duty * cadence.period_ms:
        return cadence
    scale = (on / max_duty - on) / max(1, sum(s[1] for s in cadence.segments))
    segments: tuple[tuple[int, int], ...]
    if not any(off for _, off in cadence.segments):  # continuous ring: give it a silence
        segments = ((on, round(on / max_duty - on)),)
    else:
        segments = tuple((a, int(np.ceil(b * scale))) for a, b in cadence.segments)
    return replace(cadence, segments=segments, note=f"{cadence.note} (duty-limited to {max_duty:.0%})")


@dataclass
class _Ringing:
    cadence: RingCadence
    start: float
    """When the cadence's time zero is (after any caller-ID preamble)."""
    until: float
    preamble: list[tuple[float, float]]
    """One-off ringer on-intervals before `start` (first ring cycle, RP-AS)."""


class Line:
    """A port as the gateway sees it: confirmed hook state, ringing, polarity, feed, on-hook data."""

    def __init__(self, port: int, driver: LineDriver, timing: HookTiming | None = None,
                 now: float = 0.0) -> None:
        self.port = port
        self.driver = driver
        self.hook = HookInterpreter(port, timing, now=now)
        self.polarity_reversed = False
        self.feed = Feed.ACTIVE
        self._ring: _Ringing | None = None
        self._ringer_on = False
        self._audio: list[tuple[float, Int16Array]] = []
        self._restore_polarity_at: float | None = None
        """When on-hook data sent after a line reversal ends: normal polarity comes back then."""
        self._now = now
        driver.set_ringer(False)
        driver.set_polarity(False)
        driver.set_feed(Feed.ACTIVE)

    @property
    def offhook(self) -> bool:
        return self.hook.offhook

    @property
    def ringing(self) -> bool:
        """True from `ring()` until ring trip, `stop_ring()` or the timeout (silent gaps included)."""
        return self._ring is not None

    # -- commands --------------------------------------------------------------------------------
    def ring(self, cadence: RingCadence, now: float, callerid: Int16Array | None = None,
             mode: AlertMode = AlertMode.AFTER_FIRST_RING, timeout: float = RING_TIMEOUT_S) -> bool:
        """Start ringing (with an optional caller-ID burst in `mode`'s slot); False if off-hook."""
        if self.hook.offhook or self.hook.switch_closed:
            return False  # never ring an off-hook line: the ring voltage would hit the earpiece
        self.stop_ring(now)
        cadence = limit_duty(cadence, self.driver.max_ring_duty)
        if self.feed is not Feed.ACTIVE:
            self.set_feed(Feed.ACTIVE)
        preamble: list[tuple[float, float]] = []
        start, restore = now, None
        if callerid is not None:
            data_len = len(callerid) / RATE
            if mode is AlertMode.AFTER_FIRST_RING:
                first = _first_cycle(cadence, now)
                preamble = first
                data_at = first[-1][1] + FIRST_RING_TO_DATA_S
                start = max(now + cadence.period_ms / 1000, data_at + data_len + DATA_TO_RING_S)
            elif mode is AlertMode.RP_AS:
                preamble = [(now, now + RP_AS_S)]
                data_at = now + RP_AS_S + RP_AS_TO_DATA_S
                start = data_at + data_len + DATA_TO_RING_S
            else:
                self.set_polarity(True)
                data_at = now + REVERSAL_TO_ALERT_S
                if mode is AlertMode.DT_AS:
                    alert = generate_alert("dt-as", RATE)
                    self._audio.append((data_at, alert))
                    data_at += len(alert) / RATE + ALERT_TO_DATA_S
                restore = data_at + data_len
                start = restore + DATA_TO_RING_S
            self._audio.append((data_at, np.asarray(callerid, dtype=np.int16)))
        self._ring = _Ringing(cadence, start, now + timeout, preamble)
        if restore is not None:
            self._restore_polarity_at = restore
        self.hook.ringing = True
        self._apply(now)
        return True

    def stop_ring(self, now: float) -> None:
        """Stop ringing at once, drop any unsent on-hook data, restore normal polarity if we reversed it."""
        if self._ring is None:
            return
        self._ring = None
        self.hook.ringing = False
        self._audio.clear()
        self._set_ringer(False)
        if self._restore_polarity_at is not None:
            self._restore_polarity_at = None
            self.set_polarity(False)

    def send_onhook_data(self, audio: Int16Array, now: float, reversal: bool = False) -> None:
        """Send on-hook data without ringing (VMWI), optionally after a line reversal and DT-AS."""
        at = now
        if reversal:
            self.set_polarity(True)
            alert = generate_alert("dt-as", RATE)
            self._audio.append((now + REVERSAL_TO_ALERT_S, alert))
            at = now + REVERSAL_TO_ALERT_S + len(alert) / RATE + ALERT_TO_DATA_S
            self._restore_polarity_at = at + len(audio) / RATE
        self._audio.append((at, np.asarray(audio, dtype=np.int16)))

    def set_polarity(self, reversed_: bool) -> None:
        self.polarity_reversed = reversed_
        self.driver.set_polarity(reversed_)

    def set_feed(self, feed: Feed) -> None:
        """Change the line feed; leaving ACTIVE (standby, loop-current disconnect) stops ringing."""
        if feed is not Feed.ACTIVE:
            self.stop_ring(self._now)
        self.feed = feed
        self.driver.set_feed(feed)

    # -- inputs ----------------------------------------------------------------------------------
    def hook_sample(self, offhook: bool, now: float) -> list[HookEvent]:
        """The backend saw the hook switch at `offhook`; returns recognised events (ring trip applied)."""
        events = self._after(self.hook.sample(offhook, now), now)
        self._apply(max(now, self._now))  # samples arrive stamped with when the edge happened: maybe earlier
        return events

    def get_timer(self) -> float | None:
        times = [t for t in (self.hook.get_timer(), self._next_ring_change()) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[HookEvent]:
        events = self._after(self.hook.handle_timer(now), now)
        self._apply(now)
        return events

    def onhook_audio(self, now: float, n: int) -> Int16Array | None:
        """The slice of scheduled on-hook data (alert tones, FSK) that falls in [now, now + n/RATE)."""
        if not self._audio:
            return None
        out = np.zeros(n, dtype=np.int16)
        first = round(now * RATE)
        live = []
        for at, audio in self._audio:
            offset = first - round(at * RATE)
            if offset >= len(audio):
                continue  # fully played: forget it
            live.append((at, audio))
            lo, hi = max(offset, 0), min(len(audio), offset + n)
            if hi > lo:
                out[lo - offset:hi - offset] = audio[lo:hi]
        self._audio = live
        return out

    # -- internals -------------------------------------------------------------------------------
    def _after(self, events: list[HookEvent], now: float) -> list[HookEvent]:
        if any(e.kind is HookKind.OFF_HOOK for e in events):
            self.stop_ring(now)  # ring trip: the bell stops the moment the phone is answered
        return events

    def _should_ring(self, now: float) -> bool:
        r = self._ring
        assert r is not None
        if any(a <= now < b for a, b in r.preamble):
            return True
        return now >= r.start and r.cadence.ringing_at(_ms(now - r.start))

    def _apply(self, now: float) -> None:
        self._now = now
        if self._restore_polarity_at is not None and now >= self._restore_polarity_at:
            self._restore_polarity_at = None
            self.set_polarity(False)
        r = self._ring
        if r is None:
            return
        if now >= r.until or (not r.cadence.repeat and now >= r.start + r.cadence.period_ms / 1000):
            self.stop_ring(now)
            return
        self._set_ringer(self._should_ring(now))

    def _set_ringer(self, on: bool) -> None:
        if on != self._ringer_on:
            self._ringer_on = on
            self.driver.set_ringer(on)

    def _next_ring_change(self) -> float | None:
        edges = [self._restore_polarity_at] if self._restore_polarity_at is not None else []
        r = self._ring
        if r is not None:
            edges += [r.until, *(t for a, b in r.preamble for t in (a, b))]
            edge = _next_cadence_edge(r.cadence, r.start, self._now)
            if edge is not None:
                edges.append(edge)
        later = [t for t in edges if t > self._now + EPS]
        return min(later) if later else None


EPS = 1e-9


def _ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded to the nanosecond so cadence edges do not jitter in float."""
    return round(seconds * 1000.0, 6)


def _first_cycle(cadence: RingCadence, now: float) -> list[tuple[float, float]]:
    """The ring bursts of the cadence's first period, as absolute (on, off) times."""
    bursts, t = [], now
    for on, off in cadence.segments:
        if on:
            bursts.append((t, t + on / 1000))
        t += (on + off) / 1000
    return bursts


def _next_cadence_edge(cadence: RingCadence, start: float, now: float) -> float | None:
    """The first ringer on/off edge of `cadence` (time zero at `start`) strictly after `now`."""
    if now < start:
        return start
    elapsed = _ms(now - start)
    period = cadence.period_ms
    cycle = int(elapsed // period)
    if not cadence.repeat and cycle >= 1:
        return None
    offsets, t = [], 0
    for on, off in cadence.segments:
        offsets += [t + on, t + on + off]
        t += on + off
    base = cycle * period
    for off in offsets:
        if base + off > elapsed + 1e-6:
            return start + (base + off) / 1000
    return start + (base + period) / 1000
