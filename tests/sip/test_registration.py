"""RFC 3261 §10 registration driven with invented times against a scripted registrar."""

from __future__ import annotations

import random
import re

import pytest

from firmware.sip.auth import Challenge, digest_response
from firmware.sip.message import Headers, Request, Response, parse_message
from firmware.sip.registration import (
    OutgoingRequest,
    Registration,
    RegistrationChanged,
    RegistrationConfig,
    RegState,
    SendKeepAlive,
)
from firmware.sip.uri import SipUri, parse_uri

PRIMARY = SipUri(host="192.0.2.1", port=5060)
SECONDARY = SipUri(host="192.0.2.2", port=5060)


def uri(text: str) -> SipUri:
    parsed = parse_uri(text)
    assert isinstance(parsed, SipUri)
    return parsed


def config(**overrides: object) -> RegistrationConfig:
    values: dict[str, object] = {
        "aor": uri("sip:101@pbx.example.com"),
        "username": "101",
        "password": "secret",
        "local_host": "192.168.1.10",
        "local_port": 5060,
        "registrar": PRIMARY,
        "keepalive_interval": 0,
    }
    values.update(overrides)
    return RegistrationConfig(**values)  # type: ignore[arg-type]


class MaxRandom(random.Random):
    """Jitter always at the top of its range, so backoff waits are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


def auth_params(value: str) -> dict[str, str]:
    return {m[0]: m[1] or m[2] for m in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', value)}


def reply(
    request: Request, status: int, reason: str = "", extra: tuple[tuple[str, str], ...] = (), via: str = ""
) -> Response:
    """A response as the registrar would send it, through the wire format and back."""
    headers = Headers()
    top = request.headers.lines("Via")[0]
    if "rport=" in via:  # RFC 3581 §4: the server fills in the valueless rport
        top = top.replace(";rport;", ";")
    headers.add("Via", top + via)
    headers.add("From", request.headers.lines("From")[0])
    headers.add("To", request.headers.lines("To")[0] + ";tag=reg")
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", str(request.cseq))
    for name, value in extra:
        headers.add(name, value)
    parsed = parse_message(Response(status, reason, headers).to_bytes())
    assert isinstance(parsed, Response)
    return parsed


class Registrar:
    """Challenges every REGISTER without a valid digest for `password`; grants what is asked."""

    def __init__(self, password: str = "secret", nonce: str = "n1", realm: str = "pbx") -> None:
        self.password, self.nonce, self.realm = password, nonce, realm
        self.nc_seen: list[str] = []

    def valid(self, request: Request) -> bool:
        value = request.headers.get("Authorization")
        if value is None:
            return False
        p = auth_params(value)
        self.nc_seen.append(p["nc"])
        want = digest_response(
            Challenge(realm=self.realm, nonce=self.nonce, qop=("auth",)),
            username="101",
            password=self.password,
            method="REGISTER",
            uri=p["uri"],
            qop=p["qop"],
            cnonce=p["cnonce"],
            nc=int(p["nc"], 16),
        )
        return p["response"] == want and p["nonce"] == self.nonce and p["uri"] == str(request.uri)

    def answer(self, request: Request, via: str = "") -> Response:
        if not self.valid(request):
            challenge = f'Digest realm="{self.realm}", nonce="{self.nonce}", qop="auth", algorithm=MD5'
            return reply(request, 401, "Unauthorized", (("WWW-Authenticate", challenge),), via)
        contacts = tuple(("Contact", v) for v in request.headers.get_all("Contact") if "expires=0" not in v)
        return reply(request, 200, "OK", contacts, via)


def take(reg: Registration) -> OutgoingRequest:
    out = reg.next_request()
    assert out is not None
    parsed = parse_message(out.request.to_bytes())  # what we send must parse back identically
    assert parsed == out.request
    assert reg.next_request() is None
    return out


def events(reg: Registration) -> list[RegistrationChanged | SendKeepAlive]:
    out = []
    while (event := reg.next_event()) is not None:
        out.append(event)
    return out


def states(reg: Registration) -> list[tuple[RegState, str | None]]:
    return [(e.state, e.error) for e in events(reg) if isinstance(e, RegistrationChanged)]


def register(reg: Registration, registrar: Registrar, now: float) -> OutgoingRequest:
    """Drive start -> 401 -> authenticated REGISTER -> 200; returns the authenticated request."""
    reg.start(now)
    reg.handle_response(registrar.answer(take(reg).request), now)
    second = take(reg)
    reg.handle_response(registrar.answer(second.request), now)
    assert reg.state is RegState.REGISTERED
    return second


def test_full_flow_401_auth_200_refresh_with_nc_increment() -> None:
    reg = Registration(config(), rng=random.Random(1))
    registrar = Registrar()
    reg.start(0.0)
    first = take(reg)
    req = first.request
    assert first.next_hop == PRIMARY
    assert str(req.uri) == "sip:192.0.2.1:5060"
    assert req.method == "REGISTER" and req.cseq.number == 1
    assert req.top_via.rport_requested and req.top_via.has_magic_cookie
    assert req.top_via.sent_by == "192.168.1.10:5060" and req.top_via.transport == "UDP"
    assert req.from_tag == reg.local_tag and req.to_tag is None
    assert req.expires == 3600
    assert [str(c) for c in req.contacts] == ["<sip:101@192.168.1.10:5060>;expires=3600"]
    assert "Authorization" not in req.headers
    assert states(reg) == [(RegState.REGISTERING, None)]

    reg.handle_response(registrar.answer(req), 0.1)
    second = take(reg).request
    assert second.cseq.number == 2 and second.call_id == req.call_id
    assert second.top_via.branch != req.top_via.branch
    reg.handle_response(registrar.answer(second), 0.2)
    assert reg.state is RegState.REGISTERED and reg.last_error is None
    assert reg.expires_at == pytest.approx(3600.2)
    assert states(reg) == [(RegState.REGISTERED, None)]
    assert registrar.nc_seen == ["00000001"]

    assert reg.get_timer() == pytest.approx(3540.2)  # 60 s before expiry
    reg.handle_timer(3540.1)
    assert reg.next_request() is None
    reg.handle_timer(3540.2)
    refresh = take(reg).request
    assert refresh.cseq.number == 3 and refresh.call_id == req.call_id
    assert auth_params(refresh.headers.get("Authorization") or "")["nc"] == "00000002"  # pre-emptive
    reg.handle_response(registrar.answer(refresh), 3540.3)
    assert reg.state is RegState.REGISTERED
    assert reg.expires_at == pytest.approx(7140.3)
    assert registrar.nc_seen == ["00000001", "00000002"]
    assert states(reg) == []  # a refresh is not a state change


def test_call_id_and_tag_constant_cseq_increments_over_many_refreshes() -> None:
    reg = Registration(config(), rng=random.Random(2))
    registrar = Registrar()
    first = register(reg, registrar, 0.0).request
    seen = [first]
    for _ in range(5):
        deadline = reg.get_timer()
        assert deadline is not None
        reg.handle_timer(deadline)
        out = take(reg).request
        reg.handle_response(registrar.answer(out), deadline)
        seen.append(out)
    assert [r.cseq.number for r in seen] == [2, 3, 4, 5, 6, 7]
    assert {r.call_id for r in seen} == {first.call_id}
    assert {r.from_tag for r in seen} == {reg.local_tag}
    assert len({r.top_via.branch for r in seen}) == len(seen)
    assert reg.expires_at == pytest.approx(5 * 3540 + 3600)


def test_wrong_password_fails_without_loop_and_backoff_grows() -> None:
    reg = Registration(config(password="wrong"), rng=MaxRandom(3))
    registrar = Registrar(password="secret")
    now = 0.0
    waits = []
    for _ in range(7):
        if reg.state is RegState.UNREGISTERED:
            reg.start(now)
        else:
            assert reg.next_request() is None  # nothing before the backoff expires
            deadline = reg.get_timer()
            assert deadline is not None
            waits.append(deadline - now)
            now = deadline
            reg.handle_timer(now)
        challenge = take(reg).request
        assert "Authorization" not in challenge.headers  # the rejected credentials are not reused
        reg.handle_response(registrar.answer(challenge), now)
        reg.handle_response(registrar.answer(take(reg).request), now)
        assert reg.state is RegState.FAILED
        assert reg.last_error == "401: wrong password for user 101"
        assert reg.next_request() is None
    # RFC 5626 §4.5: min(1800, 30 * 2^failures), here at the top of the 50..100 % jitter.
    assert waits == [60, 120, 240, 480, 960, 1800]


def test_backoff_jitter_stays_within_half_to_full_wait() -> None:
    reg = Registration(config(), rng=random.Random(4))
    reg.start(0.0)
    reg.handle_response(reply(take(reg).request, 403, "Forbidden"), 0.0)
    assert states(reg) == [(RegState.REGISTERING, None), (RegState.FAILED, "403 Forbidden")]
    deadline = reg.get_timer()
    assert deadline is not None and 30 <= deadline <= 60


def test_423_retries_with_min_expires() -> None:
    reg = Registration(config(expires=60), rng=random.Random(5))
    reg.start(0.0)
    first = take(reg).request
    reg.handle_response(reply(first, 423, "Interval Too Brief", (("Min-Expires", "300"),)), 0.0)
    retry = take(reg).request
    assert retry.expires == 300 and retry.contacts[0].expires == 300
    assert retry.cseq.number == first.cseq.number + 1
    reg.handle_response(reply(retry, 200, "OK", (("Expires", "300"),)), 1.0)
    assert reg.expires_at == 301.0
    deadline = reg.get_timer()
    assert deadline is not None
    reg.handle_timer(deadline)
    assert take(reg).request.expires == 300  # the raised interval sticks for refreshes


def test_423_without_higher_min_expires_is_a_failure() -> None:
    reg = Registration(config(expires=600), rng=random.Random(6))
    reg.start(0.0)
    reg.handle_response(reply(take(reg).request, 423, "Interval Too Brief", (("Min-Expires", "60"),)), 0.0)
    assert reg.state is RegState.FAILED
    assert reg.last_error == "423 Interval Too Brief without a usable Min-Expires"


@pytest.mark.parametrize(
    ("extra", "expires", "refresh"),
    [
        # Our Contact's expires wins over the Expires header and over other devices' bindings.
        (
            (
                ("Contact", "<sip:101@192.168.1.99:5060>;expires=30"),
                ("Contact", "<sip:101@192.168.1.10:5060>;expires=600"),
                ("Expires", "3600"),
            ),
            600,
            540,
        ),
        ((("Expires", "100"),), 100, 50),  # short grant: refresh half-way
        ((), 3600, 3540),  # nothing said: what we asked for
    ],
)
def test_granted_expiry(extra: tuple[tuple[str, str], ...], expires: int, refresh: int) -> None:
    reg = Registration(config(), rng=random.Random(7))
    reg.start(0.0)
    reg.handle_response(reply(take(reg).request, 200, "OK", extra), 10.0)
    assert reg.expires_at == 10.0 + expires
    assert reg.get_timer() == 10.0 + refresh


def test_zero_granted_expiry_is_a_failure() -> None:
    reg = Registration(config(), rng=random.Random(8))
    reg.start(0.0)
    reg.handle_response(reply(take(reg).request, 200, "OK", (("Expires", "0"),)), 0.0)
    assert reg.state is RegState.FAILED and reg.last_error == "200 OK granted no binding"


def test_timeout_fails_over_to_secondary_and_fails_back_later() -> None:
    reg = Registration(config(secondary=SECONDARY, failback_after=600.0), rng=random.Random(9))
    reg.start(0.0)
    first = take(reg)
    assert first.next_hop == PRIMARY
    reg.handle_timeout(first.request, 32.0)
    second = take(reg)
    assert second.next_hop == SECONDARY and str(second.request.uri) == "sip:192.0.2.2:5060"
    assert second.request.call_id == first.request.call_id
    assert second.request.cseq.number == 2
    assert states(reg) == [
        (RegState.REGISTERING, None),
        (RegState.REGISTERING, "timeout contacting 192.0.2.1:5060"),
    ]
    granted = (("Expires", "300"),)  # refresh every 240 s
    reg.handle_response(reply(second.request, 200, "OK", granted), 32.5)
    assert reg.state is RegState.REGISTERED and reg.registrar == SECONDARY
    changed = [e for e in events(reg) if isinstance(e, RegistrationChanged)]
    assert [(e.state, e.registrar) for e in changed] == [(RegState.REGISTERED, SECONDARY)]

    for now in (272.5, 512.5):  # refreshes before failback_after stay on the secondary
        assert reg.get_timer() == now
        reg.handle_timer(now)
        refresh = take(reg)
        assert refresh.next_hop == SECONDARY
        reg.handle_response(reply(refresh.request, 200, "OK", granted), now)
    reg.handle_timer(752.5)  # the first refresh after failback_after tries the primary again
    back = take(reg)
    assert back.next_hop == PRIMARY
    reg.handle_response(reply(back.request, 200, "OK"), 753.0)
    assert reg.registrar == PRIMARY and reg.state is RegState.REGISTERED


def test_failback_attempt_that_times_out_returns_to_secondary_while_still_registered() -> None:
    reg = Registration(config(secondary=SECONDARY, failback_after=0.0), rng=random.Random(10))
    reg.start(0.0)
    reg.handle_timeout(take(reg).request, 32.0)
    reg.handle_response(reply(take(reg).request, 200, "OK"), 32.0)
    reg.handle_timer(3572.0)
    primary = take(reg)
    assert primary.next_hop == PRIMARY
    reg.handle_timeout(primary.request, 3604.0)
    assert take(reg).next_hop == SECONDARY
    assert reg.state is RegState.REGISTERED  # the secondary binding is still valid until 3632


def test_503_fails_over_and_both_failing_backs_off_then_starts_from_primary() -> None:
    reg = Registration(config(secondary=SECONDARY), rng=MaxRandom(11))
    reg.start(0.0)
    reg.handle_response(reply(take(reg).request, 503, "Service Unavailable"), 0.0)
    on_secondary = take(reg)
    assert on_secondary.next_hop == SECONDARY
    reg.handle_timeout(on_secondary.request, 32.0)
    assert reg.state is RegState.FAILED
    assert reg.last_error == "timeout contacting 192.0.2.2:5060"
    assert reg.next_request() is None
    assert reg.get_timer() == 32.0 + 60.0
    reg.handle_timer(92.0)
    assert take(reg).next_hop == PRIMARY


def test_4xx_does_not_fail_over() -> None:
    reg = Registration(config(secondary=SECONDARY), rng=random.Random(12))
    reg.start(0.0)
    reg.handle_response(reply(take(reg).request, 404, "Not Found"), 0.0)
    assert reg.state is RegState.FAILED and reg.next_request() is None


def test_stop_unregisters_with_expires_zero() -> None:
    reg = Registration(config(), rng=random.Random(13))
    registrar = Registrar()
    last = register(reg, registrar, 0.0).request
    events(reg)
    reg.stop(100.0)
    out = take(reg).request
    assert out.expires == 0
    assert [str(c) for c in out.contacts] == ["<sip:101@192.168.1.10:5060>;expires=0"]
    assert out.cseq.number == last.cseq.number + 1 and out.call_id == last.call_id
    assert auth_params(out.headers.get("Authorization") or "")["nc"] == "00000002"
    assert reg.state is RegState.UNREGISTERING and reg.get_timer() is None
    reg.handle_response(reply(out, 200, "OK"), 100.1)
    assert reg.state is RegState.UNREGISTERED and reg.expires_at is None
    assert states(reg) == [(RegState.UNREGISTERING, None), (RegState.UNREGISTERED, None)]
    assert reg.get_timer() is None


def test_unregister_answers_a_challenge() -> None:
    reg = Registration(config(), rng=random.Random(22))
    registrar = Registrar()
    register(reg, registrar, 0.0)
    registrar.nonce = "n2"  # the registrar forgot our nonce: the pre-emptive answer is rejected
    reg.stop(10.0)
    out = take(reg).request
    reg.handle_response(registrar.answer(out), 10.0)
    assert reg.state is RegState.UNREGISTERING
    retry = take(reg).request
    assert retry.expires == 0 and auth_params(retry.headers.get("Authorization") or "")["nonce"] == "n2"
    reg.handle_response(registrar.answer(retry), 10.1)
    assert reg.state is RegState.UNREGISTERED and reg.last_error is None


def test_stop_without_binding_sends_nothing() -> None:
    reg = Registration(config(), rng=random.Random(14))
    reg.start(0.0)
    reg.handle_response(reply(take(reg).request, 403, "Forbidden"), 0.0)
    reg.stop(1.0)
    assert reg.next_request() is None
    assert reg.state is RegState.UNREGISTERED and reg.get_timer() is None


def test_stale_and_provisional_responses_are_ignored() -> None:
    reg = Registration(config(), rng=random.Random(15))
    reg.start(0.0)
    first = take(reg).request
    reg.handle_response(reply(first, 423, "Interval Too Brief", (("Min-Expires", "7200"),)), 0.0)
    retry = take(reg).request
    reg.handle_response(reply(first, 200, "OK"), 0.5)  # late answer to the superseded request
    reg.handle_response(reply(retry, 100, "Trying"), 0.5)
    assert reg.state is RegState.REGISTERING
    reg.handle_timeout(first, 32.0)
    assert reg.state is RegState.REGISTERING and reg.next_request() is None
    reg.handle_response(reply(retry, 200, "OK"), 1.0)
    assert reg.state is RegState.REGISTERED


def test_rport_reveals_nat_address_and_contact_is_corrected() -> None:
    reg = Registration(config(), rng=random.Random(16))
    registrar = Registrar()
    nat = ";received=203.0.113.5;rport=40000"
    reg.start(0.0)
    reg.handle_response(registrar.answer(take(reg).request, nat), 0.0)
    authed = take(reg).request
    reg.handle_response(registrar.answer(authed, nat), 0.1)
    assert reg.state is RegState.REGISTERING  # the private Contact is unreachable: not done yet
    fixed = take(reg).request
    assert [str(c) for c in fixed.contacts] == [
        "<sip:101@203.0.113.5:40000>;expires=3600",
        "<sip:101@192.168.1.10:5060>;expires=0",  # the unreachable binding goes away
    ]
    assert fixed.top_via.sent_by == "192.168.1.10:5060"
    reg.handle_response(registrar.answer(fixed, nat), 0.2)
    assert reg.state is RegState.REGISTERED
    assert str(reg.contact) == "sip:101@203.0.113.5:40000"
    assert reg.next_request() is None  # no further rewrite: the Contact now matches
    reg.handle_timer(3540.2)
    refresh = take(reg).request
    assert [str(c) for c in refresh.contacts] == ["<sip:101@203.0.113.5:40000>;expires=3600"]


def test_nat_rewrite_happens_once_per_attempt() -> None:
    reg = Registration(config(), rng=random.Random(25))
    reg.start(0.0)
    reg.handle_response(reply(take(reg).request, 200, "OK", via=";received=203.0.113.5;rport=40000"), 0.0)
    fixed = take(reg).request
    reg.handle_response(reply(fixed, 200, "OK", via=";received=203.0.113.5;rport=40001"), 0.1)
    assert reg.state is RegState.REGISTERED and reg.next_request() is None
    assert str(reg.contact) == "sip:101@203.0.113.5:40000"


def test_rport_matching_our_address_changes_nothing() -> None:
    reg = Registration(config(), rng=random.Random(17))
    reg.start(0.0)
    reg.handle_response(reply(take(reg).request, 200, "OK", via=";rport=5060"), 0.0)
    assert reg.state is RegState.REGISTERED and reg.next_request() is None


def test_outbound_proxy_route_and_next_hop() -> None:
    proxy = SipUri(host="proxy.example.com")
    reg = Registration(config(outbound_proxy=proxy, transport="tcp"), rng=random.Random(18))
    reg.start(0.0)
    out = take(reg)
    assert out.next_hop == proxy
    assert [str(r) for r in out.request.routes] == ["<sip:proxy.example.com;lr>"]
    assert out.request.top_via.transport == "TCP"
    assert str(out.request.contacts[0].uri) == "sip:101@192.168.1.10:5060;transport=tcp"


def test_registrar_defaults_to_aor_domain() -> None:
    reg = Registration(config(registrar=None), rng=random.Random(19))
    reg.start(0.0)
    out = take(reg)
    assert str(out.request.uri) == "sip:pbx.example.com" and out.next_hop == out.request.uri


@pytest.mark.parametrize(("transport", "low", "high"), [("udp", 20.0, 25.0), ("tcp", 96.0, 120.0)])
def test_crlf_keepalive_schedule(transport: str, low: float, high: float) -> None:
    reg = Registration(config(transport=transport, keepalive_interval=None), rng=random.Random(20))
    reg.start(0.0)
    reg.handle_response(reply(take(reg).request, 200, "OK"), 0.0)
    events(reg)
    times = []
    now = 0.0
    for _ in range(20):
        deadline = reg.get_timer()
        assert deadline is not None
        times.append(deadline - now)
        now = deadline
        reg.handle_timer(now)
        assert events(reg) == [SendKeepAlive(b"\r\n\r\n", PRIMARY)]
    assert all(low <= t <= high for t in times)
    assert len(set(times)) > 1  # jittered, not lockstep
    reg.stop(now)
    assert reg.get_timer() is None


def test_options_keepalive_timeout_re_registers() -> None:
    reg = Registration(config(keepalive_interval=30.0, udp_keepalive="options"), rng=MaxRandom(21))
    reg.start(0.0)
    reg.handle_response(reply(take(reg).request, 200, "OK"), 0.0)
    reg.handle_timer(30.0)
    ping = take(reg).request
    assert ping.method == "OPTIONS" and ping.call_id != reg.call_id
    reg.handle_response(reply(ping, 404, "Not Found"), 30.1)  # any answer: the path is alive
    assert reg.state is RegState.REGISTERED and reg.next_request() is None
    reg.handle_timer(60.0)
    ping = take(reg).request
    reg.handle_timeout(ping, 92.0)
    refresh = take(reg).request
    assert refresh.method == "REGISTER" and refresh.call_id == reg.call_id
    assert refresh.cseq.number == 2


def test_retry_after_delays_the_retry_beyond_the_backoff() -> None:
    reg = Registration(config(), rng=MaxRandom(23))
    reg.start(0.0)
    busy = (("Retry-After", "600 (maintenance);duration=30"),)
    reg.handle_response(reply(take(reg).request, 503, "Service Unavailable", busy), 0.0)
    assert reg.state is RegState.FAILED and reg.get_timer() == 600.0
    reg.handle_timer(600.0)
    reg.handle_response(reply(take(reg).request, 503, "Service Unavailable", (("Retry-After", "5"),)), 600.0)
    assert reg.get_timer() == 600.0 + 120.0  # the backoff is longer than Retry-After here


def test_flow_failure_re_registers_at_once_only_when_registered() -> None:
    reg = Registration(config(transport="tcp", keepalive_interval=None), rng=random.Random(24))
    reg.handle_flow_failure(0.0)
    assert reg.next_request() is None
    reg.start(0.0)
    first = take(reg).request
    reg.handle_flow_failure(0.0)
    assert reg.next_request() is None  # the pending REGISTER already goes over a new flow
    reg.handle_response(reply(first, 200, "OK"), 0.0)
    reg.handle_flow_failure(50.0)
    again = take(reg).request
    assert again.cseq.number == first.cseq.number + 1 and again.call_id == first.call_id
    assert reg.state is RegState.REGISTERED
    assert reg.get_timer() is None  # no keep-alive on the dead flow while the REGISTER is out
    reg.handle_response(reply(again, 200, "OK"), 50.5)
    deadline = reg.get_timer()
    assert deadline is not None and 50.5 + 96 <= deadline <= 50.5 + 120


def test_proxy_and_registrar_challenges_are_both_answered() -> None:
    proxy = SipUri(host="proxy.example.com")
    reg = Registration(config(outbound_proxy=proxy), rng=random.Random(26))
    registrar = Registrar()
    reg.start(0.0)
    reg.handle_response(registrar.answer(take(reg).request), 0.0)
    with_www = take(reg).request
    proxy_challenge = (("Proxy-Authenticate", 'Digest realm="edge", nonce="p1", qop="auth"'),)
    reg.handle_response(reply(with_www, 407, "Proxy Authentication Required", proxy_challenge), 0.0)
    both = take(reg).request
    assert auth_params(both.headers.get("Proxy-Authorization") or "")["realm"] == "edge"
    assert both.headers.lines("Authorization") == with_www.headers.lines("Authorization")
    reg.handle_response(registrar.answer(both), 0.1)
    assert reg.state is RegState.REGISTERED
