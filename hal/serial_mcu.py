"""The `serial` backend: a microcontroller next to the SLIC, spoken to over a UART with pyserial.

The MCU makes the ring waveform, debounces the hook switch and enforces ring safety by itself
(never ring an off-hook line, end any burst after its maximum length, go safe when the host falls
silent), so a crashed host cannot leave a bell ringing. The host keeps the cadence: the Line's
ring engine toggles `set_ringer()` per segment (it owns the caller-ID slots and the ring timeout)
and the driver forwards each edge, the on-edge as a one-burst RING capped at the MCU's maximum
burst. Edges reach the MCU within a millisecond or two at 115200 baud, well inside cadence
tolerances (±10 %).

One reader thread owns the port: it feeds bytes to the sans-IO `McuConnection`, runs its timer,
and hands hook levels to `Board.report_hook()` with MCU timestamps mapped to `now()`. It keeps the
link alive even when the app stalls, so it also watches the app (`hal.watchdog`, kicked by
`read`/`write`/`poll`) and stops a ringer the stalled app can no longer end. When the
port vanishes or the link goes down it reopens the device with backoff and handshakes again,
replaying every line's polarity, feed and ringer; ringing lines stop meanwhile (at the next
`poll()`), and the MCU goes safe by itself once it has not heard from the host for 3 s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from hal.board import FRAME, FRAME_S, Board, HardwareError, Int16Array, import_hardware_module
from hal.events import Feed, HookEvent
from hal.hook import HookTiming
from hal.line import Line
from hal.mcu_protocol import (
    LINK_TIMEOUT_S,
    Alarm,
    Event,
    HookChange,
    LinkDown,
    LinkStats,
    LinkUp,
    McuConnection,
    Rejected,
    RingTrip,
    State,
)
from hal.watchdog import Watchdog

if TYPE_CHECKING:
    import serial

log = logging.getLogger(__name__)

MCU_HOOK_TIMING = HookTiming(debounce=0.0)
"""The MCU reports levels it has already debounced; the host only classifies them."""
READ_TIMEOUT_S = 0.01
"""How long the reader blocks for a byte: the resolution of the protocol's timers."""
BACKOFF_S = (0.1, 2.0)
"""Reconnect delay: first try, and the cap it doubles up to."""
CLOSE_FLUSH_S = 0.5
"""On close, how long to wait for the MCU to acknowledge the safe-state commands."""


class Audio(Protocol):
    """The board's audio device (hal.alsa.AlsaAudio in production), one channel per port."""

    def read(self) -> Int16Array: ...

    def write(self, frames: Int16Array) -> None: ...

    def close(self) -> None: ...


def _import_serial() -> ModuleType:
    serial = import_hardware_module("serial", "pyserial")
    import_hardware_module("serial.tools.list_ports", "pyserial")
    return serial


class _McuLineDriver:
    """One port's LineDriver: remembers what it was told, so a reconnect can replay it."""

    def __init__(self, board: SerialMcuBoard, port: int) -> None:
        self.board = board
        self.port = port
        self.max_ring_duty = 1.0
        self.ringer = False
        self.reversed = False
        self.feed = Feed.ACTIVE

    def set_ringer(self, on: bool) -> None:
        self.ringer = on
        self.board._send(self._send_ringer)

    def set_polarity(self, reversed_: bool) -> None:
        self.reversed = reversed_
        self.board._send(lambda conn, now: conn.set_polarity(self.port, reversed_, now))

    def set_feed(self, feed: Feed) -> None:
        self.feed = feed
        self.board._send(lambda conn, now: conn.set_feed(self.port, feed, now))

    def replay(self, conn: McuConnection, now: float) -> None:
        conn.set_feed(self.port, self.feed, now)
        conn.set_polarity(self.port, self.reversed, now)
        self._send_ringer(conn, now)

    def _send_ringer(self, conn: McuConnection, now: float) -> None:
        if self.ringer and conn.info is not None:
            burst_ms = min(65535, round(conn.info.max_burst_s * 1000))
            conn.ring(self.port, self.board.ring_hz, ((burst_ms, 0),), now, repeat=False)
        else:
            conn.stop_ring(self.port, now)


