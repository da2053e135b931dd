"""RFC 3261 §17 transactions driven with invented times: every timer fires exactly when the RFC says."""

from __future__ import annotations

import random

import pytest

from firmware.sip.message import Request, Response, parse_message
from firmware.sip.transaction import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    State,
    TransactionLayer,
    TransactionTimeout,
    TransportError,
)

PEER = ("192.0.2.10", 5060)


def request(
    method: str = "INVITE",
    branch: str = "z9hG4bKabc",
    cseq: int = 1,
    to_tag: str | None = None,
    from_tag: str = "ft",
    call_id: str = "c1@h",
    sent_by: str = "192.0.2.10:5060",
) -> Request:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {sent_by};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@example.com>;tag={from_tag}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Route: <sip:proxy.example.com;lr>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def response_to(req: Request, status: int, to_tag: str | None = "tt", reason: str = "X") -> Response:
    headers = req.headers.copy()
    headers.remove("Max-Forwards")
    headers.remove("Route")
    if to_tag is not None and req.to_tag is None:
        headers.set("To", f"{headers.lines('To')[0]};tag={to_tag}")
    return Response(status, reason, headers)


def sent(layer: TransactionLayer, now: float) -> list[Request | Response]:
    return [parse_message(data) for data, _ in layer.datagrams_to_send(now)]


def events(layer: TransactionLayer) -> list[Event]:
    out: list[Event] = []
    while (event := layer.next_event()) is not None:
        out.append(event)
    return out


def run_until(layer: TransactionLayer, end: float) -> list[tuple[float, Request | Response]]:
    """Fire every timer up to `end`, recording when each message went out."""
    log = []
    while (deadline := layer.get_timer()) is not None and deadline <= end:
        layer.handle_timer(deadline)
        log += [(deadline, m) for m in sent(layer, deadline)]
    return log


def start_client(
    method: str = "INVITE", reliable: bool = False
) -> tuple[TransactionLayer, ClientTransaction]:
    layer = TransactionLayer(rng=random.Random(7))
    tx = layer.send_request(request(method), PEER, reliable, 0.0)
    assert len(sent(layer, 0.0)) == 1
    return layer, tx


# -- client INVITE (§17.1.1) ---------------------------------------------------------------------


def test_invite_client_timer_a_doubles_and_timer_b_times_out_at_32s() -> None:
    layer, tx = start_client()
    log = run_until(layer, 100.0)
    assert [t for t, _ in log] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert [e for e in events(layer)] == [TransactionTimeout(tx)]
    assert tx.state is State.TERMINATED
    assert layer.get_timer() is None


def test_invite_client_over_tcp_never_retransmits_but_b_still_fires() -> None:
    layer, tx = start_client(reliable=True)
    assert layer.get_timer() == 32.0
    assert run_until(layer, 100.0) == []
    assert events(layer) == [TransactionTimeout(tx)]


def test_provisional_stops_retransmission_and_timer_b() -> None:
    layer, tx = start_client()
    layer.receive(response_to(tx.request, 180), PEER, 0.2)
    assert [type(e) for e in events(layer)] == [ResponseReceived]
    assert tx.state is State.PROCEEDING
    assert layer.get_timer() is None


def test_2xx_goes_to_tu_including_retransmissions_and_forks_then_timer_m() -> None:
    layer, tx = start_client()
    ok = response_to(tx.request, 200)
    layer.receive(ok, PEER, 1.0)
    layer.receive(ok, PEER, 1.2)
    layer.receive(response_to(tx.request, 200, to_tag="other-fork"), PEER, 1.3)
    assert [e.response.to_tag for e in events(layer) if isinstance(e, ResponseReceived)] == [
        "tt",
        "tt",
        "other-fork",
    ]
    assert tx.state is State.ACCEPTED
    assert sent(layer, 1.3) == []  # the TU ACKs 2xx itself
    assert layer.get_timer() == 1.0 + 32.0
    layer.handle_timer(33.0)
    assert tx.state is State.TERMINATED


