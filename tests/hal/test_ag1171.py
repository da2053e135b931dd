"""The Ag1171 board against the fake RPi.GPIO with simulated SLICs and phones (tests/hal/fakes/gpio.py).

Ringing is timed in real time (the timing thread is what is under test), with short cadences and
medians so CI noise does not decide; everything else uses explicit time or the fake's records.
Every board is closed at teardown, and the fake's electrical-rule violations must be empty.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dsp.tones import RingCadence, country
from hal.ag1171 import AG1171, DEFAULT_PINS, KS0835F, MAX_BURST_S, Ag1171Board, PortPins
from hal.alsa import AlsaAudio
from hal.board import HardwareError
from hal.events import Feed, HookEvent, HookKind
from hal.hook import HookTiming
from hal.watchdog import Watchdog
from tests.hal.fakes import alsaaudio as fake_alsa
from tests.hal.fakes import gpio as fake_gpio

ROOT = Path(__file__).resolve().parents[2]
P0, P1 = DEFAULT_PINS
TIMING = HookTiming(flash_max=0.2)
"""Default thresholds but a short hang-up recognition, to keep the tests quick."""
MakeBoard = Callable[..., Ag1171Board]


@pytest.fixture
def gpio(monkeypatch: pytest.MonkeyPatch) -> fake_gpio.FakeGPIO:
    fake_alsa.install(monkeypatch)
    fake_alsa.add_card(0, "codec", rates=(8000, 48000))
    fake = fake_gpio.install(monkeypatch)
    for p in DEFAULT_PINS:
        fake.attach_slic(p.rm, p.fr, p.shk, p.pd)
    return fake


@pytest.fixture
def make_board(gpio: fake_gpio.FakeGPIO) -> Iterator[MakeBoard]:
    boards: list[Ag1171Board] = []

    def make(**kw: Any) -> Ag1171Board:
        pins = kw.pop("pins", DEFAULT_PINS)
        kw.setdefault("timing", TIMING)
        board = Ag1171Board(AlsaAudio("hw:0", "hw:0", channels=len(pins)), pins=pins, **kw)
        boards.append(board)
        return board

    yield make
    for board in boards:
        board.close()
        assert not board._thread.is_alive()
    for slic in gpio.slics:
        slic.check()
    assert gpio.violations == []


def run(board: Ag1171Board, seconds: float) -> list[HookEvent]:
    """Be the gateway's loop for `seconds`: poll the board at each of its deadlines (5 ms at most)."""
    end = time.monotonic() + seconds
    events: list[HookEvent] = []
    while (now := time.monotonic()) < end:
        events += board.poll(now)
        timer = board.get_timer()
        wait = min(end, timer if timer is not None else end, now + 0.005) - time.monotonic()
        time.sleep(max(0.0, wait))
    return events


def bursts(slic: fake_gpio.SlicModel) -> list[tuple[float, float]]:
    """(rise, fall) times of RM."""
    edges = [(t, lv) for t, lv in slic.edges(slic.rm)]
    rises = [t for t, lv in edges if lv == 1]
    falls = [t for t, lv in edges if lv != 1 and any(r < t for r in rises)]
    return list(zip(rises, falls, strict=False))


def toggles_in(slic: fake_gpio.SlicModel, start: float, end: float) -> list[float]:
    return [t for t, lv in slic.edges(slic.fr) if start < t < end and lv is not None]


# -- ring timing ---------------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["US", "UK"])
def test_ring_frequency_and_cadence(gpio: fake_gpio.FakeGPIO, make_board: MakeBoard, code: str) -> None:
    hz = country(code).ring_frequency_hz
    board = make_board(ring_hz=hz)
    slic = gpio.slics[0]
    cadence = RingCadence("test", ((200, 400),))  # 2 cycles in 1.2 s, duty 1/3
    assert board.lines[0].ring(cadence, board.now())
    run(board, 1.1)
    board.lines[0].stop_ring(board.now())

    b = bursts(slic)
    assert len(b) == 2
    on = [fall - rise for rise, fall in b]
    assert all(abs(x - 0.200) < 0.020 for x in on), on
    assert abs((b[1][0] - b[0][0]) - 0.600) < 0.020
    halves = np.concatenate([np.diff(toggles_in(slic, rise, fall)) for rise, fall in b])
    assert len(halves) >= 2 * (0.2 * 2 * hz - 2)
    measured = 1 / (2 * float(np.median(halves)))
    assert abs(measured - hz) < 1.0, measured
    assert gpio.input(P0.fr) == 1  # back to forward polarity between and after bursts
    assert bursts(gpio.slics[1]) == []  # the other port stayed quiet


