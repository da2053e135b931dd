"""SRTP/SRTCP through firmware.media.srtp: round trips, tag sizes, and every way a packet must be refused."""

from __future__ import annotations

import base64
import struct

import pytest

from firmware.media.srtp import (
    AUTH_TAG_LENGTH,
    KEY_LENGTH,
    PROFILES,
    SRTCP_TRAILER_LENGTH,
    SrtpContext,
    SrtpError,
)
from firmware.sip.sdp import SRTP_SUITES, MediaConfig, SdpSession, parse_sdp

SUITES = sorted(SRTP_SUITES)
KEY_A = bytes(range(30))
KEY_B = bytes(range(100, 130))


def rtp(seq: int, payload: bytes = b"\xff" * 160, ssrc: int = 0x1234ABCD) -> bytes:
    """A PCMU RTP packet (RFC 3550 §5.1): V=2, PT 0."""
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


def rtcp_rr(ssrc: int = 0x1234ABCD) -> bytes:
    """An empty receiver report (RFC 3550 §6.4.2): V=2, RC=0, PT=201, length 1 word."""
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


def pair(suite: str) -> tuple[SrtpContext, SrtpContext]:
    """Two ends of one call: each sends with its own key and receives with the other's."""
    return SrtpContext(suite, KEY_A, KEY_B), SrtpContext(suite, KEY_B, KEY_A)


def test_every_sdp_suite_has_a_profile() -> None:
    assert set(PROFILES) == set(SRTP_SUITES)
    assert set(SRTP_SUITES.values()) == {KEY_LENGTH}


@pytest.mark.parametrize("suite", SUITES)
def test_rtp_round_trip_and_tag_length(suite: str) -> None:
    alice, bob = pair(suite)
    for seq in range(1000, 1005):
        packet = rtp(seq, bytes([seq & 0xFF]) * 160)
        protected = alice.protect(packet)
        assert len(protected) == len(packet) + AUTH_TAG_LENGTH[suite]
        assert protected[:12] == packet[:12]  # header stays clear (RFC 3711 §3.1)
        assert protected[12:172] != packet[12:]  # payload encrypted
        assert bob.unprotect(protected) == packet


def test_tag_lengths_are_10_and_4_bytes() -> None:
    assert AUTH_TAG_LENGTH == {"AES_CM_128_HMAC_SHA1_80": 10, "AES_CM_128_HMAC_SHA1_32": 4}


@pytest.mark.parametrize("suite", SUITES)
def test_rtcp_round_trip(suite: str) -> None:
    alice, bob = pair(suite)
    report = rtcp_rr()
    protected = alice.protect_rtcp(report)
    assert len(protected) == len(report) + SRTCP_TRAILER_LENGTH
    assert protected[len(report)] & 0x80  # E flag: encrypted (RFC 3711 §3.4)
    assert bob.unprotect_rtcp(protected) == report
    # And the other way round, on the other key.
    assert alice.unprotect_rtcp(bob.protect_rtcp(report)) == report


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("where", [0, 2, 20, -1])
def test_tampered_packet_is_rejected(suite: str, where: int) -> None:
    alice, bob = pair(suite)
    protected = bytearray(alice.protect(rtp(7)))
    protected[where] ^= 0x01
    with pytest.raises(SrtpError, match="authentication"):
        bob.unprotect(bytes(protected))


@pytest.mark.parametrize("suite", SUITES)
def test_replayed_packet_is_rejected(suite: str) -> None:
    alice, bob = pair(suite)
    first, second = alice.protect(rtp(1)), alice.protect(rtp(2))
    bob.unprotect(first)
    bob.unprotect(second)
    with pytest.raises(SrtpError, match="replay"):
        bob.unprotect(first)
    report = alice.protect_rtcp(rtcp_rr())
    bob.unprotect_rtcp(report)
    with pytest.raises(SrtpError, match="replay"):
        bob.unprotect_rtcp(report)


