"""Dialogs (RFC 3261 §12-§15), session timers (RFC 4028) and glare, with explicit times."""

from __future__ import annotations

import random

import pytest

from firmware.sip.dialog import (
    Dialog,
    DialogEvent,
    DialogState,
    InviteForks,
    RefreshDue,
    RetryDue,
    SessionExpired,
    SessionExpires,
    check_session_interval,
    glare_delay,
    parse_session_expires,
    retry_after_422,
)
from firmware.sip.headers import HeaderError
from firmware.sip.message import Request, Response, parse_message
from firmware.sip.transaction import AckReceived, Addr, RequestReceived, ResponseReceived, TransactionLayer
from firmware.sip.uri import SipUri

ALICE_CONTACT = "<sip:alice@192.0.2.1:5060>"


class FixedRandom(random.Random):
    """A deterministic draw for the §14.1 back-off and Retry-After."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def parse(text: str) -> Request | Response:
    return parse_message(text.replace("\n", "\r\n").encode())


def invite(extra: str = "", body: str = "") -> Request:
    msg = parse(
        "INVITE sip:bob@example.com SIP/2.0\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv\n"
        "Max-Forwards: 70\n"
        'From: "Alice" <sip:alice@example.com>;tag=atag\n'
        "To: <sip:bob@example.com>\n"
        "Call-ID: call1@192.0.2.1\n"
        "CSeq: 10 INVITE\n"
        f"Contact: {ALICE_CONTACT}\n"
        'Proxy-Authorization: Digest username="alice"\n'
        f"{extra}"
        f"Content-Length: {len(body)}\n\n{body}"
    )
    assert isinstance(msg, Request)
    return msg


def answer(
    req: Request,
    status: int,
    to_tag: str = "btag",
    extra: str = "",
    contact: str = "<sip:bob@198.51.100.7:5062>",
) -> Response:
    via = (req.headers.lines("Via") or ["SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx"])[0]
    to = req.headers.lines("To")[0]
    if req.to_tag is None and to_tag:
        to += f";tag={to_tag}"
    msg = parse(
        f"SIP/2.0 {status} Whatever\n"
        f"Via: {via}\n"
        f"From: {req.headers.lines('From')[0]}\n"
        f"To: {to}\n"
        f"Call-ID: {req.call_id}\n"
        f"CSeq: {req.cseq}\n"
        f"Contact: {contact}\n"
        f"{extra}"
        "Content-Length: 0\n\n"
    )
    assert isinstance(msg, Response)
    return msg


RR = "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\n"


def uac_dialog(extra: str = RR, rng: random.Random | None = None, now: float = 0.0) -> Dialog:
    return Dialog.create_uac(invite(), answer(invite(), 200, extra=extra), now, rng=rng)


def uas_dialog(extra: str = RR, rng: random.Random | None = None) -> Dialog:
    dialog = Dialog.create_uas(invite(extra), "btag", "<sip:bob@198.51.100.7:5062>", rng=rng)
    dialog.create_response(invite(extra), 200, "OK", 0.0)
    return dialog


def incoming(
    dialog: Dialog, method: str, cseq: int, extra: str = "", body: str = "", contact: str = ""
) -> Request:
    """A request from the peer of a UAC dialog (Bob -> Alice)."""
    msg = parse(
        f"{method} sip:alice@192.0.2.1:5060 SIP/2.0\n"
        "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKin{cseq}\n"
        f"From: {dialog.remote}\n"
        f"To: {dialog.local}\n"
        f"Call-ID: {dialog.call_id}\n"
        f"CSeq: {cseq} {method}\n"
        + (f"Contact: {contact}\n" if contact else "")
        + extra
        + f"Content-Length: {len(body)}\n\n{body}"
    )
    assert isinstance(msg, Request)
    return msg


def events(dialog: Dialog) -> list[DialogEvent]:
    out: list[DialogEvent] = []
    while (event := dialog.next_event()) is not None:
        out.append(event)
    return out


# -- creation, route set, Request-URI (§12.1, §12.2.1.1) ---------------------------------------


def test_uac_dialog_from_2xx_reverses_record_route_and_targets_contact() -> None:
    dialog = uac_dialog()
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.id == ("call1@192.0.2.1", "atag", "btag")
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert str(dialog.remote_target) == "sip:bob@198.51.100.7:5062"
    assert dialog.local_seq == 10 and dialog.remote_seq is None and dialog.is_uac


def test_uas_dialog_keeps_record_route_order_and_echoes_it() -> None:
    req = invite(RR)
    dialog = Dialog.create_uas(req, "btag", "<sip:bob@198.51.100.7:5062>")
    assert dialog.state is DialogState.EARLY
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert str(dialog.remote_target) == "sip:alice@192.0.2.1:5060"
    assert dialog.remote_seq == 10 and dialog.local_seq is None and not dialog.is_uac
    ringing = dialog.create_response(req, 180, "Ringing", 0.0)
    assert ringing.to_tag == "btag" and ringing.headers.lines("Record-Route") == req.headers.lines(
        "Record-Route"
    )
    assert ringing.headers.get("Contact") == "<sip:bob@198.51.100.7:5062>"
    ok = dialog.create_response(req, 200, "OK", 0.0, body=b"v=0\r\n")
    assert dialog.state is DialogState.CONFIRMED
    assert ok.headers.get("Content-Type") == "application/sdp" and ok.body == b"v=0\r\n"
    bye = dialog.create_request("BYE")
    assert str(bye.cseq) == "1 BYE"  # local sequence was empty: §12.2.1.1 picks a start
    assert bye.from_tag == "btag" and bye.to_tag == "atag"


def test_uas_rejecting_the_invite_ends_the_early_dialog() -> None:
    req = invite()
    dialog = Dialog.create_uas(req, "btag", "<sip:bob@h>")
    assert dialog.create_response(req, 486, "Busy Here", 0.0).to_tag == "btag"
    assert dialog.state is DialogState.TERMINATED


def test_loose_routing_keeps_remote_target_in_request_uri() -> None:
    bye = uac_dialog().create_request("BYE")
    assert str(bye.uri) == "sip:bob@198.51.100.7:5062"
    assert [str(r.uri) for r in bye.routes] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert bye.from_tag == "atag" and bye.to_tag == "btag" and bye.call_id == "call1@192.0.2.1"
    assert str(bye.cseq) == "11 BYE" and bye.max_forwards == 70
    assert "Via" not in bye.headers and "Contact" not in bye.headers


def test_strict_routing_puts_first_route_in_request_uri_and_target_last() -> None:
    dialog = uac_dialog("Record-Route: <sip:p2.example.com>, <sip:p1.example.com;method=INVITE>\n")
    info = dialog.create_request("INFO", b"Signal=5", "application/dtmf-relay")
    assert str(info.uri) == "sip:p1.example.com"  # parameters not allowed in a Request-URI stripped
    assert [str(r.uri) for r in info.routes] == ["sip:p2.example.com", "sip:bob@198.51.100.7:5062"]
    assert info.headers.get("Content-Type") == "application/dtmf-relay"
    assert str(dialog.next_hop) == "sip:p1.example.com;method=INVITE"


def test_no_route_set_sends_to_remote_target() -> None:
    dialog = uac_dialog(extra="")
    req = dialog.create_request("REFER", extra=[("Refer-To", "<sip:carol@example.com>")])
    assert req.routes == [] and str(req.uri) == "sip:bob@198.51.100.7:5062"
    assert req.headers.get("Contact") == ALICE_CONTACT and req.headers.get("Refer-To")
    assert dialog.next_hop == dialog.remote_target


# -- CSeq rules (§12.2.1.1, §12.2.2) ------------------------------------------------------------


def test_local_cseq_increments_per_request_but_ack_reuses_invite_number() -> None:
    dialog = uac_dialog()
    reinvite = dialog.create_request("INVITE", b"v=0\r\n")
    assert str(reinvite.cseq) == "11 INVITE"
    ack = dialog.create_ack(invite())
    assert str(ack.cseq) == "10 ACK" and str(ack.uri) == "sip:bob@198.51.100.7:5062"
    assert ack.headers.get("Proxy-Authorization") == 'Digest username="alice"'  # §13.2.2.4 credentials
    assert len(ack.routes) == 2
    assert str(dialog.create_request("UPDATE").cseq) == "12 UPDATE"
    with pytest.raises(ValueError):
        dialog.create_request("ACK")


def test_remote_cseq_lower_is_rejected_with_500() -> None:
    dialog = uac_dialog()
    assert dialog.receive_request(incoming(dialog, "INFO", 5)) is None
    assert dialog.remote_seq == 5
    stale = dialog.receive_request(incoming(dialog, "INFO", 4))
    assert stale is not None and stale.status == 500 and stale.to_tag == "atag"
    assert dialog.remote_seq == 5
    assert dialog.receive_request(incoming(dialog, "ACK", 1)) is None  # ACK exempt


def test_bye_terminates_the_dialog() -> None:
    dialog = uac_dialog()
    assert dialog.receive_request(incoming(dialog, "BYE", 2)) is None
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(ValueError):
        dialog.create_request("INFO")


# -- target refresh (§12.2) ------------------------------------------------------------------------


def test_reinvite_and_update_refresh_the_remote_target() -> None:
    dialog = uac_dialog()
    reinvite = incoming(dialog, "INVITE", 3, body="v=0", contact="<sip:bob@203.0.113.9:5070>")
    assert dialog.receive_request(reinvite) is None
    assert str(dialog.remote_target) == "sip:bob@203.0.113.9:5070"
    ok = dialog.create_response(reinvite, 200, "OK", 1.0, body=b"v=0\r\n")
    assert ok.headers.get("Contact") == ALICE_CONTACT
    update = dialog.create_request("UPDATE")
    dialog.receive_response(update, answer(update, 200, contact="<sip:bob@203.0.113.10>"), 2.0)
    assert str(dialog.remote_target) == "sip:bob@203.0.113.10"
    info = dialog.create_request("INFO")
    dialog.receive_response(info, answer(info, 200, contact="<sip:elsewhere@x>"), 3.0)
    assert str(dialog.remote_target) == "sip:bob@203.0.113.10"  # INFO is no target refresh


def test_2xx_retransmission_changes_nothing_and_dialog_ids_match() -> None:
    extra = "Session-Expires: 1800;refresher=uac\n"
    dialog = uac_dialog(extra=extra, now=0.0)
    reinvite = dialog.create_request("INVITE", b"v=0")
    ok = answer(reinvite, 200, extra=extra)
    dialog.receive_response(reinvite, ok, 10.0)
    assert dialog.get_timer() == 910.0
    dialog.receive_response(reinvite, ok, 12.0)
    assert dialog.get_timer() == 910.0
    assert Dialog.id_of_response(ok) == dialog.id
    assert Dialog.id_of_request(incoming(dialog, "BYE", 9)) == dialog.id


def test_481_to_an_in_dialog_request_ends_the_dialog() -> None:
    dialog = uac_dialog()
    info = dialog.create_request("INFO")
    dialog.receive_response(info, answer(info, 481), 1.0)
    assert dialog.state is DialogState.TERMINATED


# -- glare (§14.1, §14.2, RFC 3311 §5.2) ----------------------------------------------------------


def test_reinvite_while_ours_is_pending_gets_491_and_theirs_pending_gets_500() -> None:
    dialog = uac_dialog(rng=FixedRandom(0.5))
    dialog.create_request("INVITE", b"v=0\r\n")
    glare = dialog.receive_request(incoming(dialog, "INVITE", 3, body="v=0"))
    assert glare is not None and glare.status == 491

    other = uac_dialog(rng=FixedRandom(0.5))
    first = incoming(other, "INVITE", 3, body="v=0")
    assert other.receive_request(first) is None
    second = other.receive_request(incoming(other, "INVITE", 4, body="v=0"))
    assert second is not None and second.status == 500 and second.headers.get("Retry-After") is not None
    other.create_response(first, 200, "OK", 1.2)
    assert other.receive_request(incoming(other, "INVITE", 5)) is None  # answered: no glare


def test_update_offer_glare_and_bodyless_update_passes() -> None:
    dialog = uac_dialog()
    dialog.create_request("UPDATE", b"v=0\r\n")
    clash = dialog.receive_request(incoming(dialog, "UPDATE", 3, body="v=0"))
    assert clash is not None and clash.status == 491
    assert dialog.receive_request(incoming(dialog, "UPDATE", 4)) is None

    other = uac_dialog(rng=FixedRandom(0.5))
    reinvite = incoming(other, "INVITE", 3, body="v=0")
    assert other.receive_request(reinvite) is None
    refresh = incoming(other, "UPDATE", 4)  # no offer: allowed, and their offer stays pending
    assert other.receive_request(refresh) is None
    other.create_response(refresh, 200, "OK", 1.0)
    pending = other.receive_request(incoming(other, "UPDATE", 5, body="v=0"))
    assert pending is not None and pending.status == 500


@pytest.mark.parametrize(
    ("owner", "draw", "delay"), [(True, 0.0, 2.1), (True, 0.999, 4.0), (False, 0.5, 1.0)]
)
def test_glare_delay_ranges(owner: bool, draw: float, delay: float) -> None:
    assert glare_delay(owner, draw) == delay


def test_491_retries_after_the_owner_back_off_with_a_new_cseq() -> None:
    dialog = uac_dialog(rng=FixedRandom(0.5))  # owner: 2.1 + 0.95 = 3.05 s
    reinvite = dialog.create_request("INVITE", b"v=0 hold\r\n")
    dialog.receive_response(reinvite, answer(reinvite, 491), 10.0)
    assert dialog.get_timer() == pytest.approx(13.05)
    # Nothing of ours is pending during the back-off, so the peer's own re-INVITE is accepted.
    assert dialog.receive_request(incoming(dialog, "INVITE", 3)) is None
    dialog.create_response(incoming(dialog, "INVITE", 3), 200, "OK", 11.0)
    dialog.handle_timer(13.0)
    assert events(dialog) == []
    dialog.handle_timer(13.05)
    (event,) = events(dialog)
    assert isinstance(event, RetryDue)
    assert str(event.request.cseq) == "12 INVITE" and event.request.body == b"v=0 hold\r\n"
    assert event.request.headers.lines("Content-Type") == ["application/sdp"]


def test_491_back_off_for_the_non_owner() -> None:
    dialog = uas_dialog(rng=FixedRandom(0.25))
    reinvite = dialog.create_request("INVITE")
    dialog.receive_response(reinvite, answer(reinvite, 491, to_tag="atag"), 0.0)
    assert dialog.get_timer() == pytest.approx(0.5)


# -- session timers (RFC 4028) --------------------------------------------------------------------


def test_parse_session_expires() -> None:
    assert parse_session_expires("1800;refresher=UAS") == SessionExpires(1800, "uas")
    assert parse_session_expires("90") == SessionExpires(90, None)
    with pytest.raises(HeaderError):
        parse_session_expires("90;refresher=proxy")


def test_uac_refresher_sends_update_at_half_interval() -> None:
    extra = "Session-Expires: 1800;refresher=uac\nAllow: INVITE, ACK, BYE, UPDATE\n"
    dialog = uac_dialog(extra=extra, now=100.0)
    assert dialog.we_refresh and dialog.peer_allows_update
    assert dialog.get_timer() == 100.0 + 900.0
    dialog.handle_timer(999.0)
    assert events(dialog) == []
    dialog.handle_timer(1000.0)
    (event,) = events(dialog)
    assert isinstance(event, RefreshDue)
    refresh = event.request
    assert refresh.method == "UPDATE" and refresh.body == b""
    assert refresh.headers.get("Session-Expires") == "1800;refresher=uac"
    assert "timer" in refresh.headers.get_all("Supported")
    assert dialog.get_timer() is None  # until the refresh's 2xx
    dialog.receive_response(
        refresh, answer(refresh, 200, extra="Session-Expires: 1800;refresher=uac\n"), 1000.2
    )
    assert dialog.get_timer() == pytest.approx(1900.2)


def test_refresh_by_reinvite_carries_the_last_offer_when_update_is_not_allowed() -> None:
    req = invite(body="v=0 first", extra="Content-Type: application/sdp\n")
    ok = answer(req, 200, extra="Session-Expires: 600;refresher=uac\n")
    dialog = Dialog.create_uac(req, ok, 0.0)
    dialog.handle_timer(300.0)
    (event,) = events(dialog)
    assert isinstance(event, RefreshDue)
    assert event.request.method == "INVITE" and event.request.body == b"v=0 first"


def test_non_refresher_sends_bye_before_expiry_unless_refreshed() -> None:
    dialog = uac_dialog(extra="Session-Expires: 1800;refresher=uas\n")
    assert not dialog.we_refresh
    assert dialog.get_timer() == 1800 - 32  # RFC 4028 §10: minus min(32 s, interval/3)
    refresh = incoming(dialog, "UPDATE", 2, extra="Session-Expires: 1800;refresher=uac\nSupported: timer\n")
    assert dialog.receive_request(refresh) is None
    ok = dialog.create_response(refresh, 200, "OK", 1000.0)
    assert ok.headers.get("Session-Expires") == "1800;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    assert dialog.get_timer() == 1000.0 + 1800 - 32
    dialog.handle_timer(2767.9)
    assert events(dialog) == []
    dialog.handle_timer(2768.0)
    (event,) = events(dialog)
    assert isinstance(event, SessionExpired)
    assert event.bye.method == "BYE" and event.bye.to_tag == "btag"
    assert dialog.state is DialogState.TERMINATED and dialog.get_timer() is None


def test_short_interval_uses_a_third() -> None:
    dialog = uac_dialog(extra="Session-Expires: 90;refresher=uas\n")
    assert dialog.get_timer() == pytest.approx(60.0)


def test_uas_refresher_when_the_uac_has_no_timer_support() -> None:
    req = invite(extra="Session-Expires: 1200\n")
    dialog = Dialog.create_uas(req, "btag", "<sip:bob@h>")
    ok = dialog.create_response(req, 200, "OK", 50.0)
    assert ok.headers.get("Session-Expires") == "1200;refresher=uas"
    assert "Require" not in ok.headers
    assert dialog.we_refresh and dialog.get_timer() == 50.0 + 600.0


def test_too_small_interval_gets_422_with_min_se() -> None:
    assert check_session_interval(invite("Session-Expires: 1800\n"), 90, "t") is None
    small = check_session_interval(invite("Session-Expires: 60\n"), 90, "t")
    assert small is not None and small.status == 422 and small.headers.get("Min-SE") == "90"
    dialog = uac_dialog()
    dialog.min_se = 300
    refused = dialog.receive_request(incoming(dialog, "UPDATE", 3, extra="Session-Expires: 120\n"))
    assert refused is not None and refused.status == 422 and refused.headers.get("Min-SE") == "300"


def test_422_retry_raises_min_se() -> None:
    req = invite("Supported: timer\nSession-Expires: 100\n")
    again = retry_after_422(req, answer(req, 422, extra="Min-SE: 1000\n"))
    assert str(again.cseq) == "11 INVITE" and "Via" not in again.headers
    assert again.headers.get("Session-Expires") == "1000" and again.headers.get("Min-SE") == "1000"
    assert again.headers.get_all("Supported") == ["timer"]

    dialog = uac_dialog(extra="Session-Expires: 120;refresher=uac\n")
    dialog.handle_timer(60.0)
    (refresh,) = events(dialog)
    assert isinstance(refresh, RefreshDue)
    dialog.receive_response(refresh.request, answer(refresh.request, 422, extra="Min-SE: 600\n"), 60.1)
    (retry,) = events(dialog)
    assert isinstance(retry, RetryDue)
    assert retry.request.headers.get("Session-Expires") == "600;refresher=uac"
    assert retry.request.headers.get("Min-SE") == "600" and dialog.min_se == 600
    assert retry.request.cseq.number == refresh.request.cseq.number + 1


# -- forking (§13.2.2.4) --------------------------------------------------------------------------


def test_forked_early_dialogs_first_2xx_wins_later_2xx_acked_and_byed() -> None:
    req = invite()
    forks = InviteForks(req)
    assert forks.receive_response(answer(req, 100, to_tag=""), 0.1).dialog is None
    a = forks.receive_response(answer(req, 180, to_tag="a", contact="<sip:a@10.0.0.1>"), 0.2).dialog
    b = forks.receive_response(answer(req, 183, to_tag="b", contact="<sip:b@10.0.0.2>"), 0.3).dialog
    assert a is not None and b is not None and a is not b
    assert a.state is DialogState.EARLY and b.state is DialogState.EARLY

    win = forks.receive_response(answer(req, 200, to_tag="b", contact="<sip:b@10.0.0.2>", extra=RR), 1.0)
    assert win.dialog is b and win.bye is None and forks.winner is b
    assert b.state is DialogState.CONFIRMED and a.state is DialogState.TERMINATED
    assert win.ack is not None and str(win.ack.cseq) == "10 ACK" and win.ack.to_tag == "b"
    assert [str(r.uri) for r in b.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]

    again = forks.receive_response(answer(req, 200, to_tag="b"), 1.5)  # retransmission: ACK again
    assert again.ack == win.ack and again.bye is None

    late = forks.receive_response(answer(req, 200, to_tag="c", contact="<sip:c@10.0.0.3>"), 2.0)
    assert late.ack is not None and late.ack.to_tag == "c" and str(late.ack.uri) == "sip:c@10.0.0.3"
    assert late.bye is not None and late.bye.to_tag == "c" and str(late.bye.cseq) == "11 BYE"
    assert late.dialog is not None and late.dialog.state is DialogState.TERMINATED
    assert forks.receive_response(answer(req, 200, to_tag="c"), 2.5).bye is None


def test_final_error_ends_all_early_dialogs() -> None:
    req = invite()
    forks = InviteForks(req)
    early = forks.receive_response(answer(req, 180, to_tag="a"), 0.1).dialog
    assert forks.receive_response(answer(req, 486, to_tag="z"), 1.0).dialog is None
    assert early is not None and early.state is DialogState.TERMINATED


def test_uas_dialog_rejects_invite_without_contact() -> None:
    req = invite()
    req.headers.remove("Contact")
    with pytest.raises(ValueError):
        Dialog.create_uas(req, "t", "<sip:bob@h>")
    assert isinstance(uac_dialog().remote_target, SipUri)


# -- the pieces together: two transaction layers and their dialogs ---------------------------------


def with_via(request: Request, sent_by: str) -> Request:
    """What the UA does before sending a dialog-built request: add its transport's Via."""
    request.headers.insert(0, "Via", f"SIP/2.0/UDP {sent_by};rport")
    return request


