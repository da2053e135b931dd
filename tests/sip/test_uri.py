"""URIs: parsing, printing, escaping (RFC 3261 §19.1, §25.1), comparison (§19.1.4), tel (RFC 3966)."""

from __future__ import annotations

import pytest

from firmware.sip.uri import (
    AbsoluteUri,
    SipUri,
    TelUri,
    UriError,
    escape,
    is_ip_literal,
    parse_uri,
    unescape,
)


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sips:alice:secretword@atlanta.com;transport=tcp",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:alice@192.0.2.4:5061",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:[2001:db8::10]:5070;lr",
        "sip:proxy.example.com;lr;maddr=239.255.255.1;ttl=15",
        "tel:+1-201-555-0123",
        "tel:7042;phone-context=example.com",
        "urn:service:sos",
    ],
)
def test_round_trip(text: str) -> None:
    uri = parse_uri(text)
    assert str(uri) == text
    assert parse_uri(str(uri)) == uri


def test_fields() -> None:
    uri = parse_uri("SIPS:Bob:pw@Biloxi.COM:5061;Transport=TLS;lr?subject=hi&priority=urgent")
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips",
        "Bob",
        "pw",
        "Biloxi.COM",
        5061,
    )
    assert uri.transport == "tls" and uri.lr and uri.param("TRANSPORT") == "TLS"
    assert uri.headers == (("subject", "hi"), ("priority", "urgent"))
    assert uri.host_port == "Biloxi.COM:5061"


def test_escaping_user_part() -> None:
    """§25.1: reserved and non-ASCII octets in the user part travel as %XX; unescaping is exact."""
    uri = SipUri(user="I have spaces@home é", host="example.net")
    assert str(uri) == "sip:I%20have%20spaces%40home%20%C3%A9@example.net"
    again = parse_uri(str(uri))
    assert isinstance(again, SipUri) and again.user == "I have spaces@home é"
    assert unescape("%ff%00a") == "\udcff\x00a" and escape("\udcff\x00a") == "%FF%00a"


@pytest.mark.parametrize(
    ("a", "b"),
    [  # RFC 3261 §19.1.4 equivalent pairs
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ),
        ("tel:+1-201-555-0123", "tel:+1.201.555.0123"),
        ("tel:7042;phone-context=Example.com", "tel:7042;PHONE-CONTEXT=example.com"),
    ],
)
def test_equivalent(a: str, b: str) -> None:
    assert parse_uri(a) == parse_uri(b)
    assert hash(parse_uri(a)) == hash(parse_uri(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [  # RFC 3261 §19.1.4 non-equivalent pairs
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:bob@biloxi.com", "sips:bob@biloxi.com"),
        ("sip:bob@biloxi.com;user=phone", "sip:bob@biloxi.com"),
        ("sip:bob@biloxi.com;maddr=10.0.0.1", "sip:bob@biloxi.com"),
        ("tel:+12015550123", "tel:+12015550124"),
        ("tel:7042;phone-context=example.com", "tel:7042;phone-context=example.org"),
    ],
)
def test_not_equivalent(a: str, b: str) -> None:
    assert parse_uri(a) != parse_uri(b)


def test_ipv6_hosts_are_bracketed_on_output() -> None:
    """RFC 5118 §4.1: the host is stored bare and printed in brackets."""
    uri = parse_uri("sip:[2001:DB8::1]:5060")
    assert isinstance(uri, SipUri) and uri.host == "2001:DB8::1" and uri.port == 5060
    assert uri == parse_uri("sip:[2001:db8::1]:5060")
    assert str(SipUri(host="::1")) == "sip:[::1]"


def test_tel_uri() -> None:
    """RFC 3966 §3 and §5.1.5: a local number needs phone-context."""
    uri = parse_uri("tel:+1-201-555-0123;ext=1234")
    assert isinstance(uri, TelUri) and uri.is_global and uri.digits == "+12015550123"
    local = parse_uri("tel:*67#;phone-context=+1201")
    assert isinstance(local, TelUri) and not local.is_global and local.phone_context == "+1201"


def test_with_params_replaces() -> None:
    uri = parse_uri("sip:a@b.example;transport=udp;lr")
    assert isinstance(uri, SipUri)
    assert str(uri.with_params(transport="tcp", ob=None)) == "sip:a@b.example;lr;transport=tcp;ob"


def test_other_schemes_are_opaque() -> None:
    assert parse_uri("HTTP://www.example.com/a") == AbsoluteUri("http", "//www.example.com/a")


@pytest.mark.parametrize(
    "text",
    [
        "alice@atlanta.com",  # no scheme
        "sip:",
        "sip:@atlanta.com",  # empty user
        "sip:a%zzb@atlanta.com",  # bad escape
        "sip:a b@atlanta.com",  # space
        "sip:alice@atlanta.com:99999",
        "sip:alice@atlanta.com:",
        "sip:alice@[2001:db8::1",  # unterminated reference
        "sip:alice@[2001:db8::1]5060",
        "sip:alice@[not-v6]",
        "sip:2001:db8::1",  # RFC 5118 §4.2 ipv6-bad
        "sip:alice@300.1.1.1",
        "sip:alice@-bad-.example.com",
        "sip:alice@atlanta.com;=x",
        "sip:alice@atlanta.com;a=<b>",
        "sip:alice@atlanta.com?subject",
        "sip:al<ice@atlanta.com",
        "tel:7042",  # local number without phone-context
        "tel:+",
        "tel:+12a",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(UriError):
        parse_uri(text)


@pytest.mark.parametrize(("host", "literal"), [
    ("192.0.2.1", True), ("[2001:db8::1]", True), ("::1", True),
    ("pbx.example.com", False), ("192.0.2", False), ("", False),
])
def test_ip_literals_are_recognised_so_they_bypass_dns(host: str, literal: bool) -> None:
    assert is_ip_literal(host) is literal  # RFC 3263 §4.2
