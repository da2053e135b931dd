"""A fake RPi.GPIO module with a simulated Ag1171 SLIC and telephone on each port's pins.

The API behaves like RPi.GPIO 0.7 (and rpi-lgpio, which copies it): numbering mode first
(`setmode`), `setup` before use, RuntimeError for output on an input or input on an unset pin,
ValueError for parameters that do not fit the direction, one edge detection per channel, callbacks
called with the channel number, `cleanup()` returning every used channel to an input. Callbacks
run synchronously in the thread that moves the simulated hook switch (real RPi.GPIO calls them
from its own thread; the driver must be thread-safe either way, and tests stay deterministic).

Every output change is stamped with `time.monotonic_ns()`. A `SlicModel` attached to a port's pins
drives SHK from its phone's hook state and records violations of the Ag1171's rules (datasheet
§5.3 Ringing, pin description of PD): RM high on an off-hook phone beyond the ring-trip limit, PD
driven high, F/R toggled faster than any ring frequency while RM is high (except the return to its
rest level right before RM drops, which is how ringing ends), RM high far beyond any ring burst.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pytest

BCM, BOARD = 11, 10
OUT, IN = 0, 1
LOW, HIGH = 0, 1
PUD_OFF, PUD_DOWN, PUD_UP = 20, 21, 22
RISING, FALLING, BOTH = 31, 32, 33

RING_TRIP_LIMIT_S = 0.5
"""RM must be low within 500 ms of the phone going off-hook during ringing (Ag1171 application notes,
as summarised by the Ma Bell gateway docs); tests assert much tighter figures themselves."""
MAX_RING_HZ = 60.0
"""Fastest plausible ring frequency (50 Hz in AT/FR, plus jitter margin)."""
MAX_BURST_S = 3.5
"""Longest ring burst any cadence needs (US 2 s) with margin: RM high longer is a stuck ringer."""


@dataclass
class Transition:
    t_ns: int
    pin: int
    level: int | None
    """None: released (the pin became an input)."""


@dataclass
class _Pin:
    direction: int
    level: int = LOW
    pull: int = PUD_OFF
    edge: int | None = None
    callback: Callable[[int], None] | None = None
    bouncetime: int = 0
    last_callback_ns: int = 0


@dataclass
class SlicModel:
    """One Ag1171: its control pins, its phone, and the rules it checks."""

    gpio: FakeGPIO
    rm: int
    fr: int
    shk: int
    pd: int | None = None
    offhook: bool = False
    offhook_since_ns: int | None = None
    rm_high_since_ns: int | None = None
    last_fr_toggle_ns: int | None = None
    offhook_times: list[float] = field(default_factory=list)
    fast_toggle: tuple[int, str] | None = None

    @property
    def ringing(self) -> bool:
        """Ring mode on and F/R toggled within the last 100 ms (slowest ring half-period is 31 ms)."""
        last = self.last_fr_toggle_ns
        return (self.rm_high_since_ns is not None and last is not None
                and time.monotonic_ns() - last < 100_000_000)

    def lift(self) -> None:
        self._hook(True)

    def hang_up(self) -> None:
        self._hook(False)

    def _hook(self, offhook: bool) -> None:
        now = time.monotonic_ns()
        with self.gpio.lock:
            self._check_overlap(now)
            self.offhook = offhook
            self.offhook_since_ns = now if offhook else None
            if offhook:
                self.offhook_times.append(now / 1e9)
        self.gpio.drive_input(self.shk, HIGH if offhook else LOW)

    def edges(self, pin: int) -> list[tuple[float, int | None]]:
        """(time s, level) of every output change of `pin`."""
        return [(t.t_ns / 1e9, t.level) for t in self.gpio.transitions if t.pin == pin]

    def check(self) -> None:
        """Close open intervals (RM still high with the phone off-hook) at the current time."""
        with self.gpio.lock:
            self._check_overlap(time.monotonic_ns())
            self._flush_fast_toggle()

    # -- rules, called with gpio.lock held ---------------------------------------------------------
    def _output(self, pin: int, level: int | None, now: int) -> None:
        if pin == self.pd and level == HIGH:
            self.gpio.violations.append(f"PD (GPIO{pin}) driven high: the Ag1171 PD pin must never be high")
        if pin == self.rm:
            self._check_overlap(now)
            if level != HIGH and self.fast_toggle is not None and now - self.fast_toggle[0] < 2_000_000:
                self.fast_toggle = None  # F/R restored to its rest level as ringing ends: allowed
            self._flush_fast_toggle()
            if level == HIGH and self.rm_high_since_ns is None:
                self.rm_high_since_ns = now
            elif level != HIGH and self.rm_high_since_ns is not None:
                burst = (now - self.rm_high_since_ns) / 1e9
                if burst > MAX_BURST_S:
                    self.gpio.violations.append(f"RM high for {burst:.2f} s in one burst")
                self.rm_high_since_ns = None
                self.last_fr_toggle_ns = None
        if pin == self.fr and self.rm_high_since_ns is not None and level is not None:
            self._flush_fast_toggle()
            last = self.last_fr_toggle_ns
            if last is not None and (now - last) / 1e9 < 1 / (2 * MAX_RING_HZ):
                self.fast_toggle = (now, f"F/R toggled after {(now - last) / 1e6:.1f} ms while ringing")
            self.last_fr_toggle_ns = now

    def _flush_fast_toggle(self) -> None:
        """A too-fast F/R change is a violation unless RM falls right after it (end of ringing)."""
        if self.fast_toggle is not None:
            self.gpio.violations.append(self.fast_toggle[1])
            self.fast_toggle = None

    def _check_overlap(self, now: int) -> None:
        if self.rm_high_since_ns is None or self.offhook_since_ns is None:
            return
        overlap = (now - max(self.rm_high_since_ns, self.offhook_since_ns)) / 1e9
        if overlap > RING_TRIP_LIMIT_S:
            self.gpio.violations.append(f"RM high for {overlap:.3f} s with the phone off-hook")
            self.offhook_since_ns = now  # report each overlap once


class FakeGPIO(types.ModuleType):
    """The `RPi.GPIO` module (see the module docstring)."""

    BCM, BOARD, OUT, IN, LOW, HIGH = BCM, BOARD, OUT, IN, LOW, HIGH
    PUD_OFF, PUD_DOWN, PUD_UP = PUD_OFF, PUD_DOWN, PUD_UP
    RISING, FALLING, BOTH = RISING, FALLING, BOTH

    def __init__(self) -> None:
        super().__init__("RPi.GPIO")
        self.lock = threading.RLock()
        self.mode: int | None = None
        self.warnings = True
        self.pins: dict[int, _Pin] = {}
        self.external: dict[int, int] = {}
        """Levels driven onto pins from outside (the SLIC's SHK output)."""
        self.transitions: list[Transition] = []
        self.violations: list[str] = []
        self.slics: list[SlicModel] = []
        self.cleaned_up: list[int] = []

    def attach_slic(self, rm: int, fr: int, shk: int, pd: int | None = None) -> SlicModel:
        slic = SlicModel(self, rm, fr, shk, pd)
        self.slics.append(slic)
        self.external[shk] = LOW
        return slic

    # -- the RPi.GPIO API ------------------------------------------------------------------------
    def setwarnings(self, flag: bool) -> None:
        self.warnings = flag

    def setmode(self, mode: int) -> None:
        if mode not in (BCM, BOARD):
            raise ValueError("An invalid mode was passed to setmode()")
        if self.mode is not None and mode != self.mode:
            raise ValueError("A different mode has already been set!")
        self.mode = mode

    def getmode(self) -> int | None:
        return self.mode

    def _channel(self, channel: int) -> int:
        if self.mode is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or "
                               "GPIO.setmode(GPIO.BCM)")
        if not isinstance(channel, int) or not 0 <= channel <= 27:
            raise ValueError("The channel sent is invalid on a Raspberry Pi")
        return channel

    def setup(self, channel: int, direction: int, pull_up_down: int = PUD_OFF, initial: int = -1) -> None:
        ch = self._channel(channel)
        if direction == OUT and pull_up_down != PUD_OFF:
            raise ValueError("pull_up_down parameter is not valid for outputs")
        if direction == IN and initial != -1:
            raise ValueError("initial parameter is not valid for inputs")
        if direction not in (IN, OUT):
            raise ValueError("An invalid direction was passed to setup()")
        with self.lock:
            old = self.pins.get(ch)
            if old is not None and old.edge is not None:
                raise RuntimeError("Cannot change direction of a channel with edge detection enabled")
            if direction == OUT:
                level = initial if initial != -1 else (old.level if old else LOW)
                self.pins[ch] = _Pin(OUT, level)
                self._record(ch, level)
            else:
                self.pins[ch] = _Pin(IN, pull=pull_up_down)
                if old is not None and old.direction == OUT:
                    self._record(ch, None)

    def output(self, channel: int, value: int | bool) -> None:
        ch = self._channel(channel)
        with self.lock:
            pin = self.pins.get(ch)
            if pin is None or pin.direction != OUT:
                raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
            level = HIGH if value else LOW
            if level != pin.level:
                pin.level = level
                self._record(ch, level)

    def input(self, channel: int) -> int:
        ch = self._channel(channel)
        with self.lock:
            pin = self.pins.get(ch)
            if pin is None:
                raise RuntimeError("You must setup() the GPIO channel first")
            if pin.direction == OUT:
                return pin.level
            if ch in self.external:
                return self.external[ch]
            return HIGH if pin.pull == PUD_UP else LOW

    def add_event_detect(self, channel: int, edge: int, callback: Callable[[int], None] | None = None,
                         bouncetime: int | None = None) -> None:
        ch = self._channel(channel)
        if edge not in (RISING, FALLING, BOTH):
            raise ValueError("The edge must be set to RISING, FALLING or BOTH")
        with self.lock:
            pin = self.pins.get(ch)
            if pin is None or pin.direction != IN:
                raise RuntimeError("You must setup() the GPIO channel as an input first")
            if pin.edge is not None:
                raise RuntimeError("Conflicting edge detection already enabled for this GPIO channel")
            pin.edge, pin.callback, pin.bouncetime = edge, callback, bouncetime or 0

    def remove_event_detect(self, channel: int) -> None:
        ch = self._channel(channel)
        with self.lock:
            pin = self.pins.get(ch)
            if pin is not None:
                pin.edge = pin.callback = None

    def cleanup(self, channel: int | Iterable[int] | None = None) -> None:
        with self.lock:
            channels = list(self.pins) if channel is None else (
                [channel] if isinstance(channel, int) else list(channel))
            for ch in channels:
                pin = self.pins.pop(ch, None)
                if pin is not None and pin.direction == OUT:
                    self._record(ch, None)
                self.cleaned_up.append(ch)
            if not self.pins:
                self.mode = None

    # -- the outside world -----------------------------------------------------------------------
    def drive_input(self, channel: int, level: int) -> None:
        """Something outside the Pi drives `channel` to `level`; fires its edge callback."""
        with self.lock:
            old = self.external.get(channel, LOW)
            self.external[channel] = level
            pin = self.pins.get(channel)
            if pin is None or pin.direction != IN or pin.callback is None or old == level:
                return
            wanted = pin.edge == BOTH or (pin.edge == RISING) == (level == HIGH)
            now = time.monotonic_ns()
            if not wanted or (now - pin.last_callback_ns) / 1e6 < pin.bouncetime:
                return
            pin.last_callback_ns = now
            callback = pin.callback
        callback(channel)

    def _record(self, pin: int, level: int | None) -> None:
        now = time.monotonic_ns()
        self.transitions.append(Transition(now, pin, level))
        for slic in self.slics:
            slic._output(pin, level, now)


def install(monkeypatch: pytest.MonkeyPatch) -> FakeGPIO:
    """Make `import RPi.GPIO as GPIO` return a fresh fake for the duration of a test."""
    fake = FakeGPIO()
    package = types.ModuleType("RPi")
    package.GPIO = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", fake)
    return fake
