"""The ProSLIC backend against a strict register-level Si3210 model (tests/hal/fakes/si3210.py)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dsp.tones import country
from hal import proslic_regs as r
from hal.board import FRAME, HardwareError, Int16Array
from hal.events import Feed, HookEvent, HookKind
from hal.proslic import ProslicBoard, Si3210, Timeouts
from tests.hal.fakes import alsaaudio as fake_alsa
from tests.hal.fakes.si3210 import FakeClock, FakeSpidevModule, ProtocolViolation, Si3210Model, install


class FakeAudio:
    """Two 16-bit PCM slots per frame, as the Pi's PCM interface delivers them."""

    def __init__(self) -> None:
        self.written: list[Int16Array] = []
        self.closed = False

    def read(self) -> Int16Array:
        return np.arange(2 * FRAME, dtype=np.int16).reshape(2, FRAME)

    def write(self, frames: Int16Array) -> None:
        self.written.append(frames)

    def close(self) -> None:
        self.closed = True


class Rig:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models: list[Si3210Model],
                 clock: FakeClock) -> None:
        self.spidev: FakeSpidevModule = install(monkeypatch)
        self.models = models
        self.clock = clock
        self.audio = FakeAudio()
        self.dev = tmp_path
        for cs, model in enumerate(models):
            self.spidev.chips[(0, cs)] = model
            (tmp_path / f"spidev0.{cs}").touch()

    def board(self, **kw: object) -> ProslicBoard:
        args: dict[str, object] = {"audio": self.audio, "poll_interval": None, "clock": self.clock.now,
                                   "sleep": self.clock.sleep, "dev_dir": self.dev}
        args.update(kw)
        return ProslicBoard(0, list(range(len(self.models))), **args)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: FakeClock, n: int = 1,
        **model_kw: object) -> Rig:
    models = [Si3210Model(clock, **model_kw) for _ in range(n)]  # type: ignore[arg-type]
    return Rig(monkeypatch, tmp_path, models, clock)


def test_full_init_sequence_is_accepted_and_leaves_lines_active(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path, clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=2)
    board = t.board()
    for m in t.models:
        assert m.violations == []
        assert m.calibrated
        assert (m.spi_mode, m.speed_hz) == (3, r.SPI_MAX_HZ)
        assert m.lf == 1  # forward active, from the Line's initial feed
        assert m.linefeed_log[-2:] == [0, 1]  # open through calibration, then active
        assert m.indirect(32) == 0x07C0 and m.indirect(34) == 0x1B80  # power alarm thresholds
        assert m.indirect(28) == 0x1000 and m.indirect(29) == 0x3600  # loop closure, ring trip
        assert m.indirect(35) == 0x8000 and m.indirect(36) == 0x0320  # filters restored after cal
        assert m.indirect(20) == r.ring_coefficients(20.0, 64.0)[0]  # US: 20 Hz
        assert m.d[22] == 0xFF
    assert board.ports == 2 and board.alarms() == {}
    board.close()
    assert [m.lf for m in t.models] == [0, 0]
    assert [m.d[14] for m in t.models] == [0x10, 0x10]  # DC-DC converters off
    assert sorted(t.spidev.closed) == [(0, 0), (0, 1)] and t.audio.closed


def test_pcm_slots_16_bit_linear_for_two_chips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=2)
    board = t.board(pcm_offset=1)
    for port, m in enumerate(t.models):
        assert m.d[1] == 0x38  # PCM enabled, 16-bit linear
        start = 1 + 16 * port
        assert (m.d[2] | m.d[3] << 8, m.d[4] | m.d[5] << 8) == (start, start)
    board.close()


def test_audio_moves_one_row_per_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                      clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1)
    board = t.board()
    at, frames = board.read()
    assert frames.shape == (1, FRAME) and at == pytest.approx(clock.now() - 0.02)
    board.write(np.full((1, FRAME), 7, dtype=np.int16))
    assert t.audio.written[0].shape == (2, FRAME)  # the second slot is silence
    assert (t.audio.written[0][0] == 7).all() and (t.audio.written[0][1] == 0).all()
    board.close()


def test_default_audio_is_a_two_slot_alsa_stream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1)
    fake_alsa.install(monkeypatch)
    card = fake_alsa.add_card(0, "pcm", rates=(8000,))
    board = t.board(audio=None, alsa_device="hw:0")
    assert [p.info()["channels"] for p in card.opened] == [2, 2]
    assert board.read()[1].shape == (1, FRAME)
    board.close()
    for pcm in card.opened:
        with pytest.raises(fake_alsa.ALSAAudioError, match="closed"):
            pcm.info()


@pytest.mark.parametrize("misstep", ["linefeed_first", "dcdc_before_thresholds", "indirect_pending",
                                     "two_bytes_per_frame", "calibrate_before_dcdc"])
