"""DTMF relay: RFC 4733 telephone-events and SIP INFO bodies, sans-IO.

Nothing here touches a socket or a clock. The sender is told the detector's digit starts/ends and is
ticked once per 20 ms frame with that frame's RTP timestamp; it returns the telephone-event payloads to
send. The receiver is fed received payloads with their RTP timestamp and the arrival time, and reports
each digit's start and end once. `ToneOut` plays received digits to the phone as Q.23 tones, and
`InbandSuppressor` keeps relayed digits out of the uplink audio.

Timestamps are RTP timestamps (32-bit, wrapping, 8 kHz for telephone-event/8000); durations are in the
same units (RFC 4733 §2.3.5).
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from dsp.dtmf import DtmfEvent, dtmf_frequencies
from dsp.synth import to_int16, tone

__all__ = [
    "CLOCK_RATE",
    "EDGE_MS",
    "END_TIMEOUT_S",
    "EVENT_CODES",
    "FINAL_REPEATS",
    "INFO_DEFAULT_DURATION_MS",
    "MAX_DURATION",
    "MIN_GAP_MS",
    "MIN_TONE_MS",
    "DtmfMode",
    "DtmfReceiver",
    "DtmfSender",
    "EventPacket",
    "InbandSuppressor",
    "RelayedDigit",
    "TelephoneEvent",
    "ToneOut",
    "build_info_body",
    "digit_to_event",
    "event_to_digit",
    "parse_info_body",
    "volume_from_dbm0",
]

CLOCK_RATE = 8000
MAX_DURATION = 0xFFFF
"""Largest duration field (RFC 4733 §2.3.5); longer events are split into segments (§2.5.1.3)."""
_TS_MASK = 0xFFFFFFFF

EVENT_CODES = "0123456789*#ABCD"
"""Event code = index: 0-9, * = 10, # = 11, A-D = 12-15 (RFC 4733 §3.2, table 3)."""


class DtmfMode(StrEnum):
    """How a port relays in-call digits: RFC 4733 events, the audio itself, or SIP INFO requests."""

    RFC4733 = "rfc4733"
    INBAND = "inband"
    INFO = "info"


def digit_to_event(digit: str) -> int:
    """RFC 4733 event code of a keypad digit (case-insensitive for A-D)."""
    code = EVENT_CODES.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"not a DTMF digit: {digit!r} (expected one of {EVENT_CODES})")
    return code


def event_to_digit(code: int) -> str:
    """Keypad digit of a DTMF event code 0-15."""
    if not 0 <= code <= 15:
        raise ValueError(f"event {code} is not a DTMF digit (0-15)")
    return EVENT_CODES[code]


def volume_from_dbm0(level_dbm0: float) -> int:
    """The volume field for a tone measured at `level_dbm0`: its power in dBm0 with the sign dropped,
    clamped to 0..63 (RFC 4733 §2.3.4); a louder-than-0 dBm0 tone reads 0, a quieter-than -63 one 63."""
    if math.isnan(level_dbm0):
        raise ValueError("tone level is NaN")
    return int(min(63, max(0, round(-level_dbm0))))


# --- payload (RFC 4733 §2.3) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TelephoneEvent:
    """One named-event block (RFC 4733 §2.3, figure 1):

        event (8 bits) | E (1) | R (1) | volume (6) | duration (16)
    """

    event: int
    end: bool
    volume: int
    duration: int

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise ValueError(f"event code must fit 8 bits, got {self.event}")
        if not 0 <= self.volume <= 63:
            raise ValueError(f"volume must be 0..63 (-dBm0), got {self.volume}")
        if not 0 <= self.duration <= MAX_DURATION:
            raise ValueError(f"duration must be 0..{MAX_DURATION}, got {self.duration}")

    def pack(self) -> bytes:
        """The 4-byte payload; the R bit is sent as zero (§2.3.3)."""
        return bytes([self.event, (0x80 if self.end else 0) | self.volume]) + self.duration.to_bytes(2)

    @classmethod
    def unpack(cls, payload: bytes) -> TelephoneEvent:
        """Parse a payload; the R bit is ignored (§2.3.3). A payload may carry several 4-byte blocks
        for simultaneous events (§2.5.2.4); DTMF digits are never simultaneous, so the first counts."""
        if len(payload) < 4 or len(payload) % 4:
            raise ValueError(f"telephone-event payload must be a multiple of 4 bytes, got {len(payload)}")
        return cls(payload[0], bool(payload[1] & 0x80), payload[1] & 0x3F, int.from_bytes(payload[2:4]))


