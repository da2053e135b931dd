"""RFC 4475 (SIP torture tests) and RFC 5118 (IPv6 torture tests), written from the RFCs' test vectors.

Each message names its RFC section and short name. Messages are written with "\\n" line ends and turned
into CRLF wire format by `wire`; `{CL}` stands for the length of the body where the RFC's Content-Length
simply matches its body (bodies here are abridged, so the figure is computed rather than copied).
"""

from __future__ import annotations

import pytest

from firmware.sip import (
    AbsoluteUri,
    Request,
    Response,
    SipParseError,
    SipUri,
    build_error_response,
    parse_message,
    parse_uri,
)

SDP = (
    "v=0\no=mhandley 29739 7272939 IN IP4 192.0.2.3\ns=-\nc=IN IP4 192.0.2.4\nt=0 0\n"
    "m=audio 49217 RTP/AVP 0 12\n"
)


def wire(text: str, body: str = "") -> bytes:
    """Head lines ("\\n"-separated) + blank line + body, all as CRLF; fills in {CL}."""
    body_bytes = body.replace("\n", "\r\n").encode()
    head = text.strip("\n").replace("{CL}", str(len(body_bytes)))
    return (head.replace("\n", "\r\n") + "\r\n\r\n").encode() + body_bytes


def request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def response(data: bytes) -> Response:
    msg = parse_message(data)
    assert isinstance(msg, Response)
    return msg


def roundtrips(msg: Request | Response) -> None:
    again = parse_message(msg.to_bytes())
    assert again == msg


# --- RFC 4475 §3.1.1 valid messages ----------------------------------------------------------------


def test_wsinv_short_tortuous_invite() -> None:
    """§3.1.1.1: folding, LWS around every separator, compact forms, escaped quotes, leading zeros."""
    data = wire(
        """
INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : {CL}
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33
""",
        SDP,
    )
    msg = request(data)
    assert msg.method == "INVITE"
    assert isinstance(msg.uri, SipUri)
    assert (msg.uri.user, msg.uri.host, msg.uri.has_param("unknownparam")) == (
        "vivekg",
        "chair-dnrc.example.com",
        True,
    )
    assert msg.to_tag == "1918181833n"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_tag == "98asjd8"
    assert msg.max_forwards == 68
    assert (msg.cseq.number, msg.cseq.method) == (9, "INVITE")
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    vias = msg.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.top_via.has_magic_cookie is False and vias[1].has_magic_cookie
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = msg.routes[0].uri
    assert isinstance(route, SipUri) and route.lr
    (contact,) = msg.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.param("newparam") == "newvalue" and contact.has_param("secondparam")
    assert contact.q == 0.33
    assert msg.body == SDP.replace("\n", "\r\n").encode()
    roundtrips(msg)


def test_intmeth_wide_range_of_valid_characters() -> None:
    """§3.1.1.2: every token character in method, URI user/password, params; quoted-pair controls."""
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    user = "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    data = wire(
        f"""
{method} sip:{user}:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:{user}@example.com>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="работающий";tag=_token~1'+`*%!-.
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/"][?}}{{
CSeq: 139122385 {method}
Max-Forwards: 255
extensionHeader-!.%*+_`'~:\ufeff大停電
Content-Length: 0
"""  # noqa: E501 - RFC 4475 lines are long on purpose
    )
    msg = request(data)
    assert msg.method == method and msg.cseq.method == method
    assert isinstance(msg.uri, SipUri)
    assert msg.uri.user == user and msg.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.param("fromParam''~+*_!.-%") == '"работающий"'
    assert msg.from_tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    roundtrips(msg)


def test_esc01_valid_percent_escaping() -> None:
    """§3.1.1.3: escapes in user parts and URI parameters compare unescaped."""
    data = wire(
        """
INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@192.168.0.2:5060;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: {CL}
""",
        SDP,
    )
    msg = request(data)
    assert isinstance(msg.uri, SipUri) and msg.uri.user == "sips:user@example.com"
    assert msg.to.uri == parse_uri("sip:user@example.com")
    assert msg.from_.uri == parse_uri("sip:I%20have%20spaces@example.net")
    contact = msg.contacts[0].uri
    assert contact == parse_uri("sip:caller@192.168.0.2:5060;lr;name=value%2541")
    assert isinstance(contact, SipUri) and contact.lr and contact.user == "caller"
    assert msg.content_type == "application/sdp" and msg.call_id.startswith("esc01.")
    roundtrips(msg)