def test_model_rejects_out_of_order_access(clock: FakeClock, misstep: str) -> None:
    m = Si3210Model(clock)
    spi = FakeSpidevModule()
    spi.chips[(0, 0)] = m
    dev = spi.SpiDev()
    dev.open(0, 0)
    dev.mode = 3
    chip = Si3210(dev, 0, clock=clock.now, sleep=clock.sleep)
    chip.identify()
    with pytest.raises(ProtocolViolation):
        if misstep == "linefeed_first":
            chip.write(r.LINEFEED, r.LF_FORWARD_ACTIVE)
        elif misstep == "dcdc_before_thresholds":
            chip.write(r.DCDC_PERIOD, 0xFF)
            chip.write(r.POWERDOWN1, 0)
        elif misstep == "indirect_pending":
            chip.write(r.IAA, 5)
            chip.write(r.IDA_LO, 1)
        elif misstep == "two_bytes_per_frame":
            dev.xfer2([r.SPI_READ | r.ID, 0])
        else:
            chip.write(r.CAL1, r.CAL1_START_ALL)
    assert m.violations


def test_model_rejects_spi_mode_0(clock: FakeClock) -> None:
    m = Si3210Model(clock)
    spi = FakeSpidevModule()
    spi.chips[(0, 0)] = m
    dev = spi.SpiDev()
    dev.open(0, 0)
    with pytest.raises(ProtocolViolation, match="mode 3"):
        Si3210(dev, 0).identify()


@pytest.mark.parametrize(("revision", "part_bits", "hybrid", "message"), [
    (0, 0, 0x33, "no chip answers"),
    (0xF, 0, 0x33, "no chip answers"),
    (5, 1, 0x33, "not an Si3210 or Si3215"),
    (5, 0, 0x00, "not a ProSLIC"),
])
def test_wrong_chip_id_is_a_hardware_error_and_nothing_is_written(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: FakeClock, revision: int, part_bits: int,
        hybrid: int, message: str) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1, revision=revision)
    m = t.models[0]
    m.d[0] |= part_bits << 4
    m.d[11] = hybrid
    with pytest.raises(HardwareError, match=message):
        t.board()
    assert m.linefeed_log == [] and m.d[14] == 0x10
    assert t.spidev.closed == [(0, 0)] and t.audio.closed


def test_calibration_timeout_is_a_hardware_error_and_the_chip_is_left_safe(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1)
    t.models[0].stuck_calibration = True
    with pytest.raises(HardwareError, match=r"end of calibration \(DR96\) within 2 s"):
        t.board()
    assert t.models[0].lf == 0 and t.models[0].d[14] == 0x10
    assert clock.slept == pytest.approx(2.0 + 0.1 + 0.2, abs=0.05)  # VBAT ramp + DC-DC cal + timeout


def test_vbat_that_never_comes_up_is_a_hardware_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1, vbat=0x80)
    with pytest.raises(HardwareError, match="VBAT is -48 V; is the DC-DC converter's supply connected"):
        t.board(timeouts=Timeouts(vbat=0.3))
    assert t.models[0].d[14] == 0x10


def test_si3215_gets_its_own_indirect_addresses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1, si3215=True)
    board = t.board(country="DE")
    m = t.models[0]
    assert m.violations == [] and board.chips[0].part == "Si3215"
    assert m.ir[7] == 0x7E6C  # RING_OSC at the Si3215 address, 25 Hz for Germany
    assert m.ir[19] == 0x07C0 and m.ir[66] == 0x1000
    assert 0x55C2 not in m.ir.values()  # no DTMF decoder on the Si3215: its registers are skipped
    board.close()


def test_ring_toggles_linefeed_with_the_cadence_and_ring_trip_stops_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1)
    board = t.board()
    m, line = t.models[0], board.lines[0]
    t0 = clock.now()
    assert line.ring(country("US").ring, t0)
    assert m.lf == 4
    board.poll(t0 + 2.0)  # 2 s on, 4 s off
    assert m.lf == 1
    board.poll(t0 + 6.0)
    assert m.lf == 4
    clock.t = t0 + 6.3
    m.set_offhook(True)
    assert m.loop_status() == 0x02  # ring trip detector, not loop closure, while ringing
    board.scan()
    assert m.lf == 1  # the driver drops ringing at once
    events = board.poll(t0 + 6.35)
    assert [e.kind for e in events] == [HookKind.OFF_HOOK] and events[0].time == pytest.approx(t0 + 6.3)
    assert not line.ringing and m.lf == 1
    board.close()


def test_watchdog_stops_ringing_when_the_media_loop_stalls(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1)
    board = t.board(watchdog_s=1.0)
    m, line = t.models[0], board.lines[0]
    assert line.ring(country("US").ring, clock.now())
    board.poll()
    clock.t += 0.9
    board.scan()
    assert m.lf == 4  # the loop is alive: keep ringing
    clock.t += 0.2  # 1.1 s without read, write or poll
    board.scan()
    assert m.lf == 1
    board.close()


def test_ringer_is_refused_on_an_off_hook_line(clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1)
    board = t.board()
    t.models[0].set_offhook(True)
    board.chips[0].set_ringer(True)  # below the Line, which would refuse too
    assert t.models[0].lf == 1
    board.close()