def test_non2xx_final_is_acked_with_same_branch_and_response_to_tag() -> None:
    layer, tx = start_client()
    busy = response_to(tx.request, 486, to_tag="busytag")
    layer.receive(busy, PEER, 2.0)
    (ack,) = sent(layer, 2.0)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.uri == tx.request.uri
    assert ack.top_via.branch == tx.request.top_via.branch
    assert ack.to_tag == "busytag" and ack.from_tag == "ft"
    assert str(ack.cseq) == "1 ACK"
    assert ack.call_id == "c1@h"
    assert [str(r.uri) for r in ack.routes] == ["sip:proxy.example.com;lr"]
    assert [type(e) for e in events(layer)] == [ResponseReceived]
    # A retransmitted final response is ACKed again but not passed up; timer D ends it at 32 s.
    layer.receive(busy, PEER, 3.0)
    assert [m.method for m in sent(layer, 3.0) if isinstance(m, Request)] == ["ACK"]
    assert events(layer) == []
    assert layer.get_timer() == 2.0 + 32.0
    layer.handle_timer(34.0)
    assert tx.state is State.TERMINATED


def test_non2xx_over_tcp_terminates_at_once() -> None:
    layer, tx = start_client(reliable=True)
    layer.receive(response_to(tx.request, 404), PEER, 1.0)
    assert [m.method for m in sent(layer, 1.0) if isinstance(m, Request)] == ["ACK"]
    assert tx.state is State.TERMINATED


# -- client non-INVITE (§17.1.2) -----------------------------------------------------------------


def test_non_invite_timer_e_caps_at_t2_and_timer_f_at_32s() -> None:
    layer, tx = start_client("OPTIONS")
    log = run_until(layer, 100.0)
    assert [t for t, _ in log] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events(layer) == [TransactionTimeout(tx)]


def test_non_invite_proceeding_retransmits_every_t2() -> None:
    layer, tx = start_client("BYE")
    layer.handle_timer(0.5)
    assert len(sent(layer, 0.5)) == 1
    layer.receive(response_to(tx.request, 100), PEER, 0.6)
    log = run_until(layer, 10.0)
    assert [t for t, _ in log] == [1.5, 5.5, 9.5]


def test_non_invite_final_then_timer_k_absorbs_retransmissions() -> None:
    layer, tx = start_client("BYE")
    ok = response_to(tx.request, 200)
    layer.receive(ok, PEER, 0.3)
    layer.receive(ok, PEER, 0.4)
    assert [type(e) for e in events(layer)] == [ResponseReceived]
    assert tx.state is State.COMPLETED
    assert layer.get_timer() == pytest.approx(5.3)  # timer K = T4
    layer.handle_timer(5.3)
    assert tx.state is State.TERMINATED


def test_non_invite_over_tcp_no_retransmission_and_no_timer_k() -> None:
    layer, tx = start_client("BYE", reliable=True)
    assert layer.get_timer() == 32.0
    layer.receive(response_to(tx.request, 200), PEER, 0.3)
    assert tx.state is State.TERMINATED


def test_response_matching_needs_branch_and_cseq_method() -> None:
    layer, tx = start_client("INVITE")
    stray = response_to(tx.request, 180)
    stray.headers.set("CSeq", "1 CANCEL")
    layer.receive(stray, PEER, 0.1)
    other = response_to(request(branch="z9hG4bKzzz"), 180)
    layer.receive(other, PEER, 0.1)
    assert events(layer) == []
    assert tx.state is State.CALLING


