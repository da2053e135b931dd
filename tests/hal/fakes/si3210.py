"""A register-level model of the Si3210 / Si3215 ProSLIC behind a fake `spidev` module.

The model is deliberately strict, so a driver that gets the chip's rules wrong fails its tests:
- SPI: mode 3, one byte per chip-select frame (control byte, then data byte; CS released between),
  control byte bit 7 = read, bits 6..0 = direct register 0..108;
- indirect registers: IDA_LO (28), IDA_HI (29), then IAA (30) writes the 16-bit value; IAS (31) reads
  1 while the access is pending, which lasts until IAS has been read once; touching 28..30 while
  pending is a violation;
- power-up order (datasheet "Initialization"): the DC-DC converter (DR14 bit 4 cleared) may only start
  after the PWM period (DR92) and the Q1..Q6 power alarm thresholds (IR 32..34) are set; DC-DC
  calibration (DR93 bit 7) needs VBAT up; the main calibration (DR96 bit 6) needs the DC-DC
  calibration done and the linefeed open; any linefeed other than open needs the calibration done,
  and ringing needs the ring oscillator (IR 20/21) programmed;
- VBAT (DR82) ramps up over `vbat_rise_s` after the converter starts (up = 0xC0); calibration bits clear after
  `cal_s` of simulated time (or never, with `stuck_calibration`);
- the loop: a simulated phone goes off-hook; DR68 shows loop closure (bit 0) in the non-ringing
  feeding states and ring trip (bit 1) while ringing, and DR19 latches the interrupt (bits 1 / 0)
  when enabled in DR22; a power alarm on Qn sets DR19 bit n+1 and forces the linefeed open.

Violations raise `ProtocolViolation` from the SPI transfer and are kept in `violations`.
The numbers here are transcribed independently of hal/proslic_regs.py on purpose.
"""

from __future__ import annotations

import sys
import types

import pytest

SI3215_IR = {13: 0, 14: 1, 15: 2, 16: 3, 17: 4, 18: 5, 19: 6, 20: 7, 21: 8, 22: 9, 26: 13, 27: 14,
             28: 15, 29: 16, 30: 17, 31: 18, 32: 19, 33: 20, 34: 21, 35: 22, 36: 23, 37: 24, 38: 25,
             39: 26, 40: 27, 41: 64, 43: 66}
"""Si3210 indirect address -> Si3215 indirect address, for the registers this model checks."""


class ProtocolViolation(AssertionError):
    """The driver broke an SPI framing or datasheet ordering rule."""


class FakeClock:
    """Simulated time shared by the driver (clock + sleep) and the chip models: tests never wait."""

    def __init__(self, start: float = 100.0) -> None:
        self.t = start
        self.slept = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)
        self.slept += max(seconds, 0.0)