def test_call_setup_and_teardown_across_two_transaction_layers() -> None:
    a_addr, b_addr = ("192.0.2.1", 5060), ("198.51.100.7", 5062)
    alice, bob = TransactionLayer(rng=random.Random(1)), TransactionLayer(rng=random.Random(2))

    def deliver(src: TransactionLayer, dst: TransactionLayer, src_addr: Addr, now: float) -> None:
        for data, _ in src.datagrams_to_send(now):
            dst.receive(data, src_addr, now)

    req = invite()
    req.headers.remove("Via")
    invite_tx = alice.send_request(with_via(req, "192.0.2.1:5060"), b_addr, False, 0.0)
    forks = InviteForks(invite_tx.request)
    deliver(alice, bob, a_addr, 0.0)
    incoming_invite = bob.next_event()
    assert isinstance(incoming_invite, RequestReceived)
    uas = Dialog.create_uas(incoming_invite.request, "btag", "<sip:bob@198.51.100.7:5062>")
    ok = uas.create_response(incoming_invite.request, 200, "OK", 0.1, body=b"v=0")
    bob.send_response(incoming_invite.transaction, ok, 0.1)
    deliver(bob, alice, b_addr, 0.1)

    got = alice.next_event()
    assert isinstance(got, ResponseReceived) and got.response.status == 200
    result = forks.receive_response(got.response, 0.1)
    assert result.dialog is not None and result.ack is not None
    alice.send_stateless(with_via(result.ack, "192.0.2.1:5060"), b_addr)
    deliver(alice, bob, a_addr, 0.2)
    acked = bob.next_event()
    assert isinstance(acked, AckReceived) and acked.transaction is incoming_invite.transaction
    assert bob.get_timer() == pytest.approx(32.1)  # no more 2xx retransmissions, only timer L

    bye = alice.send_request(
        with_via(result.dialog.create_request("BYE"), "192.0.2.1:5060"), b_addr, False, 5.0
    )
    deliver(alice, bob, a_addr, 5.0)
    got_bye = bob.next_event()
    assert isinstance(got_bye, RequestReceived)
    assert Dialog.id_of_request(got_bye.request) == uas.id
    assert uas.receive_request(got_bye.request) is None and uas.state is DialogState.TERMINATED
    bob.send_response(got_bye.transaction, uas.create_response(got_bye.request, 200, "OK", 5.1), 5.1)
    deliver(bob, alice, b_addr, 5.1)
    done = alice.next_event()
    assert isinstance(done, ResponseReceived) and done.transaction is bye and done.response.status == 200
