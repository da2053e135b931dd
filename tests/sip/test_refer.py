"""Call transfer: REFER (RFC 3515), Replaces (RFC 3891) and the refer NOTIFYs, built and parsed, and
driven through the user agent with invented times against a scripted proxy."""

from __future__ import annotations

import pytest

from firmware.sip.message import Request, Response
from firmware.sip.refer import (
    ReferError,
    Replaces,
    parse_refer_to,
    parse_replaces,
    parse_sipfrag,
    refer_to,
    sipfrag,
    subscription_terminated,
)
from firmware.sip.sdp import parse_sdp
from firmware.sip.ua import (
    AccountConfig,
    CallAnswered,
    CallError,
    TransferProgress,
    TransferRequested,
    UserAgent,
)
from firmware.sip.uri import SipUri, TelUri, parse_uri
from tests.sip.test_ua import (
    PROXY,
    answer,
    answered_incoming,
    events,
    inbound,
    make_ua,
    peer_sdp,
    place,
    register_all,
    requests,
    responses,
    sent,
)


# -- building and parsing ---------------------------------------------------------------------------
def test_refer_to_with_replaces_is_escaped_as_in_rfc_3891_section_7() -> None:
    """RFC 3891 §7's example: Refer-To: <sips:bob@bob.example.com?Replaces=12345%40192.168.118.3%3B
    to-tag%3D12345%3Bfrom-tag%3D5FFE-3994>."""
    target = parse_uri("sips:bob@bob.example.com")
    assert isinstance(target, SipUri)
    value = refer_to(target, Replaces("12345@192.168.118.3", "12345", "5FFE-3994"))
    assert value == ("<sips:bob@bob.example.com?Replaces=12345%40192.168.118.3%3Bto-tag%3D12345"
                     "%3Bfrom-tag%3D5FFE-3994>")
    parsed = parse_refer_to(value)
    assert str(parsed.uri) == "sips:bob@bob.example.com"  # the header is taken out of the URI
    assert parsed.replaces == Replaces("12345@192.168.118.3", "12345", "5FFE-3994")


def test_blind_refer_to_and_foreign_uri_headers() -> None:
    tel = parse_uri("tel:+15551234")
    assert isinstance(tel, TelUri)
    assert refer_to(tel) == "<tel:+15551234>"
    with pytest.raises(ReferError):
        refer_to(tel, Replaces("a", "b", "c"))  # a tel URI has no headers to carry Replaces
    target = parse_refer_to("<sip:202@pbx.example?Subject=hi&Priority=urgent>")
    assert target.replaces is None and str(target.uri) == "sip:202@pbx.example"  # never copied into an INVITE


@pytest.mark.parametrize("value", ["", "<http://example.com/>", "sip:", "<sip:a@b?Replaces=x%3Bto-tag%3D1>"])
def test_bad_refer_to_is_refused(value: str) -> None:
    with pytest.raises(ReferError):
        parse_refer_to(value)


def test_replaces_grammar() -> None:
    """RFC 3891 §6.1: callid *(SEMI (to-tag / from-tag / early-flag / generic-param))."""
    assert parse_replaces("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff") == Replaces(
        "98732@sip.example.com", "ff87ff", "r33th4x0r")
    assert parse_replaces("x;to-tag=1;from-tag=2;early-only").early_only
    for bad in ("x;to-tag=1", ";to-tag=1;from-tag=2", "x;to-tag=1;from-tag=2;bad param"):
        with pytest.raises(ReferError):
            parse_replaces(bad)