def test_rm_duty_is_limited_to_one_third(gpio: fake_gpio.FakeGPIO, make_board: MakeBoard) -> None:
    board = make_board(ring_hz=25.0)
    assert board.lines[0].driver.max_ring_duty == pytest.approx(1 / 3)
    assert board.lines[0].ring(RingCadence("greedy", ((300, 100),)), board.now())  # 75 % asked for
    run(board, 0.95)
    board.lines[0].stop_ring(board.now())
    (r0, f0), (r1, _) = bursts(gpio.slics[0])[:2]
    assert (f0 - r0) / (r1 - r0) <= 1 / 3 + 0.03


# -- ring trip -----------------------------------------------------------------------------------
def test_ring_trip_during_a_burst_stops_ringing_at_once(gpio: fake_gpio.FakeGPIO,
                                                      make_board: MakeBoard) -> None:
    board = make_board(ring_hz=20.0)
    slic = gpio.slics[0]
    board.lines[0].ring(RingCadence("test", ((300, 600),)), board.now())
    run(board, 0.1)
    assert slic.ringing
    slic.lift()
    lifted = slic.offhook_times[-1]
    events = run(board, 0.9)  # past where the next burst would have started

    ((_, fall),) = bursts(slic)
    assert fall - lifted <= TIMING.ring_trip_confirm + 1 / 20 + 0.010  # confirm + one ring period
    assert fall - lifted >= TIMING.ring_trip_confirm - 0.002  # but a 1 ms glitch would not trip it
    assert gpio.input(P0.fr) == 1  # F/R held at forward
    assert [e.kind for e in events] == [HookKind.OFF_HOOK]
    assert not board.lines[0].ringing and board.lines[0].offhook


def test_ring_thread_trips_by_itself_when_nobody_polls(gpio: fake_gpio.FakeGPIO,
                                                       make_board: MakeBoard) -> None:
    board = make_board(ring_hz=20.0)
    slic = gpio.slics[0]
    board.lines[0].ring(RingCadence("long", ((1000, 2000),)), board.now())
    time.sleep(0.05)
    slic.lift()
    lifted = slic.offhook_times[-1]
    time.sleep(0.1)  # no poll: the Line has not heard of the off-hook yet
    assert board.lines[0].ringing
    ((_, fall),) = bursts(slic)
    assert TIMING.ring_trip_confirm - 0.002 <= fall - lifted <= TIMING.ring_trip_confirm + 0.015
    board.lines[0].driver.set_ringer(True)  # the next burst is refused while SHK says off-hook
    assert len(bursts(slic)) == 1
    assert [e.kind for e in run(board, 0.05)] == [HookKind.OFF_HOOK]
    assert not board.lines[0].ringing


def test_ring_trip_during_the_silence(gpio: fake_gpio.FakeGPIO, make_board: MakeBoard) -> None:
    board = make_board(ring_hz=25.0)
    slic = gpio.slics[0]
    board.lines[0].ring(RingCadence("test", ((150, 300),)), board.now())
    run(board, 0.25)
    assert not slic.ringing
    slic.lift()
    events = run(board, 0.5)
    assert len(bursts(slic)) == 1  # no burst after the lift
    assert [e.kind for e in events] == [HookKind.OFF_HOOK]
    assert not board.lines[0].ringing


def test_short_shk_glitch_during_ringing_does_not_trip(gpio: fake_gpio.FakeGPIO,
                                                      make_board: MakeBoard) -> None:
    board = make_board(ring_hz=20.0)
    slic = gpio.slics[0]
    board.lines[0].ring(RingCadence("test", ((400, 800),)), board.now())
    run(board, 0.05)
    slic.lift()
    slic.hang_up()  # a sub-millisecond blip, far under the 10 ms confirm
    run(board, 0.1)
    assert slic.ringing and board.lines[0].ringing
    board.lines[0].stop_ring(board.now())


def test_never_rings_an_offhook_line(gpio: fake_gpio.FakeGPIO, make_board: MakeBoard) -> None:
    board = make_board()
    gpio.slics[1].lift()
    events = run(board, 0.1)
    assert [(e.port, e.kind) for e in events] == [(1, HookKind.OFF_HOOK)]
    assert not board.lines[1].ring(RingCadence("test", ((200, 400),)), board.now())
    board.lines[1].driver.set_ringer(True)  # even if asked directly, the driver refuses
    assert bursts(gpio.slics[1]) == []


def test_hook_events_arrive_through_report_hook_and_poll(gpio: fake_gpio.FakeGPIO,
                                                        make_board: MakeBoard) -> None:
    board = make_board()
    phone = gpio.slics[1]
    phone.lift()
    lifted = phone.offhook_times[-1]
    assert board.poll() == []  # not yet confirmed
    events = run(board, 0.1)
    phone.hang_up()
    events += run(board, 0.3)
    assert [(e.port, e.kind) for e in events] == [(1, HookKind.OFF_HOOK), (1, HookKind.ON_HOOK)]
    assert events[0].time == pytest.approx(lifted, abs=0.002)  # stamped at the edge, not at poll