class EventPacket(NamedTuple):
    """One RTP packet for the sender to transmit with the telephone-event payload type."""

    marker: bool
    timestamp: int
    payload: bytes


# --- sender ------------------------------------------------------------------------------------------------

FINAL_REPEATS = 3
"""The last packet of an event (and of each long-event segment) goes out three times (§2.5.1.4)."""


@dataclass
class _Sending:
    event: int
    volume: int
    segment_ts: int
    first: bool
    end_ts: int | None = None


class DtmfSender:
    """RFC 4733 sender for one port's RTP stream, fed by `dsp.dtmf.DtmfDetector`.

    `rtp_origin` is the RTP timestamp of the detector's sample 0 (`DtmfEvent.time_s` counts from it).
    Call `handle` with each detector event for this port, then `tick` once per 20 ms frame.

    Updates go out every tick, i.e. at the audio packet interval, which RFC 4733 §2.5.1.2 allows; it
    keeps the far end's jitter buffer fed at the rate it already expects. The first packet carries the
    event's start as its timestamp (about 40 ms in the past: the detector's recognition delay) and the
    marker bit (§2.2.2, §2.5.1.2); the end packet's duration is the tone's measured length, which can be
    shorter than the last update's because the detector reports the end some 35 ms late.

    In-band suppression: `suppress` is True from the digit's detection to its end; the media path sends
    silence instead of the port's audio meanwhile, so the far end does not get the digit twice. The
    detector recognises a digit 35-40 ms after its onset (five 15 ms windows, see dsp.dtmf), so up to
    40 ms of tone precede the flag, and sent undelayed the frames before it would leak 15-40 ms of tone:
    enough for a lenient far-end receiver to count the digit twice. So the uplink goes through
    `InbandSuppressor`, which delays it by one 20 ms frame: the leak is then at most 20 ms, under the
    23 ms that Q.24 requires receivers to reject, for 20 ms more mouth-to-ear delay on ports in
    rfc4733 mode.
    """

    def __init__(self, rtp_origin: int = 0) -> None:
        self.rtp_origin = rtp_origin & _TS_MASK
        self._current: _Sending | None = None
        self._schedule: deque[list[EventPacket]] = deque()
        """Packets for the coming ticks, next tick first: finals and their retransmissions."""
        self.suppress = False
        """A digit is being relayed (`_current` has no end yet): replace this port's uplink audio with
        silence. An attribute set where that changes, in `handle`: the media tick reads it for every
        port every 20 ms."""

    def _ts(self, time_s: float) -> int:
        return (self.rtp_origin + round(time_s * CLOCK_RATE)) & _TS_MASK

    def handle(self, event: DtmfEvent, level_dbm0: float) -> None:
        """Take a detector event; `level_dbm0` is the tone's measured power (both tones together, e.g.
        `dsp.level.power_dbm0` of the frame that completed the detection), used only on a start."""
        ts = self._ts(event.time_s)
        cur = self._current
        if event.start:
            if cur is not None:  # ended but not yet sent (end and start in one frame), or never ended
                if cur.end_ts is None:
                    cur.end_ts = ts
                self._send_until(cur, cur.end_ts)
            self._current = _Sending(digit_to_event(event.digit), volume_from_dbm0(level_dbm0), ts, True)
            self.suppress = True
        elif cur is not None and cur.end_ts is None and cur.event == digit_to_event(event.digit):
            cur.end_ts = ts
            self.suppress = False

    def tick(self, frame_ts: int, samples: int = 160) -> list[EventPacket]:
        """Packets to send this tick; `frame_ts` is the RTP timestamp of the frame just captured, whose
        end (`frame_ts + samples`) is how far the event has lasted so far."""
        cur = self._current
        if cur is not None:
            self._send_until(cur, cur.end_ts if cur.end_ts is not None else (frame_ts + samples) & _TS_MASK)
            if cur.end_ts is not None:
                self._current = None
        return self._schedule.popleft() if self._schedule else []

    def _send_until(self, cur: _Sending, until: int) -> None:
        """Schedule the packet that reports `cur` up to `until`: an update, or the three end packets once
        `until` is its end; segments that overflow the duration field are closed on the way."""
        # Signed: a long event's segment opened on "now" may start after the end the detector reports
        # late; that last segment then ends with duration 0 (the previous one over-reports by < 40 ms).
        elapsed = max(0, ((until - cur.segment_ts + 0x80000000) & _TS_MASK) - 0x80000000)
        while elapsed > MAX_DURATION:  # long event: close this segment, open the next (§2.5.1.3)
            self._final(self._packet(cur, False, MAX_DURATION))
            cur.segment_ts = (cur.segment_ts + MAX_DURATION) & _TS_MASK
            elapsed -= MAX_DURATION
        packet = self._packet(cur, cur.end_ts is not None, elapsed)
        if cur.end_ts is not None:
            self._final(packet)
        else:
            self._at(0).append(packet)

    def _packet(self, cur: _Sending, end: bool, duration: int) -> EventPacket:
        """Only the event's very first packet carries the marker (§2.2.2), not a later segment's."""
        payload = TelephoneEvent(cur.event, end, cur.volume, duration).pack()
        packet = EventPacket(cur.first, cur.segment_ts, payload)
        cur.first = False
        return packet

    def _final(self, packet: EventPacket) -> None:
        """The last packet of an event or segment, now and on the next two ticks (§2.5.1.4)."""
        self._at(0).append(packet)
        for tick in range(1, FINAL_REPEATS):
            self._at(tick).append(packet._replace(marker=False))

    def _at(self, tick: int) -> list[EventPacket]:
        while len(self._schedule) <= tick:
            self._schedule.append([])
        return self._schedule[tick]


