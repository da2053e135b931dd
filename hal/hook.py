"""The hook interpreter: raw hook-switch levels with timestamps in, hook events out (sans-IO).

One interpreter per port, shared by every backend. Backends report the raw switch level whenever
they see it (each GPIO edge, each poll, each MCU report) with their own timestamp, and call
`handle_timer(now)` at `get_timer()`; nothing here reads a clock. The stages:

1. debounce: a level counts only once it has held `debounce` (contact bounce is shorter);
2. off-hook confirmation: an off-hook counts after `offhook_confirm` (`ring_trip_confirm` while
   ringing, so ring trip stops the ringer at once);
3. breaks while off-hook are classified by length: a dial pulse, a hook flash, or a hang-up once the
   break outlasts the longest flash;
4. pulses are counted into a digit, which ends when the line stays made for `interdigit`.

Timing sources: rotary dials run at 10 +- 2 pulses/s with a break ratio of 55..70 % and an
inter-digit pause of at least 300 ms (ITU-T Q.23 / ETSI ES 201 970 §4.5 and Telcordia GR-506
§4.3: so breaks last 46..88 ms and makes 25..56 ms); a hook flash ("timed break recall") lasts
100..700 ms by default here, configurable for networks that use an 80..130 ms register recall.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from hal.events import HookEvent, HookKind

EPS = 1e-9
"""Slack for comparing durations computed from float timestamps (1 ns)."""


@dataclass(frozen=True)
class HookTiming:
    """Interpreter thresholds in seconds (defaults justified in the module docstring)."""

    debounce: float = 0.010
    offhook_confirm: float = 0.050
    ring_trip_confirm: float = 0.010
    """Ag1171 datasheet: confirm SHK for ~10 ms during ringing, then drop RM."""
    pulse_break_min: float = 0.025
    """Shorter breaks (but past the debounce) are line noise, ignored."""
    pulse_break_max: float = 0.095
    flash_min: float = 0.100
    flash_max: float = 0.700
    """A longer break is a hang-up."""
    interdigit: float = 0.150
    """A make this long ends a pulse digit: twice the longest make between pulses (56 ms)."""

    def __post_init__(self) -> None:
        order = [("debounce", self.debounce), ("pulse_break_min", self.pulse_break_min),
                 ("pulse_break_max", self.pulse_break_max), ("flash_max", self.flash_max)]
        for (a, va), (b, vb) in pairwise(order):
            if not 0 <= va < vb:
                raise ValueError(f"hook timing: {a} ({va} s) must be >= 0 and below {b} ({vb} s)")
        if not self.pulse_break_max <= self.flash_min < self.flash_max:
            raise ValueError(f"hook timing: flash_min ({self.flash_min} s) must lie between "
                             f"pulse_break_max ({self.pulse_break_max} s) and flash_max ({self.flash_max} s)")
        if self.interdigit < 0.060 or self.offhook_confirm < self.debounce:
            raise ValueError("hook timing: interdigit must be >= 60 ms (longest make between pulses) "
                             "and offhook_confirm no shorter than debounce")


class HookInterpreter:
    """Debounce, confirm and classify one port's hook switch (see the module docstring)."""

    def __init__(self, port: int = 0, timing: HookTiming | None = None, offhook: bool = False,
                 now: float = 0.0) -> None:
        self.port = port
        self.timing = timing or HookTiming()
        self.ringing = False
        self._raw = self._stable = self._hook = offhook
        self._raw_since = self._stable_since = now
        self._pulses = 0
        self._last_make = now

    @property
    def offhook(self) -> bool:
        """The confirmed hook state (what the rest of the gateway should believe)."""
        return self._hook

    @property
    def switch_closed(self) -> bool:
        """The debounced switch level, before confirmation (an off-hook may be under way)."""
        return self._stable or self._raw

    def sample(self, offhook: bool, now: float) -> list[HookEvent]:
        """Report the raw switch level seen at `now` (an edge or a poll); return recognised events."""
        events = self._run_timers(now, inclusive=False)  # an edge at a deadline's instant wins
        if offhook != self._raw:
            self._raw, self._raw_since = offhook, now
        return events + self.handle_timer(now)

    def get_timer(self) -> float | None:
        """The earliest time at which `handle_timer` has something to decide, or None."""
        pending = self._raw != self._stable
        deadline = self._classify_deadline()
        if pending:
            edge = self._raw_since + self.timing.debounce
            # a classification waits for an unconfirmed edge that began before it
            return deadline if deadline is not None and deadline < self._raw_since else edge
        return deadline

    def handle_timer(self, now: float) -> list[HookEvent]:
        """Act on every deadline up to `now`, in time order."""
        return self._run_timers(now, inclusive=True)

    def _run_timers(self, now: float, inclusive: bool) -> list[HookEvent]:
        events: list[HookEvent] = []
        while (deadline := self.get_timer()) is not None and (
                deadline < now or (inclusive and deadline == now)):
            if self._raw != self._stable and deadline == self._raw_since + self.timing.debounce:
                events += self._edge(self._raw, self._raw_since)
            else:
                events += self._classify()
        return events

    def _classify_deadline(self) -> float | None:
        t = self.timing
        if not self._hook and self._stable:
            confirm = t.ring_trip_confirm if self.ringing else t.offhook_confirm
            return self._stable_since + confirm
        if self._hook and not self._stable:
            return self._stable_since + t.flash_max + EPS
        if self._hook and self._pulses:
            return self._last_make + t.interdigit
        return None

    def _classify(self) -> list[HookEvent]:
        """The deadline of `_classify_deadline` has passed: an off-hook, a hang-up or a digit."""
        if not self._hook and self._stable:
            self._hook, self._pulses = True, 0
            return [HookEvent(self.port, HookKind.OFF_HOOK, self._stable_since)]
        if self._hook and not self._stable:
            self._hook, self._pulses = False, 0  # a digit cut short by hanging up is not dialled
            return [HookEvent(self.port, HookKind.ON_HOOK, self._stable_since)]
        count, self._pulses = self._pulses, 0
        if count > 10:
            return []  # no rotary dial sends more than ten pulses: noise, not a digit
        return [HookEvent(self.port, HookKind.DIGIT, self._last_make, digit=str(count % 10))]

    def _edge(self, level: bool, at: float) -> list[HookEvent]:
        """A debounced transition that began at `at`."""
        break_start = self._stable_since
        self._stable, self._stable_since = level, at
        if not (self._hook and level):
            return []  # a break begins, or the switch moves while on-hook: decided by deadline
        t = self.timing
        length = at - break_start
        if t.pulse_break_min - EPS <= length <= t.pulse_break_max + EPS:
            self._pulses += 1
            self._last_make = at
            return []
        if t.flash_min - EPS <= length <= t.flash_max + EPS:
            events = self._finish_digit()
            return [*events, HookEvent(self.port, HookKind.FLASH, at, duration=length)]
        return []

    def _finish_digit(self) -> list[HookEvent]:
        return self._classify() if self._pulses else []
