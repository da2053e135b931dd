"""SDP parsing/serialization and RFC 3264 offer/answer against offers shaped like real peers send."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from firmware.sip.sdp import (
    Crypto,
    Direction,
    MediaConfig,
    NotAcceptable,
    SdpError,
    SdpSession,
    parse_sdp,
)

KEY_A = base64.b64encode(bytes(range(30))).decode()
KEY_B = base64.b64encode(bytes(range(100, 130))).decode()
KEY_256 = base64.b64encode(bytes(46)).decode()


def sdp(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


BARESIP = sdp(
    "v=0",
    "o=- 1234567890 1234567890 IN IP4 10.0.0.5",
    "s=-",
    "c=IN IP4 10.0.0.5",
    "t=0 0",
    "m=audio 10000 RTP/AVP 111 9 0 8 101",
    "b=AS:128",
    "a=rtpmap:111 opus/48000/2",
    "a=fmtp:111 stereo=1;sprop-stereo=1",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=rtcp-mux",
    "a=sendrecv",
    "a=label:1",
    "a=ssrc:3344556677 cname:baresip@example",
    "a=ptime:20",
)

ASTERISK = sdp(
    "v=0",
    "o=- 1706712345 1706712347 IN IP4 203.0.113.5",
    "s=Asterisk",
    "c=IN IP4 203.0.113.5",
    "t=0 0",
    "m=audio 12028 RTP/AVP 8 0 101",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:140",
    "a=sendrecv",
)

FREESWITCH = sdp(
    "v=0",
    "o=FreeSWITCH 1706700000 1706700001 IN IP4 198.51.100.7",
    "s=FreeSWITCH",
    "c=IN IP4 198.51.100.7",
    "t=0 0",
    "m=audio 24578 RTP/AVP 102 9 0 8 103 101",
    "a=rtpmap:102 opus/48000/2",
    "a=fmtp:102 useinbandfec=1; maxplaybackrate=48000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:103 telephone-event/48000",
    "a=fmtp:103 0-16",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:30",
    "a=rtcp:24579 IN IP4 198.51.100.7",
)

FREESWITCH_SRTP = sdp(
    "v=0",
    "o=FreeSWITCH 1706700000 1706700001 IN IP4 198.51.100.7",
    "s=FreeSWITCH",
    "c=IN IP4 198.51.100.7",
    "t=0 0",
    "m=audio 24580 RTP/SAVP 0 8 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    f"a=crypto:1 AES_CM_256_HMAC_SHA1_80 inline:{KEY_256}",
    f"a=crypto:2 AES_CM_256_HMAC_SHA1_32 inline:{KEY_256}",
    f"a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}",
    f"a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B}",
    "a=ptime:20",
)

RTPENGINE_V6_WITH_VIDEO = sdp(
    "v=0",
    "o=- 1545997027 1 IN IP6 2001:db8::10",
    "s=Kamailio",
    "c=IN IP6 2001:db8::20",
    "t=0 0",
    "m=video 30002 RTP/AVP 96",
    "a=rtpmap:96 H264/90000",
    "a=fmtp:96 profile-level-id=42e01f",
    "m=audio 30000 RTP/AVP 0 101",
    "c=IN IP6 2001:db8::30",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=ice-ufrag:Fd6w",
    "a=candidate:a3K1 1 UDP 2130706431 2001:db8::30 30000 typ host",
    "a=rtcp:30001",
    "a=sendrecv",
)


def session(address: str = "192.0.2.10", port: int = 40000, **config: Any) -> SdpSession:
    counter = iter(range(1, 1_000_000))
    return SdpSession(
        MediaConfig(**config),
        address,
        port,
        session_id=424242,
        random_bytes=lambda n: bytes([next(counter) % 256]) * n,
    )


def audio_lines(text: str) -> list[str]:
    return [line for line in text.split("\r\n") if line.startswith(("m=", "a="))]


# --- answering real-world offers -------------------------------------------------------------------------


def test_answer_baresip_picks_first_g711_in_offerer_order() -> None:
    answer, neg = session().create_answer(parse_sdp(BARESIP))
    assert (neg.codec, neg.payload_type, neg.clock_rate) == ("PCMU", 0, 8000)
    assert neg.telephone_event_pt == 101
    assert (neg.remote_addr, neg.remote_port, neg.remote_rtcp) == ("10.0.0.5", 10000, ("10.0.0.5", 10001))
    assert neg.direction == "sendrecv" and neg.srtp is None and neg.ptime == 20
    assert audio_lines(answer.serialize()) == [
        "m=audio 40000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
    ]  # no rtcp-mux: we did not agree to it (RFC 5761 §5.1.1)
    assert "c=IN IP4 192.0.2.10" in answer.serialize()


def test_answer_asterisk_offer_order_or_ours() -> None:
    _, neg = session().create_answer(parse_sdp(ASTERISK))
    assert neg.codec == "PCMA" and neg.payload_type == 8
    _, own = session(prefer_own_order=True).create_answer(parse_sdp(ASTERISK))
    assert own.codec == "PCMU" and own.payload_type == 0
    _, alaw_only = session(codecs=("PCMA",), prefer_own_order=True).create_answer(parse_sdp(BARESIP))
    assert alaw_only.codec == "PCMA"


def test_answer_freeswitch_uses_8k_telephone_event_and_rtcp_attribute() -> None:
    answer, neg = session().create_answer(parse_sdp(FREESWITCH))
    assert neg.codec == "PCMU" and neg.telephone_event_pt == 101
    assert neg.ptime == 30  # what the peer wants to receive
    assert neg.remote_rtcp == ("198.51.100.7", 24579)
    assert answer.media[0].formats == ["0", "101"]


def test_answer_freeswitch_srtp_picks_first_supported_suite_and_keeps_its_tag() -> None:
    answer, neg = session().create_answer(parse_sdp(FREESWITCH_SRTP))
    assert neg.srtp is not None
    assert neg.srtp.suite == "AES_CM_128_HMAC_SHA1_80"
    assert neg.srtp.remote_key == bytes(range(30))
    (crypto_value,) = answer.media[0].cryptos()
    ours = Crypto.parse(crypto_value)
    assert (ours.tag, ours.suite, ours.key) == (3, "AES_CM_128_HMAC_SHA1_80", neg.srtp.local_key)
    assert len(ours.key) == 30 and ours.key != neg.srtp.remote_key
    assert answer.media[0].proto == "RTP/SAVP"


def test_rtpengine_ipv6_video_rejected_in_place() -> None:
    answer, neg = session(address="2001:db8::99").create_answer(parse_sdp(RTPENGINE_V6_WITH_VIDEO))
    video, audio = answer.media
    assert (video.media, video.port, video.formats) == ("video", 0, ["96"])
    assert (audio.media, audio.port) == ("audio", 40000)
    assert (neg.remote_addr, neg.remote_port, neg.remote_rtcp) == (
        "2001:db8::30",
        30000,
        ("2001:db8::30", 30001),
    )
    text = answer.serialize()
    assert "c=IN IP6 2001:db8::99" in text and "IN IP6 2001:db8::99" in text.split("\r\n")[1]


def test_second_audio_stream_rejected() -> None:
    offer = parse_sdp(ASTERISK + "m=audio 12030 RTP/AVP 0\r\n")
    answer, _ = session().create_answer(offer)
    assert [m.port for m in answer.media] == [40000, 0]


@pytest.mark.parametrize(
    ("offer_text", "config", "reason"),
    [
        (BARESIP.replace(" 111 9 0 8 101", " 111").replace("a=rtpmap:0", "a=x-0"), {}, "opus"),
        (
            FREESWITCH_SRTP.replace("a=crypto:3", "a=x-3").replace("a=crypto:4", "a=x-4"),
            {},
            "AES_CM_256_HMAC_SHA1_80 unsupported",
        ),
        (FREESWITCH_SRTP, {"srtp": "off"}, "SRTP is disabled"),
        (ASTERISK, {"srtp": "require"}, "SRTP is required"),
        (ASTERISK.replace("RTP/AVP", "RTP/SAVPF"), {}, "RTP/SAVPF"),
        (ASTERISK.replace("m=audio 12028", "m=audio 0"), {}, "disabled"),
        (
            RTPENGINE_V6_WITH_VIDEO.replace("m=audio 30000 RTP/AVP 0 101", "m=audio 30000 RTP/AVP 101"),
            {},
            "codec",
        ),
    ],
)
def test_unacceptable_offers(offer_text: str, config: dict[str, Any], reason: str) -> None:
    with pytest.raises(NotAcceptable, match=reason):
        session(**config).create_answer(parse_sdp(offer_text))


def test_only_opus_offer_is_not_acceptable() -> None:
    only_opus = sdp(
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.5",
        "s=-",
        "c=IN IP4 10.0.0.5",
        "t=0 0",
        "m=audio 10000 RTP/AVP 111",
        "a=rtpmap:111 opus/48000/2",
    )
    with pytest.raises(NotAcceptable, match=r"no common codec .*opus"):
        session().create_answer(parse_sdp(only_opus))


def test_crypto_with_mki_or_session_params_skipped_for_a_plain_one() -> None:
    offer = FREESWITCH_SRTP.replace(
        f"a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}",
        f"a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}|2^20|1:4\r\n"
        f"a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A} UNENCRYPTED_SRTCP",
    )
    answer, neg = session().create_answer(parse_sdp(offer))
    assert neg.srtp is not None and neg.srtp.suite == "AES_CM_128_HMAC_SHA1_32"
    assert Crypto.parse(answer.media[0].cryptos()[0]).tag == 4


def test_srtp_offer_with_wrong_key_length_not_acceptable() -> None:
    short = base64.b64encode(bytes(29)).decode()
    offer = sdp(
        "v=0",
        "o=- 1 1 IN IP4 10.0.0.5",
        "s=-",
        "c=IN IP4 10.0.0.5",
        "t=0 0",
        "m=audio 10000 RTP/SAVP 0",
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{short}",
    )
    with pytest.raises(NotAcceptable, match="30-byte"):
        session().create_answer(parse_sdp(offer))


# --- hold / direction -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "ours", "expected"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),
        ("sendonly", "sendonly", "inactive"),
        ("recvonly", "sendonly", "sendonly"),
        ("sendrecv", "inactive", "inactive"),
        ("sendrecv", "recvonly", "recvonly"),
    ],
)
def test_answer_direction_matrix(offered: Direction, ours: Direction, expected: Direction) -> None:
    offer = parse_sdp(ASTERISK.replace("a=sendrecv", f"a={offered}"))
    answer, neg = session().create_answer(offer, direction=ours)
    assert neg.direction == expected
    assert answer.direction_for(answer.media[0]) == expected


def test_session_level_direction_applies_to_media() -> None:
    offer = parse_sdp(ASTERISK.replace("a=sendrecv\r\n", "").replace("t=0 0", "t=0 0\r\na=sendonly"))
    _, neg = session().create_answer(offer)
    assert neg.direction == "recvonly"


def test_old_style_hold_connection_zero() -> None:
    held = ASTERISK.replace("c=IN IP4 203.0.113.5", "c=IN IP4 0.0.0.0")
    answer, neg = session().create_answer(parse_sdp(held))
    assert neg.direction == "recvonly"  # we must not send to 0.0.0.0
    assert "c=IN IP4 192.0.2.10" in answer.serialize()


# --- our offers and their answers -------------------------------------------------------------------------


def test_offer_contents_and_version_moves_only_on_change() -> None:
    s = session(codecs=("PCMA", "PCMU"))
    first = s.create_offer()
    assert audio_lines(first.serialize()) == [
        "m=audio 40000 RTP/AVP 8 0 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
    assert (first.origin.session_id, first.origin.version) == ("424242", 0)
    assert s.create_offer().origin.version == 0  # refresh with unchanged SDP (RFC 3264 §8)
    hold = s.create_offer("sendonly")
    assert hold.origin.version == 1 and hold.direction_for(hold.media[0]) == "sendonly"
    resume = s.create_offer()
    assert (resume.origin.session_id, resume.origin.version) == ("424242", 2)


def test_srtp_offer_has_both_suites_with_distinct_fresh_keys() -> None:
    offer = session(srtp="require").create_offer()
    assert offer.media[0].proto == "RTP/SAVP"
    cryptos = [Crypto.parse(v) for v in offer.media[0].cryptos()]
    assert [(c.tag, c.suite) for c in cryptos] == [
        (1, "AES_CM_128_HMAC_SHA1_80"),
        (2, "AES_CM_128_HMAC_SHA1_32"),
    ]
    assert all(len(c.key) == 30 for c in cryptos) and cryptos[0].key != cryptos[1].key


def test_process_answer_from_asterisk() -> None:
    s = session()
    s.create_offer()
    answer = parse_sdp(
        sdp(
            "v=0",
            "o=- 5 5 IN IP4 203.0.113.5",
            "s=Asterisk",
            "c=IN IP4 203.0.113.5",
            "t=0 0",
            "m=audio 18000 RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=maxptime:140",
            "a=recvonly",
        )
    )
    neg = s.process_answer(answer)
    assert (neg.codec, neg.payload_type, neg.telephone_event_pt) == ("PCMU", 0, 101)
    assert (neg.remote_addr, neg.remote_port) == ("203.0.113.5", 18000)
    assert neg.direction == "sendonly"  # they only receive
    with pytest.raises(SdpError, match="no offer outstanding"):
        s.process_answer(answer)


def test_process_srtp_answer_matches_our_tag() -> None:
    s = session(srtp="require")
    offer = s.create_offer()
    ours = {c.tag: c for c in map(Crypto.parse, offer.media[0].cryptos())}
    answer = parse_sdp(
        sdp(
            "v=0",
            "o=- 5 5 IN IP4 203.0.113.5",
            "s=-",
            "c=IN IP4 203.0.113.5",
            "t=0 0",
            "m=audio 18000 RTP/SAVP 8",
            f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B}",
        )
    )
    neg = s.process_answer(answer)
    assert neg.srtp is not None and neg.codec == "PCMA"
    assert (neg.srtp.suite, neg.srtp.local_key, neg.srtp.remote_key) == (
        "AES_CM_128_HMAC_SHA1_32",
        ours[2].key,
        bytes(range(100, 130)),
    )
    assert neg.telephone_event_pt is None


@pytest.mark.parametrize(
    ("answer_m", "error", "match"),
    [
        ("m=audio 0 RTP/AVP 0", NotAcceptable, "rejected"),
        ("m=audio 18000 RTP/AVP 9\r\na=rtpmap:9 G722/8000", NotAcceptable, "no codec we offered"),
        ("m=audio 18000 RTP/SAVP 0", NotAcceptable, "RTP/SAVP"),
        ("m=audio 18000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96", SdpError, "m-lines"),
    ],
)
def test_bad_answers(answer_m: str, error: type[Exception], match: str) -> None:
    s = session()
    s.create_offer()
    answer = parse_sdp(
        sdp("v=0", "o=- 5 5 IN IP4 203.0.113.5", "s=-", "c=IN IP4 203.0.113.5", "t=0 0", answer_m)
    )
    with pytest.raises(error, match=match):
        s.process_answer(answer)


def test_srtp_answer_without_matching_crypto() -> None:
    s = session(srtp="require")
    s.create_offer()
    answer = parse_sdp(
        sdp(
            "v=0",
            "o=- 5 5 IN IP4 203.0.113.5",
            "s=-",
            "c=IN IP4 203.0.113.5",
            "t=0 0",
            "m=audio 18000 RTP/SAVP 0",
            f"a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}",
        )
    )
    with pytest.raises(NotAcceptable, match="crypto"):
        s.process_answer(answer)


def test_offer_answer_between_two_sessions_ipv6() -> None:
    alice = session(address="2001:db8::1", port=5004, srtp="require")
    bob = session(address="2001:db8::2", port=6004)
    answer, bob_neg = bob.create_answer(parse_sdp(alice.create_offer().serialize()))
    alice_neg = alice.process_answer(parse_sdp(answer.serialize()))
    assert alice_neg.srtp is not None and bob_neg.srtp is not None
    assert alice_neg.srtp.local_key == bob_neg.srtp.remote_key
    assert bob_neg.srtp.local_key == alice_neg.srtp.remote_key
    assert (alice_neg.remote_addr, alice_neg.remote_port) == ("2001:db8::2", 6004)
    assert (bob_neg.remote_addr, bob_neg.remote_port) == ("2001:db8::1", 5004)


# --- parser -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [BARESIP, ASTERISK, FREESWITCH, FREESWITCH_SRTP, RTPENGINE_V6_WITH_VIDEO])
def test_round_trip_is_byte_exact_and_keeps_unknown_attributes(text: str) -> None:
    parsed = parse_sdp(text)
    assert parsed.serialize() == text
    assert parse_sdp(parsed.serialize().encode()) == parsed


def test_unknown_attributes_and_lines_are_preserved() -> None:
    parsed = parse_sdp(BARESIP)
    assert ("ssrc", "3344556677 cname:baresip@example") in parsed.media[0].attributes
    assert ("rtcp-mux", None) in parsed.media[0].attributes
    assert parsed.media[0].other == [("b", "AS:128")]


def test_lf_only_line_endings_accepted() -> None:
    assert parse_sdp(ASTERISK.replace("\r\n", "\n")) == parse_sdp(ASTERISK)


def test_crypto_parse_and_format() -> None:
    c = Crypto.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}|2^20|1:32")
    assert (c.tag, c.lifetime, c.mki, c.key) == (1, "2^20", "1:32", bytes(range(30)))
    assert str(c) == f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}|2^20|1:32"
    assert Crypto.parse(f"9 AES_256_CM_HMAC_SHA1_80 inline:{KEY_256}").key == bytes(46)  # unknown suite
    assert "inline" not in repr(c) and KEY_A not in repr(c) and "key=" not in repr(c)


@pytest.mark.parametrize(
    "value",
    [
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(bytes(29)).decode()}",
        f"1 AES_CM_128_HMAC_SHA1_32 inline:{base64.b64encode(bytes(31)).decode()}",
        "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64!",
        f"x AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}",
        f"1 AES_CM_128_HMAC_SHA1_80 uri:{KEY_A}",
        "1 AES_CM_128_HMAC_SHA1_80",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A};inline:{KEY_B}",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}|1|2|3",
    ],
)
def test_bad_crypto_rejected(value: str) -> None:
    with pytest.raises(SdpError):
        Crypto.parse(value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "v=0"),
        (ASTERISK.replace("v=0", "v=1"), "v=0"),
        (ASTERISK.replace("o=- 1706712345 1706712347 IN IP4 203.0.113.5\r\n", ""), "o= and s="),
        (ASTERISK.replace("s=Asterisk\r\n", ""), "o= and s="),
        (ASTERISK.replace("t=0 0\r\n", ""), "t="),
        (ASTERISK.replace("1706712347", "x"), "version"),
        (ASTERISK.replace("m=audio 12028 RTP/AVP 8 0 101", "m=audio 12028 RTP/AVP"), "at least one format"),
        (ASTERISK.replace("m=audio 12028", "m=audio port"), "port"),
        (ASTERISK.replace("m=audio 12028", "m=audio 70000"), "range"),
        (ASTERISK.replace("RTP/AVP 8 0 101", "RTP/AVP 8 PCMU"), "payload types"),
        (ASTERISK.replace("c=IN IP4 203.0.113.5", "c=IN IP4 203.0.113"), "IP address"),
        (ASTERISK.replace("c=IN IP4 203.0.113.5", "c=IN IP6 203.0.113.5"), "does not match"),
        (ASTERISK.replace("c=IN IP4 203.0.113.5", "c=IN IP4"), "c= line"),
        (ASTERISK.replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:8 PCMA"), "rtpmap"),
        (ASTERISK.replace("a=ptime:20", "a=ptime:fast"), "ptime"),
        (ASTERISK.replace("a=ptime:20", "a=rtcp:abc"), "rtcp"),
        (ASTERISK.replace("a=ptime:20", "a=rtcp"), "rtcp"),
        (ASTERISK.replace("a=ptime:20", "a=rtcp:9 IN IP4 nowhere"), "IP address"),
        (ASTERISK.replace("a=ptime:20", "a=ptime"), "without a value"),
        (ASTERISK.replace("a=ptime:20", "a=ptime:0.5"), "positive"),
        (ASTERISK.replace("a=sendrecv", "x=whatever"), "unknown or repeated line type"),
        (ASTERISK.replace("s=Asterisk", "s=Asterisk\r\nv=0"), "repeated"),
        (ASTERISK.replace("a=sendrecv", "u=http://x"), "not allowed in a media"),
        (ASTERISK.replace("a=sendrecv", "garbage"), "type=value"),
        (ASTERISK.encode().replace(b"Asterisk", b"\xff\xfe"), "UTF-8"),
    ],
)
def test_malformed_sdp(text: str | bytes, match: str) -> None:
    with pytest.raises(SdpError, match=match):
        parse_sdp(text)


def test_offer_without_connection_is_sdp_error() -> None:
    with pytest.raises(SdpError, match="no c= line"):
        session().create_answer(parse_sdp(ASTERISK.replace("c=IN IP4 203.0.113.5\r\n", "")))


@pytest.mark.parametrize(
    "config",
    [{"codecs": ()}, {"codecs": ("G722",)}, {"telephone_event_pt": 8}, {"ptime": 0}],
)
def test_media_config_validation(config: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MediaConfig(**config)  # type: ignore[arg-type]


def test_decimal_ptime_and_rtcp_with_address() -> None:
    offer = ASTERISK.replace("a=ptime:20", "a=ptime:20.0\r\na=rtcp:9000 IN IP4 203.0.113.77")
    _, neg = session().create_answer(parse_sdp(offer))
    assert neg.ptime == 20 and neg.remote_rtcp == ("203.0.113.77", 9000)


def test_answer_telephone_event_ignored_when_we_did_not_offer_it() -> None:
    s = session(telephone_event_pt=None)
    assert s.create_offer().media[0].formats == ["0", "8"]
    answer = parse_sdp(
        sdp(
            "v=0",
            "o=- 5 5 IN IP4 203.0.113.5",
            "s=-",
            "c=IN IP4 203.0.113.5",
            "t=0 0",
            "m=audio 18000 RTP/AVP 0 101",
            "a=rtpmap:101 telephone-event/8000",
        )
    )
    assert s.process_answer(answer).telephone_event_pt is None
    _, neg = session(telephone_event_pt=None).create_answer(parse_sdp(ASTERISK))
    assert neg.telephone_event_pt is None
