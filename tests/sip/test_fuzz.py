"""Property tests: any bytes give a message that round-trips, or SipParseError; nothing else.

Bounded and derandomized so CI runs are reproducible and fast.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.sip import FramedMessage, SipParseError, StreamFramer, build_error_response, parse_message
from firmware.sip.message import FramingError

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SEEDS = [
    b"INVITE sip:bob@biloxi.example.com;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bK776asdhds;rport, SIP/2.0/TCP p.example.com\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob \\"B\\"" <sip:bob@biloxi.example.com>\r\n'
    b"f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"i: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"m: <sip:alice@pc33.atlanta.example.com;lr>;expires=60;q=0.5\r\n"
    b"Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>\r\n"
    b'WWW-Authenticate: Digest realm="a", nonce="b,c"\r\n'
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 10\r\n\r\n"
    b"v=0\r\ns=-\r\n",
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;received=192.0.2.9;rport=5070\r\n"
    b"To: <sip:bob@b.example>;tag=8321234356\r\n"
    b"From: <sip:alice@a.example>;tag=9fxced76sl\r\n"
    b"Call-ID: 3848276298220188511@a.example\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:alice@192.0.2.4>;expires=3600\r\n"
    b"Expires: 3600\r\n"
    b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
    b"l: 0\r\n\r\n",
    b"REGISTER sips:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS h.example.com:5061;branch=z9hG4bKx\r\n"
    b"To: sip:%75ser@example.com\r\nFrom: sip:user@example.com;tag=1\r\n"
    b"Call-ID: c\r\nCSeq: 2 REGISTER\r\nContact: *\r\nExpires: 0\r\nAllow: INVITE, BYE\r\n\r\n",
]

INTERESTING = [
    b"\r\n",
    b" ",
    b",",
    b";",
    b'"',
    b"<",
    b">",
    b":",
    b"%",
    b"\\",
    b"\x00",
    b"\xff",
    b"=",
    b"@",
    b"[",
]


def check(data: bytes) -> None:
    """The property: parse raises SipParseError, or the result re-serializes to a fixed point."""
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        assert 100 <= exc.status <= 699
        answer = build_error_response(exc, to_tag="fz1")
        if answer is not None:  # a stateless answer must frame cleanly and match the client transaction
            wire = answer.to_bytes()
            assert StreamFramer().feed(wire) == [FramedMessage(wire)]
            _ = (answer.top_via, answer.cseq)  # what the client matches on must be readable
        return
    wire = msg.to_bytes()
    again = parse_message(wire)
    assert again == msg
    assert again.to_bytes() == wire
    # Everything the transaction layer reads was validated by the parser, so none of it may raise.
    assert again.top_via.sent_by and again.cseq.method and again.call_id
    _ = (again.vias, again.from_tag, again.to_tag, again.max_forwards, again.expires, again.contacts)
    _ = (again.routes, again.record_routes)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate", "huge", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.sampled_from(INTERESTING))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == "duplicate":
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            data = bytearray(b"\r\n".join(lines))
        else:  # replace a digit by a huge number
            digits = [i for i, b in enumerate(data) if 0x30 <= b <= 0x39]
            if digits:
                i = draw(st.sampled_from(digits))
                data[i : i + 1] = draw(
                    st.sampled_from([b"9" * 12, b"4294967296", b"0" * 30 + b"1", b"9" * 5000])
                )
    return bytes(data)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(
    st.sampled_from(SEEDS).flatmap(lambda seed: st.binary(max_size=60).map(lambda junk: seed[:200] + junk))
)
def test_seed_prefix_plus_junk(data: bytes) -> None:
    check(data)


@FUZZ
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    check(data)


def test_seeds_are_valid() -> None:
    """Guards the fuzzers above from silently testing only the error path."""
    for seed in SEEDS:
        parse_message(seed)


FRAMABLE = [seed for seed in SEEDS if b"Content-Length" in seed or b"l: " in seed]


@FUZZ
@given(
    st.lists(st.sampled_from([*FRAMABLE, b"\r\n\r\n"]), min_size=1, max_size=5),
    st.lists(st.integers(0, 2000), max_size=8),
)
def test_framer_is_independent_of_segmentation(items: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(items)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    framer = StreamFramer()
    events = []
    for start, end in zip([0, *points], [*points, len(stream)], strict=True):
        events += framer.feed(stream[start:end])
    assert [e.data for e in events if isinstance(e, FramedMessage)] == [i for i in items if i != b"\r\n\r\n"]
    assert framer.buffered == 0


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=6))
def test_framer_on_random_bytes(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_header_bytes=512, max_body_bytes=512)
    try:
        for chunk in chunks:
            for event in framer.feed(chunk):
                if isinstance(event, FramedMessage):
                    check(event.data)
    except FramingError as exc:
        assert exc.status in (400, 413, 513)