def test_every_request_gets_a_fresh_branch_and_acks_keep_theirs() -> None:
    layer = TransactionLayer(rng=random.Random(1))
    req = request("OPTIONS")
    req.headers.set("Via", "SIP/2.0/UDP 192.0.2.1:5060;rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlower")
    first = layer.send_request(req, PEER, False, 0.0)
    again = layer.send_request(req, PEER, False, 0.0)  # e.g. re-sent with credentials after a 401
    out = sent(layer, 0.0)
    assert [m.top_via.branch for m in out] == [first.branch, again.branch]
    assert first.branch != again.branch and first.branch.startswith("z9hG4bK")
    assert out[0].top_via.rport_requested and out[0].vias[1].branch == "z9hG4bKlower"
    ack = layer.send_stateless(request("ACK", branch="z9hG4bKmine", to_tag="t"), PEER)
    bare = request("ACK", to_tag="t")
    bare.headers.set("Via", "SIP/2.0/UDP 192.0.2.1:5060")
    fresh = layer.send_stateless(bare, PEER)
    assert ack.top_via.branch == "z9hG4bKmine" and fresh.top_via.has_magic_cookie
    assert [m.top_via.branch for m in sent(layer, 0.0)] == ["z9hG4bKmine", fresh.top_via.branch]
    with pytest.raises(ValueError):
        layer.send_request(bare, PEER, False, 0.0)


# -- CANCEL (§9.1) -------------------------------------------------------------------------------


def test_cancel_waits_for_a_provisional_then_copies_the_invite() -> None:
    layer, tx = start_client()
    assert layer.cancel(tx, 0.1)
    assert layer.cancel(tx, 0.2)  # idempotent: still one CANCEL
    assert sent(layer, 0.1) == []
    layer.receive(response_to(tx.request, 180), PEER, 0.7)
    out = sent(layer, 0.7)
    assert [m.method for m in out if isinstance(m, Request)] == ["CANCEL"]
    cancel = out[0]
    assert isinstance(cancel, Request)
    assert cancel.top_via.branch == tx.request.top_via.branch
    assert str(cancel.cseq) == "1 CANCEL" and cancel.uri == tx.request.uri
    assert cancel.to_tag is None and cancel.from_tag == "ft" and cancel.call_id == "c1@h"
    assert len(cancel.routes) == 1
    # The CANCEL is its own non-INVITE transaction: its 200 does not disturb the INVITE.
    layer.receive(response_to(cancel, 200), PEER, 0.8)
    layer.receive(response_to(tx.request, 487), PEER, 0.9)
    got = [
        (e.response.status, e.transaction.method) for e in events(layer) if isinstance(e, ResponseReceived)
    ]
    assert got == [(180, "INVITE"), (200, "CANCEL"), (487, "INVITE")]


def test_cancel_after_final_response_is_refused() -> None:
    layer, tx = start_client()
    layer.receive(response_to(tx.request, 486), PEER, 0.1)
    assert not layer.cancel(tx, 0.2)
    non_invite_layer, bye = start_client("BYE")
    assert not non_invite_layer.cancel(bye, 0.1)


def test_pending_cancel_dropped_when_a_final_response_comes_first() -> None:
    layer, tx = start_client()
    layer.cancel(tx, 0.1)
    layer.receive(response_to(tx.request, 200), PEER, 0.3)
    assert [m.method for m in sent(layer, 0.3) if isinstance(m, Request)] == []
    assert not tx.cancel_pending


# -- server INVITE (§17.2.1) ---------------------------------------------------------------------


def server(trying_delay: float = 0.2) -> TransactionLayer:
    return TransactionLayer(rng=random.Random(3), trying_delay=trying_delay)


def receive_new(layer: TransactionLayer, req: Request, now: float, reliable: bool = False) -> RequestReceived:
    layer.receive(req.to_bytes(), PEER, now, reliable=reliable)
    (event,) = events(layer)
    assert isinstance(event, RequestReceived)
    return event


def test_100_trying_after_200ms_unless_the_tu_answers() -> None:
    layer = server()
    receive_new(layer, request(), 10.0)
    assert layer.get_timer() == pytest.approx(10.2)
    layer.handle_timer(10.2)
    (trying,) = sent(layer, 10.2)
    assert isinstance(trying, Response) and trying.status == 100 and trying.to_tag is None

    quick = server()
    event = receive_new(quick, request(), 10.0)
    quick.send_response(event.transaction, response_to(event.request, 180), 10.1)
    quick.handle_timer(10.3)
    assert [m.status for m in sent(quick, 10.3) if isinstance(m, Response)] == [180]


