"""Silvertel Ag1171 ringing SLIC (and the KS0835F module sold as compatible) on Raspberry Pi GPIO.

Per port the SLIC has three logic pins we use and one we may use (Silvertel Ag1171 datasheet,
"Pin Description" and §5 "Functional Description"):
- RM (ring mode, input to the SLIC): high switches the DC/DC converter to the 72 V ringing battery.
  §5.3: "RM pin is only set high during ringing and ... set low at all other times."
- F/R (forward/reverse, input): §5.9: high = forward (Ring negative with respect to Tip), low =
  reverse. With RM high, toggling F/R at the ring frequency makes the balanced ring signal (§5.3).
- SHK (switch hook, output): high when the phone is off-hook, also while ringing (ring trip).
- PD (power down, input, optional): logic low powers the SLIC down; left open it runs. It must never
  be driven high (the datasheet's application circuit puts a diode in series so a controller can
  only pull it low). We therefore drive PD only as an open drain: an output driven low to power
  down, an input (high impedance) to release; there is no code path that outputs high on PD.

Ringing runs in one timing thread for all ports: `set_ringer(True)` raises RM and starts F/R
toggling every half period of the ring frequency (20 Hz US, 25 Hz most of Europe); the `Line`'s
cadence engine switches bursts on and off and limits RM duty to `max_ring_duty` (1/3). The thread
also enforces, by itself, what must hold even if the rest of the process stalls:
- ring trip: SHK off-hook for `ring_trip_confirm` (10 ms) during a burst puts F/R back to its normal
  level and drops RM at once, before the hook interpreter's report reaches the `Line`;
- watchdog: no read()/write()/poll() for `watchdog_s` (1 s) drops RM on every port;
- no single burst longer than MAX_BURST_S.

Feed states: the Ag1171 has no standby that still detects off-hook (in power-down SHK is not valid
and needs ~50 ms to settle after release), so `Feed.IDLE` keeps the line fully active, and
`Feed.OPEN` (loop-current disconnect) is power-down through PD, available only where PD is wired.

SHK edges come from `GPIO.add_event_detect(BOTH)` without bouncetime (a software bouncetime would
swallow dial pulses); the shared hook interpreter debounces. The RPi.GPIO API is used so the same
code runs on Pi 1-4 (RPi.GPIO) and Pi 5 (rpi-lgpio, which provides the same module).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from hal.alsa import AlsaAudio
from hal.board import FRAME_S, Board, HardwareError, Int16Array, import_hardware_module
from hal.events import Feed, HookEvent
from hal.hook import HookTiming
from hal.line import Line
from hal.watchdog import Watchdog

MAX_BURST_S = 3.0
"""Longest RM-high burst allowed: the longest ring-on in our country table is 2 s (US/CA)."""
PD_SETTLE_S = 0.05
"""SHK is unreliable for ~50 ms after PD is released (measured by users of the module; not in the
datasheet text we could read), so the hook level is re-read after this long."""
RING_HZ_RANGE = (10.0, 55.0)
"""Ring frequencies in use run from 16 Hz (JP) to 50 Hz (AT, FR)."""
MIN_HALF_CYCLE = 0.95
"""Shortest F/R half-cycle, as a fraction of the nominal one, after the thread woke up late."""
IDLE_WAIT_S = 0.05
"""Longest sleep of the timing thread when nothing is due (how often the watchdog is looked at)."""


@dataclass(frozen=True)
class PortPins:
    """BCM GPIO numbers of one port's SLIC pins; `pd` None when PD is left open (the usual wiring)."""

    rm: int
    fr: int
    shk: int
    pd: int | None = None


DEFAULT_PINS = (PortPins(rm=17, fr=27, shk=22), PortPins(rm=23, fr=24, shk=25))
"""Hookflash reference wiring for two ports (docs/hardware.md): clear of I2S (18-21), I2C (2, 3),
SPI0 (7-11) and the UART (14, 15)."""