class SerialMcuBoard(Board):
    """Ports behind an MCU on `device` (docs/serial-protocol.md); audio through `audio`.

    Raises HardwareError when pyserial is missing, the device cannot be opened, the MCU does not
    answer, speaks an incompatible protocol version or has fewer than `ports` ports.
    """

    def __init__(self, device: str, ports: int, audio: Audio, *, baudrate: int = 115200,
                 ring_hz: float = 20.0, timing: HookTiming | None = None,
                 link_timeout_s: float = LINK_TIMEOUT_S, watchdog_s: float = 1.0) -> None:
        super().__init__()
        self.device = device
        self.baudrate = baudrate
        self.ring_hz = ring_hz
        self._audio = audio
        self._link_timeout_s = link_timeout_s
        self._serial = _import_serial()
        self._io = threading.Lock()
        self._stop = threading.Event()
        self._went_down = threading.Event()
        self._closed = False
        self._watchdog = Watchdog(watchdog_s, self.now())
        ser = self._open()
        conn = self._new_connection()
        up = self._handshake(ser, conn)
        if up.info.ports < ports:
            ser.close()
            raise HardwareError(f"the MCU on {device} has {up.info.ports} ports, "
                                f"the configuration wants {ports}")
        self.info = up.info
        self._ser: serial.Serial | None = ser
        self._conn = conn
        self._drivers = [_McuLineDriver(self, p) for p in range(ports)]
        for driver in self._drivers:
            driver.max_ring_duty = up.info.max_ring_duty
        now = self.now()
        self.lines = [Line(p, d, timing or MCU_HOOK_TIMING, now) for p, d in enumerate(self._drivers)]
        for line in self.lines:  # directly, not queued: a queued sample older than a ring() glitches it
            line.hook_sample(up.hook[line.port], now)
        self._thread = threading.Thread(target=self._run, name=f"mcu-{device}", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> LinkStats:
        """Frame and error counters of the current connection (for diagnostics)."""
        return self._conn.stats

    @property
    def link_up(self) -> bool:
        with self._io:
            return self._ser is not None and self._conn.state is State.UP

    # -- Board ------------------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic()

    def read(self) -> tuple[float, Int16Array]:
        frames = self._audio.read()
        self._watchdog.kick(self.now())
        if frames.shape != (self.ports, FRAME):
            raise HardwareError(f"audio device gave {frames.shape} frames, the board needs "
                                f"({self.ports}, {FRAME}): one channel per port")
        return self.now() - FRAME_S, frames

    def write(self, frames: Int16Array) -> None:
        self._watchdog.kick(self.now())
        self._audio.write(frames)

    def poll(self, now: float | None = None) -> list[HookEvent]:
        self._watchdog.kick(self.now())
        if self._went_down.is_set():
            self._went_down.clear()
            with self._lock:
                for line in self.lines:
                    line.stop_ring(self.now())  # the MCU went safe on its own; keep the Line in step
        return super().poll(now)

    def close(self) -> None:
        """Stop ringing, normal polarity, wait for the MCU to acknowledge, then release the port."""
        if self._closed:
            return
        self._closed = True
        super().close()
        deadline = time.monotonic() + CLOSE_FLUSH_S
        while time.monotonic() < deadline and self.link_up and not self._conn.idle:
            time.sleep(READ_TIMEOUT_S)
        self._stop.set()
        self._thread.join()
        with self._io:
            if self._ser is not None:
                self._ser.close()
                self._ser = None
        self._audio.close()

    # -- I/O --------------------------------------------------------------------------------------
    def _new_connection(self) -> McuConnection:
        return McuConnection(self.now(), link_timeout_s=self._link_timeout_s)

    def _open(self) -> serial.Serial:
        try:
            return self._serial.Serial(self.device, self.baudrate, timeout=READ_TIMEOUT_S)  # type: ignore[no-any-return]
        except (self._serial.SerialException, OSError) as e:
            if not os.path.exists(self.device):
                ports = [p.device for p in self._serial.tools.list_ports.comports()]
                raise HardwareError(f"serial device {self.device} not found; available: "
                                    f"{', '.join(ports) or 'none'}") from None
            raise HardwareError(f"cannot open serial device {self.device}: {e}") from None

    def _handshake(self, ser: serial.Serial, conn: McuConnection) -> LinkUp:
        """Run the link until HELLO is answered; HardwareError if it is refused or unanswered."""
        try:
            while True:
                for event in self._step(ser, conn):
                    if isinstance(event, LinkUp):
                        return event
                    if isinstance(event, LinkDown):
                        raise HardwareError(f"MCU on {self.device}: {event.reason}")
        except (self._serial.SerialException, OSError) as e:
            ser.close()
            raise HardwareError(f"serial device {self.device} failed: {e}") from None
        except HardwareError:
            ser.close()
            raise

    def _step(self, ser: serial.Serial, conn: McuConnection) -> list[Event]:
        """Read what arrived (or wait one READ_TIMEOUT_S), run the timer, send, return events."""
        data = ser.read(1)
        if data and ser.in_waiting:
            data += ser.read(ser.in_waiting)
        now = self.now()
        with self._io:
            if data:
                conn.receive(data, now)
            timer = conn.get_timer()
            if timer is not None and now >= timer:
                conn.handle_timer(now)
            events = []
            while (event := conn.next_event()) is not None:
                events.append(event)
            out = conn.data_to_send()
            if out:
                ser.write(out)
        return events

    def _send(self, command: Callable[[McuConnection, float], None]) -> None:
        """Give a command to the link (from the app's thread); dropped while the link is down."""
        with self._io:
            if self._ser is None or self._conn.state is State.DOWN:
                return
            command(self._conn, self.now())
            out = self._conn.data_to_send()
            # on failure the reader thread sees the port fail too and reconnects
            with contextlib.suppress(self._serial.SerialException, OSError):
                self._ser.write(out)

    def _run(self) -> None:
        backoff = BACKOFF_S[0]
        while not self._stop.is_set():
            ser = self._ser
            if ser is None:
                try:
                    ser = self._open()
                except HardwareError as e:
                    log.debug("reconnect: %s", e)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_S[1])
                    continue
                with self._io, contextlib.suppress(self._serial.SerialException, OSError):
                    self._ser, self._conn = ser, self._new_connection()
                    ser.write(self._conn.data_to_send())  # if this fails, so will the next read
            try:
                self._check_watchdog(ser)
                events = self._step(ser, self._conn)
            except (self._serial.SerialException, OSError) as e:
                events = [LinkDown(f"serial device {self.device} failed: {e}")]
            for event in events:
                if isinstance(event, LinkDown):
                    self._link_down(ser, event)
                    self._stop.wait(BACKOFF_S[1] if event.fatal else backoff)
                    backoff = min(backoff * 2, BACKOFF_S[1])
                    break
                if isinstance(event, LinkUp):
                    backoff = BACKOFF_S[0]
                self._dispatch(event)

    def _check_watchdog(self, ser: serial.Serial) -> None:
        """The app stalled with a ringer on: stop it (the Line re-syncs at its next cadence edge)."""
        now = self.now()
        if not self._watchdog.expired(now):
            return
        with self._io:
            for driver in self._drivers:
                if driver.ringer:
                    log.warning("app stalled: stopping the ringer of port %d", driver.port)
                    driver.ringer = False
                    self._conn.stop_ring(driver.port, now)
            out = self._conn.data_to_send()
            if out:
                ser.write(out)

    def _link_down(self, ser: serial.Serial, event: LinkDown) -> None:
        (log.error if event.fatal else log.warning)("MCU link on %s down: %s", self.device, event.reason)
        self._went_down.set()
        with self._io:
            self._ser = None
        try:
            ser.close()
        except (self._serial.SerialException, OSError) as e:
            log.debug("closing %s: %s", self.device, e)

    def _dispatch(self, event: Event) -> None:
        """Act on everything but LinkDown (which `_run` handles: it ends the connection)."""
        if isinstance(event, LinkUp):
            log.info("MCU on %s up: firmware %s, protocol %d.%d", self.device, event.info.firmware,
                     *event.info.protocol)
            now = self.now()
            self.info = event.info
            with self._io:
                for driver in self._drivers:
                    driver.max_ring_duty = event.info.max_ring_duty
                    driver.replay(self._conn, now)
                # on failure the next read fails too and reconnects
                with contextlib.suppress(self._serial.SerialException, OSError):
                    if self._ser is not None:
                        self._ser.write(self._conn.data_to_send())
            for port, offhook in enumerate(event.hook[:self.ports]):
                self.report_hook(port, offhook, now)
        elif isinstance(event, HookChange):
            self.report_hook(event.port, event.offhook, event.time)
        elif isinstance(event, Alarm):
            where = "board" if event.port is None else f"port {event.port}"
            log.warning("MCU on %s: alarm %s on %s", self.device, event.code, where)
        elif isinstance(event, RingTrip):
            log.debug("MCU on %s: ring trip on port %d", self.device, event.port)
        elif isinstance(event, Rejected):
            log.info("MCU on %s refused %s %s: %s", self.device, event.cmd, ",".join(event.args),
                     event.reason)