def test_100_trying_immediately_when_configured() -> None:
    layer = server(trying_delay=0.0)
    receive_new(layer, request(), 1.0)
    assert [m.status for m in sent(layer, 1.0) if isinstance(m, Response)] == [100]


def test_invite_retransmission_resends_latest_provisional() -> None:
    layer = server()
    event = receive_new(layer, request(), 0.0)
    layer.send_response(event.transaction, response_to(event.request, 180), 0.05)
    sent(layer, 0.05)
    layer.receive(request().to_bytes(), PEER, 0.5)
    assert events(layer) == []
    assert [m.status for m in sent(layer, 0.5) if isinstance(m, Response)] == [180]


def test_final_non2xx_timer_g_caps_at_t2_timer_h_at_32s() -> None:
    layer = server()
    event = receive_new(layer, request(), 0.0)
    layer.send_response(event.transaction, response_to(event.request, 486), 0.0)
    sent(layer, 0.0)
    log = run_until(layer, 100.0)
    assert [t for t, _ in log] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events(layer) == [TransactionTimeout(event.transaction)]


def test_ack_stops_g_and_timer_i_absorbs_acks() -> None:
    layer = server()
    event = receive_new(layer, request(), 0.0)
    tx = event.transaction
    layer.send_response(tx, response_to(event.request, 486, to_tag="s1"), 0.0)
    sent(layer, 0.0)
    ack = request("ACK", cseq=1, to_tag="s1")
    layer.receive(ack.to_bytes(), PEER, 0.7)
    assert tx.state is State.CONFIRMED
    assert layer.get_timer() == pytest.approx(5.7)  # timer I = T4
    layer.receive(ack.to_bytes(), PEER, 1.0)
    layer.receive(request().to_bytes(), PEER, 1.1)  # INVITE retransmission in Confirmed: absorbed
    assert events(layer) == [] and sent(layer, 1.1) == []
    layer.handle_timer(5.7)
    assert tx.state is State.TERMINATED


def test_final_non2xx_over_tcp_no_g_and_ack_ends_at_once() -> None:
    layer = server()
    event = receive_new(layer, request(), 0.0, reliable=True)
    layer.send_response(event.transaction, response_to(event.request, 603, to_tag="s1"), 0.0)
    assert layer.get_timer() == 32.0  # H only
    layer.receive(request("ACK", to_tag="s1").to_bytes(), PEER, 0.1, reliable=True)
    assert event.transaction.state is State.TERMINATED


def test_2xx_retransmitted_until_ack_even_over_tcp() -> None:
    layer = server()
    event = receive_new(layer, request(), 0.0, reliable=True)
    tx = event.transaction
    layer.send_response(tx, response_to(event.request, 200, to_tag="s1"), 0.0)
    sent(layer, 0.0)
    log = run_until(layer, 8.0)
    assert [t for t, _ in log] == [0.5, 1.5, 3.5, 7.5]
    ack = request("ACK", branch="z9hG4bKnewbranch", to_tag="s1")  # §13.2.2.4: a new branch
    layer.receive(ack.to_bytes(), PEER, 8.0)
    assert events(layer) == [AckReceived(tx, ack)]
    assert run_until(layer, 31.0) == []
    layer.receive(request().to_bytes(), PEER, 9.0)  # INVITE retransmission in Accepted: absorbed
    assert events(layer) == [] and sent(layer, 9.0) == []
    layer.handle_timer(32.0)
    assert tx.state is State.TERMINATED and events(layer) == []


def test_2xx_never_acked_gives_ack_timeout_after_64_t1() -> None:
    layer = server()
    event = receive_new(layer, request(), 0.0)
    layer.send_response(event.transaction, response_to(event.request, 200, to_tag="s1"), 0.0)
    sent(layer, 0.0)
    log = run_until(layer, 40.0)
    assert [t for t, _ in log] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events(layer) == [AckTimeout(event.transaction)]