class Si3210Model:
    """One ProSLIC's registers and line (see the module docstring for the rules it enforces)."""

    def __init__(self, clock: FakeClock, si3215: bool = False, revision: int = 5,
                 cal_s: float = 0.2, vbat_rise_s: float = 0.1, vbat: int = 0xC8) -> None:
        self.clock = clock
        self.si3215 = si3215
        self.revision = revision
        self.cal_s = cal_s
        self.vbat_rise_s = vbat_rise_s
        self.vbat = vbat
        self.stuck_calibration = False
        self.violations: list[str] = []
        self.linefeed_log: list[int] = []
        self.offhook = False
        self.spi_mode: int | None = None
        self.speed_hz: int | None = None
        self.reset()

    # -- test controls -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Power-on / RESET pin: every register back to its reset value."""
        self.d = [0] * 128
        self.d[0] = (0 << 4) | self.revision
        self.d[1] = 0x80 if self.si3215 else 0x00
        self.d[8] = 0x02
        self.d[11] = 0x33
        self.d[14] = 0x10
        self.d[67] = 0x1F
        self.d[92] = 0xFF
        self.ir: dict[int, int] = {}
        self._ctrl: int | None = None
        self._pending = False
        self._dr92_written = False
        self._dcdc_on_at: float | None = None
        self._dcdc_cal_until: float | None = None
        self._cal_until: float | None = None
        self._calibrated = False
        self.lf = 0

    def set_offhook(self, offhook: bool) -> None:
        """The simulated phone's hook switch."""
        before = self._loop()
        self.offhook = offhook
        self._latch(before)

    def power_alarm(self, transistor: int) -> None:
        """Transistor Q`transistor` (1..6) overheated: latch its alarm, the chip opens the line."""
        bit = 1 << (transistor + 1)
        if self.d[22] & bit:
            self.d[19] |= bit
        self._set_lf(0)

    def indirect(self, si3210_addr: int) -> int | None:
        """An indirect register by its Si3210 address (translated on an Si3215)."""
        return self.ir.get(self._ir(si3210_addr))

    @property
    def calibrated(self) -> bool:
        return self._calibrated

    def loop_status(self) -> int:
        """What DR68 reads now: bit 0 loop closure, bit 1 ring trip."""
        return self._loop()

    # -- SPI -----------------------------------------------------------------------------------------
    def transfer(self, frame: list[int]) -> list[int]:
        if self.spi_mode != 3:
            self._violate(f"SPI mode {self.spi_mode}: the ProSLIC needs mode 3 (CPOL=1, CPHA=1)")
        if len(frame) != 1:
            self._violate(f"{len(frame)} bytes in one chip-select frame: release CS after every byte")
        byte = frame[0] & 0xFF
        if self._ctrl is None:
            if byte & 0x7F > 108:
                self._violate(f"direct register {byte & 0x7F} does not exist")
            self._ctrl = byte
            return [0xFF]
        ctrl, self._ctrl = self._ctrl, None
        reg = ctrl & 0x7F
        if ctrl & 0x80:
            return [self._read(reg)]
        self._write(reg, byte)
        return [0xFF]

    # -- internals -----------------------------------------------------------------------------------
    def _violate(self, what: str) -> None:
        self.violations.append(what)
        raise ProtocolViolation(what)

    def _ir(self, si3210_addr: int) -> int:
        return SI3215_IR[si3210_addr] if self.si3215 else si3210_addr

    def _vbat_up(self) -> bool:
        """VBAT has reached about -72 V (0xC0 at 376 mV/LSB), wctdm's power-up criterion."""
        return self._vbat_sense() >= 0xC0

    def _vbat_sense(self) -> int:
        if self._dcdc_on_at is None:
            return 0
        elapsed = self.clock.now() - self._dcdc_on_at
        rise = min(1.0, elapsed / self.vbat_rise_s) if self.vbat_rise_s else 1.0
        return int(self.vbat * rise)

    def _loop(self) -> int:
        if not self.offhook or self.lf == 0:
            return 0
        return 0x02 if self.lf == 4 else 0x01

    def _latch(self, before: int) -> None:
        after = self._loop()
        if after & 0x01 != before & 0x01 and self.d[22] & 0x02:
            self.d[19] |= 0x02
        if after & 0x02 and not before & 0x02 and self.d[22] & 0x01:
            self.d[19] |= 0x01

    def _set_lf(self, value: int) -> None:
        before = self._loop()
        self.lf = value
        self.linefeed_log.append(value)
        self._latch(before)

    def _read(self, reg: int) -> int:
        now = self.clock.now()
        if reg == 31:
            busy = self._pending
            self._pending = False
            return 1 if busy else 0
        if reg == 64:
            return (self.lf << 4) | self.lf
        if reg == 68:
            return self._loop()
        if reg == 82:
            return self._vbat_sense()
        if reg == 93:
            busy = self._dcdc_cal_until is not None and now < self._dcdc_cal_until
            return (self.d[93] & 0x7F) | (0x80 if busy else 0)
        if reg == 96:
            if self._cal_until is None:
                return 0
            if self.stuck_calibration or now < self._cal_until:
                return self.d[96]
            self._calibrated = True
            return 0
        return self.d[reg]

    def _write(self, reg: int, value: int) -> None:
        now = self.clock.now()
        if reg in (0,):
            self._violate("direct register 0 is read-only")
        if reg in (28, 29, 30) and self._pending:
            self._violate(f"register {reg} written while an indirect access is pending (poll IAS first)")
        if reg == 30:
            self.ir[value] = self.d[28] | (self.d[29] << 8)
            self._pending = True
        elif reg == 14:
            if not value & 0x10 and self._dcdc_on_at is None:
                missing = [n for n in (32, 33, 34) if self._ir(n) not in self.ir]
                if not self._dr92_written or missing:
                    self._violate("DC-DC converter powered up before the PWM period (DR92) and the "
                                  f"power alarm thresholds (IR {missing}) were set")
                self._dcdc_on_at = now
            elif value & 0x10:
                self._dcdc_on_at = None
                self._set_lf(0)
        elif reg == 19:
            self.d[19] &= ~value & 0xFF
            return
        elif reg == 92:
            self._dr92_written = True
        elif reg == 93 and value & 0x80:
            if not self._vbat_up():
                self._violate("DC-DC calibration started before VBAT came up")
            self._dcdc_cal_until = now + self.cal_s
        elif reg == 96 and value & 0x40:
            if self._dcdc_cal_until is None or now < self._dcdc_cal_until:
                self._violate("calibration started before the DC-DC calibration finished")
            if self.lf != 0:
                self._violate("calibration started with the linefeed not open")
            self._cal_until = now + self.cal_s
        elif reg == 64:
            lf = value & 0x07
            if lf and not (self._vbat_up() and self._calibrated):
                self._violate(f"linefeed {lf} before the DC-DC converter is up and calibration done")
            if lf == 4 and (self._ir(20) not in self.ir or self._ir(21) not in self.ir):
                self._violate("ringing before the ring oscillator (IR 20/21) was programmed")
            self.d[64] = value
            self._set_lf(lf)
            return
        self.d[reg] = value