def test_sipfrag_status_lines() -> None:
    """RFC 3515 §2.4.5: the NOTIFY body is at least a status line (RFC 3420)."""
    assert sipfrag(100, "Trying") == b"SIP/2.0 100 Trying\r\n"
    assert parse_sipfrag(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n") == 200
    assert parse_sipfrag(b"SIP/2.0 603 Declined\n") == 603
    for bad in (b"", b"INVITE sip:x SIP/2.0\r\n", b"SIP/2.0 20 OK"):
        with pytest.raises(ReferError):
            parse_sipfrag(bad)
    assert subscription_terminated("terminated;reason=noresource")
    assert not subscription_terminated("active;expires=60") and not subscription_terminated(None)


# -- the transferor: our REFER ------------------------------------------------------------------------
def connected_out(ua: UserAgent, number: str, tag: str, now: float) -> str:
    """An outgoing call to `number` answered by a peer whose dialog tag is `tag`."""
    call = ua.place_call("1", number, now, ("192.168.1.10", 40000))
    (invite,) = requests(ua, "INVITE", now)
    peer, _ = peer_sdp()
    body, _ = peer.create_answer(parse_sdp(invite.body))
    contact = f"Contact: <sip:{number}@192.0.2.50>"
    ua.receive(answer(invite, 200, "OK", to_tag=tag, extra=contact, body=body.serialize().encode()),
               PROXY, "udp", now + 0.1)
    assert isinstance(events(ua)[-1], CallAnswered)
    sent(ua, now + 0.1)  # the ACK
    return call


def notify(refer: Request, body: bytes, state: str, cseq: int = 1, event: str = "refer") -> bytes:
    """The transferee's NOTIFY in the REFER's dialog (to and from swapped: it is their request)."""
    lines = ["NOTIFY sip:alice@192.168.1.10:5062 SIP/2.0",
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKn" + str(cseq),
             f"From: {refer.headers.lines('To')[0]}", f"To: {refer.headers.lines('From')[0]}",
             f"Call-ID: {refer.call_id}", f"CSeq: {cseq} NOTIFY", f"Event: {event}",
             f"Subscription-State: {state}", "Contact: <sip:bob2@192.0.2.50>",
             "Content-Type: message/sipfrag", f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def test_blind_transfer_refer_and_its_notifies() -> None:
    ua = make_ua()
    register_all(ua)
    held = connected_out(ua, "bob2", "t-bob", 1.0)
    ua.refer(held, "5554000", 5.0)
    (refer,) = requests(ua, "REFER", 5.0)
    assert refer.call_id == held and refer.to_tag == "t-bob" and refer.cseq.number == 2
    assert refer.headers.lines("Refer-To") == ["<sip:5554000@pbx.example.com>"]
    assert refer.headers.lines("Referred-By") == ["<sip:alice@pbx.example.com>"]  # RFC 3892
    assert str(refer.uri) == "sip:bob2@192.0.2.50"  # in the dialog: to the remote target
    ua.receive(answer(refer, 202, "Accepted"), PROXY, "udp", 5.1)
    assert events(ua) == [TransferProgress(held, 202, final=False)]
    ua.receive(notify(refer, sipfrag(100, "Trying"), "active;expires=60"), PROXY, "udp", 5.2)
    ua.receive(notify(refer, sipfrag(180, "Ringing"), "active;expires=60", cseq=2), PROXY, "udp", 5.5)
    ua.receive(notify(refer, sipfrag(200, "OK"), "terminated;reason=noresource", cseq=3), PROXY, "udp", 9)
    assert events(ua) == [TransferProgress(held, 100, False), TransferProgress(held, 180, False),
                          TransferProgress(held, 200, True)]
    assert [r.status for r in responses(ua, 9)] == [200, 200, 200]
    # the subscription is over: a late NOTIFY is refused (RFC 6665 §4.1.3)
    ua.receive(notify(refer, sipfrag(200, "OK"), "terminated", cseq=4), PROXY, "udp", 10)
    assert [r.status for r in responses(ua, 10)] == [481]


def test_refused_refer_is_a_final_failure() -> None:
    ua = make_ua()
    register_all(ua)
    held = connected_out(ua, "bob2", "t-bob", 1.0)
    ua.refer(held, "5554000", 5.0)
    (refer,) = requests(ua, "REFER", 5.0)
    ua.receive(answer(refer, 405, "Method Not Allowed"), PROXY, "udp", 5.1)
    assert events(ua) == [TransferProgress(held, 405, final=True)]


def test_unanswered_refer_is_a_final_failure() -> None:
    """Timer F (64 x T1, RFC 3261 §17.1.2.2) on our REFER: the transfer is over (408), so the legs the
    gateway kept for it are released rather than held forever."""
    ua = make_ua()
    register_all(ua)
    held = connected_out(ua, "bob2", "t-bob", 1.0)
    ua.refer(held, "5554000", 5.0)
    requests(ua, "REFER", 5.0)
    now = 5.0
    while (timer := ua.get_timer()) is not None and timer < 5.0 + 40:
        now = timer
        ua.handle_timer(now)
    assert TransferProgress(held, 408, final=True) in events(ua)


def test_attended_transfer_refers_with_replaces_of_the_consultation_dialog() -> None:
    """RFC 5589 §7.1: Replaces names the transferor-target dialog as the target sees it: to-tag is
    the target's tag, from-tag ours (RFC 3891 §3)."""
    ua = make_ua()
    register_all(ua)
    held = connected_out(ua, "bob2", "t-bob", 1.0)
    consult = connected_out(ua, "carol3", "t-carol", 3.0)
    ua.refer(held, "carol3", 6.0, replacing=consult)
    (refer,) = requests(ua, "REFER", 6.0)
    target = parse_refer_to(refer.headers.lines("Refer-To")[0])
    assert str(target.uri) == "sip:carol3@pbx.example.com"
    assert target.replaces is not None and target.replaces.call_id == consult
    assert target.replaces.to_tag == "t-carol"
    assert target.replaces.from_tag not in ("", "t-carol", "t-bob")
    with pytest.raises(CallError):
        ua.refer(held, "carol3", 6.5, replacing="no-such-call")


def test_refer_needs_a_connected_call() -> None:
    ua = make_ua()
    register_all(ua)
    call, _invite = place(ua)
    with pytest.raises(CallError):
        ua.refer(call, "5554000", 2.0)


# -- the transferee: their REFER -------------------------------------------------------------------
def referring_ua(accept: bool) -> tuple[UserAgent, str, Response]:
    ua = make_ua(accounts=(AccountConfig("1", "alice", "pw", accept_refer=accept),))
    register_all(ua)
    call, ok, _peer = answered_incoming(ua)
    sent(ua, 2.1)
    return ua, call, ok


def test_incoming_refer_is_accepted_and_notified_as_the_new_call_goes() -> None:
    ua, call, ok = referring_ua(accept=True)
    refer_to_value = "<sip:5554000@pbx.example.com?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>"
    ua.receive(inbound("REFER", cseq=2, to_tag=ok.to_tag, branch="z9hG4bKref",
                       extra=f"Refer-To: {refer_to_value}"), PROXY, "udp", 3.0)
    out = sent(ua, 3.0)
    (accepted,) = [m for m in out if isinstance(m, Response)]
    assert accepted.status == 202  # RFC 3515 §2.4.2
    (first,) = [m for m in out if isinstance(m, Request)]
    assert first.method == "NOTIFY" and first.body == b"SIP/2.0 100 Trying\r\n"  # §2.4.4: at once
    assert first.headers.get("Event") == "refer" and first.content_type == "message/sipfrag"
    assert first.headers.get("Subscription-State") == "active;expires=60"
    assert str(first.uri) == "sip:carol@192.0.2.60:5080" and first.call_id == call
    assert events(ua) == [TransferRequested(call, "sip:5554000@pbx.example.com", Replaces("abc", "1", "2"))]
    ua.transfer_progress(call, 200, "OK", 8.0)
    (final,) = requests(ua, "NOTIFY", 8.0)
    assert final.body == b"SIP/2.0 200 OK\r\n" and final.cseq.number == first.cseq.number + 1
    assert subscription_terminated(final.headers.get("Subscription-State"))
    ua.transfer_progress(call, 200, "OK", 9.0)  # the subscription is over: nothing more
    assert requests(ua, "NOTIFY", 9.0) == []


def test_incoming_refer_is_forbidden_when_transfer_is_off_and_bad_ones_get_400() -> None:
    ua, _call, ok = referring_ua(accept=False)
    ua.receive(inbound("REFER", cseq=2, to_tag=ok.to_tag, branch="z9hG4bKr1",
                       extra="Refer-To: <sip:5554000@pbx.example.com>"), PROXY, "udp", 3.0)
    assert [r.status for r in responses(ua, 3.0)] == [403]
    ua, _call, ok = referring_ua(accept=True)
    ua.receive(inbound("REFER", cseq=2, to_tag=ok.to_tag, branch="z9hG4bKr2"), PROXY, "udp", 3.0)
    ua.receive(inbound("REFER", cseq=3, to_tag=ok.to_tag, branch="z9hG4bKr3",
                       extra="Refer-To: <mailto:x@example.com>"), PROXY, "udp", 3.1)
    assert [r.status for r in responses(ua, 3.1)] == [400, 400]
    assert events(ua) == []