def test_ack_for_unknown_2xx_reaches_the_tu_without_transaction() -> None:
    layer = server()
    ack = request("ACK", to_tag="gone")
    layer.receive(ack.to_bytes(), PEER, 0.0)
    assert events(layer) == [AckReceived(None, ack)]


# -- server non-INVITE (§17.2.2) -----------------------------------------------------------------


def test_non_invite_server_resends_final_on_retransmission_and_timer_j() -> None:
    layer = server()
    bye = request("BYE", to_tag="s1")
    event = receive_new(layer, bye, 0.0)
    layer.receive(bye.to_bytes(), PEER, 0.4)  # Trying: nothing to resend yet
    assert sent(layer, 0.4) == []
    layer.send_response(event.transaction, response_to(bye, 200), 0.5)
    sent(layer, 0.5)
    layer.receive(bye.to_bytes(), PEER, 1.0)
    assert [m.status for m in sent(layer, 1.0) if isinstance(m, Response)] == [200]
    assert events(layer) == []
    assert layer.get_timer() == 0.5 + 32.0  # timer J
    layer.handle_timer(32.5)
    assert event.transaction.state is State.TERMINATED


def test_non_invite_server_over_tcp_terminates_on_final() -> None:
    layer = server()
    bye = request("BYE", to_tag="s1")
    event = receive_new(layer, bye, 0.0, reliable=True)
    layer.send_response(event.transaction, response_to(bye, 200), 0.5)
    assert event.transaction.state is State.TERMINATED


def test_server_matching_uses_sent_by_and_method() -> None:
    layer = server()
    receive_new(layer, request("OPTIONS"), 0.0)
    # Same branch from another sent-by is another transaction (and a merged request: see below).
    layer.receive(request("OPTIONS", sent_by="198.51.100.1", from_tag="x").to_bytes(), PEER, 0.1)
    assert [type(e) for e in events(layer)] == [RequestReceived]


# -- merged requests (§8.2.2.2) ------------------------------------------------------------------


def test_merged_request_gets_482() -> None:
    layer = server()
    receive_new(layer, request(), 0.0)
    sent(layer, 0.0)
    layer.receive(request(branch="z9hG4bKviaother").to_bytes(), PEER, 0.1)
    assert events(layer) == []
    (answer,) = sent(layer, 0.1)
    assert isinstance(answer, Response) and answer.status == 482 and answer.to_tag


def test_same_call_id_with_to_tag_or_new_cseq_is_not_merged() -> None:
    layer = server()
    receive_new(layer, request("INFO", to_tag="s1"), 0.0)
    receive_new(layer, request("INFO", branch="z9hG4bK2", to_tag="s1"), 0.1)
    receive_new(layer, request("INVITE", branch="z9hG4bK3", cseq=2), 0.2)


# -- RFC 2543 matching (§17.2.3) -----------------------------------------------------------------


def test_rfc2543_matching_without_magic_cookie() -> None:
    layer = server()
    old = request(branch="oldstyle1")
    event = receive_new(layer, old, 0.0)
    layer.send_response(event.transaction, response_to(old, 486, to_tag="s9"), 0.0)
    sent(layer, 0.0)
    layer.receive(old.to_bytes(), PEER, 0.2)  # retransmission matched by URI/tags/Call-ID/CSeq/Via
    assert [m.status for m in sent(layer, 0.2) if isinstance(m, Response)] == [486]
    layer.receive(request("ACK", branch="oldstyle1", to_tag="s9").to_bytes(), PEER, 0.3)
    assert event.transaction.state is State.CONFIRMED
    assert events(layer) == []
    # A different CSeq is a different legacy transaction.
    receive_new(layer, request(branch="oldstyle1", cseq=2), 0.4)


