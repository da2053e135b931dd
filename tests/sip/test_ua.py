"""The user agent core driven with invented times against a scripted proxy (no sockets)."""

from __future__ import annotations

import random
import re

import pytest

from firmware.sip.message import Request, Response, parse_message
from firmware.sip.registration import RegState
from firmware.sip.sdp import MediaConfig, SdpSession, parse_sdp
from firmware.sip.ua import (
    AccountConfig,
    CallAnswered,
    CallEnded,
    CallError,
    CallHeld,
    CallProgress,
    CallResumed,
    Event,
    IncomingCall,
    InfoReceived,
    MessageWaiting,
    RegistrationChanged,
    UaConfig,
    UserAgent,
    messages_waiting,
)
from firmware.sip.uri import SipUri

PROXY = ("192.0.2.1", 5060)
LOCAL = ("192.168.1.10", 5062)
MEDIA = ("192.168.1.10", 40000)


def make_ua(**overrides: object) -> UserAgent:
    values: dict[str, object] = {
        "domain": "pbx.example.com",
        "accounts": (
            AccountConfig("1", "alice", "alice-pw", display_name="Alice"),
            AccountConfig("2", "bob", "bob-pw", auth_user="auth-bob"),
        ),
        "registrar": SipUri(host=PROXY[0], port=PROXY[1]),
        "expires": 600,
        "keepalive_interval": 0,
    }
    values.update(overrides)
    return UserAgent(UaConfig(**values), LOCAL, rng=random.Random(7))  # type: ignore[arg-type]


def sent(ua: UserAgent, now: float = 0.0) -> list[Request | Response]:
    out = []
    for data, _addr, kind in ua.datagrams_to_send(now):
        assert kind == "udp"
        out.append(parse_message(data))
    return out


def requests(ua: UserAgent, method: str, now: float = 0.0) -> list[Request]:
    return [m for m in sent(ua, now) if isinstance(m, Request) and m.method == method]


def events(ua: UserAgent) -> list[Event]:
    out = []
    while (event := ua.next_event()) is not None:
        out.append(event)
    return out


def answer(
    request: Request,
    status: int,
    reason: str = "",
    *,
    to_tag: str | None = "peer",
    extra: str = "",
    body: bytes = b"",
) -> bytes:
    """A response as the proxy relays it: Via, From, To, Call-ID and CSeq echoed."""
    lines = [f"SIP/2.0 {status} {reason or 'Reason'}"]
    lines += [f"Via: {v}" for v in request.headers.lines("Via")]
    to = request.headers.lines("To")[0]
    if to_tag is not None and request.to_tag is None:
        to += f";tag={to_tag}"
    lines += [f"From: {request.headers.lines('From')[0]}", f"To: {to}"]
    lines += [f"Call-ID: {request.call_id}", f"CSeq: {request.headers.lines('CSeq')[0]}"]
    if extra:
        lines += extra.split("\n")
    if body:
        lines.append("Content-Type: application/sdp")
    lines += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def peer_sdp(direction: str = "sendrecv", port: int = 30000) -> tuple[SdpSession, bytes]:
    session = SdpSession(MediaConfig(), "192.0.2.50", port, session_id=1)
    return session, session.create_offer(direction).serialize().encode()  # type: ignore[arg-type]


def challenge(status: int = 407, nonce: str = "n1") -> str:
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    return f'{name}: Digest realm="pbx.example.com", nonce="{nonce}"'


def register_all(ua: UserAgent, now: float = 0.0) -> None:
    ua.start(now)
    for reg in requests(ua, "REGISTER", now):
        contact = f"Contact: {reg.headers.lines('Contact')[0]}"
        ua.receive(
            answer(reg, 200, "OK", extra=contact),
            PROXY,
            "udp",
            now,
        )
    events(ua)


# -- registration ----------------------------------------------------------------------------------


