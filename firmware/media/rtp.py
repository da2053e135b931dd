"""RTP send and receive for one call (RFC 3550 §5), sans-IO; aiortc's RtpPacket is the wire format.

The receiver implements symmetric RTP (RFC 4961) with comedia-style latching: behind a NAT the
address in the SDP is useless, so we send to wherever the peer's packets come from. Latching is
guarded against RTP injection ("RTP bleed"): only packets with a negotiated payload type count, the
first such packet latches, and a later move needs several consecutive packets of one SSRC from the
new address.
"""

from __future__ import annotations

import functools
import random
import struct
from dataclasses import dataclass
from typing import NamedTuple

from aiortc.rtp import RtpPacket

from firmware.sip.sdp import Negotiated

Address = tuple[str, int]

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
RELATCH_PACKETS = 3
_FIXED = struct.Struct("!BBHII")
"""RFC 3550 §5.1 fixed header: V/P/X/CC, M/PT, sequence number, timestamp, SSRC."""
_PLAIN = 0x80
"""First octet of a version-2 packet without padding, extension or CSRCs: nearly every packet."""


class RtpHeader(NamedTuple):
    """What the media path needs of a received packet (the names are aiortc's RtpPacket's)."""

    payload_type: int
    marker: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes


_header = functools.partial(tuple.__new__, RtpHeader)
"""RtpHeader from a tuple of its fields, without the Python-level __new__ that NamedTuple generates
(one interpreter frame less per received packet)."""


def parse_rtp(data: bytes) -> RtpHeader:
    """Parse an RTP packet; ValueError or struct.error when it is malformed.

    The plain header (the 12 fixed octets, then the payload) is unpacked here in one call, about
    six times cheaper than building an RtpPacket; anything with padding, a header extension or
    CSRCs goes through aiortc's parser, which validates them.
    """
    if len(data) >= 12 and data[0] == _PLAIN:
        _, m_pt, seq, ts, ssrc = _FIXED.unpack_from(data)
        return _header((m_pt & 0x7F, m_pt >> 7, seq, ts, ssrc, data[12:]))
    p = RtpPacket.parse(data)
    return RtpHeader(p.payload_type, p.marker, p.sequence_number, p.timestamp, p.ssrc, p.payload)


class RtpSender:
    """Builds the outgoing packets of one SSRC (RFC 3550 §5.1).

    SSRC, first sequence number and first timestamp are random (§5.1: against known-plaintext
    attacks on SRTP and SSRC collisions). The marker bit flags the first packet of a talkspurt: the
    first packet, and the first one after `skip()` left a gap in the timeline.
    """

    def __init__(self, negotiated: Negotiated, rng: random.Random | None = None) -> None:
        rng = rng or random.SystemRandom()
        self.payload_type = negotiated.payload_type
        self.telephone_event_pt = negotiated.telephone_event_pt
        self.samples_per_packet = negotiated.clock_rate * negotiated.ptime // 1000
        self.ssrc = rng.getrandbits(32)
        self.sequence = rng.getrandbits(16)
        self.timestamp = rng.getrandbits(32)
        self.packets_sent = 0
        self.octets_sent = 0
        self._talkspurt = True

    def _packet(self, payload_type: int, marker: bool, timestamp: int, payload: bytes) -> bytes:
        header = _FIXED.pack(_PLAIN, (marker << 7) | payload_type, self.sequence, timestamp, self.ssrc)
        self.sequence = (self.sequence + 1) % SEQ_MOD
        self.packets_sent += 1
        self.octets_sent += len(payload)  # §6.4.1: payload octets only
        return header + payload

    def audio(self, payload: bytes, samples: int | None = None) -> bytes:
        """One audio packet; the timestamp then advances by `samples` (default: one ptime)."""
        # _packet inline (the media path sends one of these per port and tick)
        header = _FIXED.pack(_PLAIN, (self._talkspurt << 7) | self.payload_type, self.sequence,
                             self.timestamp, self.ssrc)
        self.sequence = (self.sequence + 1) % SEQ_MOD
        self.packets_sent += 1
        self.octets_sent += len(payload)  # §6.4.1: payload octets only
        self._talkspurt = False
        self.timestamp = (self.timestamp + (self.samples_per_packet if samples is None else samples)) % TS_MOD
        return header + payload

    def skip(self, samples: int) -> None:
        """Advance the timeline without sending (silence, hold): the next audio packet starts a talkspurt."""
        self.timestamp = (self.timestamp + samples) % TS_MOD
        self._talkspurt = True

    def event(self, payload: bytes, timestamp: int, marker: bool) -> bytes:
        """An RFC 4733 telephone-event packet in our sequence space; the caller owns its timing (§2.3)."""
        if self.telephone_event_pt is None:
            raise ValueError("telephone-event was not negotiated")
        return self._packet(self.telephone_event_pt, marker, timestamp, payload)


@dataclass
class ReceiveCounters:
    """Why packets were dropped: a busy or hostile network shows here, never as an exception."""

    accepted: int = 0
    malformed: int = 0
    wrong_pt: int = 0
    foreign: int = 0
    relatched: int = 0


@dataclass
class _Candidate:
    addr: Address
    ssrc: int
    count: int


class RtpReceiver:
    """Parses and filters incoming RTP for one call and keeps the symmetric-RTP latch.

    `remote` is where to send: the SDP address until the first valid packet, then the latched
    source. A source other than the latched one is dropped until it has sent `relatch_packets`
    consecutive valid packets of a single SSRC (the peer moved, e.g. a NAT rebinding or a re-INVITE
    to another media server); a packet from the latched source in between cancels the move.
    Direction (hold, sendonly) is applied by the caller, which may still latch on what arrives.
    """

    def __init__(self, negotiated: Negotiated, relatch_packets: int = RELATCH_PACKETS) -> None:
        self.negotiated = negotiated
        self.relatch_packets = relatch_packets
        self.counters = ReceiveCounters()
        self.latched = False
        self.ssrc: int | None = None
        self.remote: Address = (negotiated.remote_addr, negotiated.remote_port)
        self._candidate: _Candidate | None = None
        self._payload_types = self.payload_types

    @property
    def payload_types(self) -> tuple[int, ...]:
        te = self.negotiated.telephone_event_pt
        return (self.negotiated.payload_type,) if te is None else (self.negotiated.payload_type, te)

    def receive(self, data: bytes, addr: Address) -> RtpHeader | None:
        """The packet if it belongs to this call's stream, else None (and a counter goes up)."""
        try:
            packet = parse_rtp(data)
        except (ValueError, struct.error):
            self.counters.malformed += 1
            return None
        if packet.payload_type not in self._payload_types:
            self.counters.wrong_pt += 1
            return None
        if not self.latched or addr == self.remote:
            self._candidate = None
            self.latched = True
            self.remote = addr
            self.ssrc = packet.ssrc
        elif not self._follow(packet, addr):
            self.counters.foreign += 1
            return None
        self.counters.accepted += 1
        return packet

    def _follow(self, packet: RtpHeader, addr: Address) -> bool:
        """Count a packet from a new source; True once it has earned the latch."""
        c = self._candidate
        if c is None or c.addr != addr or c.ssrc != packet.ssrc:
            c = self._candidate = _Candidate(addr, packet.ssrc, 0)
        c.count += 1
        if c.count < self.relatch_packets:
            return False
        self.remote, self.ssrc, self._candidate = addr, packet.ssrc, None
        self.counters.relatched += 1
        return True
