"""RtpSender header fields and wrap-around; RtpReceiver filtering and symmetric-RTP latching."""

from __future__ import annotations

import random
import struct

import pytest
from aiortc.rtp import RtpPacket

from firmware.media.rtp import RELATCH_PACKETS, RtpHeader, RtpReceiver, RtpSender, parse_rtp
from firmware.sip.sdp import Negotiated

NEG = Negotiated(codec="PCMU", payload_type=0, clock_rate=8000, telephone_event_pt=101, ptime=20,
                 remote_addr="192.0.2.10", remote_port=4000, remote_rtcp=("192.0.2.10", 4001),
                 direction="sendrecv", srtp=None)
PEER = ("198.51.100.7", 31000)
OTHER = ("203.0.113.9", 5004)


def rtp(seq: int = 1, pt: int = 0, ssrc: int = 0xABCD, ts: int = 0) -> bytes:
    return bytes(RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=ssrc,
                           payload=b"\xff" * 160).serialize())


def test_sender_fields_advance_and_wrap() -> None:
    s = RtpSender(NEG, random.Random(3))
    s.sequence, s.timestamp = 65534, (1 << 32) - 160
    pkts = [RtpPacket.parse(s.audio(b"\x7f" * 160)) for _ in range(4)]
    assert [p.sequence_number for p in pkts] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in pkts] == [(1 << 32) - 160, 0, 160, 320]
    assert [p.marker for p in pkts] == [1, 0, 0, 0]
    assert {p.payload_type for p in pkts} == {0} and {p.ssrc for p in pkts} == {s.ssrc}
    assert (s.packets_sent, s.octets_sent) == (4, 640)


def test_sender_is_random_per_call() -> None:
    a, b = RtpSender(NEG, random.Random(1)), RtpSender(NEG, random.Random(2))
    assert (a.ssrc, a.sequence, a.timestamp) != (b.ssrc, b.sequence, b.timestamp)


def test_skip_leaves_a_gap_and_marks_the_next_talkspurt() -> None:
    s = RtpSender(NEG, random.Random(3))
    first = RtpPacket.parse(s.audio(b"\xff" * 160))
    s.skip(800)
    nxt = RtpPacket.parse(s.audio(b"\xff" * 160))
    assert nxt.marker == 1
    assert nxt.sequence_number == (first.sequence_number + 1) % 65536
    assert nxt.timestamp == (first.timestamp + 960) % (1 << 32)


def test_telephone_event_shares_the_sequence_space() -> None:
    s = RtpSender(NEG, random.Random(3))
    a = RtpPacket.parse(s.audio(b"\xff" * 160))
    e = RtpPacket.parse(s.event(b"\x05\x0a\x00\xa0", timestamp=a.timestamp + 160, marker=True))
    assert (e.payload_type, e.marker, e.sequence_number) == (101, 1, (a.sequence_number + 1) % 65536)


def test_receiver_drops_wrong_pt_and_malformed_without_raising() -> None:
    r = RtpReceiver(NEG)
    assert r.receive(rtp(pt=8), PEER) is None
    assert r.receive(b"\x80\x00", PEER) is None
    assert r.receive(b"\x40" + rtp()[1:], PEER) is None  # RTP version 1
    assert r.receive(rtp()[:12], PEER) is not None  # header only: an empty payload is legal
    assert (r.counters.wrong_pt, r.counters.malformed, r.counters.accepted) == (1, 2, 1)


def test_receiver_latches_to_the_first_valid_source() -> None:
    r = RtpReceiver(NEG)
    assert r.remote == ("192.0.2.10", 4000) and not r.latched
    r.receive(rtp(pt=8), PEER)  # a wrong payload type does not latch
    assert not r.latched
    p = r.receive(rtp(pt=101), PEER)  # telephone-event belongs to the stream
    assert p is not None and r.latched and r.remote == PEER and r.ssrc == 0xABCD


