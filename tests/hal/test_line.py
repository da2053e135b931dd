"""The Line: ring cadence engine, caller-ID slots, ring trip and the safety rules, with explicit time.

Timing figures: Telcordia GR-30-CORE §3.2 (Bell 202 data between the first and second ring) and
ETSI EN 300 659-1 §6.1 (DT-AS / RP-AS), as cited in hal/line.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from dsp.callerid import detect_alert
from dsp.tones import RingCadence, country, ring_cadence
from hal.events import Feed, HookKind
from hal.line import AlertMode, Line, limit_duty

US = country("US").ring  # 2 s on, 4 s off (GR-506)


class Driver:
    """Records what the line asks of the hardware, stamped with the test's clock."""

    def __init__(self, max_ring_duty: float = 1.0) -> None:
        self.max_ring_duty = max_ring_duty
        self.now = 0.0
        self.calls: list[tuple[float, str, object]] = []

    def set_ringer(self, on: bool) -> None:
        self.calls.append((self.now, "ringer", on))

    def set_polarity(self, reversed_: bool) -> None:
        self.calls.append((self.now, "polarity", reversed_))

    def set_feed(self, feed: Feed) -> None:
        self.calls.append((self.now, "feed", feed))

    def edges(self, what: str) -> list[tuple[float, object]]:
        return [(t, v) for t, w, v in self.calls if w == what]


def advance(line: Line, driver: Driver, until: float) -> list:
    """Run the line's timers like the asyncio adapter would: one call_at per get_timer()."""
    events = []
    while (t := line.get_timer()) is not None and t <= until:
        driver.now = t
        events += line.handle_timer(t)
    driver.now = until
    return events + line.handle_timer(until)


def make(max_duty: float = 1.0) -> tuple[Line, Driver]:
    driver = Driver(max_duty)
    line = Line(0, driver)
    driver.calls.clear()
    return line, driver


def test_us_cadence_on_off_times() -> None:
    line, driver = make()
    driver.now = 10.0
    assert line.ring(US, now=10.0)
    advance(line, driver, 10.0 + 3 * 6.0)
    ringer = driver.edges("ringer")
    assert ringer[:6] == [(10.0, True), (12.0, False), (16.0, True), (18.0, False), (22.0, True),
                          (24.0, False)]


def test_distinctive_cadence_by_name() -> None:
    line, driver = make()
    dr2 = ring_cadence("Bellcore-dr2")  # GR-506: 0.8 s on, 0.4 s off, 0.8 s on, 4 s off
    line.ring(dr2, now=0.0)
    advance(line, driver, 6.0)
    times = [round(t, 3) for t, _ in driver.edges("ringer")]
    assert times[:5] == [0.0, 0.8, 1.2, 2.0, 6.0]


def test_never_rings_an_off_hook_line() -> None:
    line, driver = make()
    line.hook_sample(True, 1.0)
    advance(line, driver, 1.1)
    assert line.offhook
    assert not line.ring(US, now=2.0)
    assert driver.edges("ringer") == []


def test_ring_refused_while_an_off_hook_is_being_confirmed() -> None:
    line, _ = make()
    line.hook_sample(True, 1.0)
    assert not line.ring(US, now=1.02)


@pytest.mark.parametrize("lift_at", [10.5, 13.0])  # during the burst, during the silence
def test_ring_trip_stops_the_ringer_at_once(lift_at: float) -> None:
    line, driver = make()
    line.ring(US, now=10.0)
    advance(line, driver, lift_at)
    driver.now = lift_at
    line.hook_sample(True, lift_at)
    events = advance(line, driver, lift_at + 0.5)
    assert [e.kind for e in events] == [HookKind.OFF_HOOK]
    assert not line.ringing
    last_time, last = driver.edges("ringer")[-1]
    assert last is False and last_time <= lift_at + 0.011  # ring-trip confirm 10 ms
    advance(line, driver, 30.0)
    assert driver.edges("ringer")[-1][1] is False


def test_ring_timeout() -> None:
    line, driver = make()
    line.ring(US, now=0.0, timeout=20.0)
    advance(line, driver, 40.0)
    assert not line.ringing
    assert driver.edges("ringer")[-1] == (20.0, False)


def test_duty_limit_stretches_the_silence() -> None:
    continuous_heavy = RingCadence("heavy", ((2000, 1000),))
    limited = limit_duty(continuous_heavy, 1 / 3)
    on = sum(a for a, _ in limited.segments)
    assert on / limited.period_ms <= 1 / 3 + 1e-9
    line, driver = make(max_duty=1 / 3)
    line.ring(continuous_heavy, now=0.0)
    advance(line, driver, 60.0)
    ringer = driver.edges("ringer")
    on_time = sum(b[0] - a[0] for a, b in zip(ringer[::2], ringer[1::2], strict=False))
    assert on_time / 60.0 <= 1 / 3 + 0.01