def test_escnull_escaped_nulls() -> None:
    """§3.1.1.4: %00 in user parts is legal and must survive."""
    data = wire(
        """
REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0
"""
    )
    msg = request(data)
    to = msg.to.uri
    assert isinstance(to, SipUri) and to.user == "null-\x00-null"
    users = [c.uri.user for c in msg.contacts if isinstance(c.uri, SipUri)]
    assert users == ["\x00", "\x00\x00"]
    assert str(to) == "sip:null-%00-null@example.com"
    roundtrips(msg)


def test_esc02_percent_that_is_not_an_escape() -> None:
    """§3.1.1.5: '%' in a method, display name and header name is just a character."""
    data = wire(
        """
RE%47IST%45R sip:registrar.example.com SIP/2.0
To: "%Z%45" <sip:resource@example.com>
From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;rport;branch=z9hG4bK209asdjf
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0
"""
    )
    msg = request(data)
    assert msg.method == "RE%47IST%45R"
    assert msg.to.display_name == "%Z%45"
    assert [str(c.uri) for c in msg.contacts] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert msg.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert msg.top_via.rport_requested and msg.top_via.rport is None
    roundtrips(msg)


def test_lwsdisp_no_lws_before_laquot() -> None:
    """§3.1.1.6: `caller<sip:...>` is a valid name-addr."""
    data = wire(
        """
OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0
"""
    )
    msg = request(data)
    assert msg.from_.display_name == "caller" and msg.from_tag == "323"


def test_longreq_long_values() -> None:
    """§3.1.1.7: long tags, Call-ID, display names, header values and many Via fields."""
    long_tag = "longreq" + "x" * 1200
    long_name = "I have a user name of " + "extreme " * 80 + "proportion"
    vias = "\n".join(f"Via: SIP/2.0/TCP sip{i}.example.com;branch=z9hG4bK{'a' * 120}{i}" for i in range(34))
    data = wire(
        f"""
INVITE sip:user@example.com SIP/2.0
To: "I have a user name of {"extreme " * 10}proportion" <sip:user@example.com:6000;unknownparam1=very{"long" * 100}value>
From: sip:caller@example.net;tag={long_tag}
Call-ID: longreq.{"one" * 300}
CSeq: 3882340 INVITE
Unknown-{"LongLong" * 30}-Name: unknown-{"long" * 250}-value; unknown-{"long" * 40}-parameter-name = unknown-{"long" * 40}-parameter-value
{vias}
Max-Forwards: 70
Contact: "{long_name}" <sip:amazinglylongcallername{"a" * 200}@host5.example.net>
Content-Type: application/sdp
l: {{CL}}
""",  # noqa: E501 - RFC 4475 lines are long on purpose
        SDP,
    )
    assert len(data) > 10000
    msg = request(data)
    assert msg.from_tag == long_tag
    assert len(msg.vias) == 34 and msg.vias[-1].host == "sip33.example.com"
    assert msg.contacts[0].display_name == long_name
    assert msg.to.uri == parse_uri(f"sip:user@example.com:6000;unknownparam1=very{'long' * 100}value")
    roundtrips(msg)


def test_dblreq_extra_trailing_octets() -> None:
    """§3.1.1.8: a second request after Content-Length octets in one datagram is ignored."""
    first = wire(
        """
REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0
"""
    )
    second = wire(
        """
INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: {CL}
""",
        SDP,
    )
    msg = request(first + second)
    assert msg.method == "REGISTER" and msg.body == b""
    assert msg.contacts[0].uri == parse_uri("sip:j.user@host.example.com")


def test_semiuri_semicolons_in_user_part() -> None:
    """§3.1.1.9: `user;par=u%40example.net` is all user part; the URI has no parameters."""
    data = wire(
        """
OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0
"""
    )
    msg = request(data)
    assert isinstance(msg.uri, SipUri)
    assert (msg.uri.user, msg.uri.params) == ("user;par=u@example.net", ())
    assert len(msg.headers.get_all("Accept")) == 6
    roundtrips(msg)


