"""MediaSession driven directly with invented times: two sessions wired back to back, no sockets."""

from __future__ import annotations

import random

import pytest
from aiortc.rtp import RtcpByePacket, RtcpPacket, RtcpSrPacket, RtpPacket

from dsp.dtmf import DtmfEvent
from firmware.media.dtmf_relay import DtmfMode
from firmware.media.rtcp import RTCP_MIN_INTERVAL
from firmware.media.session import FRAME, Datagram, MediaSession
from firmware.sip.sdp import Direction, Negotiated, SrtpParams

A, B = ("10.0.0.1", 4000), ("10.0.0.2", 5000)
SPEECH = bytes(range(160))
SUITE = "AES_CM_128_HMAC_SHA1_80"


def negotiated(remote: tuple[str, int], direction: Direction = "sendrecv", ptime: int = 20,
               codec: str = "PCMU", srtp: SrtpParams | None = None, te: int | None = 101) -> Negotiated:
    return Negotiated(codec, 8 if codec == "PCMA" else 0, 8000, te, ptime, remote[0], remote[1],
                      (remote[0], remote[1] + 1), direction, srtp)


def session(remote: tuple[str, int], seed: int, **kw: object) -> MediaSession:
    mode = kw.pop("dtmf_mode", DtmfMode.RFC4733)
    assert isinstance(mode, DtmfMode)
    return MediaSession(negotiated(remote, **kw), 4000, 0.0, rng=random.Random(seed),  # type: ignore[arg-type]
                        wallclock=1.7e9, dtmf_mode=mode)


def rtp_of(datagrams: list[Datagram]) -> list[RtpPacket]:
    return [RtpPacket.parse(dg.data) for dg in datagrams if not dg.rtcp]


def test_audio_flows_and_is_counted() -> None:
    a, b = session(B, 1), session(A, 2)
    played = []
    for k in range(50):
        now = k * 0.02
        for dg in a.next_uplink(SPEECH, now):
            assert dg.addr == (B if not dg.rtcp else (B[0], B[1] + 1))
            (b.receive_rtcp if dg.rtcp else b.receive_rtp)(dg.data, A, now + 0.005)
        played.append(b.next_downlink(now + 0.01))
    assert set(played[3:]) == {(SPEECH, False)}  # playing after the buffer's 20 ms
    stats = b.stats()
    assert (stats.packets_received, stats.packets_lost, stats.loss_pct) == (50, 0, 0.0)
    assert a.stats().packets_sent == 50


def test_ptime_40_sends_every_other_tick() -> None:
    a = session(B, 1, ptime=40)
    packets = [rtp_of(a.next_uplink(SPEECH, k * 0.02)) for k in range(6)]
    assert [len(p) for p in packets] == [0, 1, 0, 1, 0, 1]
    assert len(packets[1][0].payload) == 2 * FRAME
    assert packets[3][0].timestamp - packets[1][0].timestamp == 2 * FRAME


def test_unsupported_packetisation_is_refused() -> None:
    with pytest.raises(ValueError):
        session(B, 1, ptime=30)


def test_foreign_and_garbage_packets_are_dropped() -> None:
    a, b = session(B, 1), session(A, 2)
    b.receive_rtp(b"\x80\x00garbage", A, 0.0)
    other = session(B, 3, codec="PCMA")  # payload type 8 was not negotiated with b
    b.receive_rtp(rtp_of(other.next_uplink(SPEECH, 0.0))[0].serialize(), A, 0.0)
    assert b.next_downlink(1.0) == (None, False)
    b.receive_rtp(bytes(rtp_of(a.next_uplink(SPEECH, 0.0))[0].serialize()), A, 0.0)
    assert b.stats().packets_received == 1