def test_relatch_needs_consecutive_packets_of_one_ssrc() -> None:
    r = RtpReceiver(NEG)
    r.receive(rtp(seq=1), PEER)
    for i in range(RELATCH_PACKETS - 1):
        assert r.receive(rtp(seq=10 + i, ssrc=0x99), OTHER) is None
    assert r.receive(rtp(seq=2), PEER) is not None  # the real peer interrupts: the count restarts
    for i in range(RELATCH_PACKETS - 1):
        assert r.receive(rtp(seq=20 + i, ssrc=0x99), OTHER) is None
    assert r.remote == PEER and r.counters.foreign == 2 * (RELATCH_PACKETS - 1)
    assert r.receive(rtp(seq=30, ssrc=0x99), OTHER) is not None
    assert r.remote == OTHER and r.ssrc == 0x99 and r.counters.relatched == 1
    assert r.receive(rtp(seq=3), PEER) is None  # the old source is now the foreign one


def test_injector_changing_ssrc_never_relatches() -> None:
    r = RtpReceiver(NEG)
    r.receive(rtp(seq=1), PEER)
    for i in range(10):
        assert r.receive(rtp(seq=i, ssrc=i), OTHER) is None
    assert r.remote == PEER and r.counters.relatched == 0


def test_receiver_survives_mutated_and_random_datagrams() -> None:
    rng = random.Random(11)
    r = RtpReceiver(NEG)
    good = rtp()
    for _ in range(3000):
        data = bytearray(good[: rng.randrange(len(good) + 1)])
        for _ in range(rng.randrange(4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        r.receive(bytes(data) if rng.random() < 0.8 else rng.randbytes(rng.randrange(40)), PEER)
    c = r.counters
    assert c.accepted + c.malformed + c.wrong_pt + c.foreign == 3000 and c.malformed > 0


def _fields(p: RtpPacket | RtpHeader) -> tuple[int, int, int, int, int, bytes]:
    return p.payload_type, p.marker, p.sequence_number, p.timestamp, p.ssrc, p.payload


def test_fast_parse_equals_aiortc() -> None:
    """parse_rtp unpacks the plain header itself and hands padding, extensions and CSRCs to aiortc:
    the fields must be aiortc's in every case, and malformed packets must still be rejected."""
    rng = random.Random(5)
    packets = []
    for _ in range(200):
        p = RtpPacket(payload_type=rng.choice([0, 8, 101, 127]), marker=rng.getrandbits(1),
                      sequence_number=rng.getrandbits(16), timestamp=rng.getrandbits(32),
                      ssrc=rng.getrandbits(32), payload=rng.randbytes(rng.choice([0, 4, 160, 320])))
        if rng.random() < 0.3:
            p.csrc = [rng.getrandbits(32) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            p.padding_size = rng.randint(1, 8)
        packets.append(bytes(p.serialize()))
    packets.append(rtp()[:8] + b"\x00" * 4 + b"\x01")  # header-only is legal
    ext = bytearray(rtp())
    ext[0] |= 0x10  # extension bit, then a one-word extension header
    packets.append(bytes(ext[:12]) + b"\xbe\xde\x00\x01\x10\xaa\x00\x00" + bytes(ext[12:]))
    for data in packets:
        assert _fields(parse_rtp(data)) == _fields(RtpPacket.parse(data))
    for bad in (b"\x80\x00", b"\x40" + rtp()[1:], b"\x81" + rtp()[1:12], b"\xa0" + rtp()[1:-1] + b"\x00"):
        with pytest.raises((ValueError, struct.error)):
            parse_rtp(bad)


def test_sender_bytes_equal_aiortc_serialize() -> None:
    """The sender packs the header itself: byte for byte what aiortc's RtpPacket.serialize builds."""
    s = RtpSender(NEG, random.Random(9))
    for marker, pt in ((True, 0), (False, 0), (True, 101)):
        seq, ssrc, ts = s.sequence, s.ssrc, s.timestamp
        data = s._packet(pt, marker, ts, b"\x01\x02\x03")
        assert data == RtpPacket(payload_type=pt, marker=int(marker), sequence_number=seq, timestamp=ts,
                                 ssrc=ssrc, payload=b"\x01\x02\x03").serialize()