def test_phone_offhook_at_start_is_reported(gpio: fake_gpio.FakeGPIO, make_board: MakeBoard) -> None:
    gpio.drive_input(P0.shk, 1)
    board = make_board()
    assert [(e.port, e.kind) for e in run(board, 0.1)] == [(0, HookKind.OFF_HOOK)]


# -- safety --------------------------------------------------------------------------------------
def test_watchdog_core_with_explicit_time() -> None:
    w = Watchdog(1.0, now=10.0)
    assert not w.expired(11.0)
    assert w.expired(11.001)
    w.kick(11.5)
    assert not w.expired(12.5) and w.expired(12.6)
    w.kick(5.0)  # a stale timestamp from another thread never moves it back
    assert w.deadline == 12.5
    with pytest.raises(ValueError):
        Watchdog(0, now=0.0)


def test_stalled_loop_drops_rm_by_itself(gpio: fake_gpio.FakeGPIO, make_board: MakeBoard) -> None:
    board = make_board(watchdog_s=0.2)
    board.lines[0].ring(RingCadence("long", ((1000, 2000),)), board.now())
    board.poll()  # the last sign of life
    alive = time.monotonic()
    time.sleep(0.4)  # the loop "stalls": no read, write or poll
    ((_, fall),) = bursts(gpio.slics[0])
    assert 0.2 <= fall - alive <= 0.35  # timeout + the thread's idle wait (50 ms) + CI slack
    assert gpio.input(P0.rm) == 0


def test_burst_limit_constant_covers_every_country() -> None:
    from dsp.tones import countries
    longest = max(on for c in countries() for on, _ in country(c).ring.segments) / 1000
    assert longest < MAX_BURST_S


def test_safe_pins_on_close(gpio: fake_gpio.FakeGPIO, make_board: MakeBoard) -> None:
    board = make_board()
    board.lines[0].ring(RingCadence("long", ((1000, 2000),)), board.now())
    run(board, 0.1)
    board.close()
    slic = gpio.slics[0]
    assert [lv for _, lv in slic.edges(P0.rm)][-2:] == [0, None]  # driven low, then released
    assert [lv for _, lv in slic.edges(P0.fr)][-2:] == [0, None]
    assert gpio.pins == {} and gpio.mode is None
    assert not board._thread.is_alive()
    board.close()  # idempotent


def test_safe_pins_when_the_caller_raises(gpio: fake_gpio.FakeGPIO, make_board: MakeBoard) -> None:
    with pytest.raises(ZeroDivisionError), make_board() as board:
        board.lines[0].ring(RingCadence("long", ((1000, 2000),)), board.now())
        run(board, 0.05)
        _ = 1 / 0
    assert gpio.pins == {}
    assert [lv for _, lv in gpio.slics[0].edges(P0.rm)][-2:] == [0, None]


CRASH = """
import json, sys, time, types
sys.path.insert(0, {root!r})
from tests.hal.fakes import alsaaudio as fa, gpio as fg
fake = fg.FakeGPIO()
pkg = types.ModuleType("RPi"); pkg.GPIO = fake
sys.modules.update({{"RPi": pkg, "RPi.GPIO": fake, "alsaaudio": fa}})
fa.add_card(0, "codec", rates=(8000,))
slic = fake.attach_slic(17, 27, 22)
import atexit
atexit.register(lambda: print(json.dumps({{"rm": [lv for _, lv in slic.edges(17)],
                                          "pins": list(fake.pins), "violations": fake.violations}})))
from dsp.tones import RingCadence
from hal.ag1171 import Ag1171Board, PortPins
from hal.alsa import AlsaAudio
board = Ag1171Board(AlsaAudio("hw:0", "hw:0"), pins=[PortPins(17, 27, 22)])
board.lines[0].ring(RingCadence("t", ((1000, 2000),)), board.now())
time.sleep(0.1)
raise RuntimeError("the application crashed")
"""


def test_safe_pins_when_the_process_dies_of_an_exception() -> None:
    proc = subprocess.run([sys.executable, "-c", CRASH.format(root=str(ROOT))], capture_output=True,
                          text=True, timeout=20, cwd=ROOT)
    assert proc.returncode == 1 and "the application crashed" in proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["rm"][0] == 0 and 1 in report["rm"]  # it was ringing
    assert report["rm"][-2:] == [0, None] and report["pins"] == [] and report["violations"] == []


def test_missing_gpio_module_is_a_clear_error(gpio: fake_gpio.FakeGPIO,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "RPi", None)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)
    audio = AlsaAudio("hw:0", "hw:0", channels=2)
    with pytest.raises(HardwareError, match=r"RPi.GPIO is not installed: pip install 'hookflash\[pi\]'"):
        Ag1171Board(audio)
    audio.close()