@dataclass(frozen=True)
class SlicProfile:
    """What differs between SLIC modules that share the Ag1171 pinout."""

    name: str
    pd_supported: bool
    """Whether we may use PD at all (only where its polarity is documented)."""
    max_ring_duty: float = 1 / 3
    """Ag1171: ring mode at most 33 % of the time (DC/DC converter dissipation while ringing)."""
    shk_offhook_level: int = 1
    fr_forward_level: int = 1
    note: str = ""


AG1171 = SlicProfile(
    "ag1171", pd_supported=True,
    note="Silvertel Ag1171 datasheet: §5.3 Ringing, §5.9 Tip & Ring Polarity Reversal, pin description")
KS0835F = SlicProfile(
    "ks0835f", pd_supported=False,
    note="Sold as Ag1171/Ag1170 compatible with the same pinout; we have not found a datasheet giving "
         "its PD polarity, so PD is never touched on this profile")
PROFILES = {p.name: p for p in (AG1171, KS0835F)}


def import_gpio() -> ModuleType:
    """RPi.GPIO, imported when a GPIO board is built (the `pi` extra installs rpi-lgpio)."""
    try:
        return import_hardware_module("RPi.GPIO", "RPi.GPIO", " (on a Pi 5 this installs rpi-lgpio, "
                                      "which provides the RPi.GPIO API)")
    except RuntimeError as e:  # RPi.GPIO raises this when not running on a Raspberry Pi
        if isinstance(e, HardwareError):
            raise
        raise HardwareError(f"RPi.GPIO cannot run here: {e}") from e


class _PortState:
    """One port's electrical state, owned by the board's pin lock."""

    def __init__(self, pins: PortPins) -> None:
        self.pins = pins
        self.ringing = False
        self.fr_level = 0
        self.reversed = False
        self.next_toggle = 0.0
        self.burst_start = 0.0
        self.offhook = False
        self.shk_since = 0.0
        self.powered_down = False
        self.reread_at: float | None = None


class Ag1171Port:
    """The `LineDriver` of one port: forwards to the board, which owns the pins and the thread."""

    def __init__(self, board: Ag1171Board, index: int) -> None:
        self.board = board
        self.index = index
        self.max_ring_duty = board.profile.max_ring_duty

    def set_ringer(self, on: bool) -> None:
        self.board._set_ringer(self.index, on)

    def set_polarity(self, reversed_: bool) -> None:
        self.board._set_polarity(self.index, reversed_)

    def set_feed(self, feed: Feed) -> None:
        self.board._set_feed(self.index, feed)


