"""The `proslic` backend: Silicon Labs Si3210 / Si3215 ProSLIC line interfaces on the Pi's SPI and PCM.

One chip per port, each on its own SPI chip select (no SPI daisy chain), all on one PCM highway in
16-bit linear slots, so the audio path is the same int16 frames as every other backend.

Design choices:
- The `Line` owns the ring cadence (it does for every backend, with caller ID in the silent
  intervals), so `set_ringer` just switches the linefeed between ringing (4) and forward active (1);
  the chip's own cadence timers (DR48..51) stay unused, and its ring oscillator runs continuously
  while the linefeed is in ringing.
- Hook state is polled (DR19 interrupt status + DR68 loop status) from one thread every few ms and
  reported as raw levels to `Board.report_hook`; `hal.hook` classifies them like for every backend.
  While ringing the loop-closure detector is replaced by the ring-trip detector, and on ring trip the
  driver drops the ringing at once instead of waiting for the interpreter's confirmation.
- A power alarm (transistors Q1..Q6, the chip's thermal model of them) or a collapsed battery
  voltage opens the line and latches until `clear_alarms`, whatever the Line asks for meanwhile.

Register numbers and the power-up recipe: see hal/proslic_regs.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import numpy as np

from dsp.tones import country as country_info
from hal import proslic_regs as r
from hal.alsa import AlsaAudio
from hal.board import FRAME_S, Board, HardwareError, Int16Array, import_hardware_module
from hal.events import Feed, HookEvent
from hal.line import Line
from hal.watchdog import Watchdog

log = logging.getLogger(__name__)

MAX_PORTS = 2
"""The Pi's PCM interface carries two 16-bit channels per frame, so two chips at most."""
SLOT_BITS = 16
POLL_S = 0.001
"""Sleep between status polls while waiting for the chip."""
VBAT_FAULT = round(20 / r.VBAT_LSB_V)
"""Below about -20 V the DC-DC converter has collapsed (far under any battery tracking level)."""
RING_VPK = 64.0
"""Ring amplitude (45 Vrms); with the 20 Hz coefficient this is wctdm's RING_X 0x0160."""
MAX_RING_DUTY = 0.5
"""Our limit, not the datasheet's: continuous ringing heats Q1..Q6 into power alarms at high REN."""


class SpiDevice(Protocol):
    """The part of `spidev.SpiDev` used here."""

    mode: int
    max_speed_hz: int

    def open(self, bus: int, device: int) -> None: ...

    def xfer2(self, data: list[int]) -> list[int]: ...

    def close(self) -> None: ...


class Audio(Protocol):
    """The PCM audio device (`hal.alsa.AlsaAudio` on the Pi): int16 [channels, 160] per period."""

    def read(self) -> Int16Array: ...

    def write(self, frames: Int16Array) -> None: ...

    def close(self) -> None: ...


class Gpio(Protocol):
    """The part of the RPi.GPIO API used to pulse the chips' RESET pin."""

    BCM: int
    OUT: int
    LOW: int
    HIGH: int

    def setmode(self, mode: int) -> None: ...

    def setup(self, channel: int, direction: int) -> None: ...

    def output(self, channel: int, value: int) -> None: ...


@dataclass(frozen=True)
class Timeouts:
    """How long each power-up step may take before it is a HardwareError (seconds)."""

    indirect: float = 0.01
    vbat: float = 0.5
    """wctdm waits 500 ms for VBAT."""
    dcdc_calibration: float = 2.0
    calibration: float = 2.0
    """wctdm waits 2 s for DR96 to clear."""