def test_transports_varied_and_unknown() -> None:
    """§3.1.1.10: unknown transports in Via are legal."""
    data = wire(
        """
OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0
"""
    )
    msg = request(data)
    assert [v.transport for v in msg.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert msg.call_id == "transports.kijh4akdnaqjkwendsasfdj"


MULTIPART = (
    "--7a9cbec.3a6bf\nContent-Type: application/sdp\n\n" + SDP + "\n--7a9cbec.3a6bf\n"
    "Content-Type: application/pkcs7-signature\n\nnot-really-a-signature\n--7a9cbec.3a6bf--\n"
)


def test_mpart01_multipart_body_kept_intact() -> None:
    """§3.1.1.11: the body is opaque to the parser; Content-Type parameters are preserved."""
    data = wire(
        """
MESSAGE sip:kumiko@example.org SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport
Max-Forwards: 70
Route: <sip:127.0.0.1:5080>
Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gvYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=
Contact: <sip:fluffy@127.0.0.1:5070>
To: <sip:kumiko@example.org>
From: <sip:fluffy@example.com>;tag=2fb0dcc9
Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..
CSeq: 1 MESSAGE
Content-Transfer-Encoding: binary
Content-Type: multipart/mixed;boundary=7a9cbec.3a6bf
Content-Length: {CL}
""",  # noqa: E501 - RFC 4475 lines are long on purpose
        MULTIPART,
    )
    msg = request(data)
    assert msg.content_type == "multipart/mixed;boundary=7a9cbec.3a6bf"
    assert msg.body == MULTIPART.replace("\n", "\r\n").encode()
    assert msg.top_via.port == 5070 and msg.top_via.rport_requested
    roundtrips(msg)


def test_unreason_utf8_reason_phrase() -> None:
    """§3.1.1.12: the reason phrase is any UTF-8 text."""
    reason = "= 2**3 * 5**2 но сто девяносто девять - простое"
    data = wire(
        f"""
SIP/2.0 200 {reason}
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: {{CL}}
Content-Type: application/sdp
Contact: <sip:user@host198.example.com>
""",
        SDP,
    )
    msg = response(data)
    assert (msg.status, msg.reason) == (200, reason)
    roundtrips(msg)


def test_noreason_empty_reason_phrase() -> None:
    """§3.1.1.13: "SIP/2.0 100 " with nothing after the final SP."""
    data = wire(
        """
SIP/2.0 100 
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>
"""  # noqa: W291 - the trailing space is the point of the test
    )
    msg = response(data)
    assert (msg.status, msg.reason) == (100, "")
    roundtrips(msg)


def test_inv2543_rfc2543_syntax() -> None:
    """§3.4.1 (inv2543): no branch, no Max-Forwards, no Content-Length; still a valid request."""
    data = wire(
        """
INVITE sip:UserB@example.com SIP/2.0
Via: SIP/2.0/UDP iftgw.example.com
From: <sip:+13035551111@ift.client.example.net;user=phone>
Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>
To: sip:+16505552222@ss1.example.net;user=phone
Call-ID: inv2543.1717@ift.client.example.com
CSeq: 56 INVITE
Content-Type: application/sdp
""",
        SDP,
    )
    msg = request(data)
    assert msg.top_via.branch is None and not msg.top_via.has_magic_cookie
    assert msg.max_forwards is None
    assert msg.body == SDP.replace("\n", "\r\n").encode()  # no Content-Length: the rest of the datagram
    assert msg.to.param("user") == "phone"  # addr-spec form: the ;user=phone is a header parameter
    rr = msg.record_routes[0].uri
    assert isinstance(rr, SipUri) and rr.param("maddr") == "ss1.example.com"


def test_unksm2_unknown_schemes_in_headers() -> None:
    """§3.3.4 (unksm2): unknown schemes are fine outside the Request-URI."""
    data = wire(
        """
REGISTER sip:example.com SIP/2.0
To: isbn:2983792873
From: <http://www.example.com>;tag=3234233
Call-ID: unksm2.daksdj@hyphenated-host.example.com
CSeq: 234902 REGISTER
Max-Forwards: 70
Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw
Contact: <name:John_Smith>
l: 0
"""
    )
    msg = request(data)
    assert msg.to.uri == AbsoluteUri("isbn", "2983792873")
    assert msg.contacts[0].uri == AbsoluteUri("name", "John_Smith")


@pytest.mark.parametrize(
    ("name", "extra", "header", "values"),
    [
        ("bext01", "Require: nothingSupportsThis, nothingSupportsThisEither", "Require", 2),
        ("invut", "Content-Type: application/unknownformat", "Content-Type", 1),
        ("sdp01", "Accept: text/nobodyKnowsThis", "Accept", 1),
    ],
)
def test_application_level_cases_parse(name: str, extra: str, header: str, values: int) -> None:
    """§3.3.5 bext01, §3.3.6 invut, §3.3.15 sdp01: syntactically valid; refusals (420, 415, 488) belong
    to the UA, not the parser."""
    data = wire(
        f"""
INVITE sip:user@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.net;tag=242etr
Max-Forwards: 6
Call-ID: {name}.0ha0isndaksdj
{extra}
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw
l: 0
"""
    )
    assert len(request(data).headers.get_all(header)) == values


def _register_with(extra: str) -> Request:
    return request(
        wire(
            f"""
REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards: 70
From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe
To: sip:watson@example.com
Call-ID: cparam.8ghsdf34jas
CSeq: 2 REGISTER
{extra}
l: 0
"""
        )
    )


def test_cparam01_cparam02_contact_parameters() -> None:
    """§3.3.12 and §3.3.13: outside <> ;unknownparam is a header parameter, inside it is a URI one."""
    header_param = _register_with("Contact: sip:+19725552222@gw1.example.net;unknownparam").contacts[0]
    assert header_param.has_param("unknownparam") and isinstance(header_param.uri, SipUri)
    assert not header_param.uri.has_param("unknownparam")
    uri_param = _register_with("Contact: <sip:+19725552222@gw1.example.net;unknownparam>").contacts[0]
    assert not uri_param.has_param("unknownparam") and isinstance(uri_param.uri, SipUri)
    assert uri_param.uri.has_param("unknownparam")


def test_regescrt_escaped_header_in_bracketed_contact() -> None:
    """§3.3.14: a URI header in a <>-enclosed Contact is legal (unlike regbadct, §3.1.2.13)."""
    contact = _register_with("Contact: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>").contacts[0]
    assert isinstance(contact.uri, SipUri) and contact.uri.headers == (
        ("Route", "%3Csip:sip.example.com%3E"),
    )


def test_regaut01_unknown_authorization_scheme() -> None:
    """§3.3.7: the parser keeps the Authorization value whole; the scheme is the UA's problem."""
    msg = _register_with("Authorization: NoOneKnowsThisScheme opaque-data=here")
    assert msg.headers.get_all("Authorization") == ["NoOneKnowsThisScheme opaque-data=here"]


def test_zeromf_max_forwards_zero_is_valid() -> None:
    """§3.3.11 (zeromf): Max-Forwards 0 parses; answering 483 is the proxy's/UAS's decision."""
    data = wire(
        """
OPTIONS sip:user@example.com SIP/2.0
Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas
CSeq: 39234321 OPTIONS
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i
Max-Forwards: 0
To: <sip:user@example.com>
From: <sip:caller@example.com>;tag=3ghsd41
l: 0
"""
    )
    assert request(data).max_forwards == 0


# --- RFC 4475 §3.1.2 invalid messages --------------------------------------------------------------

BASE = """
{start}
To: sip:user@example.com
From: sip:caller@example.net;tag=134161461246
Max-Forwards: {mf}
Call-ID: torture.0ha0isndaksdjasdf3234nas
CSeq: {cseq} {method}
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw
"""


def _invalid(
    start: str, extra: str = "", *, method: str = "INVITE", body: str = "", mf: str = "7", cseq: str = "8"
) -> bytes:
    head = BASE.format(start=start, method=method, mf=mf, cseq=cseq).strip("\n") + (
        "\n" + extra.strip("\n") if extra else ""
    )
    if "Content-Length" not in extra and "l:" not in extra:
        head += "\nContent-Length: {CL}"
    return wire(head, body)


INVALID_REQUESTS = {
    # §3.1.2.1 badinv01: empty list elements and empty parameters.
    "badinv01-via": wire(
        """
INVITE sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=134161461246
Max-Forwards: 7
Call-ID: badinv01.0ha0isndaksdjasdf3234nas
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;;,;,,
Contact: "Joe" <sip:joe@example.org>;;;;
Content-Length: {CL}
Content-Type: application/sdp
""",
        SDP,
    ),
    # §3.1.2.2 clerr: Content-Length larger than the datagram's body.
    "clerr": _invalid("INVITE sip:user@example.com SIP/2.0", "Content-Length: 9999", body=SDP),
    # §3.1.2.3 ncl: negative Content-Length.
    "ncl": _invalid("INVITE sip:user@example.com SIP/2.0", "Content-Length: -999", body=SDP),
    # §3.1.2.4 scalar02: CSeq beyond 2**32-1, Max-Forwards beyond 255, Expires beyond 2**32-1.
    "scalar02-cseq": wire(
        """
REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3
To: <sip:user@example.com>
From: <sip:user@example.com>;tag=239232jh3
CSeq: 36893488147419103232 REGISTER
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32
Max-Forwards: 300
Expires: 1000000000000000000000000000000000000000
Contact: <sip:user@host129.example.com>
  ;expires=280297596632815
l: 0
"""
    ),
    "scalar02-cseq-only": _invalid(
        "OPTIONS sip:user@example.com SIP/2.0", method="OPTIONS", cseq="4294967296"
    ),
    "scalar02-max-forwards": _invalid("OPTIONS sip:user@example.com SIP/2.0", method="OPTIONS", mf="300"),
    "scalar02-expires": _invalid(
        "REGISTER sip:example.com SIP/2.0", "Expires: 4294967296", method="REGISTER"
    ),
    "scalar02-contact-expires": _invalid(
        "REGISTER sip:example.com SIP/2.0",
        "Contact: <sip:u@h.example.com>;expires=280297596632815",
        method="REGISTER",
    ),
    # §3.1.2.6 quotbal: unterminated quoted string in a display name.
    "quotbal": _invalid(
        "INVITE sip:user@example.com SIP/2.0", 'Contact: "Mr J. User <sip:j.user@192.0.2.25>'
    ),
    # §3.1.2.7 ltgtruri: Request-URI in <>.
    "ltgtruri": _invalid("INVITE <sip:user@example.com> SIP/2.0"),
    # §3.1.2.8 lwsruri: LWS inside the Request-URI.
    "lwsruri": _invalid("INVITE sip:user@example.com; lr SIP/2.0"),
    # §3.1.2.9 lwsstart: several SPs between request-line elements.
    "lwsstart": _invalid("INVITE  sip:user@example.com  SIP/2.0"),
    # §3.1.2.10 trws: trailing SPs on the request-line (we take the strict reading).
    "trws": _invalid("OPTIONS sip:remote-target@example.com SIP/2.0  ", method="OPTIONS"),
    # §3.1.2.11 escruri: escaped headers in the Request-URI.
    "escruri": _invalid("INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0"),
    # §3.1.2.12 baddate: Date not in GMT.
    "baddate": _invalid("INVITE sip:user@example.com SIP/2.0", "Date: Fri, 01 Jan 2010 16:00:00 EST"),
    # §3.1.2.13 regbadct: a URI with '?' in Contact without <>.
    "regbadct": _invalid(
        "REGISTER sip:example.com SIP/2.0",
        "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        method="REGISTER",
    ),
    # §3.1.2.14 badaspec: spaces inside <addr-spec>.
    "badaspec": _invalid(
        "OPTIONS sip:user@example.com SIP/2.0", "Contact: < sip:caller@example.net >", method="OPTIONS"
    ),
    # §3.1.2.15 baddn: non-token characters in an unquoted display name.
    "baddn": wire(
        """
OPTIONS sip:t.watson@example.org SIP/2.0
Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards:      70
From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43
To:      Watson, Thomas <sip:t.watson@example.org>
Call-ID: baddn.31415@c.example.com
CSeq:    3923239 OPTIONS
l: 0
"""
    ),
    # §3.1.2.17 mismatch01: CSeq method differs from the request method.
    "mismatch01": _invalid("OPTIONS sip:user@example.com SIP/2.0", method="INVITE"),
    # §3.1.2.18 mismatch02: unknown method with a mismatched CSeq.
    "mismatch02": _invalid("NEWMETHOD sip:user@example.com SIP/2.0", method="INVITE"),
    # §3.3.8 multi01: several values in single-value headers.
    "multi01": _invalid(
        "OPTIONS sip:user@example.com SIP/2.0",
        "Call-ID: multi01.fhn2323orihawfdoa3o4r52o3irsdf\nTo: sip:other@example.net",
        method="OPTIONS",
    ),
    # §3.3.9 mcl01: two Content-Length values leave the body's extent unknown.
    "mcl01": _invalid("OPTIONS sip:user@example.com SIP/2.0", "Content-Length: 0\nl: 4", method="OPTIONS"),
    # §3.3.1 insuf: missing Call-ID, From, To.
    "insuf": wire(
        """
INVITE sip:user@example.com SIP/2.0
CSeq: 193942 INVITE
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf
Content-Type: application/sdp
l: {CL}
""",
        SDP,
    ),
    # RFC 5118 §4.2 ipv6-bad: IPv6 host without brackets.
    "ipv6-bad": _invalid("REGISTER sip:2001:db8::10 SIP/2.0", method="REGISTER"),
    # RFC 5118 §4.10 (3 colons): not an IPv6 address per RFC 4291; we reject it.
    "ipv6-3-colons": _invalid("OPTIONS sip:user@[2001:db8:::192.0.2.1] SIP/2.0", method="OPTIONS"),
}


@pytest.mark.parametrize("name", sorted(INVALID_REQUESTS))
def test_invalid_requests_get_400(name: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(INVALID_REQUESTS[name])
    assert info.value.status == 400
    assert info.value.is_request is True


@pytest.mark.parametrize(
    ("start", "status"),
    [
        ("OPTIONS sip:t.watson@example.org SIP/7.0", 505),  # §3.1.2.16 badvers
        ("OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0", 416),  # §3.3.2 unkscm
        ("OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0", 416),  # §3.3.3 novelsc
        ("OPTIONS sip:user@example.com:5060;maddr=" + "a" * 5000 + ".example.com SIP/2.0", 414),
    ],
)
def test_specific_status_codes(start: str, status: int) -> None:
    data = _invalid(start, method="OPTIONS")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status == status
    answer = build_error_response(info.value, to_tag="srv1")
    assert answer is not None and answer.status == status
    assert answer.call_id == "torture.0ha0isndaksdjasdf3234nas"
    assert answer.top_via.branch == "z9hG4bKkdjuw" and answer.to_tag == "srv1"
    assert (answer.cseq.number, answer.cseq.method) == (8, "OPTIONS")
    assert parse_message(answer.to_bytes()) == answer


def test_malformed_request_is_answerable_statelessly() -> None:
    """RFC 3261 §8.2.6: the 400 echoes Via/From/To/Call-ID/CSeq and adds a To tag."""
    with pytest.raises(SipParseError) as info:
        parse_message(INVALID_REQUESTS["baddate"])
    answer = build_error_response(info.value, to_tag="t1")
    assert answer is not None and answer.status == 400
    assert answer.from_tag == "134161461246" and answer.to_tag == "t1"
    assert [n for n, _ in answer.headers] == ["Via", "From", "To", "Call-ID", "CSeq"]


def test_unanswerable_errors() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(INVALID_REQUESTS["insuf"])
    assert build_error_response(info.value) is None  # no From/To/Call-ID to echo
    with pytest.raises(SipParseError) as info:
        parse_message(_invalid("ACK sip:user@example.com SIP/2.0", "Date: bad", method="ACK"))
    assert build_error_response(info.value) is None  # ACK is never answered (RFC 3261 §17.1.1.3)


def test_scalarlg_and_bigcode_responses_are_rejected() -> None:
    """§3.1.2.5 scalarlg and §3.1.2.19 bigcode: malformed responses raise and are dropped."""
    scalarlg = wire(
        """
SIP/2.0 503 Service Unavailable
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=2easdjfejw
CSeq: 9292394834772304023312 OPTIONS
Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r
Retry-After: 949302838503028349304023988
Warning: 1812 overture "In Progress"
Content-Length: 0
"""
    )
    bigcode = wire(
        """
SIP/2.0 4294967301 better not break the receiver
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i
CSeq: 353494 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
"""
    )
    for data in (scalarlg, bigcode):
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert info.value.is_request is False
        assert build_error_response(info.value) is None


def test_badbranch_bare_magic_cookie() -> None:
    """§3.2.1 (badbranch): a branch that is only the cookie parses, but is no RFC 3261 transaction id,
    so matching falls back to RFC 2543 rules."""
    data = _invalid("OPTIONS sip:user@example.com SIP/2.0", method="OPTIONS").replace(
        b"branch=z9hG4bKkdjuw", b"branch=z9hG4bK"
    )
    via = request(data).top_via
    assert via.branch == "z9hG4bK" and not via.has_magic_cookie


def test_bcast_response_parses() -> None:
    """§3.3.10 (bcast): a broadcast Via is a transport-layer concern, not a syntax error."""
    data = wire(
        """
SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23
Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 0
Contact: <sip:user@host28.example.com>
"""
    )
    assert response(data).vias[1].host == "255.255.255.255"


# --- RFC 5118 IPv6 --------------------------------------------------------------------------------


def _register(ruri: str, extra: str = "") -> bytes:
    return wire(
        f"""
REGISTER {ruri} SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=81x2
Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111
Call-ID: SSG9559905523997077@hlau_4100
Max-Forwards: 70
Contact: "Caller" <sip:caller@[2001:db8::1]>
{extra}CSeq: 98176 REGISTER
Content-Length: 0
"""
    )


def test_rfc5118_ipv6_good() -> None:
    """RFC 5118 §4.1."""
    msg = request(_register("sip:[2001:db8::10]"))
    assert isinstance(msg.uri, SipUri) and (msg.uri.host, msg.uri.port) == ("2001:db8::10", None)
    assert msg.top_via.host == "2001:db8::9:1" and msg.top_via.sent_by == "[2001:db8::9:1]"
    assert msg.contacts[0].uri == parse_uri("sip:caller@[2001:DB8::1]")
    roundtrips(msg)


@pytest.mark.parametrize(
    ("ruri", "host", "port"),
    [
        ("sip:[2001:db8::10:5070]", "2001:db8::10:5070", None),  # §4.3 port-ambiguous: no port
        ("sip:[2001:db8::10]:5070", "2001:db8::10", 5070),  # §4.4 port-unambiguous
        ("sip:user@[::ffff:192.0.2.10]:19823", "::ffff:192.0.2.10", 19823),  # §4.7 IPv4-mapped
        ("sip:user@[2001:db8::192.0.2.1]", "2001:db8::192.0.2.1", None),  # §4.9 two colons
    ],
)
def test_rfc5118_ports(ruri: str, host: str, port: int | None) -> None:
    msg = request(_register(ruri))
    assert isinstance(msg.uri, SipUri) and (msg.uri.host, msg.uri.port) == (host, port)
    assert str(msg.uri) == ruri


@pytest.mark.parametrize("received", ["2001:db8::9:255", "[2001:db8::9:255]"])
def test_rfc5118_via_received_with_and_without_brackets(received: str) -> None:
    """RFC 5118 §4.5: both spellings of an IPv6 received parameter are accepted."""
    data = wire(
        f"""
BYE sip:[2001:db8::10] SIP/2.0
To: sip:user@example.com;tag=bd76ya
From: sip:user@example.com;tag=81x2
Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;received={received};rport=6050
Call-ID: SSG9559905523997077@hlau_4100
Max-Forwards: 70
CSeq: 321 BYE
Content-Length: 0
"""
    )
    via = request(data).top_via
    assert (via.host, via.port, via.received, via.rport) == ("2001:db8::9:1", 6050, "2001:db8::9:255", 6050)


def test_rfc5118_mpart_ipv6_and_v4v6_sdp() -> None:
    """RFC 5118 §4.6 and §4.8: IPv6 (and mixed v4/v6) SDP in a multipart body is carried intact."""
    sdp6 = "v=0\no=assistant 971731711378798081 0 IN IP6 2001:db8::20\ns=-\nc=IN IP6 2001:db8::20\nt=0 0\n"
    body = "--boundary1\nContent-Type: application/sdp\n\n" + sdp6 + "\n--boundary1--\n"
    data = wire(
        """
MESSAGE sip:[2001:db8::10] SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=81x2
Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111
Call-ID: SSG9559905523997077@hlau_4100
Max-Forwards: 70
CSeq: 321 MESSAGE
Content-Type: multipart/mixed;boundary=boundary1
Content-Length: {CL}
""",
        body,
    )
    msg = request(data)
    assert b"IN IP6 2001:db8::20" in msg.body and msg.body.endswith(b"--boundary1--\r\n")