def test_registers_every_account_with_digest_and_refreshes() -> None:
    ua = make_ua()
    ua.start(0.0)
    regs = requests(ua, "REGISTER")
    assert [r.from_.uri.user for r in regs] == ["alice", "bob"]  # type: ignore[union-attr]
    via = regs[0].top_via
    assert (via.host, via.port, via.rport_requested) == ("192.168.1.10", 5062, True)
    assert str(regs[0].contacts[0].uri) == "sip:alice@192.168.1.10:5062"
    for reg in regs:
        ua.receive(answer(reg, 401, "Unauthorized", extra=challenge(401)), PROXY, "udp", 0.1)
    retried = requests(ua, "REGISTER", 0.1)
    assert 'username="auth-bob"' in retried[1].headers.lines("Authorization")[0]
    for reg in retried:
        ua.receive(answer(reg, 200, "OK", extra="Expires: 600"), PROXY, "udp", 0.2)
    assert [
        e for e in events(ua) if isinstance(e, RegistrationChanged) and e.state is RegState.REGISTERED
    ] == [
        RegistrationChanged("1", RegState.REGISTERED, None),
        RegistrationChanged("2", RegState.REGISTERED, None),
    ]
    assert ua.registration_state("1") == (RegState.REGISTERED, None)
    ua.handle_timer(10.0)  # timer K absorbs response retransmissions for 5 s, then only the refresh is left
    timer = ua.get_timer()
    assert timer is not None and 500 < timer < 600
    ua.handle_timer(timer)
    assert len(requests(ua, "REGISTER", timer)) == 2  # the refresh, long before the 600 s expiry


def test_wrong_password_fails_clearly_and_backs_off() -> None:
    ua = make_ua(accounts=(AccountConfig("1", "alice", "wrong"),))
    ua.start(0.0)
    (reg,) = requests(ua, "REGISTER")
    ua.receive(answer(reg, 401, extra=challenge(401)), PROXY, "udp", 0.0)
    (reg,) = requests(ua, "REGISTER")
    ua.receive(answer(reg, 401, extra=challenge(401)), PROXY, "udp", 0.1)
    assert requests(ua, "REGISTER", 0.1) == []  # no tight loop
    state, error = ua.registration_state("1")
    assert state is RegState.FAILED and error is not None and "wrong password" in error
    ua.handle_timer(10.0)  # timer K ends; only the backoff (RFC 5626 §4.5, >= 15 s) is left
    assert requests(ua, "REGISTER", 10.0) == []
    timer = ua.get_timer()
    assert timer is not None and timer >= 15.0
    ua.handle_timer(timer)
    assert len(requests(ua, "REGISTER", timer)) == 1


def test_registrar_timeout_fails_over_to_secondary() -> None:
    secondary = ("192.0.2.2", 5070)
    ua = make_ua(secondary_registrar=SipUri(host=secondary[0], port=secondary[1]))
    ua.start(0.0)
    assert len(requests(ua, "REGISTER")) == 2
    now = 0.0
    while (timer := ua.get_timer()) is not None and timer <= 40.0:
        now = timer
        ua.handle_timer(now)
    out = ua.datagrams_to_send(now)
    to_secondary = [parse_message(d) for d, addr, _ in out if addr == secondary]
    assert all(isinstance(m, Request) and m.method == "REGISTER" for m in to_secondary)
    assert {m.from_.uri.user for m in to_secondary} == {"alice", "bob"}  # type: ignore[union-attr]
    assert str(to_secondary[0].uri) == "sip:192.0.2.2:5070"  # type: ignore[union-attr]
    assert ua.registration_state("1") == (RegState.REGISTERING, "timeout contacting 192.0.2.1:5060")


def test_stop_unregisters() -> None:
    ua = make_ua()
    register_all(ua)
    ua.stop(1.0)
    regs = requests(ua, "REGISTER", 1.0)
    assert [r.expires for r in regs] == [0, 0]
    assert not ua.idle
    for reg in regs:
        ua.receive(answer(reg, 200, "OK"), PROXY, "udp", 1.1)
    assert ua.idle
    assert ua.registration_state("1") == (RegState.UNREGISTERED, None)


def test_accounts_added_and_removed_at_run_time() -> None:
    """An edited port: a new user unregisters the old binding silently and registers the new one;
    the same user with a new password re-registers without any un-REGISTER (it would remove the
    binding the new REGISTER refreshes: both carry the same Contact)."""
    ua = make_ua()
    register_all(ua)
    ua.remove_account("1", 1.0)
    ua.add_account(AccountConfig("1", "carol", "carol-pw"), 1.0)
    regs = requests(ua, "REGISTER", 1.0)
    assert sorted((r.from_.uri.user, r.expires) for r in regs) == [  # type: ignore[union-attr]
        ("alice", 0), ("carol", 600)]
    for reg in regs:
        ua.receive(answer(reg, 200, "OK", extra="Expires: 600"), PROXY, "udp", 1.1)
    assert [(e.account, e.state) for e in events(ua) if isinstance(e, RegistrationChanged)] == [
        ("1", RegState.REGISTERING), ("1", RegState.REGISTERED)]  # nothing from the retired alice
    assert ua.idle and ua.registration_state("1") == (RegState.REGISTERED, None)
    assert ua.policy.users == {"bob", "carol"}
    ua.remove_account("2", 2.0, unregister=False)
    ua.add_account(AccountConfig("2", "bob", "new-pw"), 2.0)
    (reg,) = requests(ua, "REGISTER", 2.0)
    assert reg.expires == 600 and reg.from_.uri.user == "bob"  # type: ignore[union-attr]
    with pytest.raises(CallError):
        ua.add_account(AccountConfig("2", "dave", "x"), 2.0)


