"""RFC 3263 server location: the pure procedure on plain DNS data, and the dnspython adapter against a
tiny DNS server on a loopback port."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from collections.abc import Iterator

import pytest

from firmware.sip.resolver import (
    DnsAnswers,
    DnsResolver,
    Located,
    NaptrRecord,
    Query,
    ResolveError,
    SrvRecord,
    Target,
    TransportName,
    locate,
    order_srv,
)
from firmware.sip.uri import SipUri, parse_uri
from tests.dnsserver import dns_server as serve_dns


def uri(text: str) -> SipUri:
    parsed = parse_uri(text)
    assert isinstance(parsed, SipUri)
    return parsed


def run(
    text: str, answers: DnsAnswers, transports: tuple[TransportName, ...] = ("udp", "tcp", "tls")
) -> list[Target]:
    located = locate(uri(text), answers, random.Random(0), transports)
    assert located.missing == []
    return located.targets


def example_answers() -> DnsAnswers:
    return DnsAnswers(
        naptr={
            "example.com": [
                NaptrRecord(50, 50, "s", "SIP+D2U", "_sip._udp.example.com"),
                NaptrRecord(90, 50, "s", "SIP+D2T", "_sip._tcp.example.com"),
                NaptrRecord(10, 50, "s", "SIPS+D2T", "_sips._tcp.example.com"),
                NaptrRecord(5, 50, "s", "X-FOO+D2X", "_foo.example.com"),
            ]
        },
        srv={
            "_sip._udp.example.com": [SrvRecord(0, 0, 5060, "udp.example.com")],
            "_sip._tcp.example.com": [SrvRecord(0, 0, 5070, "tcp.example.com")],
            "_sips._tcp.example.com": [SrvRecord(0, 0, 5061, "tls.example.com")],
        },
        a={
            "udp.example.com": ["192.0.2.1"],
            "tcp.example.com": ["192.0.2.2"],
            "tls.example.com": ["192.0.2.3"],
        },
        aaaa={"udp.example.com": ["2001:db8::1"], "tcp.example.com": [], "tls.example.com": []},
    )


def test_numeric_addresses_bypass_dns() -> None:
    assert run("sip:192.0.2.7", DnsAnswers()) == [Target("udp", "192.0.2.7", 5060)]
    assert run("sip:[2001:db8::7]:5070;transport=tcp", DnsAnswers()) == [Target("tcp", "2001:db8::7", 5070)]
    assert run("sips:192.0.2.7", DnsAnswers()) == [Target("tls", "192.0.2.7", 5061)]
    assert run("sip:pbx.example.com;maddr=192.0.2.8", DnsAnswers()) == [Target("udp", "192.0.2.8", 5060)]
    assert run("sip:pbx.example.com;maddr=[2001:db8::8]", DnsAnswers()) == [
        Target("udp", "2001:db8::8", 5060)
    ]


def test_numeric_port_means_address_records_only() -> None:
    answers = DnsAnswers()
    assert locate(uri("sip:pbx.example.com:5080"), answers, random.Random(0)) == Located(
        [Query("pbx.example.com", "A"), Query("pbx.example.com", "AAAA")], []
    )
    answers.a["pbx.example.com"] = ["192.0.2.9"]
    answers.aaaa["pbx.example.com"] = ["2001:db8::9"]
    assert run("sip:pbx.example.com:5080", answers) == [
        Target("udp", "192.0.2.9", 5080),
        Target("udp", "2001:db8::9", 5080),
    ]


def test_naptr_order_then_srv_then_addresses() -> None:
    answers = example_answers()
    assert locate(uri("sip:example.com"), DnsAnswers(), random.Random(0)).missing == [
        Query("example.com", "NAPTR")
    ]
    assert run("sip:example.com", answers) == [
        Target("tls", "192.0.2.3", 5061),
        Target("udp", "192.0.2.1", 5060),
        Target("udp", "2001:db8::1", 5060),
        Target("tcp", "192.0.2.2", 5070),
    ]


def test_naptr_restricted_to_supported_transports_and_sips() -> None:
    answers = example_answers()
    assert run("sip:example.com", answers, ("udp",)) == [
        Target("udp", "192.0.2.1", 5060),
        Target("udp", "2001:db8::1", 5060),
    ]
    assert run("sips:example.com", answers) == [Target("tls", "192.0.2.3", 5061)]


def test_missing_queries_are_asked_step_by_step() -> None:
    answers = DnsAnswers(naptr={"example.com": example_answers().naptr["example.com"]})
    located = locate(uri("sip:example.com"), answers, random.Random(0), ("udp",))
    assert located.missing == [Query("_sip._udp.example.com", "SRV")]
    answers.srv["_sip._udp.example.com"] = [SrvRecord(0, 0, 5060, "udp.example.com")]
    located = locate(uri("sip:example.com"), answers, random.Random(0), ("udp",))
    assert located.missing == [Query("udp.example.com", "A"), Query("udp.example.com", "AAAA")]


def test_no_naptr_queries_srv_for_each_supported_transport() -> None:
    answers = DnsAnswers(naptr={"example.com": []})
    located = locate(uri("sip:example.com"), answers, random.Random(0), ("udp", "tcp"))
    assert located.missing == [Query("_sip._udp.example.com", "SRV"), Query("_sip._tcp.example.com", "SRV")]
    answers.srv.update(
        {"_sip._udp.example.com": [], "_sip._tcp.example.com": [SrvRecord(0, 0, 5060, "b.example.com")]}
    )
    answers.a["b.example.com"] = ["192.0.2.20"]
    answers.aaaa["b.example.com"] = []
    assert run("sip:example.com", answers, ("udp", "tcp")) == [Target("tcp", "192.0.2.20", 5060)]


def test_no_naptr_no_srv_falls_back_to_address_records_on_default_port() -> None:
    answers = DnsAnswers(
        naptr={"example.com": []},
        srv={"_sips._tcp.example.com": []},
        a={"example.com": ["192.0.2.30"]},
        aaaa={"example.com": []},
    )
    assert run("sips:example.com", answers) == [Target("tls", "192.0.2.30", 5061)]


def test_transport_param_skips_naptr() -> None:
    answers = DnsAnswers(
        srv={"_sips._tcp.example.com": [SrvRecord(0, 0, 5061, "tls.example.com")]},
        a={"tls.example.com": ["192.0.2.3"]},
        aaaa={"tls.example.com": []},
    )
    assert run("sips:example.com;transport=tcp", answers) == [Target("tls", "192.0.2.3", 5061)]
    assert run("sip:example.com;transport=tls", answers) == [Target("tls", "192.0.2.3", 5061)]
    assert run("sip:example.com;transport=tls", answers, ("udp",)) == []


def test_srv_dot_target_means_no_service() -> None:
    answers = DnsAnswers(naptr={"example.com": []}, srv={"_sip._udp.example.com": [SrvRecord(0, 0, 0, ".")]})
    assert run("sip:example.com", answers, ("udp",)) == []


def test_srv_priority_orders_before_weight() -> None:
    records = [
        SrvRecord(20, 100, 5060, "backup.example.com"),
        SrvRecord(10, 0, 5060, "b.example.com"),
        SrvRecord(10, 60, 5060, "a.example.com"),
    ]
    for seed in range(20):
        ordered = order_srv(records, random.Random(seed))
        assert ordered[-1].target == "backup.example.com"
        assert {r.target for r in ordered[:2]} == {"a.example.com", "b.example.com"}


def test_srv_weighted_selection_matches_rfc2782_proportions() -> None:
    records = [SrvRecord(0, 10, 1, "light"), SrvRecord(0, 90, 1, "heavy"), SrvRecord(0, 0, 1, "zero")]
    rng = random.Random(42)
    firsts = Counter(order_srv(records, rng)[0].target for _ in range(5000))
    # RFC 2782: a draw in 0..100; the zero weight (placed first) wins only on 0, then 1..10, 11..100.
    assert 0.86 < firsts["heavy"] / 5000 < 0.92
    assert 0.08 < firsts["light"] / 5000 < 0.12
    assert 0.002 < firsts["zero"] / 5000 < 0.02


# -- the dnspython adapter against a local DNS server ---------------------------------------------------

ZONE: dict[tuple[str, str], list[str]] = {
    ("example.com.", "NAPTR"): [
        '10 50 "s" "SIP+D2T" "" _sip._tcp.example.com.',
        '20 50 "s" "SIP+D2U" "" _sip._udp.example.com.',
    ],
    ("_sip._tcp.example.com.", "SRV"): ["0 0 5070 pbx.example.com."],
    ("_sip._udp.example.com.", "SRV"): ["0 0 5060 pbx.example.com."],
    ("pbx.example.com.", "A"): ["192.0.2.1"],
    ("pbx.example.com.", "AAAA"): ["2001:db8::1"],
    ("noservice.example.net.", "A"): ["192.0.2.50"],
    ("v4only.example.net.", "A"): ["192.0.2.60"],
}
DROPPED = {("v4only.example.net.", "AAAA")}
"""Queries the server never answers, like a home router that drops AAAA."""


@pytest.fixture
def dns_server() -> Iterator[int]:
    """The loopback DNS server answering from ZONE."""
    with serve_dns(ZONE, DROPPED) as port:
        yield port


def test_adapter_resolves_naptr_srv_and_addresses(dns_server: int) -> None:
    resolver = DnsResolver(["127.0.0.1"], port=dns_server, timeout=2.0, rng=random.Random(0))
    targets = asyncio.run(resolver.resolve(uri("sip:example.com")))
    assert targets == [
        Target("tcp", "192.0.2.1", 5070),
        Target("tcp", "2001:db8::1", 5070),
        Target("udp", "192.0.2.1", 5060),
        Target("udp", "2001:db8::1", 5060),
    ]


def test_adapter_falls_back_through_nxdomain_to_address_records(dns_server: int) -> None:
    resolver = DnsResolver(["127.0.0.1"], port=dns_server, timeout=2.0, rng=random.Random(0))
    targets = asyncio.run(resolver.resolve(uri("sip:noservice.example.net"), ("udp",)))
    assert targets == [Target("udp", "192.0.2.50", 5060)]


def test_adapter_survives_a_dropped_aaaa_query(dns_server: int) -> None:
    resolver = DnsResolver(["127.0.0.1"], port=dns_server, timeout=0.3)
    targets = asyncio.run(resolver.resolve(uri("sip:v4only.example.net:5070;transport=tcp")))
    assert targets == [Target("tcp", "192.0.2.60", 5070)]


def test_adapter_reports_unknown_domain(dns_server: int) -> None:
    resolver = DnsResolver(["127.0.0.1"], port=dns_server, timeout=2.0)
    with pytest.raises(ResolveError, match=r"no SIP server found for sip:nowhere\.invalid"):
        asyncio.run(resolver.resolve(uri("sip:nowhere.invalid")))


def test_adapter_times_out_on_a_silent_server() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        resolver = DnsResolver(["127.0.0.1"], port=silent.getsockname()[1], timeout=0.3)
        with pytest.raises(ResolveError, match=r"DNS timeout looking up NAPTR example\.com"):
            asyncio.run(resolver.resolve(uri("sip:example.com")))
