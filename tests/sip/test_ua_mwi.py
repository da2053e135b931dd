"""Message waiting by SUBSCRIBE (RFC 3842, RFC 6665) through the user agent, sans-IO with invented
times against a scripted notifier."""

from __future__ import annotations

from firmware.sip.message import Request
from firmware.sip.ua import AccountConfig, MessageWaiting, UserAgent
from tests.sip.test_ua import PROXY, answer, challenge, events, make_ua, requests, responses

MWI_ACCOUNTS = (AccountConfig("1", "alice", "alice-pw", mwi_subscribe=True),
                AccountConfig("2", "bob", "bob-pw"))


def notify(sub: Request, state: str, waiting: str | None = "yes", *, cseq: int = 1,
           event: str = "message-summary") -> bytes:
    """A NOTIFY from the notifier in the subscription's dialog (its tag 'ntf', ours as To tag)."""
    body = (f"Messages-Waiting: {waiting}\r\nVoice-Message: 2/0 (0/0)\r\n" if waiting else "").encode()
    lines = [
        "NOTIFY sip:alice@192.168.1.10:5062 SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKn{cseq}{state[:3]}",
        "Max-Forwards: 70",
        "From: <sip:alice@pbx.example.com>;tag=ntf",
        f"To: {sub.headers.lines('From')[0]}",
        f"Call-ID: {sub.call_id}",
        f"CSeq: {cseq} NOTIFY",
        "Contact: <sip:mwi@192.0.2.1:5060>",
        f"Event: {event}",
        f"Subscription-State: {state}",
        "Content-Type: application/simple-message-summary",
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


def test_subscribe_challenge_grant_notify_refresh_and_unsubscribe() -> None:
    ua = make_ua(accounts=MWI_ACCOUNTS)
    ua.start(0.0)
    (sub,) = requests(ua, "SUBSCRIBE", 0.0)  # only the account that asked for it
    assert str(sub.uri) == "sip:alice@pbx.example.com", "RFC 3842 §4: the user's own AOR"
    assert sub.headers.get("Event") == "message-summary"
    assert sub.headers.get("Accept") == "application/simple-message-summary"
    assert sub.headers.get("Expires") == "3600" and sub.to_tag is None
    ua.receive(answer(sub, 407, "Proxy Authentication Required", extra=challenge()), PROXY, "udp", 0.1)
    (retry,) = requests(ua, "SUBSCRIBE", 0.1)
    assert 'username="alice"' in retry.headers.lines("Proxy-Authorization")[0]
    assert retry.cseq.number == sub.cseq.number + 1 and retry.call_id == sub.call_id
    ua.receive(answer(retry, 200, "OK", to_tag="ntf", extra="Expires: 600\nContact: <sip:mwi@192.0.2.1>"),
               PROXY, "udp", 0.2)
    ua.receive(notify(retry, "active;expires=599"), PROXY, "udp", 0.3)
    assert [r.status for r in responses(ua, 0.3)] == [200]
    assert [e for e in events(ua) if isinstance(e, MessageWaiting)] == [MessageWaiting("1", True)]
    ua.handle_timer(566.0)
    assert requests(ua, "SUBSCRIBE", 566.0) == [], "not yet"
    ua.handle_timer(599 - 32 + 0.3)  # refresh 32 s before the expiry the last NOTIFY gave
    (refresh,) = requests(ua, "SUBSCRIBE", 600.0)
    assert refresh.call_id == retry.call_id and refresh.to_tag == "ntf"
    assert str(refresh.uri) == "sip:mwi@192.0.2.1", "in dialog: to the notifier's Contact"
    ua.receive(notify(retry, "active;expires=600", "no", cseq=2), PROXY, "udp", 568.0)
    assert [e for e in events(ua) if isinstance(e, MessageWaiting)] == [MessageWaiting("1", False)]
    ua.stop(570.0)
    unsub = requests(ua, "SUBSCRIBE", 570.0)
    assert [r.headers.get("Expires") for r in unsub] == ["0"], "RFC 6665 §4.1.2.3 unsubscribe"


def _granted(ua: UserAgent, sub: Request, now: float = 0.2) -> None:
    ua.receive(answer(sub, 200, "OK", to_tag="ntf", extra="Expires: 600\nContact: <sip:mwi@192.0.2.1>"),
               PROXY, "udp", now)


def test_481_to_a_refresh_starts_a_new_subscription() -> None:
    ua = make_ua(accounts=MWI_ACCOUNTS)
    ua.start(0.0)
    (sub,) = requests(ua, "SUBSCRIBE", 0.0)
    _granted(ua, sub)
    ua.handle_timer(600.0)
    (refresh,) = requests(ua, "SUBSCRIBE", 600.0)
    ua.receive(answer(refresh, 481, "Call/Transaction Does Not Exist"), PROXY, "udp", 600.1)
    (fresh,) = requests(ua, "SUBSCRIBE", 600.1)
    assert fresh.call_id != sub.call_id and fresh.to_tag is None


def test_489_bad_event_is_not_retried() -> None:
    ua = make_ua(accounts=MWI_ACCOUNTS)
    ua.start(0.0)
    (sub,) = requests(ua, "SUBSCRIBE", 0.0)
    ua.receive(answer(sub, 489, "Bad Event"), PROXY, "udp", 0.1)
    ua.handle_timer(100_000.0)
    assert requests(ua, "SUBSCRIBE", 100_000.0) == []


def test_other_failures_retry_after_retry_after() -> None:
    ua = make_ua(accounts=MWI_ACCOUNTS)
    ua.start(0.0)
    (sub,) = requests(ua, "SUBSCRIBE", 0.0)
    ua.receive(answer(sub, 503, "Service Unavailable", extra="Retry-After: 40"), PROXY, "udp", 0.1)
    ua.handle_timer(39.0)
    assert requests(ua, "SUBSCRIBE", 39.0) == []
    ua.handle_timer(40.2)
    assert len(requests(ua, "SUBSCRIBE", 40.2)) == 1


def test_terminated_notify_deactivated_resubscribes_at_once_rejected_never() -> None:
    ua = make_ua(accounts=MWI_ACCOUNTS)
    ua.start(0.0)
    (sub,) = requests(ua, "SUBSCRIBE", 0.0)
    _granted(ua, sub)
    ua.receive(notify(sub, "terminated;reason=deactivated", None), PROXY, "udp", 10.0)
    assert [r.status for r in responses(ua, 10.0)] == [200]
    ua.handle_timer(10.0)
    (again,) = requests(ua, "SUBSCRIBE", 10.0)
    assert again.call_id != sub.call_id
    _granted(ua, again, 10.1)
    ua.receive(notify(again, "terminated;reason=rejected", None, cseq=2), PROXY, "udp", 20.0)
    ua.handle_timer(100_000.0)
    assert requests(ua, "SUBSCRIBE", 100_000.0) == []


def test_notify_before_the_2xx_counts_and_a_wrong_event_is_489() -> None:
    ua = make_ua(accounts=MWI_ACCOUNTS)
    ua.start(0.0)
    (sub,) = requests(ua, "SUBSCRIBE", 0.0)
    ua.receive(notify(sub, "active;expires=3600"), PROXY, "udp", 0.1)  # RFC 6665 §4.1.2.4
    assert [r.status for r in responses(ua, 0.1)] == [200]
    assert MessageWaiting("1", True) in events(ua)
    _granted(ua, sub, 0.2)
    ua.receive(notify(sub, "active;expires=3600", cseq=2, event="presence"), PROXY, "udp", 0.3)
    assert [r.status for r in responses(ua, 0.3)] == [489]