# -- outgoing calls ------------------------------------------------------------------------------


def place(ua: UserAgent, now: float = 1.0) -> tuple[str, Request]:
    call = ua.place_call("1", "bob2", now, MEDIA)
    (invite,) = requests(ua, "INVITE", now)
    return call, invite


def test_outgoing_call_with_proxy_auth_answered_and_hung_up() -> None:
    ua = make_ua()
    register_all(ua)
    call, invite = place(ua)
    assert str(invite.uri) == "sip:bob2@pbx.example.com"
    assert invite.from_.display_name == "Alice" and invite.from_.tag
    assert parse_sdp(invite.body).media[0].port == 40000
    ua.receive(answer(invite, 407, "Proxy Authentication Required", extra=challenge()), PROXY, "udp", 1.1)
    out = sent(ua, 1.1)
    assert [m.method for m in out if isinstance(m, Request)] == ["ACK", "INVITE"]  # §17.1.1.3 ACK, then retry
    invite2 = out[1]
    assert isinstance(invite2, Request) and invite2.cseq.number == 2 and invite2.call_id == invite.call_id
    assert invite2.headers.lines("Proxy-Authorization") and invite2.top_via.branch != invite.top_via.branch
    ua.receive(answer(invite2, 100, "Trying", to_tag=None), PROXY, "udp", 1.2)
    ua.receive(answer(invite2, 180, "Ringing", extra="Contact: <sip:bob2@192.0.2.50>"), PROXY, "udp", 1.3)
    assert events(ua) == [CallProgress(call, 180, None)]
    peer, _offer = peer_sdp()
    answer_sdp, _ = peer.create_answer(parse_sdp(invite2.body))
    ok = answer(
        invite2, 200, "OK", extra="Contact: <sip:bob2@192.0.2.50>", body=answer_sdp.serialize().encode()
    )
    ua.receive(ok, PROXY, "udp", 1.4)
    (answered,) = events(ua)
    assert isinstance(answered, CallAnswered) and answered.negotiated.remote_port == 30000
    (ack,) = requests(ua, "ACK", 1.4)
    assert ack.cseq.number == 2 and str(ack.uri) == "sip:bob2@192.0.2.50"
    ua.receive(ok, PROXY, "udp", 1.9)  # a retransmitted 200 gets the same ACK again (§13.2.2.4)
    (again,) = requests(ua, "ACK", 1.9)
    assert again.top_via.branch == ack.top_via.branch
    ua.hangup(call, 5.0)
    (bye,) = requests(ua, "BYE", 5.0)
    assert bye.cseq.number == 3 and bye.to_tag == "peer"
    assert events(ua) == [CallEnded(call, "hangup", None, False)]
    ua.receive(answer(bye, 200, "OK"), PROXY, "udp", 5.1)
    assert ua.idle


def test_wrong_proxy_credentials_end_the_call() -> None:
    ua = make_ua()
    call, invite = place(ua)
    ua.receive(answer(invite, 407, extra=challenge()), PROXY, "udp", 1.1)
    (invite2,) = requests(ua, "INVITE", 1.1)
    ua.receive(answer(invite2, 407, extra=challenge()), PROXY, "udp", 1.2)
    assert requests(ua, "INVITE", 1.2) == []
    assert events(ua) == [CallEnded(call, "authentication failed", 407, True)]


def test_cancel_before_answer() -> None:
    ua = make_ua()
    call, invite = place(ua)
    ua.hangup(call, 1.05)  # before any provisional: the CANCEL waits for one (§9.1)
    assert requests(ua, "CANCEL", 1.05) == []
    ua.receive(answer(invite, 180, "Ringing"), PROXY, "udp", 1.1)
    (cancel,) = requests(ua, "CANCEL", 1.1)
    assert cancel.top_via.branch == invite.top_via.branch and cancel.cseq.number == 1
    ua.receive(answer(cancel, 200, "OK"), PROXY, "udp", 1.2)
    ua.receive(answer(invite, 487, "Request Terminated"), PROXY, "udp", 1.3)
    assert requests(ua, "ACK", 1.3)
    assert events(ua)[-1] == CallEnded(call, "cancelled", 487, False)