class InbandSuppressor:
    """The uplink of all ports, delayed by one frame and silenced where a digit is being relayed.

    Feed each tick's [ports, n] mouthpiece frame (after the detector has seen it) with the ports'
    `DtmfSender.suppress` flags; get back the previous tick's frame (zeros on the first tick), silenced
    on ports whose flag is set now or was set a tick ago. See `DtmfSender` for why one frame.
    """

    def __init__(self, ports: int) -> None:
        self._held: npt.NDArray[np.int16] | None = None
        self._was = np.zeros(ports, dtype=bool)

    def process(self, frame: npt.ArrayLike, suppress: npt.ArrayLike) -> npt.NDArray[np.int16]:
        """This tick's [ports, n] frame in, last tick's (silenced where relaying) out."""
        x = np.asarray(frame, dtype=np.int16)
        now = np.asarray(suppress, dtype=bool)
        if x.ndim != 2 or now.shape != self._was.shape or x.shape[0] != now.size:
            raise ValueError(f"expected a [{self._was.size}, n] frame and {self._was.size} flags")
        out = np.zeros_like(x) if self._held is None else self._held  # ours alone: handed over, not copied
        if out.shape != x.shape:
            raise ValueError(f"frame size changed from {out.shape[1]} to {x.shape[1]} samples")
        silence = now | self._was
        if np.count_nonzero(silence):
            out[silence] = 0
        self._held, self._was = x.copy(), now
        return out


# --- receiver ----------------------------------------------------------------------------------------------

