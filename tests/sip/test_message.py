"""Message model, header helpers, serializer, stateless error responses and stream framing."""

from __future__ import annotations

import pytest

from firmware.sip import (
    CrlfPing,
    CrlfPong,
    FramedMessage,
    FramingError,
    Headers,
    Request,
    Response,
    SipParseError,
    SipUri,
    StreamFramer,
    build_error_response,
    parse_message,
)
from firmware.sip.headers import (
    HeaderError,
    NameAddr,
    Via,
    canonical_name,
    parse_cseq,
    parse_name_addr,
    parse_params,
    parse_via,
    split_list,
)
from firmware.sip.message import MAX_BODY_BYTES, MAX_HEADER_BYTES

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"v: SIP/2.0/TCP proxy.example.com:5070;branch=z9hG4bK1;received=192.0.2.1\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=60, <sip:alice@192.0.2.9>;q=0.5\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE\r\n"
    b'WWW-Authenticate: Digest realm="atlanta.example.com", nonce="84a4cc6f", qop="auth,auth-int"\r\n'
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def parse_request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def test_accessors_for_the_transaction_layer() -> None:
    msg = parse_request(INVITE)
    assert msg.method == "INVITE" and msg.uri == SipUri(user="bob", host="biloxi.example.com")
    assert msg.top_via.branch == "z9hG4bK776asdhds" and msg.top_via.has_magic_cookie
    assert msg.top_via.rport_requested and msg.top_via.rport is None
    assert [v.sent_by for v in msg.vias] == ["pc33.atlanta.example.com", "proxy.example.com:5070"]
    assert msg.vias[1].received == "192.0.2.1"
    assert (msg.cseq.number, msg.cseq.method) == (314159, "INVITE")
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (msg.from_tag, msg.to_tag, msg.max_forwards) == ("1928301774", None, 70)
    assert [c.expires for c in msg.contacts] == [60, None] and msg.contacts[1].q == 0.5
    assert msg.body == b"v=0\n"


def test_headers_lookup_is_case_insensitive_and_expands_compact_forms() -> None:
    headers = parse_request(INVITE).headers
    assert headers.get("VIA") == "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport"
    assert len(headers.get_all("v")) == 2 and headers.lines("Via")[1].startswith("SIP/2.0/TCP")
    assert headers.get("i") == headers.get("call-id")
    assert headers.get_all("Allow") == ["INVITE", "ACK", "CANCEL", "BYE"]
    # Authentication headers are never split on their parameter commas.
    assert headers.get_all("www-authenticate") == [
        'Digest realm="atlanta.example.com", nonce="84a4cc6f", qop="auth,auth-int"'
    ]
    assert [name for name, _ in headers][:3] == ["Via", "v", "Max-Forwards"]  # spelling kept
    assert "content-type" in headers and "Subject" not in headers
    assert canonical_name("cseq") == "CSeq" and canonical_name("X-Custom") == "X-Custom"


def test_headers_mutation() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a"), ("To", "<sip:b@c>"), ("v", "SIP/2.0/UDP b")])
    headers.insert(0, "Via", "SIP/2.0/UDP top")
    assert headers.get("Via") == "SIP/2.0/UDP top"
    headers.set("via", "SIP/2.0/UDP only")
    assert list(headers) == [("Via", "SIP/2.0/UDP only"), ("To", "<sip:b@c>")]
    assert headers.remove("t") == 1 and len(headers) == 1
    assert Headers([("v", "x")]) == Headers([("Via", "x")]) != Headers([("Via", "y")])


def test_contact_star_is_not_split() -> None:
    headers = Headers([("Contact", "*"), ("Expires", "0")])
    assert headers.get_all("Contact") == ["*"]
    msg = Request("REGISTER", SipUri(host="example.com"), headers)
    assert msg.contacts == [NameAddr(None)] and msg.expires == 0