class Ag1171Board(Board):
    """Ports of Ag1171 (or KS0835F) SLICs on GPIO, audio through an ALSA codec, one channel per port.

    `ring_hz` is the country's ring frequency (`dsp.tones.country(code).ring_frequency_hz`).
    """

    def __init__(self, audio: AlsaAudio, pins: Sequence[PortPins] = DEFAULT_PINS,
                 profile: SlicProfile = AG1171, ring_hz: float = 20.0,
                 timing: HookTiming | None = None, watchdog_s: float = 1.0) -> None:
        super().__init__()
        if audio.channels != len(pins):
            raise ValueError(f"the audio device has {audio.channels} channels for {len(pins)} ports")
        if not RING_HZ_RANGE[0] <= ring_hz <= RING_HZ_RANGE[1]:
            raise ValueError(f"ring frequency {ring_hz} Hz outside {RING_HZ_RANGE[0]}..{RING_HZ_RANGE[1]} Hz")
        used = [p for port in pins for p in (port.rm, port.fr, port.shk, port.pd) if p is not None]
        if len(used) != len(set(used)):
            raise ValueError(f"GPIO pins used twice: {sorted(used)}")
        if not profile.pd_supported and any(p.pd is not None for p in pins):
            raise ValueError(f"profile {profile.name} does not support PD: {profile.note}")
        self.audio = audio
        self.profile = profile
        self.ring_hz = ring_hz
        self.timing = timing or HookTiming()
        self._half_period = 1 / (2 * ring_hz)
        self._gpio = import_gpio()
        self._pin_lock = threading.RLock()
        self._ports = [_PortState(p) for p in pins]
        self._closed = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        now = self.now()
        self._watchdog = Watchdog(watchdog_s, now)
        self._setup_pins(now)
        self.lines = [Line(i, Ag1171Port(self, i), self.timing, now=now) for i in range(len(pins))]
        self._thread = threading.Thread(target=self._run, name="ag1171-ring", daemon=True)
        atexit.register(self.close)  # an uncaught exception or sys.exit leaves the line safe too
        self._thread.start()

    # -- Board ------------------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic()

    def read(self) -> tuple[float, Int16Array]:
        frames = self.audio.read()
        now = self.now()
        self._watchdog.kick(now)
        return now - FRAME_S, frames

    def write(self, frames: Int16Array) -> None:
        self._watchdog.kick(self.now())
        self.audio.write(frames)

    def poll(self, now: float | None = None) -> list[HookEvent]:
        self._watchdog.kick(self.now())
        return super().poll(now)

    def close(self) -> None:
        """Stop ringing, stop the timing thread, leave every pin safe, release the GPIOs and audio."""
        if self._closed:
            return
        self._closed = True
        try:
            super().close()
        finally:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=1.0)
            self._safe_pins()
            atexit.unregister(self.close)
            self.audio.close()

    # -- pins -------------------------------------------------------------------------------------
    def _setup_pins(self, now: float) -> None:
        g = self._gpio
        g.setwarnings(False)
        g.setmode(g.BCM)
        try:
            for i, port in enumerate(self._ports):
                p = port.pins
                g.setup(p.rm, g.OUT, initial=g.LOW)
                port.fr_level = self.profile.fr_forward_level
                g.setup(p.fr, g.OUT, initial=port.fr_level)
                if p.pd is not None:
                    g.setup(p.pd, g.IN, pull_up_down=g.PUD_OFF)  # released: the SLIC runs
                pull = g.PUD_DOWN if self.profile.shk_offhook_level else g.PUD_UP
                g.setup(p.shk, g.IN, pull_up_down=pull)  # a missing module reads on-hook
                port.offhook = g.input(p.shk) == self.profile.shk_offhook_level
                port.shk_since = now
                if port.offhook:
                    self.report_hook(i, True, now)
                g.add_event_detect(p.shk, g.BOTH, callback=self._on_shk)
        except Exception:
            self._safe_pins()
            raise

    def _safe_pins(self) -> None:
        """RM low first (no ring voltage), then F/R low and PD released, then give the pins back."""
        g = self._gpio
        with self._pin_lock:
            for port in self._ports:
                port.ringing = False
                p = port.pins
                for pin in (p.rm, p.fr):
                    with contextlib.suppress(RuntimeError):  # never set up, or already cleaned up
                        g.output(pin, g.LOW)
                if p.pd is not None and port.powered_down:
                    with contextlib.suppress(RuntimeError):
                        g.setup(p.pd, g.IN, pull_up_down=g.PUD_OFF)
                with contextlib.suppress(RuntimeError):
                    g.remove_event_detect(p.shk)
            channels = [c for port in self._ports for c in (port.pins.rm, port.pins.fr, port.pins.shk,
                                                          port.pins.pd) if c is not None]
            g.cleanup(channels)

    def _on_shk(self, channel: int) -> None:
        """GPIO edge callback (RPi.GPIO's thread): report the raw level, wake the ring thread."""
        now = self.now()
        with self._pin_lock:
            if self._closed:
                return
            for i, port in enumerate(self._ports):
                if port.pins.shk != channel:
                    continue
                offhook = self._gpio.input(channel) == self.profile.shk_offhook_level
                if offhook == port.offhook:
                    return
                port.offhook, port.shk_since = offhook, now
                if not port.powered_down:  # SHK is meaningless while powered down
                    self.report_hook(i, offhook, now)
        self._wake.set()

    # -- LineDriver primitives (called from the Line under Board._lock) ---------------------------
    def _set_ringer(self, index: int, on: bool) -> None:
        with self._pin_lock:
            port = self._ports[index]
            now = self.now()
            if on and not port.ringing:
                if port.offhook or port.powered_down or self._closed:
                    return  # never ring an off-hook line; the Line learns of the off-hook from poll()
                self._gpio.output(port.pins.rm, self._gpio.HIGH)
                port.ringing, port.burst_start = True, now
                port.next_toggle = now + self._half_period
            elif not on and port.ringing:
                self._stop_ringing(port)
        self._wake.set()

    def _set_polarity(self, index: int, reversed_: bool) -> None:
        with self._pin_lock:
            port = self._ports[index]
            port.reversed = reversed_
            if not port.ringing:
                self._set_fr(port, self._normal_fr(port))

    def _set_feed(self, index: int, feed: Feed) -> None:
        with self._pin_lock:
            port = self._ports[index]
            pd = port.pins.pd
            if feed is Feed.OPEN:
                if pd is None:
                    how = "set PortPins.pd" if self.profile.pd_supported else "PD unsupported"
                    raise HardwareError(f"port {index}: loop-current disconnect needs the SLIC's PD pin "
                                        f"wired to a GPIO ({self.profile.name}: {how})")
                if not port.powered_down:
                    if port.ringing:
                        self._stop_ringing(port)
                    self._gpio.setup(pd, self._gpio.OUT, initial=self._gpio.LOW)
                    port.powered_down = True
            elif port.powered_down and pd is not None:  # ACTIVE, and IDLE (no such state: stay active)
                self._gpio.setup(pd, self._gpio.IN, pull_up_down=self._gpio.PUD_OFF)
                port.powered_down = False
                port.reread_at = self.now() + PD_SETTLE_S
        self._wake.set()

    def _normal_fr(self, port: _PortState) -> int:
        forward = self.profile.fr_forward_level
        return 1 - forward if port.reversed else forward

    def _set_fr(self, port: _PortState, level: int) -> None:
        if level != port.fr_level:
            self._gpio.output(port.pins.fr, level)
            port.fr_level = level

    def _stop_ringing(self, port: _PortState) -> None:
        """F/R to its normal level, then RM low (the order the Ag1171 application notes give)."""
        self._set_fr(port, self._normal_fr(port))
        self._gpio.output(port.pins.rm, self._gpio.LOW)
        port.ringing = False

    # -- the timing thread ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                with self._pin_lock:
                    deadline = self._service(self.now())
                self._wake.wait(max(0.0, min(deadline - self.now(), IDLE_WAIT_S)))
        finally:
            with self._pin_lock:
                for port in self._ports:
                    if port.ringing:
                        self._stop_ringing(port)

    def _service(self, now: float) -> float:
        """Toggle F/R, apply ring trip, watchdog and burst limit; return when to look again."""
        due = now + IDLE_WAIT_S
        stalled = self._watchdog.expired(now)
        for i, port in enumerate(self._ports):
            if port.reread_at is not None and now >= port.reread_at:
                port.reread_at = None
                port.offhook = self._gpio.input(port.pins.shk) == self.profile.shk_offhook_level
                port.shk_since = now
                self.report_hook(i, port.offhook, now)
            elif port.reread_at is not None:
                due = min(due, port.reread_at)
            if not port.ringing:
                continue
            trip_at = port.shk_since + self.timing.ring_trip_confirm
            if (port.offhook and now >= trip_at) or stalled or now - port.burst_start > MAX_BURST_S:
                self._stop_ringing(port)
                continue
            if port.offhook:
                due = min(due, trip_at)
            if now >= port.next_toggle:
                self._set_fr(port, 1 - port.fr_level)
                # keep the schedule, but a late toggle must not be followed by a runt half-cycle
                port.next_toggle = max(port.next_toggle + self._half_period,
                                       now + MIN_HALF_CYCLE * self._half_period)
            due = min(due, port.next_toggle, port.burst_start + MAX_BURST_S)
        return due