def test_answer_crossing_cancel_is_acked_and_byed() -> None:
    ua = make_ua()
    call, invite = place(ua)
    ua.receive(answer(invite, 180, "Ringing"), PROXY, "udp", 1.1)
    ua.hangup(call, 1.2)
    peer, _ = peer_sdp()
    body = peer.create_answer(parse_sdp(invite.body))[0].serialize().encode()
    ua.receive(answer(invite, 200, "OK", extra="Contact: <sip:b@192.0.2.50>", body=body), PROXY, "udp", 1.3)
    methods = [m.method for m in sent(ua, 1.3) if isinstance(m, Request)]
    assert "ACK" in methods and "BYE" in methods
    assert [e for e in events(ua) if isinstance(e, CallEnded)] == [CallEnded(call, "cancelled", None, False)]


def test_busy_and_timeout() -> None:
    ua = make_ua()
    call, invite = place(ua)
    ua.receive(answer(invite, 486, "Busy Here"), PROXY, "udp", 1.1)
    assert events(ua) == [CallEnded(call, "486 Busy Here", 486, True)]
    call2, _ = place(ua, 2.0)
    now = 2.0
    while (timer := ua.get_timer()) is not None and timer < 40:
        now = timer
        ua.handle_timer(now)
    assert CallEnded(call2, "timeout", 408, False) in events(ua)


def test_early_media_answer_in_183_is_kept_for_the_200() -> None:
    ua = make_ua()
    call, invite = place(ua)
    peer, _ = peer_sdp()
    body = peer.create_answer(parse_sdp(invite.body))[0].serialize().encode()
    ua.receive(answer(invite, 183, "Session Progress", body=body), PROXY, "udp", 1.1)
    (progress,) = events(ua)
    assert isinstance(progress, CallProgress) and progress.early_media is not None
    ua.receive(answer(invite, 200, "OK", extra="Contact: <sip:b@192.0.2.50>", body=body), PROXY, "udp", 1.2)
    assert events(ua) == [CallAnswered(call, progress.early_media)]


def test_unknown_account_and_bad_target() -> None:
    ua = make_ua()
    with pytest.raises(CallError):
        ua.place_call("9", "bob", 0.0, MEDIA)
    with pytest.raises(CallError):
        ua.place_call("1", "mailto:x@y", 0.0, MEDIA)


# -- incoming calls ------------------------------------------------------------------------------


def inbound(
    method: str = "INVITE",
    *,
    body: bytes = b"",
    cseq: int = 1,
    to_tag: str | None = None,
    branch: str = "z9hG4bKin1",
    extra: str = "",
    user: str = "alice",
    content_type: str = "application/sdp",
) -> bytes:
    to = "<sip:alice@pbx.example.com>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:{user}@192.168.1.10:5062 SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}",
        "Max-Forwards: 69",
        'From: "Carol" <sip:carol@pbx.example.com>;tag=caller',
        f"To: {to}",
        "Call-ID: in-call-1",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:carol@192.0.2.60:5080>",
        "Record-Route: <sip:192.0.2.1;lr>",
    ]
    if extra:
        lines += extra.split("\n")
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def responses(ua: UserAgent, now: float = 0.0) -> list[Response]:
    return [m for m in sent(ua, now) if isinstance(m, Response)]


def incoming_call(ua: UserAgent) -> tuple[str, SdpSession]:
    peer, offer = peer_sdp()
    extra = 'P-Asserted-Identity: "Carol C" <sip:+15551234@pbx.example.com>\nPrivacy: id\nAlert-Info: <urn:x>'
    ua.receive(inbound(body=offer, extra=extra), PROXY, "udp", 1.0)
    (incoming,) = events(ua)
    assert isinstance(incoming, IncomingCall)
    assert incoming.account == "1" and incoming.display_name == "Carol"
    assert incoming.from_uri == "sip:carol@pbx.example.com"
    assert incoming.asserted_identity == '"Carol C" <sip:+15551234@pbx.example.com>'
    assert incoming.privacy == "id" and incoming.alert_info == "<urn:x>" and incoming.remote_sdp == offer
    return incoming.call, peer


