"""The hook interpreter against synthetic hook-switch signals with explicit time.

Rotary figures: 10 +- 2 pulses/s, break ratio 55..70 %, inter-digit pause >= 300 ms (ITU-T Q.23,
ETSI ES 201 970 §4.5, Telcordia GR-506 §4.3). Hook flash 100..700 ms (our default, configurable).
"""

from __future__ import annotations

import numpy as np
import pytest

from hal.events import HookEvent, HookKind
from hal.hook import HookInterpreter, HookTiming

Edges = list[tuple[float, bool]]


def run(edges: Edges, until: float, interp: HookInterpreter | None = None,
        poll_ms: float | None = None) -> list[HookEvent]:
    """Feed edges (or, with poll_ms, the level sampled every poll_ms) and run the timers to `until`."""
    interp = interp or HookInterpreter()
    events: list[HookEvent] = []
    if poll_ms is None:
        for t, level in edges:
            events += interp.sample(level, t)
    else:
        times = np.array([t for t, _ in edges])
        for now in np.arange(0.0, until, poll_ms / 1000):
            i = np.searchsorted(times, now, side="right") - 1
            events += interp.sample(edges[i][1] if i >= 0 else interp.offhook, float(now))
    return events + interp.handle_timer(until)


def bounce(at: float, level: bool, rng: np.random.Generator) -> Edges:
    """A contact closing or opening: 0..3 bounces within the first 3 ms, then `level` for good."""
    edges: Edges = []
    t = at
    for _ in range(int(rng.integers(0, 4))):
        edges += [(t, level), (t + rng.uniform(0.0002, 0.001), not level)]
        t += rng.uniform(0.0005, 0.001)
    return [*edges, (t, level)]


def dial(digits: str, pps: float, ratio: float, start: float = 1.0, pause: float = 0.4,
         jitter: float = 0.0, rng: np.random.Generator | None = None) -> tuple[Edges, float]:
    """Off-hook at 0, then the pulse train of `digits`; returns the edges and the end time."""
    rng = rng or np.random.default_rng(0)
    edges: Edges = bounce(0.0, True, rng)
    t = start
    for d in digits:
        for _ in range(10 if d == "0" else int(d)):
            period = 1 / pps * (1 + rng.uniform(-jitter, jitter))
            edges += bounce(t, False, rng)
            edges += bounce(t + ratio * period, True, rng)
            t += period
        t += pause - (1 - ratio) / pps
    return edges, t


@pytest.mark.parametrize("pps", [8.0, 10.0, 12.0])
@pytest.mark.parametrize("ratio", [0.55, 0.6, 0.70])
def test_every_digit_at_the_speed_and_ratio_extremes(pps: float, ratio: float) -> None:
    edges, end = dial("1234567890", pps, ratio)
    events = run(edges, end + 1)
    assert [e.kind for e in events] == [HookKind.OFF_HOOK] + [HookKind.DIGIT] * 10
    assert "".join(e.digit or "" for e in events) == "1234567890"


@pytest.mark.parametrize("seed", range(5))
def test_jitter_and_contact_bounce(seed: int) -> None:
    rng = np.random.default_rng(seed)
    number = "".join(str(d) for d in rng.integers(0, 10, 12))
    pps, ratio = rng.uniform(8.2, 11.8), rng.uniform(0.57, 0.68)
    edges, end = dial(number, pps, ratio, pause=0.3, jitter=0.04, rng=rng)
    digits = [e.digit for e in run(edges, end + 1) if e.kind is HookKind.DIGIT]
    assert "".join(d or "" for d in digits) == number


def test_polled_switch_gives_the_same_digits_as_edges() -> None:
    edges, end = dial("407", 10, 0.6)
    by_edge = run(edges, end + 1)
    by_poll = run(edges, end + 1, poll_ms=1.0)
    assert [(e.kind, e.digit) for e in by_poll] == [(e.kind, e.digit) for e in by_edge]
    for a, b in zip(by_poll, by_edge, strict=True):
        assert a.time == pytest.approx(b.time, abs=0.0011)