class FakeSpiDev:
    """`spidev.SpiDev`: open(bus, device) connects to the model registered at /dev/spidevB.D."""

    def __init__(self, module: FakeSpidevModule) -> None:
        self._module = module
        self._chip: Si3210Model | None = None
        self._addr = (-1, -1)
        self.mode = 0
        self.max_speed_hz = 125_000_000

    def open(self, bus: int, device: int) -> None:
        try:
            self._chip = self._module.chips[(bus, device)]
        except KeyError:
            raise FileNotFoundError(2, "No such file or directory") from None
        self._addr = (bus, device)
        self._module.opened.append(self._addr)

    def xfer2(self, data: list[int]) -> list[int]:
        chip = self._chip
        if chip is None:
            raise OSError(9, "Bad file descriptor")
        chip.spi_mode, chip.speed_hz = self.mode, self.max_speed_hz
        return chip.transfer(list(data))

    def close(self) -> None:
        if self._chip is not None:
            self._module.closed.append(self._addr)
        self._chip = None


class FakeSpidevModule(types.ModuleType):
    """The `spidev` module with simulated chips on (bus, chip select)."""

    def __init__(self) -> None:
        super().__init__("spidev")
        self.chips: dict[tuple[int, int], Si3210Model] = {}
        self.opened: list[tuple[int, int]] = []
        self.closed: list[tuple[int, int]] = []

    def SpiDev(self) -> FakeSpiDev:  # named like the real module's class
        return FakeSpiDev(self)


def install(monkeypatch: pytest.MonkeyPatch) -> FakeSpidevModule:
    """Put a fresh fake `spidev` into sys.modules for the test's duration."""
    module = FakeSpidevModule()
    monkeypatch.setitem(sys.modules, "spidev", module)
    return module