def test_incoming_call_rung_answered_and_hung_up_by_remote() -> None:
    ua = make_ua()
    call, _ = incoming_call(ua)
    ua.ringing(call, 1.05)
    (ringing,) = responses(ua, 1.05)
    assert ringing.status == 180 and ringing.to_tag and ringing.headers.lines("Record-Route")
    ua.answer(call, 2.0, MEDIA)
    (ok,) = responses(ua, 2.0)
    assert ok.status == 200 and ok.to_tag == ringing.to_tag
    assert str(ok.contacts[0].uri) == "sip:alice@192.168.1.10:5062"
    assert parse_sdp(ok.body).media[0].port == 40000
    (answered,) = events(ua)
    assert isinstance(answered, CallAnswered) and answered.negotiated.remote_port == 30000
    ua.receive(inbound("ACK", to_tag=ok.to_tag, branch="z9hG4bKack"), PROXY, "udp", 2.1)
    ua.handle_timer(3.0)
    assert responses(ua, 3.0) == []  # the ACK stopped the 2xx retransmissions
    ua.receive(inbound("BYE", cseq=2, to_tag=ok.to_tag, branch="z9hG4bKbye"), PROXY, "udp", 9.0)
    (bye_ok,) = responses(ua, 9.0)
    assert bye_ok.status == 200
    assert events(ua) == [CallEnded(call, "remote hangup", None, True)]


def test_incoming_call_cancelled_by_caller() -> None:
    ua = make_ua()
    call, _ = incoming_call(ua)
    ua.ringing(call, 1.05)
    sent(ua, 1.05)
    ua.receive(inbound("CANCEL"), PROXY, "udp", 1.5)
    statuses = sorted(r.status for r in responses(ua, 1.5))
    assert statuses == [200, 487]
    assert events(ua) == [CallEnded(call, "cancelled", 487, True)]


def test_incoming_call_rejected_busy() -> None:
    ua = make_ua()
    call, _ = incoming_call(ua)
    ua.reject(call, 486, 1.1)
    assert [r.status for r in responses(ua, 1.1)] == [486]
    assert events(ua) == [CallEnded(call, "rejected", 486, False)]
    with pytest.raises(CallError):
        ua.answer(call, 1.2, MEDIA)


def test_incoming_offer_we_cannot_use_is_488_without_ringing() -> None:
    ua = make_ua()
    body = (
        b"v=0\r\no=x 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 18\r\n"
    )
    ua.receive(inbound(body=body), PROXY, "udp", 1.0)
    assert [r.status for r in responses(ua, 1.0)] == [488]
    assert events(ua) == []


def test_hold_and_resume_both_ways() -> None:
    ua = make_ua()
    call, peer = incoming_call(ua)
    ua.answer(call, 2.0, MEDIA)
    (ok,) = responses(ua, 2.0)
    events(ua)
    ua.receive(inbound("ACK", to_tag=ok.to_tag, branch="z9hG4bKack"), PROXY, "udp", 2.1)
    # Remote hold: their re-INVITE offers sendonly, we answer recvonly.
    hold_offer = peer.create_offer("sendonly").serialize().encode()
    ua.receive(
        inbound("INVITE", cseq=2, to_tag=ok.to_tag, branch="z9hG4bKre1", body=hold_offer), PROXY, "udp", 3.0
    )
    (reok,) = responses(ua, 3.0)
    assert (
        reok.status == 200 and parse_sdp(reok.body).direction_for(parse_sdp(reok.body).media[0]) == "recvonly"
    )
    (held,) = events(ua)
    assert isinstance(held, CallHeld) and held.by_remote
    resume_offer = peer.create_offer("sendrecv").serialize().encode()
    ua.receive(
        inbound("INVITE", cseq=3, to_tag=ok.to_tag, branch="z9hG4bKre2", body=resume_offer), PROXY, "udp", 4.0
    )
    responses(ua, 4.0)
    (resumed,) = events(ua)
    assert isinstance(resumed, CallResumed) and resumed.by_remote
    # Local hold: our re-INVITE goes to the remote target through the recorded route.
    ua.hold(call, 5.0)
    (reinvite,) = requests(ua, "INVITE", 5.0)
    assert reinvite.routes and str(reinvite.uri) == "sip:carol@192.0.2.60:5080"
    offer = parse_sdp(reinvite.body)
    assert offer.direction_for(offer.media[0]) == "sendonly"
    peer_answer = peer.create_answer(offer)[0].serialize().encode()
    ua.receive(answer(reinvite, 200, "OK", to_tag=None, body=peer_answer), PROXY, "udp", 5.1)
    assert requests(ua, "ACK", 5.1)
    (held_local,) = events(ua)
    assert isinstance(held_local, CallHeld) and (held_local.call, held_local.by_remote) == (call, False)
    assert held_local.negotiated.direction == "sendonly"
    ua.resume(call, 6.0)
    (reinvite2,) = requests(ua, "INVITE", 6.0)
    peer_answer = peer.create_answer(parse_sdp(reinvite2.body))[0].serialize().encode()
    ua.receive(answer(reinvite2, 200, "OK", to_tag=None, body=peer_answer), PROXY, "udp", 6.1)
    (resumed_local,) = events(ua)
    assert isinstance(resumed_local, CallResumed) and resumed_local.negotiated.direction == "sendrecv"