def test_digit_is_reported_when_the_make_outlasts_the_interdigit_time() -> None:
    interp = HookInterpreter()
    breaks = [(1.0 + k / 10, False) for k in range(3)]
    makes = [(1.06 + k / 10, True) for k in range(3)]
    run([(0.0, True), *sorted(breaks + makes)], 1.3, interp)
    last_make = 1.26
    assert interp.get_timer() == pytest.approx(last_make + interp.timing.interdigit)
    assert interp.handle_timer(last_make + 0.149) == []
    [digit] = interp.handle_timer(last_make + 0.150)
    assert digit.digit == "3" and digit.time == pytest.approx(last_make)


@pytest.mark.parametrize("break_ms", [100, 250, 700])
def test_flash_within_the_window(break_ms: int) -> None:
    events = run([(0.0, True), (2.0, False), (2.0 + break_ms / 1000, True)], 4.0)
    assert [e.kind for e in events] == [HookKind.OFF_HOOK, HookKind.FLASH]
    assert events[1].duration == pytest.approx(break_ms / 1000)


def test_longer_break_is_a_hang_up_dated_when_the_break_began() -> None:
    interp = HookInterpreter()
    events = run([(0.0, True), (2.0, False)], 2.69, interp)
    assert [e.kind for e in events] == [HookKind.OFF_HOOK]
    assert interp.offhook
    [on_hook] = interp.handle_timer(2.701)  # exactly 700 ms is still a flash
    assert on_hook.kind is HookKind.ON_HOOK and on_hook.time == 2.0
    assert not interp.offhook
    # lifting again later is a new off-hook, not the end of a flash
    assert [e.kind for e in interp.sample(True, 3.0) + interp.handle_timer(4.0)] == [HookKind.OFF_HOOK]


def test_configurable_flash_window_for_short_register_recall() -> None:
    timing = HookTiming(pulse_break_max=0.075, flash_min=0.080, flash_max=0.130)
    events = run([(0.0, True), (1.0, False), (1.09, True), (2.0, False), (2.2, True)], 4.0,
                 HookInterpreter(timing=timing))
    kinds = [e.kind for e in events]
    assert kinds == [HookKind.OFF_HOOK, HookKind.FLASH, HookKind.ON_HOOK, HookKind.OFF_HOOK]


def test_short_glitches_are_ignored() -> None:
    # a 5 ms dropout (below debounce) and an 18 ms one (below the shortest dial pulse)
    events = run([(0.0, True), (1.0, False), (1.005, True), (2.0, False), (2.018, True)], 3.0)
    assert [e.kind for e in events] == [HookKind.OFF_HOOK]


def test_brief_lift_while_on_hook_is_not_an_off_hook() -> None:
    assert run([(1.0, True), (1.03, False)], 3.0) == []


def test_off_hook_confirmation_time() -> None:
    interp = HookInterpreter()
    assert interp.sample(True, 1.0) == []
    assert interp.get_timer() == pytest.approx(1.010)  # debounce first
    assert interp.handle_timer(1.049) == []
    [event] = interp.handle_timer(1.050)
    assert event.kind is HookKind.OFF_HOOK and event.time == 1.0


def test_ring_trip_is_confirmed_fast() -> None:
    interp = HookInterpreter()
    interp.ringing = True
    interp.sample(True, 5.0)
    [event] = interp.handle_timer(5.010)
    assert event.kind is HookKind.OFF_HOOK


def test_hang_up_in_the_middle_of_a_digit_dials_nothing() -> None:
    events = run([(0.0, True), (1.0, False), (1.06, True), (1.1, False)], 3.0)
    assert [e.kind for e in events] == [HookKind.OFF_HOOK, HookKind.ON_HOOK]


def test_more_than_ten_pulses_is_not_a_digit() -> None:
    edges, end = dial("9", 10, 0.6)
    extra = [(end - 0.3 + k * 0.1, lvl) for k in range(2) for lvl in (False, True)]
    edges = [e for e in edges if e[0] < end - 0.3] + [(t + dt, lvl) for (t, lvl), dt in
                                                      zip(extra, [0, 0.06, 0, 0.06], strict=True)]
    digits = [e for e in run(edges, end + 1) if e.kind is HookKind.DIGIT]
    assert digits == []


def test_bad_timing_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="flash_min"):
        HookTiming(flash_min=0.05)
    with pytest.raises(ValueError, match="pulse_break_min"):
        HookTiming(pulse_break_min=0.2)
