"""RFC 3263 §4.3 failover across a server's resolved addresses, driven with invented times (no sockets)."""

from __future__ import annotations

import random

from firmware.sip.message import Request, parse_message
from firmware.sip.registration import RegState
from firmware.sip.ua import (
    AccountConfig,
    Addr,
    CallEnded,
    RegistrationChanged,
    ServerKey,
    UaConfig,
    UserAgent,
)
from firmware.sip.uri import SipUri
from tests.sip.test_ua import MEDIA, answer, events

FIRST = ("192.0.2.1", 5060)
SECOND = ("192.0.2.2", 5070)
LOCAL = ("192.168.1.10", 5062)


def make_ua(targets: list[Addr] | None = None) -> UserAgent:
    """One account whose registrar `pbx.example.com` resolved to FIRST then SECOND."""
    config = UaConfig(
        domain="example.com",
        accounts=(AccountConfig("1", "alice", "alice-pw"),),
        registrar=SipUri(host="pbx.example.com"),
        expires=600,
        keepalive_interval=0,
    )
    resolved: dict[ServerKey, list[Addr]] = {("pbx.example.com", None): targets or [FIRST, SECOND]}
    return UserAgent(config, LOCAL, targets=resolved, rng=random.Random(3))


def sent(ua: UserAgent, method: str, now: float) -> list[tuple[Request, Addr]]:
    out = []
    for data, addr, _kind in ua.datagrams_to_send(now):
        message = parse_message(data)
        if isinstance(message, Request) and message.method == method:
            out.append((message, addr))
    return out


def run_timers(ua: UserAgent, until: float) -> float:
    """Fire every timer due up to `until`, keeping only what the last one sent; returns its time."""
    now = 0.0
    while (deadline := ua.get_timer()) is not None and deadline <= until:
        ua.datagrams_to_send(now)  # retransmissions
        now = deadline
        ua.handle_timer(now)
    return now


def register_via(ua: UserAgent, addr: Addr, now: float) -> Request:
    """Answer the one REGISTER just sent, which must have gone to `addr`, with 200."""
    ((register, to),) = sent(ua, "REGISTER", now)
    assert to == addr
    contact = f"Contact: {register.headers.lines('Contact')[0]}"
    ua.receive(answer(register, 200, "OK", extra=contact), addr, "udp", now)
    return register


def test_timeout_at_the_first_address_retries_at_the_second_as_a_new_transaction() -> None:
    ua = make_ua()
    ua.start(0.0)
    ((first, to),) = sent(ua, "REGISTER", 0.0)
    assert to == FIRST
    now = run_timers(ua, 32.0)  # Timer F (64*T1) at the first address
    ((retry, to),) = sent(ua, "REGISTER", now)
    assert to == SECOND
    assert retry.top_via.branch != first.top_via.branch
    assert (retry.call_id, retry.cseq, str(retry.uri)) == (first.call_id, first.cseq, str(first.uri))
    assert ua.registration_state("1") == (RegState.REGISTERING, None)  # no failure was reported
    contact = f"Contact: {retry.headers.lines('Contact')[0]}"
    ua.receive(answer(retry, 200, "OK", extra=contact), SECOND, "udp", now)
    assert ua.registration_state("1") == (RegState.REGISTERED, None)


def test_all_addresses_failing_fails_the_registration_with_the_last_error() -> None:
    ua = make_ua()
    ua.start(0.0)
    ua.transport_error(FIRST, 0.1, "connection refused")
    ((_, to),) = sent(ua, "REGISTER", 0.1)
    assert to == SECOND
    assert ua.registration_state("1")[0] is RegState.REGISTERING
    ua.transport_error(SECOND, 0.2, "network unreachable")
    assert sent(ua, "REGISTER", 0.2) == []
    assert events(ua)[-1] == RegistrationChanged(
        "1", RegState.FAILED, "cannot reach 192.0.2.2:5070: network unreachable"
    )


def test_503_moves_the_request_to_the_next_address() -> None:
    ua = make_ua()
    ua.start(0.0)
    ((register, to),) = sent(ua, "REGISTER", 0.0)
    assert to == FIRST
    ua.receive(answer(register, 503, "Service Unavailable"), FIRST, "udp", 0.1)
    register_via(ua, SECOND, 0.1)
    assert ua.registration_state("1") == (RegState.REGISTERED, None)
    events(ua)
    call = ua.place_call("1", "bob", 1.0, MEDIA)
    ((invite, to),) = sent(ua, "INVITE", 1.0)
    assert to == SECOND  # the address that worked is kept
    ua.receive(answer(invite, 503, "Service Unavailable"), SECOND, "udp", 1.1)
    ((retry, to),) = sent(ua, "INVITE", 1.1)
    assert to == FIRST  # the last address failed: back to the first
    assert retry.top_via.branch != invite.top_via.branch
    assert (retry.call_id, retry.cseq) == (invite.call_id, invite.cseq)
    ua.receive(answer(retry, 503, "Service Unavailable"), FIRST, "udp", 1.2)
    assert events(ua) == [CallEnded(call, "503 Service Unavailable", 503, True)]


def test_the_working_address_sticks_until_it_fails() -> None:
    ua = make_ua()
    ua.start(0.0)
    ua.transport_error(FIRST, 0.1, "connection refused")
    register_via(ua, SECOND, 0.1)
    ua.handle_timer(540.1)  # the refresh, 60 s before the 600 s grant ends
    ((refresh, to),) = sent(ua, "REGISTER", 540.1)
    assert to == SECOND
    ua.transport_error(SECOND, 540.2, "connection refused")
    ((retry, to),) = sent(ua, "REGISTER", 540.2)  # the request goes round to the first again
    assert to == FIRST and retry.cseq == refresh.cseq
    contact = f"Contact: {retry.headers.lines('Contact')[0]}"
    ua.receive(answer(retry, 200, "OK", extra=contact), FIRST, "udp", 540.3)
    ua.place_call("1", "bob", 541.0, MEDIA)
    ((_, to),) = sent(ua, "INVITE", 541.0)
    assert to == FIRST
    assert ua.registration_state("1") == (RegState.REGISTERED, None)


def test_a_single_address_fails_as_before() -> None:
    ua = make_ua([FIRST])
    ua.start(0.0)
    ua.transport_error(FIRST, 0.1, "connection refused")
    assert sent(ua, "REGISTER", 0.1) == []
    assert ua.registration_state("1") == (
        RegState.FAILED,
        "cannot reach 192.0.2.1:5060: connection refused",
    )