END_TIMEOUT_S = 0.25
"""A digit whose end packets were all lost ends this long after its last packet (RFC 4733 §2.5.2.2 leaves
the value to us): three 50 ms update intervals, the longest in common use, plus 100 ms of jitter."""
STALE_WINDOW = 10 * CLOCK_RATE
"""A packet timestamped up to 10 s before the newest event is a late straggler and dropped; anything
further back is taken as the peer's timestamp jumping (new SSRC, re-INVITE), i.e. a new event."""
_SEGMENT_SLACK = CLOCK_RATE // 4
"""A segment whose largest seen duration comes within 250 ms of 0xFFFF may continue in a next one."""


@dataclass(frozen=True)
class RelayedDigit:
    """A received digit starting or ending. `timestamp` is the event's RTP timestamp (of its first
    segment); `duration` is 0 on the start and the total length in samples on the end."""

    digit: str
    start: bool
    timestamp: int
    duration: int
    volume: int


@dataclass
class _Receiving:
    event: int
    volume: int
    timestamp: int
    segment_ts: int
    before: int
    """Duration of the segments before the current one."""
    duration: int
    """Largest duration seen in the current segment."""
    last_rx: float


class DtmfReceiver:
    """RFC 4733 receiver for one RTP stream: reports each digit's start and end exactly once.

    The event's RTP timestamp identifies it (§2.2.1): updates and retransmitted end packets of a known
    timestamp never start it again, so neither the marker bit (it may be lost) nor the sequence number
    is needed. A digit starts on the first packet seen of a new timestamp, whichever that is, and ends on
    the first E packet, on the start of a newer digit, or `END_TIMEOUT_S` after its last packet when
    every end packet is lost (`get_timer`/`handle_timer`). Late packets of a finished or older event
    are dropped, which makes the receiver indifferent to reordering. Non-DTMF events (16 and up) and
    malformed payloads are dropped and counted in `dropped`.
    """

    def __init__(self, end_timeout_s: float = END_TIMEOUT_S) -> None:
        self.end_timeout_s = end_timeout_s
        self.dropped = 0
        self._current: _Receiving | None = None
        self._finished: deque[int] = deque(maxlen=16)
        """Segment timestamps of recently ended events, for dropping their retransmissions."""
        self._newest: int | None = None

    def receive(self, payload: bytes, timestamp: int, now: float) -> list[RelayedDigit]:
        """Take one received telephone-event payload with its RTP timestamp; `now` is the arrival time."""
        try:
            ev = TelephoneEvent.unpack(payload)
        except ValueError:
            self.dropped += 1
            return []
        if ev.event > 15:
            self.dropped += 1
            return []
        ts = timestamp & _TS_MASK
        cur = self._current
        if cur is not None and ts == cur.segment_ts:
            # Updates only lengthen it (reordering); the end packet's duration is final even if shorter:
            # a sender may learn the true end after updates overshot it (ours does, see DtmfSender).
            cur.duration = ev.duration if ev.end else max(cur.duration, ev.duration)
            cur.last_rx = now
            return [self._end(cur)] if ev.end else []
        if ts in self._finished:
            return []
        if cur is not None and self._continues(cur, ev, ts):
            self._finished.append(cur.segment_ts)
            cur.before += (ts - cur.segment_ts) & _TS_MASK
            cur.segment_ts, cur.duration, cur.last_rx = ts, ev.duration, now
            self._newest = ts
            return [self._end(cur)] if ev.end else []
        if self._newest is not None and 0 < (self._newest - ts) & _TS_MASK <= STALE_WINDOW:
            return []
        out = [self._end(cur)] if cur is not None else []
        cur = _Receiving(ev.event, ev.volume, ts, ts, 0, ev.duration, now)
        self._current, self._newest = cur, ts
        out.append(RelayedDigit(EVENT_CODES[ev.event], True, ts, 0, ev.volume))
        if ev.end:
            out.append(self._end(cur))
        return out

    @staticmethod
    def _continues(cur: _Receiving, ev: TelephoneEvent, ts: int) -> bool:
        """`ts` opens the next segment of the open long event `cur` (§2.5.2.3): same event, the old
        segment had nearly filled the duration field, and the new one starts where it ended."""
        gap = (ts - cur.segment_ts) & _TS_MASK
        return (ev.event == cur.event and cur.duration >= MAX_DURATION - _SEGMENT_SLACK
                and cur.duration <= gap <= MAX_DURATION)

    def _end(self, cur: _Receiving) -> RelayedDigit:
        self._finished.append(cur.segment_ts)
        self._current = None
        return RelayedDigit(EVENT_CODES[cur.event], False, cur.timestamp, cur.before + cur.duration,
                            cur.volume)

    def get_timer(self) -> float | None:
        """When `handle_timer` must run next (the open digit's end timeout), or None."""
        return None if self._current is None else self._current.last_rx + self.end_timeout_s

    def handle_timer(self, now: float) -> list[RelayedDigit]:
        """End the open digit if its end timeout has passed."""
        deadline = self.get_timer()
        if self._current is None or deadline is None or now < deadline:
            return []
        return [self._end(self._current)]