def test_configuration_errors(gpio: fake_gpio.FakeGPIO) -> None:
    audio = AlsaAudio("hw:0", "hw:0", channels=2)
    with pytest.raises(ValueError, match="1 channels for 2 ports"):
        Ag1171Board(AlsaAudio("hw:0", "hw:0", channels=1))
    with pytest.raises(ValueError, match="used twice"):
        Ag1171Board(audio, pins=[P0, PortPins(rm=5, fr=6, shk=P0.shk)])
    with pytest.raises(ValueError, match="ring frequency"):
        Ag1171Board(audio, ring_hz=100.0)
    with pytest.raises(ValueError, match="ks0835f does not support PD"):
        Ag1171Board(audio, pins=[PortPins(17, 27, 22, pd=5), P1], profile=KS0835F)
    assert gpio.transitions == []  # nothing touched before the configuration was known good
    audio.close()


# -- polarity and feed ---------------------------------------------------------------------------
def test_polarity_reversal_via_fr(gpio: fake_gpio.FakeGPIO, make_board: MakeBoard) -> None:
    board = make_board()
    line = board.lines[0]
    line.set_polarity(True)
    assert gpio.input(P0.fr) == 0  # F/R low = reverse (§5.9)
    line.set_polarity(False)
    assert gpio.input(P0.fr) == 1


def test_feed_open_powers_down_through_pd_and_never_drives_it_high(gpio: fake_gpio.FakeGPIO,
                                                                  make_board: MakeBoard) -> None:
    pins = [PortPins(P0.rm, P0.fr, P0.shk, pd=5), P1]
    gpio.slics[0].pd = 5
    board = make_board(pins=pins, profile=AG1171)
    assert gpio.pins[5].direction == fake_gpio.IN  # released: the SLIC runs
    line = board.lines[0]
    line.set_feed(Feed.IDLE)  # no such state on the Ag1171: the line stays fully active
    assert gpio.pins[5].direction == fake_gpio.IN
    line.set_feed(Feed.OPEN)
    assert gpio.pins[5].direction == fake_gpio.OUT and gpio.input(5) == 0
    gpio.slics[0].lift()  # SHK is not trusted while powered down
    assert run(board, 0.1) == []
    line.set_feed(Feed.ACTIVE)
    assert gpio.pins[5].direction == fake_gpio.IN
    events = run(board, 0.15)  # re-read after the 50 ms settling time
    assert [e.kind for e in events] == [HookKind.OFF_HOOK]


def test_feed_open_without_pd_is_a_clear_error(make_board: MakeBoard) -> None:
    board = make_board()
    with pytest.raises(HardwareError, match="PD pin"):
        board.lines[0].driver.set_feed(Feed.OPEN)


# -- audio ---------------------------------------------------------------------------------------
def test_audio_moves_one_channel_per_port(make_board: MakeBoard) -> None:
    board = make_board()
    t, frames = board.read()
    assert frames.shape == (2, 160) and t <= board.now()
    board.write(np.zeros((2, 160), dtype=np.int16))
    card = fake_alsa._cards[0]
    assert len(card.played[-1]) == 160 * 2 * 2


# -- the fake itself: its rules must catch a misbehaving driver ----------------------------------
def test_fake_gpio_flags_unsafe_pin_use(monkeypatch: pytest.MonkeyPatch) -> None:
    g = fake_gpio.install(monkeypatch)
    slic = g.attach_slic(rm=17, fr=27, shk=22, pd=5)
    with pytest.raises(RuntimeError, match="setmode"):
        g.setup(17, g.OUT)
    g.setmode(g.BCM)
    with pytest.raises(RuntimeError, match="OUTPUT"):
        g.output(17, 1)
    g.setup(17, g.OUT, initial=0)
    g.setup(27, g.OUT, initial=1)
    g.setup(5, g.OUT, initial=1)
    g.setup(22, g.IN)
    with pytest.raises(RuntimeError, match="Conflicting"):
        g.add_event_detect(22, g.BOTH)
        g.add_event_detect(22, g.BOTH)
    slic.lift()
    g.output(17, 1)
    g.output(27, 0)
    g.output(27, 1)  # 0 ms later: no ring frequency is that fast
    monkeypatch.setattr(fake_gpio, "RING_TRIP_LIMIT_S", 0.01)
    time.sleep(0.02)
    slic.check()
    assert sorted(v.split(" ")[0] for v in g.violations) == ["F/R", "PD", "RM"]
    g.output(27, 0)
    g.output(27, 1)  # restoring F/R to its rest level just before RM drops is how ringing ends
    g.output(17, 0)
    slic.check()
    assert len(g.violations) == 3