def test_rfc2543_matching_needs_the_same_top_via() -> None:
    layer = server()
    receive_new(layer, request(branch="oldstyle1"), 0.0)
    sent(layer, 0.0)
    layer.receive(request(branch="oldstyle1", sent_by="198.51.100.9").to_bytes(), PEER, 0.1)
    assert events(layer) == []  # not a retransmission: the same request by another path, so 482
    assert [m.status for m in sent(layer, 0.1) if isinstance(m, Response)] == [482]


def test_rfc2543_ack_with_wrong_to_tag_does_not_match() -> None:
    layer = server()
    old = request(branch="oldstyle1")
    event = receive_new(layer, old, 0.0)
    layer.send_response(event.transaction, response_to(old, 486, to_tag="s9"), 0.0)
    layer.receive(request("ACK", branch="oldstyle1", to_tag="nope").to_bytes(), PEER, 0.3)
    assert event.transaction.state is State.COMPLETED


# -- CANCEL server side (§9.2) -------------------------------------------------------------------


def test_cancel_answers_200_and_tells_tu_to_send_487() -> None:
    layer = server()
    event = receive_new(layer, request(), 0.0)
    tx = event.transaction
    layer.send_response(tx, response_to(event.request, 180, to_tag="s1"), 0.1)
    sent(layer, 0.1)
    cancel = request("CANCEL")
    layer.receive(cancel.to_bytes(), PEER, 1.0)
    assert events(layer) == [CancelReceived(tx, cancel)]
    (ok,) = sent(layer, 1.0)
    assert isinstance(ok, Response) and ok.status == 200 and ok.cseq.method == "CANCEL"
    assert ok.to_tag == "s1"  # §9.2: same To tag as the INVITE's response
    layer.receive(cancel.to_bytes(), PEER, 1.5)  # retransmitted CANCEL: 200 again, no new event
    assert [m.status for m in sent(layer, 1.5) if isinstance(m, Response)] == [200]
    assert events(layer) == []
    layer.send_response(tx, response_to(event.request, 487, to_tag="s1"), 1.6)
    assert tx.state is State.COMPLETED


def test_cancel_without_invite_gets_481_and_after_final_has_no_effect() -> None:
    layer = server()
    layer.receive(request("CANCEL", branch="z9hG4bKnone").to_bytes(), PEER, 0.0)
    assert [m.status for m in sent(layer, 0.0) if isinstance(m, Response)] == [481]
    event = receive_new(layer, request(), 1.0)
    layer.send_response(event.transaction, response_to(event.request, 200, to_tag="s1"), 1.0)
    sent(layer, 1.0)
    layer.receive(request("CANCEL").to_bytes(), PEER, 1.1)
    assert events(layer) == []
    assert [m.status for m in sent(layer, 1.1) if isinstance(m, Response)] == [200]


def test_malformed_request_answered_statelessly_and_unsendable_states_rejected() -> None:
    layer = server()
    bad = request("OPTIONS").to_bytes().replace(b"Max-Forwards: 70", b"Max-Forwards: 300")
    layer.receive(bad, PEER, 0.0)
    assert [m.status for m in sent(layer, 0.0) if isinstance(m, Response)] == [400]
    event = receive_new(layer, request("OPTIONS"), 0.0)
    layer.send_response(event.transaction, response_to(event.request, 200), 0.0)
    with pytest.raises(ValueError):
        layer.send_response(event.transaction, response_to(event.request, 200), 0.1)


def test_transport_error_ends_the_peers_transactions() -> None:
    layer, tx = start_client("INVITE")
    other = layer.send_request(request("OPTIONS", branch="z9hG4bKo"), ("198.51.100.2", 5060), False, 0.0)
    assert len(sent(layer, 0.0)) == 1
    layer.transport_error(PEER)
    assert events(layer) == [TransportError(tx)]
    assert tx.state is State.TERMINATED and other.state is State.TRYING
    assert [t for t, _ in run_until(layer, 1.0)] == [0.5]  # only the other peer's E retransmission