# --- playing received digits to the phone ------------------------------------------------------------------

MIN_TONE_MS = 50.0
"""Shortest tone played: the phone-side receiver must accept 40 ms (Q.24); a little margin above."""
MIN_GAP_MS = 50.0
"""Shortest silence between two played digits: Q.24 receivers must split digits at a 40 ms pause."""
EDGE_MS = 3.0
"""Raised-cosine rise and fall, as dsp.tones uses, so a tone neither starts nor stops with a click."""
TONE_LEVEL_RANGE_DBM0 = (-25.0, -3.0)
"""Per-tone level range played: Q.24's operate range at the bottom, no clipping of the pair at the top."""


@dataclass
class _Burst:
    digit: str
    level_dbm0: float
    timestamp: int
    length: int | None
    """Samples to play; None until the end is known."""


class ToneOut:
    """Renders received digits as Q.23 tone pairs into 20 ms frames for one port's earpiece.

    Digits play in order, each at least `MIN_TONE_MS`, separated by at least `MIN_GAP_MS`: a digit that
    arrives while the previous one still sounds waits its turn. The tone is phase-continuous across
    frames (synthesised from the running sample index) and ends with a ramp at its known length, or
    within the next frame when the end arrives after that length has already played. Playing starts
    when the start arrives, so a digit lasts until its end arrives at the least: as long as sent, plus
    however late the far end reported the end (ours: the detector's ~35 ms).
    """

    def __init__(self, sample_rate: int = CLOCK_RATE) -> None:
        self.sample_rate = sample_rate
        self._min_tone = round(MIN_TONE_MS * sample_rate / 1000)
        self._gap = round(MIN_GAP_MS * sample_rate / 1000)
        self._edge = round(EDGE_MS * sample_rate / 1000)
        self._queue: deque[_Burst] = deque()
        self._playing: _Burst | None = None
        self._pos = 0
        self._silence = 0
        """Gap samples still owed before the next digit."""
        self.active = False
        """A digit is sounding or waiting (the media path plays these frames instead of received
        audio). An attribute set where that changes (a start queued, a frame played): the media tick
        reads it for every port every 20 ms."""

    def handle(self, digit: RelayedDigit) -> None:
        """Queue a received start; apply a received end to its digit (matched by event timestamp)."""
        if digit.start:
            low, high = TONE_LEVEL_RANGE_DBM0
            # Volume is the pair's power (§2.3.4): each of two equal tones is 3 dB below it.
            level = min(high, max(low, -digit.volume - 10.0 * math.log10(2.0)))
            self._queue.append(_Burst(digit.digit, level, digit.timestamp, None))
            self.active = True
            return
        scale = self.sample_rate / CLOCK_RATE
        for burst in (self._playing, *self._queue):
            if burst is not None and burst.timestamp == digit.timestamp and burst.length is None:
                length = max(round(digit.duration * scale), self._min_tone)
                if burst is self._playing:
                    length = max(length, self._pos + self._edge)  # already longer: fade out now
                burst.length = length

    def frame(self, n: int = 160) -> npt.NDArray[np.int16]:
        """The next `n` samples of earpiece audio: tones where a digit plays, zeros elsewhere."""
        out = np.zeros(n, dtype=np.float64)
        i = 0
        while i < n:
            burst = self._playing
            if burst is None:
                if self._silence:
                    step = min(self._silence, n - i)
                    self._silence -= step
                    i += step
                    continue
                if not self._queue:
                    break
                burst = self._playing = self._queue.popleft()
                self._pos = 0
            if burst.length is not None and self._pos >= burst.length:
                self._playing, self._silence = None, self._gap
                continue
            step = n - i if burst.length is None else min(n - i, burst.length - self._pos)
            out[i:i + step] = self._render(burst, step)
            self._pos += step
            i += step
        self.active = self._playing is not None or bool(self._queue) or self._silence > 0
        return to_int16(out)

    def _render(self, burst: _Burst, step: int) -> npt.NDArray[np.float64]:
        s = self._pos + np.arange(step)
        ramp = np.minimum(1.0, (s + 0.5) / self._edge)
        if burst.length is not None:
            ramp = np.minimum(ramp, (burst.length - s - 0.5) / self._edge)
        envelope = 0.5 - 0.5 * np.cos(np.pi * np.clip(ramp, 0.0, 1.0))
        samples = tone(dtmf_frequencies(burst.digit), burst.level_dbm0, step, self.sample_rate, self._pos)
        return np.asarray(samples * envelope)