# -- out-of-dialog requests and the policy ------------------------------------------------------------


def test_options_answered_with_capabilities() -> None:
    ua = make_ua()
    ua.receive(inbound("OPTIONS"), PROXY, "udp", 0.0)
    (ok,) = responses(ua)
    assert ok.status == 200
    assert "INVITE" in ok.headers.get_all("Allow") and ok.headers.get("Accept") == "application/sdp"
    assert ok.headers.get("Supported") == "timer"


MWI_BODY = (b"Messages-Waiting: yes\r\nMessage-Account: sip:*97@pbx.example.com\r\n"
            b"Voice-Message: 2/0 (0/0)\r\n")


def notify(body: bytes, event: str = "message-summary", user: str = "alice", cseq: int = 1) -> bytes:
    return inbound("NOTIFY", body=body, extra=f"Event: {event}", user=user, cseq=cseq,
                   branch=f"z9hG4bKn{cseq}", content_type="application/simple-message-summary")


def test_unsolicited_mwi_notify_is_accepted_and_reported() -> None:
    """RFC 3842 unsolicited NOTIFY (no SUBSCRIBE): 200 and MessageWaiting for the addressed account."""
    ua = make_ua()
    ua.receive(notify(MWI_BODY), PROXY, "udp", 0.0)
    assert [r.status for r in responses(ua)] == [200]
    assert events(ua) == [MessageWaiting("1", True)]
    ua.receive(notify(b"messages-waiting:no\r\n", user="bob", cseq=2), PROXY, "udp", 1.0)
    assert [r.status for r in responses(ua, 1.0)] == [200]
    assert events(ua) == [MessageWaiting("2", False)]


def test_other_notifies_are_refused() -> None:
    ua = make_ua()
    ua.receive(notify(MWI_BODY, event="dialog"), PROXY, "udp", 0.0)
    assert [r.status for r in responses(ua)] == [489]
    ua.receive(notify(b"Voice-Message: 2/0\r\n", cseq=2), PROXY, "udp", 0.0)
    assert [r.status for r in responses(ua)] == [400]
    ua.receive(notify(MWI_BODY, cseq=3), ("203.0.113.9", 5060), "udp", 0.0)  # not from the proxy
    assert [r.status for r in responses(ua)] == [403]
    ua.receive(notify(MWI_BODY, user="mallory", cseq=4), PROXY, "udp", 0.0)
    assert [r.status for r in responses(ua)] == [403]
    assert events(ua) == []


@pytest.mark.parametrize(("body", "expected"), [
    (b"Messages-Waiting: yes\r\n", True), (b"MESSAGES-WAITING : No\r\n", False),
    (b"Messages-Waiting: maybe\r\n", None), (b"", None)])
def test_messages_waiting_body(body: bytes, expected: bool | None) -> None:
    assert messages_waiting(body) is expected


def test_in_dialog_request_without_dialog_gets_481() -> None:
    ua = make_ua()
    ua.receive(inbound("BYE", to_tag="gone"), PROXY, "udp", 0.0)
    assert [r.status for r in responses(ua)] == [481]


def test_invite_from_elsewhere_is_refused_without_ringing() -> None:
    ua = make_ua()
    ua.receive(inbound(body=peer_sdp()[1]), ("203.0.113.9", 5060), "udp", 0.0)
    out = ua.datagrams_to_send(0.0)
    assert len(out) == 1 and out[0][1] == ("203.0.113.9", 5060)
    refused = parse_message(out[0][0])
    assert isinstance(refused, Response) and refused.status == 403
    assert events(ua) == []
    ua.receive(inbound(user="mallory"), PROXY, "udp", 0.0)  # the proxy, but not our user
    assert [r.status for r in responses(ua)] == [403]
    ua.receive(b"garbage\r\n\r\n", ("203.0.113.9", 5060), "udp", 0.0)
    assert ua.datagrams_to_send(0.0) == []  # a scanner gets no 400 either