class Si3210:
    """One ProSLIC on one SPI chip select: register access, power-up and calibration, and the
    `LineDriver` of its port (linefeed from feed, polarity and ringer; alarms)."""

    def __init__(self, spi: SpiDevice, port: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, timeouts: Timeouts | None = None) -> None:
        self.spi = spi
        self.port = port
        self.max_ring_duty = MAX_RING_DUTY
        self.si3215 = False
        self.part: str | None = None
        """The part `identify` found (None until then: nothing is written to an unidentified chip)."""
        self._clock = clock
        self._sleep = sleep
        self._timeouts = timeouts or Timeouts()
        self._lock = threading.RLock()
        self._feed = Feed.OPEN
        self._reversed = False
        self._ringer = False
        self._lf = r.LF_OPEN
        self._alarms: list[str] = []

    # -- register access (datasheet "Serial Peripheral Interface") -----------------------------------
    def read(self, reg: int) -> int:
        """A direct register; control and data byte each in their own chip-select frame."""
        with self._lock:
            self.spi.xfer2([r.SPI_READ | (reg & r.ADDR_MASK)])
            return self.spi.xfer2([0])[0] & 0xFF

    def write(self, reg: int, value: int) -> None:
        with self._lock:
            self.spi.xfer2([reg & r.ADDR_MASK])
            self.spi.xfer2([value & 0xFF])

    def write_indirect(self, si3210_addr: int, value: int) -> None:
        """An indirect register, named by its Si3210 address (translated, or skipped, on an Si3215)."""
        addr = r.indirect_address(si3210_addr, self.si3215)
        if addr is None:
            return
        with self._lock:
            self._wait(lambda: self.read(r.IAS) == 0, self._timeouts.indirect, "indirect access (IAS)")
            self.write(r.IDA_LO, value & 0xFF)
            self.write(r.IDA_HI, (value >> 8) & 0xFF)
            self.write(r.IAA, addr)

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = self._clock() + timeout
        while not done():
            if self._clock() >= deadline:
                raise HardwareError(f"ProSLIC port {self.port}: no {what} within {timeout:g} s")
            self._sleep(POLL_S)

    # -- power-up ----------------------------------------------------------------------------------
    def identify(self) -> str:
        """Check that an Si3210/Si3215 answers (DR0 part/revision, DR1 Si3215 flag, DR11 reset value)."""
        ident = self.read(r.ID)
        if ident & r.REV_MASK in (0, 0xF):
            raise HardwareError(f"ProSLIC port {self.port}: no chip answers (register 0 reads "
                                f"0x{ident:02x}); check the chip select, SPI wiring and RESET")
        self.si3215 = bool(self.read(r.PCM_MODE) & r.SI3215_FLAG)
        part = (ident & r.PART_MASK) >> 4
        if part != 0 and not self.si3215:
            raise HardwareError(f"ProSLIC port {self.port}: part number {part} in register 0 is not an "
                                "Si3210 or Si3215 (Si3211/Si3212 are not supported)")
        hybrid = self.read(r.HYBRID)
        if hybrid != r.RESET_HYBRID:
            raise HardwareError(f"ProSLIC port {self.port}: register 11 reads 0x{hybrid:02x}, not its "
                                f"reset value 0x{r.RESET_HYBRID:02x}: not a ProSLIC")
        self.part = "Si3215" if self.si3215 else "Si3210"
        log.info("port %d: %s revision %d", self.port, self.part, ident & r.REV_MASK)
        return self.part

    def init(self, slot_start: int, ring_hz: float, ring_vpk: float = RING_VPK,
             loop_current_ma: int = 20) -> None:
        """Power up and calibrate, in the datasheet's order; the line is left open.

        `slot_start`: PCLK cycles from FSYNC to this chip's 16-bit slot, on both DTX and DRX.
        """
        self.identify()
        with self._lock:
            # A previous run may have left the chip up: line open and converter off before touching it.
            self.write(r.LINEFEED, r.LF_OPEN)
            self._lf = r.LF_OPEN
            self.write(r.POWERDOWN1, r.POWERDOWN_DCDC)
            ring_osc, ring_x = r.ring_coefficients(ring_hz, ring_vpk)
            ring = {r.IR_RING_OSC: ring_osc, r.IR_RING_X: ring_x}
            # Indirect registers first: the Q1..Q6 power alarm thresholds protect the converter start.
            for addr, _, _, value in r.INDIRECT_INIT:
                self.write_indirect(addr, ring.get(addr, value))
            self.write(r.LOOPBACK, 0)
            self.write(r.CHIP_TUNE, 0xEB)
            self.write(r.AUTO_MANUAL, r.AUTO_MANUAL_VALUE)
            self.write(r.BAT_FEED, r.BAT_FEED_VALUE)
            for addr in r.IR_FILTERS:  # flush the digital filters while calibrating (wctdm)
                self.write_indirect(addr, r.IR_FILTER_CLEAR)
            self._pcm(slot_start)
            self._power_up(loop_current_ma)
            self._calibrate()
            for addr, _, _, value in r.INDIRECT_INIT:
                if addr in r.IR_FILTERS:
                    self.write_indirect(addr, value)
            for reg in (r.IRQ_STATUS1, r.IRQ_STATUS2, r.IRQ_STATUS3):
                self.write(reg, 0xFF)  # write 1 to clear
            self.write(r.IRQ_ENABLE2, r.IRQ2_POWER_ALARMS | r.IRQ2_LOOP_CLOSURE | r.IRQ2_RING_TRIP)

    def _pcm(self, slot_start: int) -> None:
        """PCM highway: enabled, 16-bit linear, this chip's slot start on transmit and receive."""
        if not 0 <= slot_start <= 0x3FF:
            raise ValueError(f"PCM slot start {slot_start} is outside 0..1023 PCLK cycles")
        self.write(r.PCM_MODE, r.PCM_ENABLE_LINEAR16)
        for lo, hi in ((r.PCM_TXS_LO, r.PCM_TXS_HI), (r.PCM_RXS_LO, r.PCM_RXS_HI)):
            self.write(lo, slot_start & 0xFF)
            self.write(hi, slot_start >> 8)

    def _power_up(self, loop_current_ma: int) -> None:
        """DC-DC converter on, VBAT up, loop current limit, DC-DC calibration."""
        self.write(r.DCDC_PERIOD, r.DCDC_PERIOD_VALUE)
        self.write(r.POWERDOWN1, 0)
        try:
            self._wait(lambda: self.read(r.VBAT_SENSE) >= r.VBAT_MIN, self._timeouts.vbat,
                       f"battery voltage (VBAT >= {r.VBAT_MIN * r.VBAT_LSB_V:.0f} V)")
        except HardwareError as e:
            vbat = self.read(r.VBAT_SENSE) * r.VBAT_LSB_V
            self.write(r.POWERDOWN1, r.POWERDOWN_DCDC)
            raise HardwareError(f"{e}: VBAT is -{vbat:.0f} V; is the DC-DC converter's supply "
                                "connected?") from None
        self.write(r.LOOP_I_LIMIT, r.loop_current_code(loop_current_ma))
        self.write(r.DCDC_WIDTH, r.DCDC_CAL | r.DCDC_WIDTH_VALUE)
        self._wait(lambda: not self.read(r.DCDC_WIDTH) & r.DCDC_CAL, self._timeouts.dcdc_calibration,
                   "DC-DC converter calibration (DR93 bit 7)")

    def _calibrate(self) -> None:
        """Monitor ADC, DAC/ADC offsets, common-mode balance, TIP/RING gain mismatch, ILIM (DR96/97)."""
        for reg in (r.IRQ_ENABLE1, r.IRQ_ENABLE2, r.IRQ_ENABLE3):
            self.write(reg, 0)
        self.write(r.CAL2, r.CAL2_ALL)
        self.write(r.CAL1, r.CAL1_START_ALL)
        self._wait(lambda: self.read(r.CAL1) == 0, self._timeouts.calibration,
                   "end of calibration (DR96)")

    def shutdown(self) -> None:
        """Line open and DC-DC converter off: the safe state to leave the chip in."""
        with self._lock:
            self._ringer = False
            self.write(r.LINEFEED, r.LF_OPEN)
            self._lf = r.LF_OPEN
            self.write(r.POWERDOWN1, r.POWERDOWN_DCDC)

    # -- LineDriver --------------------------------------------------------------------------------
    @property
    def ringing(self) -> bool:
        """Whether the ringer is asked to be on (the linefeed may already have tripped)."""
        return self._ringer

    def set_ringer(self, on: bool) -> None:
        with self._lock:
            if on and self._lf != r.LF_RINGING and self.read(r.LOOP_STATUS) & r.LOOP_LCR:
                log.warning("port %d: not ringing an off-hook line", self.port)
                return
            self._ringer = on
            self._apply()

    def set_polarity(self, reversed_: bool) -> None:
        with self._lock:
            self._reversed = reversed_
            self._apply()

    def set_feed(self, feed: Feed) -> None:
        with self._lock:
            self._feed = feed
            self._apply()

    @property
    def linefeed(self) -> int:
        """The linefeed state last written (r.LF_*)."""
        return self._lf

    def _target(self) -> int:
        if self._alarms or self._feed is Feed.OPEN:
            return r.LF_OPEN
        if self._ringer and self._feed is Feed.ACTIVE:
            return r.LF_RINGING
        if self._feed is Feed.ACTIVE:
            return r.LF_REVERSE_ACTIVE if self._reversed else r.LF_FORWARD_ACTIVE
        return r.LF_REVERSE_OHT if self._reversed else r.LF_FORWARD_OHT

    def _apply(self) -> None:
        lf = self._target()
        if lf != self._lf:
            self.write(r.LINEFEED, lf)
            self._lf = lf

    # -- supervision -------------------------------------------------------------------------------
    def service(self) -> bool:
        """One supervision pass: alarms, ring trip; returns the raw off-hook level."""
        with self._lock:
            irq = self.read(r.IRQ_STATUS2)
            if irq:
                self.write(r.IRQ_STATUS2, irq)
            found = [f"power alarm Q{bit - 1}" for bit in range(2, 8) if irq & (1 << bit)]
            vbat = self.read(r.VBAT_SENSE)
            if vbat < VBAT_FAULT:
                found.append(f"battery voltage collapsed (-{vbat * r.VBAT_LSB_V:.0f} V)")
            if found:
                self._alarm(found)
            loop = self.read(r.LOOP_STATUS)
            if self._lf != r.LF_RINGING:
                return bool(loop & r.LOOP_LCR)
            tripped = bool(loop & r.LOOP_RTP or irq & r.IRQ2_RING_TRIP)
            if tripped:
                log.info("port %d: ring trip", self.port)
                self._ringer = False
                self._apply()
            return tripped

    def _alarm(self, found: list[str]) -> None:
        new = [a for a in found if a not in self._alarms]
        if new:
            log.error("port %d: %s; line opened until the alarm is cleared", self.port, ", ".join(new))
            self._alarms += new
        self._apply()

    def alarms(self) -> list[str]:
        """Alarms latched since power-up or the last `clear_alarms` (the line is open while any is)."""
        with self._lock:
            return list(self._alarms)

    def clear_alarms(self) -> None:
        """Re-arm after an alarm: the line goes back to what the Line last asked for."""
        with self._lock:
            self._alarms.clear()
            self._apply()