# --- SIP INFO ----------------------------------------------------------------------------------------------

INFO_DEFAULT_DURATION_MS = 250
"""Duration assumed when an application/dtmf-relay body has none, or for application/dtmf."""
_INFO_LINE = re.compile(r"^\s*([A-Za-z]+)\s*[=:]\s*(\S+)\s*$")


def _info_digit(text: str) -> str:
    """A digit from an INFO body: the character itself, or its event code 0-15 (some send 10 for *)."""
    text = text.strip()
    if text.isdigit() and len(text) <= 2:
        return event_to_digit(int(text))
    return event_to_digit(digit_to_event(text))


def parse_info_body(content_type: str, body: str | bytes) -> tuple[str, int]:
    """(digit, duration_ms) from the body of a SIP INFO carrying a key press.

    `application/dtmf-relay` (the de facto Cisco format): `Signal=<digit>` and optional
    `Duration=<ms>` lines, any case, spaces around `=`, CRLF or LF. `application/dtmf`: the digit
    alone. Anything else raises ValueError saying what is wrong.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/dtmf":
        if not text.strip():
            raise ValueError("application/dtmf body is empty")
        return _info_digit(text), INFO_DEFAULT_DURATION_MS
    if kind != "application/dtmf-relay":
        raise ValueError(f"not a DTMF INFO body: {content_type!r}")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _INFO_LINE.match(line)
        if m is None:
            raise ValueError(f"application/dtmf-relay line is not Name=value: {line!r}")
        fields[m.group(1).lower()] = m.group(2)
    if "signal" not in fields:
        raise ValueError("application/dtmf-relay body has no Signal= line")
    digit = _info_digit(fields["signal"])
    duration = fields.get("duration")
    if duration is None:
        return digit, INFO_DEFAULT_DURATION_MS
    if not duration.isdigit() or not 0 < int(duration) <= 60_000:
        raise ValueError(f"application/dtmf-relay Duration must be 1..60000 ms, got {duration!r}")
    return digit, int(duration)


def build_info_body(digit: str, duration_ms: int) -> tuple[str, str]:
    """(Content-Type, body) of a SIP INFO sending one key press as application/dtmf-relay."""
    code = digit_to_event(digit)
    if not 0 < duration_ms <= 60_000:
        raise ValueError(f"duration must be 1..60000 ms, got {duration_ms}")
    return "application/dtmf-relay", f"Signal={EVENT_CODES[code]}\r\nDuration={duration_ms}\r\n"
