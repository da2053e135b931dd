"""The host side of the MCU bridge's line protocol, sans-IO (docs/serial-protocol.md is the spec).

Like the SIP core (DESIGN.md, "How a sans-IO core meets asyncio") nothing here touches a port or a
clock: `receive(data, now)` takes bytes from the UART, `data_to_send()` returns bytes for it,
`next_event()` yields what happened and `get_timer()`/`handle_timer(now)` drive retransmission,
keepalive and link supervision. So framing, noise, retransmission and clock wrap are tested with
invented times and byte strings, and the pyserial adapter stays a thin loop.

Frames are text lines `$SS,CMD,arg,...*CCCC\\n` (SS: sequence number, two hex digits; CCCC:
CRC-16/CCITT-FALSE of the bytes between `$` and `*`). Text keeps the link debuggable with a
terminal; the `$` start and `\\n` end let a receiver resync after noise at the next frame.
"""

from __future__ import annotations

import string
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from hal.events import Feed

PROTOCOL_VERSION = (1, 0)
"""(major, minor): a different major is refused; a newer MCU minor only adds things we may ignore."""
MAX_FRAME = 120
"""Longest frame body (between `$` and `\\n`); longer runs are noise, dropped."""
SEQ_MOD = 256
TIMESTAMP_MOD = 1 << 32
"""MCU timestamps are a free-running 32-bit microsecond counter: it wraps every 71.6 minutes."""
RETRANSMIT_S = 0.1
"""A 40-byte frame takes 3.5 ms at 115200 baud; 100 ms covers the MCU's worst loop latency."""
MAX_TRIES = 4
KEEPALIVE_S = 1.0
"""The host pings this often when idle; the MCU goes safe after 3 s without a valid host frame."""
LINK_TIMEOUT_S = 2.0
"""No valid frame from the MCU for this long (it heartbeats every 0.5 s): the link is down."""
DRIFT = 200e-6
"""How fast the clock-offset estimate may rise (crystal tolerance of both ends, with margin)."""

FEED_CODES = {Feed.ACTIVE: "A", Feed.IDLE: "I", Feed.OPEN: "O"}
_ARG_CHARS = frozenset(c for c in string.printable if c not in "$*,\r\n\t\x0b\x0c")
_CMD_CHARS = frozenset(string.ascii_uppercase)
_HEX = frozenset(string.hexdigits)


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor (check 0x29B1)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int
    cmd: str
    args: tuple[str, ...] = ()


def encode_frame(frame: Frame) -> bytes:
    """The wire form of `frame`; raises ValueError for fields the framing cannot carry."""
    if not 0 <= frame.seq < SEQ_MOD or not frame.cmd or not set(frame.cmd) <= _CMD_CHARS:
        raise ValueError(f"bad frame header: {frame.seq}, {frame.cmd!r}")
    if any(not set(a) <= _ARG_CHARS for a in frame.args):
        raise ValueError(f"frame argument with a reserved character: {frame.args!r}")
    body = ",".join([f"{frame.seq:02X}", frame.cmd, *frame.args]).encode("ascii")
    if len(body) + 5 > MAX_FRAME:
        raise ValueError(f"frame too long ({len(body) + 5} > {MAX_FRAME} bytes)")
    return b"$" + body + b"*" + f"{crc16_ccitt_false(body):04X}".encode() + b"\n"


@dataclass
class LinkStats:
    """Counters for diagnostics: a rising error count means a bad cable or a wrong baud rate."""

    frames: int = 0
    crc_errors: int = 0
    malformed: int = 0
    """Good CRC but not a frame we understand, or a frame cut short by a new `$`."""
    overlong: int = 0
    noise_bytes: int = 0
    """Bytes outside any frame."""
    retransmits: int = 0
    duplicates: int = 0
    """Retransmitted MCU events already accepted (our ACK was lost)."""