class ProslicBoard(Board):
    """A HAT with one Si3210/Si3215 per port on SPI `spi_bus`, chip selects `chip_selects` (port order),
    their PCM slots on the Pi's PCM/I2S pins, audio through `audio` (default `hal.alsa.AlsaAudio`)."""

    def __init__(self, spi_bus: int = 0, chip_selects: Sequence[int] = (0,), reset_pin: int | None = None,
                 audio: Audio | None = None, country: str = "US", *, alsa_device: str = "default",
                 pcm_offset: int = 0, ring_vpk: float = RING_VPK, loop_current_ma: int = 20,
                 poll_interval: float | None = 0.005, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, gpio: Gpio | None = None,
                 timeouts: Timeouts | None = None, dev_dir: Path = Path("/dev"),
                 watchdog_s: float = 1.0) -> None:
        """`pcm_offset`: PCLK cycles from FSYNC to port 0's slot (0 for DSP-B framing, 1 for DSP-A);
        `poll_interval` None: no supervision thread, the owner calls `scan()`."""
        super().__init__()
        if not 1 <= len(chip_selects) <= MAX_PORTS:
            raise ValueError(f"{len(chip_selects)} chip selects: the Pi's PCM carries 1..{MAX_PORTS} ports")
        self._clock = clock
        ring_hz = country_info(country).ring_frequency_hz
        spidev = import_hardware_module("spidev", "spidev")
        for cs in chip_selects:
            path = dev_dir / f"spidev{spi_bus}.{cs}"
            if not path.exists():
                found = ", ".join(sorted(str(p) for p in dev_dir.glob("spidev*"))) or "none"
                raise HardwareError(f"{path} does not exist (SPI devices found: {found}); enable SPI "
                                    "with dtparam=spi=on in config.txt")
        if reset_pin is not None:
            io = gpio if gpio is not None else cast(
                Gpio, import_hardware_module("RPi.GPIO", "RPi.GPIO", " (needed for the reset pin)"))
            self._reset(io, reset_pin, sleep)
        self.chips: list[Si3210] = []
        self._audio: Audio | None = None
        try:
            for port, cs in enumerate(chip_selects):
                dev: SpiDevice = spidev.SpiDev()
                try:
                    dev.open(spi_bus, cs)
                except OSError as e:
                    raise HardwareError(f"cannot open /dev/spidev{spi_bus}.{cs}: {e} (is this user in "
                                        "the spi group?)") from e
                dev.mode = r.SPI_MODE
                dev.max_speed_hz = r.SPI_MAX_HZ
                self.chips.append(Si3210(dev, port, clock=clock, sleep=sleep, timeouts=timeouts))
            # Audio first: if the Pi is the PCM clock master, PCLK (the chips' PLL reference) runs only
            # while the stream does.
            self._audio = audio or AlsaAudio(alsa_device, alsa_device, channels=MAX_PORTS)
            for chip in self.chips:
                chip.init(pcm_offset + SLOT_BITS * chip.port, ring_hz, ring_vpk, loop_current_ma)
        except BaseException:
            self._release()
            raise
        self.lines = [Line(chip.port, chip, now=clock()) for chip in self.chips]
        self._levels: list[bool | None] = [None] * len(self.chips)
        self._watchdog = Watchdog(watchdog_s, clock())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if poll_interval is not None:
            self._thread = threading.Thread(target=self._run, args=(poll_interval,),
                                            name="proslic-supervision", daemon=True)
            self._thread.start()

    @staticmethod
    def _reset(gpio: Gpio, pin: int, sleep: Callable[[float], None]) -> None:
        """Pulse RESET low: every register to its reset value, line open (datasheet "Reset")."""
        gpio.setmode(gpio.BCM)
        gpio.setup(pin, gpio.OUT)
        gpio.output(pin, gpio.LOW)
        sleep(0.01)
        gpio.output(pin, gpio.HIGH)
        sleep(0.01)

    def _release(self) -> None:
        """Leave every chip safe and close the devices (also after a failed init)."""
        for chip in self.chips:
            try:
                if chip.part is not None:
                    chip.shutdown()
            except (HardwareError, OSError) as e:
                log.warning("port %d: could not shut down: %s", chip.port, e)
            chip.spi.close()
        if self._audio is not None:
            self._audio.close()

    # -- supervision -------------------------------------------------------------------------------
    def scan(self) -> None:
        """Service every chip once and report hook levels that changed (the thread calls this).

        If the media loop has stalled (no read, write or poll for `watchdog_s`), nothing moves the
        ring cadence on: a ringing line is stopped here so it cannot ring on unattended.
        """
        stalled = self._watchdog.expired(self._clock())
        for chip in self.chips:
            if stalled and chip.ringing:
                log.warning("media loop stalled: stopping the ringer of port %d", chip.port)
                chip.set_ringer(False)
            level = chip.service()
            if level != self._levels[chip.port]:
                self._levels[chip.port] = level
                self.report_hook(chip.port, level, self._clock())

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.scan()
            except (HardwareError, OSError):
                log.exception("ProSLIC supervision failed")

    def alarms(self) -> dict[int, list[str]]:
        """Latched alarms of every port that has one."""
        return {chip.port: a for chip in self.chips if (a := chip.alarms())}

    def clear_alarms(self, port: int) -> None:
        self.chips[port].clear_alarms()

    # -- Board -------------------------------------------------------------------------------------
    def poll(self, now: float | None = None) -> list[HookEvent]:
        self._watchdog.kick(self._clock())
        return super().poll(now)

    def read(self) -> tuple[float, Int16Array]:
        assert self._audio is not None
        self._watchdog.kick(self._clock())
        frames = self._audio.read()
        return self._clock() - FRAME_S, frames[:self.ports]

    def write(self, frames: Int16Array) -> None:
        assert self._audio is not None
        self._watchdog.kick(self._clock())
        if frames.shape[0] < MAX_PORTS:  # the PCM frame always has both slots
            full = np.zeros((MAX_PORTS, frames.shape[1]), dtype=np.int16)
            full[:frames.shape[0]] = frames
            frames = full
        self._audio.write(frames)

    def now(self) -> float:
        return self._clock()

    def close(self) -> None:
        """Stop ringing, stop supervision, open every line and power the converters down."""
        super().close()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._release()