@pytest.mark.parametrize("suite", SUITES)
def test_wrong_key_is_rejected_and_the_context_recovers(suite: str) -> None:
    _, bob = pair(suite)
    stranger = SrtpContext(suite, bytes(30), KEY_B)
    with pytest.raises(SrtpError):
        bob.unprotect(stranger.protect(rtp(5)))
    with pytest.raises(SrtpError):
        bob.unprotect_rtcp(stranger.protect_rtcp(rtcp_rr()))
    # The failure left bob usable for the real peer's next packet.
    alice = SrtpContext(suite, KEY_A, KEY_B)
    assert bob.unprotect(alice.protect(rtp(6))) == rtp(6)


def test_suites_do_not_interoperate() -> None:
    """A suite mismatch is an authentication failure, not garbage audio."""
    sender = SrtpContext("AES_CM_128_HMAC_SHA1_80", KEY_A, KEY_B)
    receiver = SrtpContext("AES_CM_128_HMAC_SHA1_32", KEY_B, KEY_A)
    with pytest.raises(SrtpError):
        receiver.unprotect(sender.protect(rtp(9)))


@pytest.mark.parametrize("junk", [b"", b"\x80", b"\x80\x00\x00\x01", b"\x00" * 20])
def test_garbage_raises_srtp_error(junk: bytes) -> None:
    _, bob = pair("AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(SrtpError):
        bob.unprotect(junk)
    with pytest.raises(SrtpError):
        bob.unprotect_rtcp(junk)


def test_oversized_packet_raises_srtp_error() -> None:
    alice, _ = pair("AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(SrtpError):
        alice.protect(rtp(1, b"\x00" * 1500))


def test_base64_keys_are_accepted() -> None:
    a = SrtpContext("AES_CM_128_HMAC_SHA1_80", base64.b64encode(KEY_A).decode(), KEY_B)
    b = SrtpContext("AES_CM_128_HMAC_SHA1_80", KEY_B, base64.b64encode(KEY_A).decode())
    assert b.unprotect(a.protect(rtp(3))) == rtp(3)


@pytest.mark.parametrize(("suite", "key", "message"), [
    ("AES_CM_128_HMAC_SHA1_80", bytes(29), "30 bytes"),
    ("AES_CM_128_HMAC_SHA1_80", bytes(46), "30 bytes"),
    ("AES_CM_128_HMAC_SHA1_80", "not base64!", "base64"),
    ("AES_256_CM_HMAC_SHA1_80", bytes(30), "unsupported SRTP suite"),
])
def test_bad_configuration_is_a_value_error(suite: str, key: str | bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SrtpContext(suite, key, KEY_B)


@pytest.mark.parametrize("suite", SUITES)
def test_keys_from_sdp_offer_answer_work_end_to_end(suite: str) -> None:
    """Keys that travelled in a=crypto lines (RFC 4568 §9.1) give two contexts that talk both ways."""
    offerer = SdpSession(MediaConfig(srtp="require"), "192.0.2.1", 4000)
    answerer = SdpSession(MediaConfig(srtp="accept"), "192.0.2.2", 5000)
    offer = offerer.create_offer()
    # Keep only the suite under test, as a peer that supports just that one would.
    media = offer.media[0]
    media.attributes = [(k, v) for k, v in media.attributes if k != "crypto" or (v and suite in v)]
    offer = parse_sdp(offer.serialize())
    answer, theirs = answerer.create_answer(offer)
    ours = offerer.process_answer(parse_sdp(answer.serialize()))
    assert ours.srtp is not None and theirs.srtp is not None
    assert ours.srtp.suite == theirs.srtp.suite == suite
    a, b = SrtpContext.from_params(ours.srtp), SrtpContext.from_params(theirs.srtp)
    assert b.unprotect(a.protect(rtp(11))) == rtp(11)
    assert a.unprotect(b.protect(rtp(12, ssrc=0x0BADCAFE))) == rtp(12, ssrc=0x0BADCAFE)
    assert a.unprotect_rtcp(b.protect_rtcp(rtcp_rr(0x0BADCAFE))) == rtcp_rr(0x0BADCAFE)