def test_serializer_writes_crlf_and_true_content_length() -> None:
    msg = parse_request(INVITE)
    msg.body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    wire = msg.to_bytes()
    assert b"\r\nContent-Length: 31\r\n\r\nv=0" in wire and wire.count(b"Content-Length") == 1
    assert wire.startswith(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: ")
    assert parse_message(wire) == msg and bytes(msg) == wire


def test_serializer_adds_content_length_to_built_messages() -> None:
    resp = Response(180, "Ringing", Headers([("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bKx")]))
    assert resp.to_bytes() == (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bKx\r\nContent-Length: 0\r\n\r\n"
    )


def test_leading_crlfs_are_ignored() -> None:
    """RFC 3261 §7.5."""
    assert parse_request(b"\r\n\r\n" + INVITE) == parse_request(INVITE)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (INVITE.replace(b"Max-Forwards: 70\r\n", b"X: " + b"a" * MAX_HEADER_BYTES + b"\r\n"), 513),
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: 70000") + b"x" * 70000, 413),
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: 99999"), 413),
        (INVITE.replace(b"Alice", b"Al\xffice"), 400),
        (INVITE.replace(b"\r\n\r\n", b"\r\n"), 400),
        (INVITE.replace(b"Max-Forwards", b"Max Forwards"), 400),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 7\x010"), 400),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 7\r0"), 400),
        (INVITE.replace(b"SIP/2.0\r\n", b"SIP/2.0\x00\r\n", 1), 400),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: INVITE"), 400),
        (INVITE.replace(b"rport\r\n", b"rport=x\r\n"), 400),
        (INVITE.replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com", b"Call-ID: "), 400),
        (INVITE.replace(b"INVITE sip", b"INV ITE sip"), 400),
        (INVITE.replace(b"INVITE sip", b"INV@ITE sip"), 400),
        (INVITE.replace(b"SIP/2.0\r\n", b"SIP/2\r\n", 1), 400),
    ],
)
def test_parse_errors(data: bytes, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status == status


@pytest.mark.parametrize(
    "start",
    [b"SIP/2.0 99 Too Low", b"SIP/3.0 200 OK", b"SIP/2.0 2000 OK", b"SIP/2.0 20 OK", b"HTTP/1.1 200 OK"],
)
def test_malformed_status_lines(start: bytes) -> None:
    data = start + b"\r\n" + INVITE.split(b"\r\n", 1)[1]
    with pytest.raises(SipParseError):
        parse_message(data)


def test_error_carries_headers_for_a_stateless_answer() -> None:
    data = INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 700")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.is_request and info.value.headers is not None
    answer = build_error_response(info.value, to_tag="x1")
    assert answer is not None and (answer.status, answer.reason) == (400, info.value.reason)
    assert len(answer.vias) == 2 and answer.to.display_name == "Bob" and answer.to_tag == "x1"


def test_build_error_response_for_a_parsed_request() -> None:
    msg = parse_request(INVITE)
    busy = build_error_response(msg, 486, "Busy Here", to_tag="b7")
    assert busy is not None and busy.to_tag == "b7" and busy.cseq == msg.cseq
    trying = build_error_response(msg, 100, "Trying", to_tag="b7")
    assert trying is not None and trying.to_tag is None  # RFC 3261 §8.2.6.2: no tag on 100
    ack = Request("ACK", msg.uri, msg.headers.copy())
    assert build_error_response(ack, 400) is None
    with pytest.raises(ValueError):
        build_error_response(msg)


# --- header helpers -------------------------------------------------------------------------------


def test_split_list_respects_quotes_and_brackets() -> None:
    value = '"Doe, John" <sip:j@a.example;x=1,2>;p="a,b", <sip:k@b.example>'
    assert split_list(value) == ['"Doe, John" <sip:j@a.example;x=1,2>;p="a,b"', "<sip:k@b.example>"]
    assert split_list("  ") == []
    for bad in ("a,,b", "a,", '"unterminated, x'):
        with pytest.raises(HeaderError):
            split_list(bad)


def test_params() -> None:
    assert parse_params(' ; tag = 12 ; lr ; p="x;y"') == (("tag", "12"), ("lr", None), ("p", '"x;y"'))
    for bad in ("tag=1", ";", ";a=b c", ';a="x"y', ";a b"):
        with pytest.raises(HeaderError):
            parse_params(bad)


def test_name_addr_forms_and_printing() -> None:
    na = parse_name_addr('"A \\"quoted\\" name" <sip:a@b.example>;tag=7')
    assert (na.display_name, na.tag) == ('A "quoted" name', "7")
    assert str(na) == '"A \\"quoted\\" name" <sip:a@b.example>;tag=7'
    assert parse_name_addr(str(na)) == na
    bare = parse_name_addr("sip:a@b.example;tag=7")  # addr-spec: ;tag belongs to the header
    assert bare.tag == "7" and bare.uri == SipUri(user="a", host="b.example")
    assert str(bare.with_param("tag", "8")) == "<sip:a@b.example>;tag=8"
    tokens = parse_name_addr("Alice  Smith <sip:a@b.example>")
    assert tokens.display_name == "Alice Smith"
    for bad in (
        '"x" sip:a@b.example',
        "<sip:a@b.example",
        "sip:a@b.example?x=y",
        "",
        "A,B <sip:a@b.example>",
    ):
        with pytest.raises(HeaderError):
            parse_name_addr(bad)


def test_via_forms() -> None:
    via = parse_via(
        "SIP / 2.0 / tcp [2001:db8::1]:5061 ; branch=z9hG4bKabc ; rport=5062 ; received=[2001:db8::2]"
    )
    assert (via.transport, via.host, via.port, via.rport, via.received) == (
        "TCP",
        "2001:db8::1",
        5061,
        5062,
        "2001:db8::2",
    )
    assert str(Via("UDP", "192.0.2.1", 5060, (("branch", "z9hG4bK1"), ("rport", None)))) == (
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport"
    )
    for bad in (
        "SIP/2.0 host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP h;;",
    ):
        with pytest.raises(HeaderError):
            parse_via(bad)


def test_cseq_limits() -> None:
    """RFC 3261 §20.16: a 32-bit unsigned sequence number."""
    assert parse_cseq("4294967295 BYE").number == 4294967295
    for bad in ("4294967296 BYE", "1", "x BYE", "1 BYE x"):
        with pytest.raises(HeaderError):
            parse_cseq(bad)


# --- stream framing -------------------------------------------------------------------------------


def test_framer_cuts_messages_and_keepalives() -> None:
    framer = StreamFramer()
    events = framer.feed(b"\r\n\r\n" + INVITE + INVITE[:10])
    assert events == [CrlfPing(), FramedMessage(INVITE)]
    assert framer.feed(INVITE[10:] + b"\r\n") == [FramedMessage(INVITE), CrlfPong()]
    assert framer.buffered == 0


def test_framer_byte_by_byte() -> None:
    framer = StreamFramer()
    events = [e for i in range(len(INVITE) * 2) for e in framer.feed((INVITE * 2)[i : i + 1])]
    assert events == [FramedMessage(INVITE), FramedMessage(INVITE)]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (INVITE.replace(b"Content-Length: 4\r\n", b""), 400),  # RFC 3261 §18.3: mandatory on streams
        (INVITE.replace(b"Content-Length: 4", b"l: -4"), 400),
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: " + str(MAX_BODY_BYTES + 1).encode()), 413),
        (b"INVITE " + b"a" * (MAX_HEADER_BYTES + 1), 513),
        (INVITE.replace(b"Max-Forwards: 70", b"X: " + b"a" * MAX_HEADER_BYTES), 513),
    ],
)
def test_framer_errors_are_final(data: bytes, status: int) -> None:
    framer = StreamFramer()
    with pytest.raises(FramingError) as info:
        framer.feed(data)
    assert info.value.status == status
    with pytest.raises(FramingError):
        framer.feed(INVITE)


def test_framer_error_keeps_the_messages_framed_before_it() -> None:
    bad = INVITE.replace(b"Content-Length: 4\r\n", b"")
    with pytest.raises(FramingError) as info:
        StreamFramer().feed(b"\r\n\r\n" + INVITE + bad)
    assert info.value.framed == [CrlfPing(), FramedMessage(INVITE)]


def test_framer_finds_compact_and_folded_content_length() -> None:
    data = INVITE.replace(b"Content-Length: 4", b"l:\r\n 4")
    assert StreamFramer().feed(data) == [FramedMessage(data)]
    assert parse_request(data).body == b"v=0\n"