def _burst(seconds: float = 0.6) -> np.ndarray:
    return np.full(round(seconds * 8000), 20000, dtype=np.int16)  # louder than any alert tone


def _audio_timeline(line: Line, driver: Driver, until: float) -> np.ndarray:
    """What the line sends on-hook, pulled 20 ms at a time like the media clock does."""
    frames = []
    for k in range(round(until / 0.02)):
        t = k * 0.02
        advance(line, driver, t)
        frames.append(line.onhook_audio(t, 160))
    return np.concatenate([f if f is not None else np.zeros(160, np.int16) for f in frames])


def _span(x: np.ndarray) -> tuple[float, float]:
    nz = np.flatnonzero(x)
    return nz[0] / 8000, (nz[-1] + 1) / 8000


def test_bell202_data_between_first_and_second_ring() -> None:
    line, driver = make()
    line.ring(US, now=0.0, callerid=_burst(0.6), mode=AlertMode.AFTER_FIRST_RING)
    audio = _audio_timeline(line, driver, 12.0)
    start, end = _span(audio)
    ringer = driver.edges("ringer")
    first_end, second_start = ringer[1][0], ringer[2][0]
    assert start - first_end >= 0.5  # GR-30-CORE: >= 500 ms after the first ring
    assert second_start - end >= 0.2  # and done >= 200 ms before the next
    assert second_start == pytest.approx(6.0)  # the 4 s silence had room: cadence unchanged


def test_long_data_delays_the_second_ring() -> None:
    short = RingCadence("short gap", ((1000, 1000),))
    line, driver = make()
    line.ring(short, now=0.0, callerid=_burst(1.0))
    audio = _audio_timeline(line, driver, 6.0)
    _, end = _span(audio)
    second_start = driver.edges("ringer")[2][0]
    assert second_start - end >= 0.2 - 1e-9


def test_etsi_dt_as_before_the_first_ring() -> None:
    line, driver = make()
    line.ring(country("DE").ring, now=0.0, callerid=_burst(0.5), mode=AlertMode.DT_AS)
    audio = _audio_timeline(line, driver, 3.0)
    polarity = driver.edges("polarity")
    assert polarity[0] == (0.0, True)
    [(alert_start, alert_end)] = detect_alert(audio)
    assert alert_start >= 0.1  # EN 300 659-1: DT-AS >= 100 ms after the reversal
    assert alert_end - alert_start == pytest.approx(0.1, abs=0.011)
    data = np.flatnonzero(audio == 20000)
    gap = data[0] / 8000 - alert_end
    assert 0.045 <= gap <= 0.5
    first_ring = driver.edges("ringer")[0][0]
    assert first_ring - (data[-1] + 1) / 8000 >= 0.2
    assert polarity[1][1] is False and polarity[1][0] <= first_ring


def test_etsi_rp_as() -> None:
    line, driver = make()
    line.ring(country("DE").ring, now=0.0, callerid=_burst(0.5), mode=AlertMode.RP_AS)
    audio = _audio_timeline(line, driver, 4.0)
    ringer = driver.edges("ringer")
    assert ringer[0] == (0.0, True)
    assert 0.2 <= ringer[1][0] <= 0.3  # RP-AS 200..300 ms
    start, end = _span(audio)
    assert 0.5 <= start - ringer[1][0] <= 2.0
    assert ringer[2][0] - end >= 0.2 - 1e-9


def test_answer_during_caller_id_drops_the_data() -> None:
    line, driver = make()
    line.ring(US, now=0.0, callerid=_burst(0.6))
    advance(line, driver, 2.6)
    line.hook_sample(True, 2.6)
    advance(line, driver, 2.7)
    assert line.onhook_audio(2.8, 160) is None or not line.onhook_audio(2.8, 160).any()


def test_open_feed_stops_ringing() -> None:
    line, driver = make()
    line.ring(US, now=0.0)
    advance(line, driver, 1.0)
    line.set_feed(Feed.OPEN)
    advance(line, driver, 10.0)
    assert driver.edges("ringer")[-1][1] is False
    assert not line.ringing
    assert driver.edges("feed")[-1][1] is Feed.OPEN


def test_onhook_data_after_reversal_restores_polarity_when_sent() -> None:
    line, driver = make()
    line.send_onhook_data(_burst(0.4), now=0.0, reversal=True)
    audio = _audio_timeline(line, driver, 2.0)
    [(alert_start, _)] = detect_alert(audio)
    assert alert_start >= 0.1  # EN 300 659-1 §6.1.1: DT-AS >= 100 ms after the reversal
    _, end = _span(audio)
    polarity = driver.edges("polarity")
    assert polarity[0] == (0.0, True)
    assert polarity[1][1] is False and end - 1e-9 <= polarity[1][0] <= end + 0.02
    assert not line.polarity_reversed
