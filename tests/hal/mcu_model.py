"""A Python model of the MCU bridge firmware, on the master end of a real pseudo-terminal.

It does what docs/serial-protocol.md asks of the firmware: BOOT and heartbeats, the HELLO answer,
commands acknowledged and deduplicated by sequence number, ring cadences timed here (burst cap,
refusal and ring trip when off-hook, failsafe when the host falls silent), a debounced hook switch
stamped with a wrapping microsecond counter that starts near its wrap, reliable events with
retransmission. Tests move the phone's hook switch through it, read what the line is doing, and
can make it inject noise or fall silent.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass

from hal.mcu_protocol import TIMESTAMP_MOD, Frame, FrameDecoder, encode_frame

HEARTBEAT_S = 0.5
FAILSAFE_S = 3.0
RETRANSMIT_S = 0.1
MAX_TRIES = 4


@dataclass
class PortModel:
    raw: bool = False
    raw_since: float = 0.0
    stable: bool = False
    ring: tuple[float, tuple[tuple[int, int], ...], bool] | None = None
    """(start, segments, repeat) of the cadence being rung."""
    ringer: bool = False
    reversed: bool = False
    feed: str = "A"


class McuModel:
    """The firmware model; `path` is the slave tty a SerialMcuBoard opens."""

    def __init__(self, ports: int = 2, *, protocol: str = "1.0", firmware: str = "model-1.0",
                 max_duty_pct: int = 100, max_burst_ms: int = 3000, debounce_s: float = 0.005,
                 start_us: int = TIMESTAMP_MOD - 200_000, corrupt_every: int = 0) -> None:
        self.protocol, self.firmware = protocol, firmware
        self.max_duty_pct, self.max_burst_ms, self.debounce_s = max_duty_pct, max_burst_ms, debounce_s
        self.start_us = start_us
        self.corrupt_every = corrupt_every
        """Corrupt every n-th frame sent (bit flip, truncation, garbage), with noise between frames."""
        self.silent = False
        """Hung firmware: read nothing, send nothing."""
        self.ports = [PortModel() for _ in range(ports)]
        self.ring_log: list[tuple[int, float, float]] = []
        self._ring_since = [0.0] * ports
        """(port, on, off) of every finished burst, in the model's seconds."""
        self.commands: list[Frame] = []
        self.hellos = 0
        self.lock = threading.Lock()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo of what we write before the host opens the tty
        self.path = os.ttyname(self._slave)
        self._t0 = time.monotonic()
        self._decoder = FrameDecoder()
        self._session = False
        self._tx_seq = 0
        self._last_cmd: tuple[int, bytes] | None = None
        self._events: deque[tuple[str, tuple[str, ...]]] = deque()
        self._inflight: tuple[bytes, int, float, int] | None = None
        self._last_host = 0.0
        self._next_hb = 0.0
        self._sent = 0
        self._schedule: list[tuple[float, int, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mcu-model", daemon=True)
        self._send(Frame(0, "BOOT", (protocol, firmware)))
        self._thread.start()

    # -- what tests do -----------------------------------------------------------------------------
    def now(self) -> float:
        """Model seconds since start."""
        return time.monotonic() - self._t0

    def set_hook(self, port: int, offhook: bool, at: float | None = None) -> None:
        with self.lock:
            self._schedule.append((self.now() if at is None else at, port, offhook))

    def dial(self, port: int, digit: int, break_s: float = 0.060, make_s: float = 0.040) -> None:
        """A rotary digit: `digit` breaks (10 for 0) at 10 pulses/s, starting now."""
        t = self.now()
        for _ in range(digit or 10):
            self.set_hook(port, False, t)
            self.set_hook(port, True, t + break_s)
            t += break_s + make_s

    def close(self) -> None:
        """The device disappears (USB unplugged): the thread stops and both fds close."""
        self._stop.set()
        self._thread.join()
        os.close(self._master)
        os.close(self._slave)

    # -- the firmware -----------------------------------------------------------------------------
    def _us(self, t: float) -> str:
        return f"{(self.start_us + round(t * 1e6)) % TIMESTAMP_MOD:08X}"

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._master], [], [], 0.001)
            data = os.read(self._master, 4096) if readable else b""
            with self.lock:
                if self.silent:
                    continue
                now = self.now()
                for frame in self._decoder.feed(data):
                    self._last_host = now
                    self._command(frame, now)
                self._tick(now)

    def _send(self, frame: Frame) -> None:
        self._write(encode_frame(frame))

    def _write(self, wire: bytes) -> None:
        """Send a frame for the first time, corrupted if its turn has come (repeats go out clean)."""
        self._sent += 1
        if self.corrupt_every and self._sent % self.corrupt_every == 0:
            kind = self._sent // self.corrupt_every % 3
            if kind == 0:
                i = self._sent % len(wire)
                wire = wire[:i] + bytes([wire[i] ^ (1 << (self._sent % 8))]) + wire[i + 1:]
            elif kind == 1:
                wire = wire[: len(wire) // 2]
            else:
                wire = b"\x00\xff#noise" + wire[:5] + b"\x17" + wire[5:]
            wire = b"\xaa\x55garbage\r" + wire
        os.write(self._master, wire)

    def _command(self, frame: Frame, now: float) -> None:
        self.commands.append(frame)
        if frame.cmd == "ACK":
            if self._inflight is not None and self._inflight[1] == frame.seq:
                self._inflight = None
            return
        if frame.cmd == "HELLO":
            self._hello(frame, now)
            return
        if not self._session:
            self._send(Frame(frame.seq, "NAK", ("NOSESSION",)))
            return
        if self._last_cmd is not None and self._last_cmd[0] == frame.seq:
            os.write(self._master, self._last_cmd[1])  # our answer was lost: repeat it, do not re-run
            return
        answer = self._execute(frame, now)
        wire = encode_frame(Frame(frame.seq, *answer))
        self._last_cmd = (frame.seq, wire)
        self._write(wire)

    def _hello(self, frame: Frame, now: float) -> None:
        self.hellos += 1
        if frame.args[0].split(".")[0] != self.protocol.split(".")[0]:
            self._send(Frame(frame.seq, "NAK", ("VERSION",)))
            return
        self._session = True
        self._tx_seq = 0
        self._events.clear()
        self._inflight = None
        self._last_cmd = None
        mask = sum(1 << p for p, port in enumerate(self.ports) if port.stable)
        self._send(Frame(frame.seq, "ACK", (
            self.protocol, self.firmware, str(len(self.ports)), str(self.max_duty_pct),
            str(self.max_burst_ms), "RING+POL+FEED+RTRIP", self._us(now), f"{mask:X}")))

    def _execute(self, frame: Frame, now: float) -> tuple[str, tuple[str, ...]]:
        args = frame.args
        if frame.cmd == "PING":
            return "ACK", ()
        if frame.cmd not in ("RING", "RINGSTOP", "POL", "FEED") or not args or not args[0].isdigit():
            return "NAK", ("UNKNOWN",)
        port_no = int(args[0])
        if port_no >= len(self.ports):
            return "NAK", ("PORT",)
        port = self.ports[port_no]
        if frame.cmd == "RING":
            if port.stable or port.raw:
                return "NAK", ("OFFHOOK",)
            if port.feed != "A":
                return "NAK", ("FEED",)
            times = [int(a) for a in args[3:]]
            if not 1 <= len(times) // 2 <= 4 or len(times) % 2:
                return "NAK", ("ARGS",)
            port.ring = (now, tuple(zip(times[::2], times[1::2], strict=True)), args[2] == "1")
        elif frame.cmd == "RINGSTOP":
            port.ring = None
        elif frame.cmd == "POL":
            port.reversed = args[1] == "1"
        else:
            port.feed = args[1]
            if port.feed != "A":
                port.ring = None
        self._ringer(port_no, now)
        return "ACK", ()

    def _ringer(self, port_no: int, now: float) -> None:
        """Apply the cadence, the burst cap and the off-hook rule to the ringer."""
        port = self.ports[port_no]
        on = False
        if port.ring is not None:
            start, segments, repeat = port.ring
            elapsed = (now - start) * 1000
            period = sum(a + b for a, b in segments)
            if not repeat and elapsed >= period:
                port.ring = None
            else:
                t = elapsed % period
                for seg_on, seg_off in segments:
                    if t < seg_on:
                        on = True
                        break
                    t -= seg_on + seg_off
                    if t < 0:
                        break
        if on and port.ringer and now - self._ring_since[port_no] >= self.max_burst_ms / 1000:
            port.ring, on = None, False
        if on != port.ringer:
            port.ringer = on
            if on:
                self._ring_since[port_no] = now
            else:
                self.ring_log.append((port_no, self._ring_since[port_no], now))

    def _tick(self, now: float) -> None:
        due = sorted(e for e in self._schedule if e[0] <= now)
        self._schedule = [e for e in self._schedule if e[0] > now]
        for at, port_no, level in due:
            port = self.ports[port_no]
            if level != port.raw:
                port.raw, port.raw_since = level, at
        for port_no, port in enumerate(self.ports):
            if port.raw != port.stable and now - port.raw_since >= self.debounce_s:
                port.stable = port.raw
                self._event("HOOK", str(port_no), "1" if port.stable else "0", self._us(port.raw_since))
                if port.stable and port.ring is not None:
                    port.ring = None
                    self._event("RTRIP", str(port_no), self._us(now))
            self._ringer(port_no, now)
        if self._session and now - self._last_host > FAILSAFE_S:
            self._go_safe(now)
        if now >= self._next_hb:
            self._next_hb = now + HEARTBEAT_S
            mask = sum(1 << p for p, port in enumerate(self.ports) if port.stable)
            self._send(Frame(0, "HB", (self._us(now), f"{mask:X}")))
        self._send_event(now)

    def _go_safe(self, now: float) -> None:
        self._session = False
        for port_no, port in enumerate(self.ports):
            port.ring, port.reversed, port.feed = None, False, "A"
            self._ringer(port_no, now)

    def _event(self, cmd: str, *args: str) -> None:
        if self._session:
            self._events.append((cmd, args))

    def _send_event(self, now: float) -> None:
        if self._inflight is not None:
            wire, seq, deadline, tries = self._inflight
            if now < deadline:
                return
            if tries >= MAX_TRIES:
                self._go_safe(now)  # the host is gone
                self._inflight = None
                return
            self._inflight = (wire, seq, now + RETRANSMIT_S, tries + 1)
            os.write(self._master, wire)
            return
        if self._events:
            cmd, args = self._events.popleft()
            frame = Frame(self._tx_seq, cmd, args)
            self._tx_seq = (self._tx_seq + 1) % 256
            self._inflight = (encode_frame(frame), frame.seq, now + RETRANSMIT_S, 1)
            self._send(frame)
