"""The ghost-call defence: only the proxy may reach our users, refusals are rate limited."""

from __future__ import annotations

import logging

import pytest

from firmware.sip.message import Request, parse_message
from firmware.sip.policy import Action, Decision, PolicyConfig, RequestPolicy

PROXY = "192.0.2.1"


def request(method: str = "INVITE", ruri: str = "sip:alice@192.168.1.10:5060") -> Request:
    text = (
        f"{method} {ruri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bKscan\r\n"
        "From: <sip:100@203.0.113.9>;tag=1\r\nTo: <sip:alice@192.168.1.10>\r\n"
        f"Call-ID: scan-1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def policy(**config: object) -> RequestPolicy:
    return RequestPolicy([PROXY], ["alice", "bob"], PolicyConfig(**config))  # type: ignore[arg-type]


def test_accepts_proxy_for_our_user() -> None:
    assert policy().decide(request(), (PROXY, 5060), 0.0).action is Action.ACCEPT


def test_refuses_other_sources_with_403_by_default() -> None:
    decision = policy().decide(request(), ("203.0.113.9", 5060), 0.0)
    assert decision == Decision(Action.REPLY, 403, "Forbidden")


def test_refuses_unknown_user_even_from_proxy() -> None:
    p = policy()
    assert p.decide(request(ruri="sip:mallory@192.168.1.10"), (PROXY, 5060), 0.0).action is Action.REPLY
    assert p.decide(request(ruri="sip:192.168.1.10"), (PROXY, 5060), 0.0).action is Action.REPLY
    assert p.decide(request(ruri="tel:+15551234"), (PROXY, 5060), 0.0).action is Action.REPLY
    assert p.decide(request(ruri="sip:Alice@192.168.1.10"), (PROXY, 5060), 0.0).action is Action.REPLY


def test_drop_mode_answers_nothing() -> None:
    p = policy(reject=Decision(Action.DROP))
    assert p.decide(request(), ("203.0.113.9", 5060), 0.0).action is Action.DROP
    assert p.refused == 1


def test_opt_out_accepts_any_source_but_only_our_users() -> None:
    p = policy(trust_any_source=True)
    assert p.decide(request(), ("203.0.113.9", 5060), 0.0).action is Action.ACCEPT
    assert p.decide(request(ruri="sip:root@x"), ("203.0.113.9", 5060), 0.0).action is Action.REPLY


def test_ack_is_never_answered() -> None:
    assert policy().decide(request("ACK"), ("203.0.113.9", 5060), 0.0).action is Action.DROP


def test_ipv6_sources_compare_normalized() -> None:
    p = RequestPolicy(["2001:DB8::0001"], ["alice"])
    assert p.decide(request(), ("2001:db8::1", 5060), 0.0).action is Action.ACCEPT


def test_flood_is_rate_limited_per_source(caplog: pytest.LogCaptureFixture) -> None:
    p = policy(burst=3, rate=1.0)
    with caplog.at_level(logging.WARNING, logger="firmware.sip.policy"):
        actions = [p.decide(request(), ("203.0.113.9", 5060), 0.0).action for _ in range(100)]
    assert actions.count(Action.REPLY) == 3 and actions.count(Action.DROP) == 97
    assert len(caplog.records) == 3 and "203.0.113.9" in caplog.records[0].getMessage()
    # Another source has its own bucket; the first one refills at `rate` per second.
    assert p.decide(request(), ("198.51.100.7", 5060), 0.0).action is Action.REPLY
    assert p.decide(request(), ("203.0.113.9", 5060), 0.5).action is Action.DROP
    assert p.decide(request(), ("203.0.113.9", 5060), 1.0).action is Action.REPLY
    assert p.refused == 103


def test_bucket_table_is_bounded() -> None:
    p = policy(max_sources=10)
    for i in range(1000):
        p.decide(request(), (f"10.0.{i // 256}.{i % 256}", 5060), 0.0)
    assert len(p._buckets) == 10


def test_allowed_sources_can_be_updated() -> None:
    p = policy()
    p.set_allowed_sources(["198.51.100.7"])
    assert p.decide(request(), ("198.51.100.7", 5060), 0.0).action is Action.ACCEPT
    assert p.decide(request(), (PROXY, 5060), 0.0).action is Action.REPLY