def test_in_dialog_request_from_the_peer_directly_is_accepted() -> None:
    """A peer that does not Record-Route sends its BYE straight to our Contact."""
    ua = make_ua()
    call, _ = incoming_call(ua)
    ua.answer(call, 2.0, MEDIA)
    (ok,) = responses(ua, 2.0)
    events(ua)
    ua.receive(inbound("BYE", cseq=2, to_tag=ok.to_tag, branch="z9hG4bKb"), ("192.0.2.60", 5080), "udp", 3.0)
    assert [r.status for r in responses(ua, 3.0) if r.status == 200]
    assert events(ua) == [CallEnded(call, "remote hangup", None, True)]


def test_stream_transport_messages_keep_their_kind() -> None:
    ua = make_ua(transport="tcp")
    ua.receive(inbound("OPTIONS"), ("192.0.2.1", 40001), "tcp", 0.0)
    ((_data, addr, kind),) = ua.datagrams_to_send(0.0)
    assert (addr, kind) == (("192.0.2.1", 40001), "tcp")
    ua.start(0.0)
    regs = ua.datagrams_to_send(0.0)
    assert {kind for _, _, kind in regs} == {"tcp"}
    message = parse_message(regs[0][0])
    assert message.top_via.transport == "TCP"
    assert re.search(r"transport=tcp", message.headers.lines("Contact")[0])


# -- less common paths ------------------------------------------------------------------------------


def answered_incoming(ua: UserAgent, extra: str = "") -> tuple[str, Response, SdpSession]:
    peer, offer = peer_sdp()
    ua.receive(inbound(body=offer, extra=extra), PROXY, "udp", 1.0)
    (incoming,) = events(ua)
    assert isinstance(incoming, IncomingCall)
    ua.answer(incoming.call, 2.0, MEDIA)
    (ok,) = responses(ua, 2.0)
    events(ua)
    ua.receive(inbound("ACK", to_tag=ok.to_tag, branch="z9hG4bKack"), PROXY, "udp", 2.1)
    return incoming.call, ok, peer


def test_offerless_invite_gets_our_offer_and_the_answer_comes_in_the_ack() -> None:
    ua = make_ua()
    ua.receive(inbound(), PROXY, "udp", 1.0)
    (incoming,) = events(ua)
    assert isinstance(incoming, IncomingCall) and incoming.remote_sdp == b""
    ua.answer(incoming.call, 2.0, MEDIA)
    (ok,) = responses(ua, 2.0)
    offer = parse_sdp(ok.body)
    assert offer.media[0].port == 40000 and events(ua) == []
    peer, _ = peer_sdp()
    body = peer.create_answer(offer)[0].serialize().encode()
    ack = inbound("ACK", to_tag=ok.to_tag, branch="z9hG4bKack", body=body)
    ua.receive(ack, PROXY, "udp", 2.1)
    (answered,) = events(ua)
    assert isinstance(answered, CallAnswered) and answered.negotiated.remote_port == 30000


def test_missing_ack_ends_the_call_with_a_bye() -> None:
    ua = make_ua()
    _peer, offer = peer_sdp()
    ua.receive(inbound(body=offer), PROXY, "udp", 1.0)
    (incoming,) = events(ua)
    assert isinstance(incoming, IncomingCall)
    ua.answer(incoming.call, 2.0, MEDIA)
    events(ua)
    now = 2.0
    while (timer := ua.get_timer()) is not None and timer < 40:
        now = timer
        ua.handle_timer(now)
    assert CallEnded(incoming.call, "no ACK for our 200 OK", None, False) in events(ua)
    assert any(isinstance(m, Request) and m.method == "BYE" for m in sent(ua, now))


def test_challenged_bye_is_retried_with_credentials_and_the_next_cseq() -> None:
    ua = make_ua()
    call, _ok, _ = answered_incoming(ua)
    ua.hangup(call, 3.0)
    (bye,) = requests(ua, "BYE", 3.0)
    assert bye.cseq.number == 1 and str(bye.uri) == "sip:carol@192.0.2.60:5080"
    ua.receive(answer(bye, 407, extra=challenge()), PROXY, "udp", 3.1)
    (again,) = requests(ua, "BYE", 3.1)
    assert again.cseq.number == 2 and again.headers.lines("Proxy-Authorization")
    assert again.routes and str(again.routes[0].uri) == "sip:192.0.2.1;lr"