def test_loop_closure_becomes_off_hook_and_on_hook_through_poll(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path, clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=2)
    board = t.board()
    board.scan()
    assert board.poll(clock.now()) == []
    t0 = clock.t = clock.now() + 1.0
    t.models[1].set_offhook(True)
    board.scan()
    assert t.models[1].d[19] == 0  # the loop-closure interrupt was seen and cleared
    events = board.poll(t0 + 0.1)
    assert [(e.port, e.kind, e.time) for e in events] == [(1, HookKind.OFF_HOOK, t0)]
    clock.t = t0 + 2.0
    t.models[1].set_offhook(False)
    board.scan()
    events = board.poll(t0 + 3.0)
    assert [(e.port, e.kind, e.time) for e in events] == [(1, HookKind.ON_HOOK, t0 + 2.0)]
    board.close()


@pytest.mark.parametrize(("feed", "reversed_", "linefeed"), [
    (Feed.ACTIVE, False, 1), (Feed.ACTIVE, True, 5), (Feed.IDLE, False, 2), (Feed.IDLE, True, 6),
    (Feed.OPEN, False, 0), (Feed.OPEN, True, 0),
])
def test_feed_and_polarity_map_to_linefeed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           clock: FakeClock, feed: Feed, reversed_: bool,
                                           linefeed: int) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1)
    board = t.board()
    board.lines[0].set_polarity(reversed_)
    board.lines[0].set_feed(feed)
    assert t.models[0].lf == linefeed == board.chips[0].linefeed
    assert t.models[0].violations == []
    board.close()


def test_power_alarm_is_reported_and_opens_the_line_until_cleared(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=2)
    board = t.board()
    m = t.models[1]
    m.power_alarm(3)
    m.lf = 1  # even if the chip had not opened the line by itself, the driver does
    with caplog.at_level(logging.ERROR, logger="hal.proslic"):
        board.scan()
    assert board.alarms() == {1: ["power alarm Q3"]}
    assert "port 1: power alarm Q3; line opened" in caplog.text
    assert m.lf == 0 and t.models[0].lf == 1
    board.lines[1].set_feed(Feed.ACTIVE)
    board.lines[1].set_polarity(True)
    assert m.lf == 0  # latched: nothing re-energises the line
    board.clear_alarms(1)
    assert board.alarms() == {} and m.lf == 5
    board.close()


def test_collapsed_battery_is_an_alarm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1)
    board = t.board()
    t.models[0].vbat = 0x20
    board.scan()
    assert board.alarms() == {0: ["battery voltage collapsed (-12 V)"]} and t.models[0].lf == 0
    board.close()


def test_supervision_thread_reports_hook_and_is_joined(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                       clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1)
    board = t.board(poll_interval=0.001)
    thread = board._thread
    assert thread is not None and thread.is_alive()
    t.models[0].set_offhook(True)
    deadline = time.monotonic() + 5.0
    events: list[HookEvent] = []
    while not events and time.monotonic() < deadline:
        time.sleep(0.002)
        events = board.poll(clock.now() + 0.1)
    assert [e.kind for e in events] == [HookKind.OFF_HOOK]
    board.close()
    assert not thread.is_alive()


def test_reset_pin_is_pulsed_before_the_chip_is_identified(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path, clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1)
    m = t.models[0]
    m.d[11] = 0x00  # left in some state by a previous owner: only a reset makes it sane

    class Gpio:
        BCM, OUT, LOW, HIGH = 11, 0, 0, 1

        def __init__(self) -> None:
            self.calls: list[tuple[str, int, int]] = []

        def setmode(self, mode: int) -> None:
            self.calls.append(("setmode", mode, 0))

        def setup(self, channel: int, direction: int) -> None:
            self.calls.append(("setup", channel, direction))

        def output(self, channel: int, value: int) -> None:
            self.calls.append(("output", channel, value))
            if value == self.LOW:
                m.reset()

    gpio = Gpio()
    board = t.board(reset_pin=24, gpio=gpio)
    assert gpio.calls == [("setmode", 11, 0), ("setup", 24, 0), ("output", 24, 0), ("output", 24, 1)]
    assert m.calibrated
    board.close()


def test_missing_spidev_module_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "spidev", None)
    with pytest.raises(HardwareError, match=r"spidev is not installed: pip install 'hookflash\[pi\]'"):
        ProslicBoard(0, [0], audio=FakeAudio(), dev_dir=tmp_path)


def test_missing_spi_device_lists_what_exists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              clock: FakeClock) -> None:
    t = rig(monkeypatch, tmp_path, clock, n=1)
    with pytest.raises(HardwareError, match=r"spidev0\.1 does not exist \(SPI devices found: .*spidev0\.0\)"):
        ProslicBoard(0, [0, 1], audio=t.audio, dev_dir=tmp_path)
    assert t.spidev.opened == []


def test_ring_coefficients_match_wctdm_values() -> None:
    assert r.ring_coefficients(25.0, 64.0)[0] == 0x7E6C  # wctdm TBR21 RING_OSC
    osc, x = r.ring_coefficients(20.5, 64.0)
    assert (osc, x) == (0x7EF0, 0x0160)  # exactly wctdm's default RING_OSC and RING_X
    with pytest.raises(ValueError, match="outside"):
        r.ring_coefficients(5.0, 64.0)