class FrameDecoder:
    """Bytes in, valid frames out; anything else is counted in `stats` and skipped silently."""

    def __init__(self, stats: LinkStats | None = None) -> None:
        self.stats = stats or LinkStats()
        self._buf: bytearray | None = None  # None: hunting for `$`

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        for byte in data:
            if byte == 0x24:  # `$`: a frame starts, whatever came before
                if self._buf:
                    self.stats.malformed += 1
                self._buf = bytearray()
            elif self._buf is None:
                if byte not in (0x0A, 0x0D):
                    self.stats.noise_bytes += 1
            elif byte in (0x0A, 0x0D):
                frame = self._parse(bytes(self._buf))
                self._buf = None
                if frame is not None:
                    self.stats.frames += 1
                    frames.append(frame)
            elif len(self._buf) >= MAX_FRAME:
                self.stats.overlong += 1
                self._buf = None
            else:
                self._buf.append(byte)
        return frames

    def _parse(self, raw: bytes) -> Frame | None:
        body, star, crc = raw.rpartition(b"*")
        if not star or len(crc) != 4 or not set(crc.decode("latin-1")) <= _HEX:
            self.stats.malformed += 1
            return None
        if crc16_ccitt_false(body) != int(crc, 16):
            self.stats.crc_errors += 1
            return None
        text = body.decode("latin-1")
        seq, _, rest = text.partition(",")
        cmd, *args = rest.split(",")
        if (len(seq) != 2 or not set(seq) <= _HEX or not cmd or not set(cmd) <= _CMD_CHARS
                or any(not set(a) <= _ARG_CHARS for a in args)):
            self.stats.malformed += 1
            return None
        return Frame(int(seq, 16), cmd, tuple(args))


class McuClock:
    """MCU microsecond timestamps (32-bit, wrapping) to host seconds.

    The counter is unwrapped against the newest timestamp seen (a retransmitted event may be older
    than the last heartbeat, so steps back of up to half the range are allowed). The offset is the
    smallest `host_now - mcu_time` seen on frames the MCU stamps as it sends them: a frame arrives
    late, never early, so the minimum is the best latency-free estimate; it may rise by `DRIFT` per
    second so a slower MCU crystal does not leave it stuck. Mapped times never run backwards for
    increasing MCU times, and never lie in the future.
    """

    def __init__(self) -> None:
        self._raw: int | None = None
        self._ext = 0
        self._offset: float | None = None
        self._offset_at = 0.0
        self._last_ext = -1
        self._last_mapped = float("-inf")

    def sync(self, raw: int, now: float) -> None:
        """`raw` was read from the MCU counter just before the frame that arrived at `now` was sent."""
        sample = now - self._unwrap(raw) / 1e6
        if self._offset is None:
            self._offset = sample
        else:
            self._offset = min(sample, self._offset + DRIFT * max(0.0, now - self._offset_at))
        self._offset_at = now

    def to_host(self, raw: int, now: float) -> float:
        """The host time of MCU timestamp `raw` (call `sync` at least once first)."""
        assert self._offset is not None, "McuClock.to_host before the first sync"
        ext = self._unwrap(raw)
        mapped = min(ext / 1e6 + self._offset, now)
        if ext >= self._last_ext:
            mapped = max(mapped, self._last_mapped)
            self._last_ext, self._last_mapped = ext, mapped
        return mapped

    def _unwrap(self, raw: int) -> int:
        if self._raw is None:
            self._raw, self._ext = raw, raw
            return raw
        delta = (raw - self._raw) % TIMESTAMP_MOD
        if delta >= TIMESTAMP_MOD // 2:
            return self._ext - (TIMESTAMP_MOD - delta)  # older than the newest: do not move the base
        self._raw, self._ext = raw, self._ext + delta
        return self._ext


# -- events ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class McuInfo:
    """What the MCU said about itself in its HELLO answer."""

    protocol: tuple[int, int]
    firmware: str
    ports: int
    max_ring_duty: float
    max_burst_s: float
    """The MCU ends any ring burst after this long on its own (host crash protection)."""
    capabilities: frozenset[str]


@dataclass(frozen=True, slots=True)
class LinkUp:
    info: McuInfo
    hook: tuple[bool, ...]
    """Each port's debounced hook level at `time` (the truth after a (re)connect)."""
    time: float


@dataclass(frozen=True, slots=True)
class LinkDown:
    reason: str
    fatal: bool = False
    """True when retrying cannot help (incompatible protocol version)."""


@dataclass(frozen=True, slots=True)
class HookChange:
    port: int
    offhook: bool
    time: float
    """When the new level began (the MCU stamps the first edge, not the end of its debounce)."""


@dataclass(frozen=True, slots=True)
class RingTrip:
    """The MCU stopped ringing `port` itself because the phone went off-hook during a burst."""

    port: int
    time: float


@dataclass(frozen=True, slots=True)
class Alarm:
    port: int | None
    code: str
    """e.g. OVERTEMP, OVERCURRENT, RINGFAULT (docs/serial-protocol.md lists them)."""
    time: float


@dataclass(frozen=True, slots=True)
class Rejected:
    """The MCU answered a command with NAK (e.g. RING on an off-hook port)."""

    cmd: str
    args: tuple[str, ...]
    reason: str