def test_rtcp_report_on_timer_and_bye_on_close() -> None:
    a = session(B, 1)
    sent: list[Datagram] = []
    for k in range(round(3 * RTCP_MIN_INTERVAL / 0.02)):
        sent += a.next_uplink(SPEECH, k * 0.02)
    reports = [dg for dg in sent if dg.rtcp]
    assert 1 <= len(reports) <= 4
    assert reports[0].addr == (B[0], B[1] + 1)
    assert isinstance(RtcpPacket.parse(reports[0].data)[0], RtcpSrPacket)
    (bye,) = a.close(10.0)
    assert bye.rtcp and any(isinstance(p, RtcpByePacket) for p in RtcpPacket.parse(bye.data))


def test_sendonly_ignores_incoming_audio_and_recvonly_sends_none() -> None:
    a, b = session(B, 1), session(A, 2, direction="sendonly")
    for k in range(20):
        for dg in a.next_uplink(SPEECH, k * 0.02):
            b.receive_rtp(dg.data, A, k * 0.02)
    assert b.next_downlink(1.0) == (None, False)
    assert b.stats().packets_received == 20  # still counted for RTCP
    quiet = session(B, 3, direction="recvonly")
    assert rtp_of([dg for k in range(20) for dg in quiet.next_uplink(SPEECH, k * 0.02)]) == []


def test_digits_relay_both_ways_on_the_session_timeline() -> None:
    a, b = session(B, 1), session(A, 2)
    a.handle_dtmf([DtmfEvent(0, "7", True, 0.0)], -10.0)
    assert a.suppress
    events = []
    for k in range(10):
        if k == 5:
            a.handle_dtmf([DtmfEvent(0, "7", False, 0.1)], -10.0)
        for dg in a.next_uplink(SPEECH, k * 0.02):
            pkt = RtpPacket.parse(dg.data) if not dg.rtcp else None
            if pkt is not None and pkt.payload_type == 101:
                events.append(pkt)
            b.receive_rtp(dg.data, A, k * 0.02)
    assert not a.suppress
    audio0 = rtp_of(session(B, 1).next_uplink(SPEECH, 0.0))[0].timestamp
    assert {p.timestamp for p in events} == {(audio0 + FRAME) & 0xFFFFFFFF}  # rides one frame later
    assert events[0].marker and sum(p.payload[1] & 0x80 != 0 for p in events) == 3  # E bit x3
    frames = [b.tone_frame() for _ in range(10) if b.tones_active]
    assert len(frames) >= 5 and any(f.any() for f in frames)


def test_inband_mode_does_not_relay() -> None:
    a = session(B, 1, dtmf_mode=DtmfMode.INBAND)
    a.handle_dtmf([DtmfEvent(0, "7", True, 0.0)], -10.0)
    assert not a.suppress and not a.relay
    assert {p.payload_type for p in rtp_of(a.next_uplink(SPEECH, 0.0))} == {0}


def test_srtp_failures_are_counted_not_raised() -> None:
    k1, k2 = bytes(range(30)), bytes(range(30, 60))
    a = session(B, 1, srtp=SrtpParams(SUITE, k1, k2))
    b = session(A, 2, srtp=SrtpParams(SUITE, k2, k2))  # expects a's key, has the wrong one
    for k in range(5):
        for dg in a.next_uplink(SPEECH, k * 0.02):
            b.receive_rtp(dg.data, A, k * 0.02)
    b.receive_rtcp(b"\x81\xc9 not srtcp", A, 0.1)
    assert b.srtp_failures == 6
    assert b.next_downlink(1.0) == (None, False)


def test_fax_mode_pins_the_jitter_buffer_and_stops_relay() -> None:
    a = session(B, 1)
    a.enter_fax()
    assert a.jitter.fixed_s == pytest.approx(0.1)
    a.handle_dtmf([DtmfEvent(0, "7", True, 0.0)], -10.0)
    assert not a.suppress


def test_update_changes_direction_but_not_codec() -> None:
    a = session(B, 1)
    a.update(negotiated(B, "inactive"))
    assert rtp_of(a.next_uplink(SPEECH, 0.0)) == []
    with pytest.raises(ValueError):
        a.update(negotiated(B, codec="PCMA"))