def test_info_both_ways_for_dtmf_relay() -> None:
    """RFC 6086 INFO in the dialog: ours carries the body we give; theirs is answered 200 and its
    body handed to the application (the media layer parses application/dtmf-relay)."""
    ua = make_ua()
    call, ok, _ = answered_incoming(ua)
    ua.send_info(call, "application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", 3.0)
    (info,) = requests(ua, "INFO", 3.0)
    assert info.content_type == "application/dtmf-relay" and info.body.startswith(b"Signal=5")
    body = b"Signal=#\r\nDuration=100\r\n"
    typed = f"Content-Type: application/dtmf-relay\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    raw = inbound("INFO", cseq=2, to_tag=ok.to_tag, branch="z9hG4bKinfo").replace(
        b"Content-Length: 0\r\n\r\n", typed + body
    )
    ua.receive(raw, PROXY, "udp", 3.2)
    assert [r.status for r in responses(ua, 3.2)] == [200]
    assert events(ua) == [InfoReceived(call, "application/dtmf-relay", body)]


def test_session_timer_refresh_by_us() -> None:
    """RFC 4028: the caller asked us (uas) to refresh; a re-INVITE goes out at half the interval."""
    ua = make_ua()
    _call, ok, _ = answered_incoming(ua, extra="Supported: timer\nSession-Expires: 120;refresher=uas")
    assert ok.headers.get("Session-Expires") == "120;refresher=uas"
    now = 2.1
    while (timer := ua.get_timer()) is not None and timer <= 62.0:
        now = timer
        ua.handle_timer(now)
    (refresh,) = requests(ua, "INVITE", now)
    assert now == 62.0 and refresh.body and refresh.cseq.number == 1


def test_offerless_reinvite_hold_detected_from_the_ack() -> None:
    ua = make_ua()
    _call, ok, peer = answered_incoming(ua)
    ua.receive(inbound("INVITE", cseq=2, to_tag=ok.to_tag, branch="z9hG4bKre"), PROXY, "udp", 3.0)
    (reok,) = responses(ua, 3.0)
    body = peer.create_answer(parse_sdp(reok.body), "sendonly")[0].serialize().encode()
    ua.receive(inbound("ACK", cseq=2, to_tag=ok.to_tag, branch="z9hG4bKack2", body=body), PROXY, "udp", 3.1)
    (held,) = events(ua)
    assert isinstance(held, CallHeld) and held.by_remote


def test_outbound_proxy_is_the_first_hop() -> None:
    proxy = ("192.0.2.9", 5070)
    ua = make_ua(outbound_proxy=SipUri(host=proxy[0], port=proxy[1]))
    ua.place_call("1", "sip:bob@elsewhere.example.net", 1.0, MEDIA)
    ((data, addr, _),) = ua.datagrams_to_send(1.0)
    invite = parse_message(data)
    assert addr == proxy and isinstance(invite, Request)
    assert [str(r.uri) for r in invite.routes] == ["sip:192.0.2.9:5070;lr"]
    assert str(invite.uri) == "sip:bob@elsewhere.example.net"


def test_transport_error_ends_a_call_attempt_at_once() -> None:
    ua = make_ua()
    call, _ = place(ua)
    ua.transport_error(PROXY, 1.1)
    assert events(ua) == [CallEnded(call, "transport error", 503, False)]


def test_unresolved_registrar_fails_registration_without_sending() -> None:
    ua = make_ua(registrar=SipUri(host="pbx.example.com"))
    ua.start(0.0)
    assert ua.datagrams_to_send(0.0) == []
    state, error = ua.registration_state("1")
    assert state is RegState.FAILED and error is not None and "pbx.example.com" in error


def test_reinvite_answered_481_ends_the_call_and_overlapping_hold_is_refused() -> None:
    ua = make_ua()
    call, _ok, _peer = answered_incoming(ua)
    ua.hold(call, 3.0)
    (reinvite,) = requests(ua, "INVITE", 3.0)
    with pytest.raises(CallError):
        ua.resume(call, 3.05)  # §14.1: one re-INVITE at a time
    ua.receive(answer(reinvite, 481, "Call/Transaction Does Not Exist", to_tag=None), PROXY, "udp", 3.1)
    assert events(ua) == [CallEnded(call, "481 Call/Transaction Does Not Exist", 481, True)]


def test_bye_before_answer_terminates_the_invite_too() -> None:
    ua = make_ua()
    call, _ = incoming_call(ua)
    ua.ringing(call, 1.05)
    (ringing,) = responses(ua, 1.05)
    ua.receive(inbound("BYE", cseq=2, to_tag=ringing.to_tag, branch="z9hG4bKb"), PROXY, "udp", 1.5)
    assert sorted(r.status for r in responses(ua, 1.5)) == [200, 487]
    assert events(ua) == [CallEnded(call, "remote hangup", None, True)]