Event = LinkUp | LinkDown | HookChange | RingTrip | Alarm | Rejected


class State(Enum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"


@dataclass
class _InFlight:
    frame: Frame
    wire: bytes
    deadline: float
    tries: int = 1


@dataclass
class McuConnection:
    """One session with the MCU, from HELLO to link down (make a new one to reconnect).

    Reliable frames (host commands, MCU events) go stop-and-wait: one unacknowledged frame per
    direction, retransmitted unchanged every `retransmit_s`, `max_tries` times in all; then the
    link is down. Commands given while the link is down are dropped: the adapter replays the
    lines' state after the next `LinkUp`.
    """

    now: float
    retransmit_s: float = RETRANSMIT_S
    max_tries: int = MAX_TRIES
    keepalive_s: float = KEEPALIVE_S
    link_timeout_s: float = LINK_TIMEOUT_S
    stats: LinkStats = field(default_factory=LinkStats)
    state: State = State.CONNECTING
    info: McuInfo | None = None

    def __post_init__(self) -> None:
        self.clock = McuClock()
        self._decoder = FrameDecoder(self.stats)
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._queue: deque[tuple[str, tuple[str, ...]]] = deque()
        self._inflight: _InFlight | None = None
        self._tx_seq = 0
        self._rx_seq: int | None = None
        self._last_rx = self.now
        self._last_tx = self.now
        self._command(self.now, "HELLO", f"{PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]}")

    # -- commands ---------------------------------------------------------------------------------
    def ring(self, port: int, freq_hz: float, segments: tuple[tuple[int, int], ...], now: float,
             repeat: bool = True) -> None:
        """Ring `port` at `freq_hz` with (on_ms, off_ms) segments, timed by the MCU."""
        if not 1 <= len(segments) <= 4 or not all(0 <= ms <= 65535 for seg in segments for ms in seg):
            raise ValueError("a ring cadence has 1..4 (on, off) segments of 0..65535 ms")
        times = [str(int(ms)) for seg in segments for ms in seg]
        self._command(now, "RING", str(port), f"{freq_hz:g}", "1" if repeat else "0", *times)

    def stop_ring(self, port: int, now: float) -> None:
        self._command(now, "RINGSTOP", str(port))

    def set_polarity(self, port: int, reversed_: bool, now: float) -> None:
        self._command(now, "POL", str(port), "1" if reversed_ else "0")

    def set_feed(self, port: int, feed: Feed, now: float) -> None:
        self._command(now, "FEED", str(port), FEED_CODES[feed])

    @property
    def idle(self) -> bool:
        """Every command sent has been answered."""
        return self._inflight is None and not self._queue

    # -- sans-IO surface --------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> None:
        for frame in self._decoder.feed(data):
            if self.state is State.DOWN:
                return
            self._last_rx = now
            self._handle(frame, now)
        self._send_next(now)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def get_timer(self) -> float | None:
        if self.state is State.DOWN:
            return None
        times = [self._last_rx + self.link_timeout_s]
        if self._inflight is not None:
            times.append(self._inflight.deadline)
        elif self.state is State.UP:
            times.append(self._last_tx + self.keepalive_s)
        return min(times)

    def handle_timer(self, now: float) -> None:
        if self.state is State.DOWN:
            return
        if now >= self._last_rx + self.link_timeout_s:
            self._down(f"no frame from the MCU for {self.link_timeout_s:g} s")
            return
        f = self._inflight
        if f is not None and now >= f.deadline:
            if f.tries >= self.max_tries:
                self._down(f"{f.frame.cmd} not acknowledged after {f.tries} tries")
                return
            f.tries += 1
            f.deadline = now + self.retransmit_s
            self.stats.retransmits += 1
            self._emit(f.wire, now)
        if self._inflight is None and self.state is State.UP and now >= self._last_tx + self.keepalive_s:
            self._command(now, "PING")
        self._send_next(now)

    # -- internals --------------------------------------------------------------------------------
    def _command(self, now: float, cmd: str, *args: str) -> None:
        if self.state is not State.DOWN:
            self._queue.append((cmd, args))
            self._send_next(now)

    def _send_next(self, now: float) -> None:
        if self._inflight is not None or not self._queue:
            return
        if self.state is State.CONNECTING and self._queue[0][0] != "HELLO":
            return  # commands wait for the handshake
        cmd, args = self._queue.popleft()
        frame = Frame(self._tx_seq, cmd, args)
        self._tx_seq = (self._tx_seq + 1) % SEQ_MOD
        self._inflight = _InFlight(frame, encode_frame(frame), now + self.retransmit_s)
        self._emit(self._inflight.wire, now)

    def _emit(self, wire: bytes, now: float) -> None:
        self._out += wire
        self._last_tx = max(self._last_tx, now)

    def _handle(self, frame: Frame, now: float) -> None:
        cmd, args = frame.cmd, frame.args
        try:
            if cmd in ("ACK", "NAK"):
                self._answer(frame, now)
            elif cmd == "HB":
                if len(args) != 2:
                    raise ValueError
                self.clock.sync(_hex32(args[0]), now)
            elif cmd == "BOOT":
                if self.state is State.UP:  # while connecting, our HELLO (retransmitted) still counts
                    self._down("the MCU restarted")
            elif cmd in ("HOOK", "RTRIP", "ALARM"):
                self._mcu_event(frame, now)
            else:
                raise ValueError
        except (ValueError, IndexError):
            self.stats.malformed += 1

    def _answer(self, frame: Frame, now: float) -> None:
        f = self._inflight
        if f is None or frame.seq != f.frame.seq:
            return  # the answer to a retransmission we already had
        self._inflight = None
        if frame.cmd == "NAK" and f.frame.cmd == "HELLO":
            self._down(f"the MCU refused HELLO: {','.join(frame.args)}", fatal=True)
        elif frame.cmd == "NAK" and frame.args == ("NOSESSION",):
            self._down("the MCU ended the session")
        elif frame.cmd == "NAK":
            self._events.append(Rejected(f.frame.cmd, f.frame.args, ",".join(frame.args)))
        elif f.frame.cmd == "HELLO":
            self._hello(frame.args, now)

    def _hello(self, args: tuple[str, ...], now: float) -> None:
        """ACK to HELLO: version, firmware, ports, duty %, max burst ms, caps, timestamp, hook mask."""
        if len(args) != 8:
            raise ValueError
        major, minor = (int(v) for v in args[0].split("."))
        if major != PROTOCOL_VERSION[0]:
            self._down(f"MCU speaks protocol {major}.{minor}, this host speaks "
                       f"{PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]}: update the "
                       f"{'MCU firmware' if major < PROTOCOL_VERSION[0] else 'host'}", fatal=True)
            return
        ports, mask = _uint(args[2]), _hex(args[7])
        self.info = McuInfo((major, minor), args[1], ports, _uint(args[3]) / 100, _uint(args[4]) / 1000,
                            frozenset(args[5].split("+")) - {""})
        self.clock.sync(_hex32(args[6]), now)
        self.state = State.UP
        self._rx_seq = None
        self._events.append(LinkUp(self.info, tuple(bool(mask >> p & 1) for p in range(ports)), now))

    def _mcu_event(self, frame: Frame, now: float) -> None:
        if self.state is not State.UP:
            return  # left over from an earlier session: the HELLO answer has the current state
        args = frame.args
        event: Event
        if frame.cmd == "HOOK":
            if len(args) != 3 or args[1] not in ("0", "1"):
                raise ValueError
            event = HookChange(self._port(args[0]), args[1] == "1", self._time(args[2], now))
        elif frame.cmd == "RTRIP":
            if len(args) != 2:
                raise ValueError
            event = RingTrip(self._port(args[0]), self._time(args[1], now))
        else:
            if len(args) != 3 or not args[1]:
                raise ValueError
            event = Alarm(None if args[0] == "-" else self._port(args[0]), args[1], self._time(args[2], now))
        self._emit(encode_frame(Frame(frame.seq, "ACK")), now)
        if frame.seq == self._rx_seq:
            self.stats.duplicates += 1
            return
        self._rx_seq = frame.seq
        self._events.append(event)

    def _port(self, text: str) -> int:
        port = _uint(text)
        if self.info is None or not 0 <= port < self.info.ports:
            raise ValueError
        return port

    def _time(self, text: str, now: float) -> float:
        return self.clock.to_host(_hex32(text), now)

    def _down(self, reason: str, fatal: bool = False) -> None:
        self.state = State.DOWN
        self._queue.clear()
        self._inflight = None
        self._events.append(LinkDown(reason, fatal))


def _uint(text: str) -> int:
    """A decimal field (int() alone would also take signs, spaces and underscores)."""
    if not text.isascii() or not text.isdigit():
        raise ValueError(text)
    return int(text)


def _hex(text: str) -> int:
    if not text or not set(text) <= _HEX:
        raise ValueError(text)
    return int(text, 16)


def _hex32(text: str) -> int:
    """An MCU timestamp: exactly eight hex digits."""
    if len(text) != 8:
        raise ValueError(text)
    return _hex(text)
