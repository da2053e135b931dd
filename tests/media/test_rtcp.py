"""RFC 3550 statistics against hand computations, report generation, RTT, and the E-model MOS."""

from __future__ import annotations

import random

import pytest
from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
)

from firmware.media.rtcp import (
    RTCP_MIN_INTERVAL,
    ReceptionStats,
    RtcpSession,
    delay_impairment,
    mos,
    ntp_middle,
    rtcp_interval,
    rtt_seconds,
)
from firmware.media.rtp import RtpSender
from firmware.sip.sdp import Negotiated

NEG = Negotiated(codec="PCMU", payload_type=0, clock_rate=8000, telephone_event_pt=None, ptime=20,
                 remote_addr="192.0.2.10", remote_port=4000, remote_rtcp=("192.0.2.10", 4001),
                 direction="sendrecv", srtp=None)
PEER_SSRC = 0x51515151


def feed(stats: ReceptionStats, seqs: list[int]) -> None:
    for s in seqs:
        stats.update(s, 0, 0.0)


def test_a3_loss_with_losses_duplicates_and_wrap() -> None:
    st = ReceptionStats(PEER_SSRC, 65530, 8000)
    # 65532, 65534 and 1 never come; 65533 comes twice; 2 arrives after 3.
    feed(st, [65530, 65531, 65533, 65533, 65535, 0, 3, 2])
    assert (st.received, st.extended_max, st.expected) == (8, 65536 + 3, 10)
    assert st.lost == 2  # §6.4.1: duplicates count as received, so 3 missing - 1 duplicate
    r = st.report(lsr=0, dlsr=0)
    assert (r.fraction_lost, r.packets_lost, r.highest_sequence) == ((2 << 8) // 10, 2, 65539)
    feed(st, [4, 5])
    assert st.report(0, 0).fraction_lost == 0
    feed(st, [8])  # 6 and 7 lost: 2 of 3 expected in this interval
    r = st.report(0, 0)
    assert (r.fraction_lost, r.packets_lost, r.highest_sequence) == (170, 4, 65536 + 8)


def test_a1_big_jump_needs_two_sequential_packets() -> None:
    st = ReceptionStats(PEER_SSRC, 100, 8000)
    assert st.update(100, 0, 0.0)
    assert not st.update(20_000, 0, 0.0)  # one stray packet: ignored
    assert st.expected == 1
    assert st.update(20_001, 0, 0.0)  # two in a row: the source restarted
    assert (st.base_seq, st.received, st.lost) == (20_001, 1, 0)


def test_a8_jitter_matches_hand_computation() -> None:
    st = ReceptionStats(PEER_SSRC, 0, 8000)
    transit_ms = [0, 5, 2, 10, 10]  # on top of a constant delay; packets 20 ms = 160 ticks apart
    for i, t in enumerate(transit_ms):
        st.update(i, (1 << 32) - 320 + 160 * i, 1.0 + 0.020 * i + t / 1000)  # timestamps wrap
    # |D| in timestamp units = 8 * |change in transit ms|: 40, 24, 64, 0; J += (|D| - J) / 16
    j = 0.0
    for d in (40, 24, 64, 0):
        j += (d - j) / 16
    assert j == pytest.approx(7.1282959, abs=1e-6)
    assert st.jitter == pytest.approx(j, abs=1e-6)
    assert st.jitter_ms == pytest.approx(j / 8)
    assert st.report(0, 0).jitter == 7


def test_rtt_example_of_rfc3550_figure_2() -> None:
    # A = 0xb710:8000, LSR = 0xb705:2000, DLSR = 0x0005:4000 -> 0x0006:2000 = 6.125 s
    assert rtt_seconds(0xB7108000 << 16, 0xB7052000, 0x00054000) == 6.125
    assert rtt_seconds(0xB7108000 << 16, 0, 0) is None  # the peer has no SR of ours yet


def session(now: float = 0.0) -> tuple[RtcpSession, RtpSender]:
    sender = RtpSender(NEG, random.Random(5))
    return RtcpSession(sender, 8000, now, 1.7e9, "hookflash@test", random.Random(9)), sender


def parse(data: bytes) -> list[object]:
    return list(RtcpPacket.parse(data))


def test_rtt_from_a_receiver_report_about_our_sr() -> None:
    s, sender = session()
    sender.audio(b"\xff" * 160)
    sr = parse(s.bye(10.0))[0]
    assert isinstance(sr, RtcpSrPacket)
    lsr = ntp_middle(sr.sender_info.ntp_timestamp)
    rr = RtcpRrPacket(ssrc=PEER_SSRC, reports=[RtcpReceiverInfo(
        ssrc=sender.ssrc, fraction_lost=0, packets_lost=0, highest_sequence=0, jitter=0,
        lsr=lsr, dlsr=int(0.1 * 65536))])
    s.receive(bytes(rr), 10.3)
    rtt = s.summary(buffer_ms=0, ptime_ms=20).rtt_ms
    assert rtt == pytest.approx(200.0, abs=0.1)


def test_our_report_echoes_the_peers_sr_with_delay() -> None:
    s, sender = session()
    s.rtp_received(RtpPacket(payload_type=0, sequence_number=7, timestamp=0, ssrc=PEER_SSRC), 19.9)
    peer_ntp = 0x1234_5678_9ABC_DEF0
    s.receive(bytes(RtcpSrPacket(ssrc=PEER_SSRC, sender_info=RtcpSenderInfo(
        ntp_timestamp=peer_ntp, rtp_timestamp=0, packet_count=1, octet_count=160))), 20.0)
    packets = parse(s.bye(21.5))
    rr = packets[0]
    assert isinstance(rr, RtcpRrPacket)  # we sent nothing: RR, not SR (§6.4)
    (block,) = rr.reports
    assert (block.ssrc, block.lsr, block.dlsr) == (PEER_SSRC, 0x5678_9ABC, int(1.5 * 65536))
    assert isinstance(packets[1], RtcpSdesPacket) and packets[1].chunks[0].items == [(1, b"hookflash@test")]
    assert isinstance(packets[2], RtcpByePacket) and packets[2].sources == [sender.ssrc]


def test_reports_are_sent_on_a_randomised_interval() -> None:
    s, sender = session(now=100.0)
    first = s.get_timer() - 100.0
    assert RTCP_MIN_INTERVAL / 2 * 0.5 / 1.2182 <= first <= RTCP_MIN_INTERVAL / 2 * 1.5 / 1.2182
    assert s.handle_timer(100.0 + first - 0.001) is None
    sender.audio(b"\xff" * 160)
    data = s.handle_timer(100.0 + first)
    assert data is not None and isinstance(parse(data)[0], RtcpSrPacket)
    gaps = [rtcp_interval(random.Random(i)) for i in range(200)]
    assert min(gaps) >= 5 * 0.5 / 1.2183 and max(gaps) <= 5 * 1.5 / 1.2182
    assert 3.5 < sum(gaps) / len(gaps) < 4.7  # 5 s / (e - 3/2) = 4.10 s on average


def test_bye_and_malformed_rtcp() -> None:
    s, _ = session()
    s.receive(b"\x80\xc8\x00", 1.0)
    s.receive(b"\x40" + bytes(RtcpByePacket(sources=[1]))[1:], 1.0)  # version 1
    assert s.malformed == 2 and not s.bye_received
    s.receive(bytes(RtcpByePacket(sources=[PEER_SSRC])), 2.0)
    assert s.bye_received


def test_call_summary() -> None:
    s, sender = session()
    for n in range(100):
        sender.audio(b"\xff" * 160)
        if n % 10 != 3:  # 10 % loss
            s.rtp_received(RtpPacket(payload_type=0, sequence_number=n, timestamp=160 * n,
                                     ssrc=PEER_SSRC), 0.02 * n + (0.004 if n % 2 else 0.0))
    st = s.summary(buffer_ms=40, ptime_ms=20)
    assert (st.packets_sent, st.packets_received, st.packets_lost) == (100, 90, 10)
    assert st.loss_pct == pytest.approx(10.0)
    assert 0 < st.jitter_mean_ms <= st.jitter_max_ms <= 8.0
    assert st.rtt_ms is None
    assert st.mos == pytest.approx(mos(60, 10.0))


def test_mos_reference_points_and_monotonicity() -> None:
    # R = 93.2 -> MOS = 1 + 0.035 R + R (R - 60)(100 - R) 7e-6 = 4.409 (G.107 Annex B)
    assert mos(20, 0) == pytest.approx(4.409, abs=0.001)
    # 5 % random loss with PLC: Ie,eff = 95 * 5 / (5 + 25.1) = 15.78 -> R = 77.42 -> MOS 3.92
    assert mos(20, 5) == pytest.approx(3.923, abs=0.002)
    assert mos(20, 5, plc=False) < mos(20, 5)  # Bpl 4.3 without PLC
    losses = [mos(20, p) for p in (0, 1, 2, 5, 10, 20, 40)]
    delays = [mos(d, 1) for d in (20, 100, 150, 200, 300, 400, 600)]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) == len(losses)
    assert delays == sorted(delays, reverse=True) and delays[0] == delays[1]  # no Idd below 100 ms
    assert delay_impairment(200) == pytest.approx(3.044, abs=0.001)  # X = 1 in G.107 eq. 7-28
    assert mos(2000, 90) == 1.0


def test_rtcp_survives_mutated_and_random_datagrams() -> None:
    rng = random.Random(12)
    s, sender = session()
    sender.audio(b"\xff" * 160)
    good = s.bye(1.0)
    for _ in range(3000):
        data = bytearray(good[: rng.randrange(len(good) + 1)])
        for _ in range(rng.randrange(4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        s.receive(bytes(data) if rng.random() < 0.8 else rng.randbytes(rng.randrange(60)), 2.0)
    assert s.malformed > 1000
