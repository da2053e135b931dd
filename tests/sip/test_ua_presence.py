"""The port's state through the dialog event package (RFC 4235), notifier side, driven through the
user agent with invented times."""

from __future__ import annotations

import re

from firmware.sip.message import Request, Response
from firmware.sip.presence import PortDialog
from firmware.sip.ua import UserAgent
from tests.sip.test_ua import PROXY, answer, inbound, make_ua, requests, sent

WATCH = "Event: dialog\nAccept: application/dialog-info+xml"


def subscribe(ua: UserAgent, now: float, *, expires: int = 600, to_tag: str | None = None, cseq: int = 1,
              extra: str = WATCH) -> None:
    branch = f"z9hG4bKsub{cseq}{to_tag or ''}"
    ua.receive(inbound("SUBSCRIBE", extra=f"{extra}\nExpires: {expires}", to_tag=to_tag, cseq=cseq,
                       branch=branch), PROXY, "udp", now)


def out(ua: UserAgent, now: float, *, accept: bool = True) -> tuple[list[Response], list[Request]]:
    """What the UA sent: responses, and NOTIFY requests (answered 200 as a watcher does, unless not
    `accept`, so they are not retransmitted)."""
    messages = sent(ua, now)
    notifies = [m for m in messages if isinstance(m, Request) and m.method == "NOTIFY"]
    for notify in notifies if accept else []:
        ua.receive(answer(notify, 200, "OK", to_tag=None), PROXY, "udp", now)
    return [m for m in messages if isinstance(m, Response)], notifies


def version_and_states(notify: Request) -> tuple[int, list[str]]:
    body = notify.body.decode()
    version = re.search(r'version="(\d+)"', body)
    assert version is not None and 'state="full"' in body and 'entity="sip:alice@pbx.example.com"' in body
    return int(version.group(1)), re.findall(r"<state>(\w+)</state>", body)


def test_subscribe_gets_200_and_full_state_then_a_notify_per_change() -> None:
    ua = make_ua()
    subscribe(ua, 1.0)
    (ok,), (first,) = out(ua, 1.0)
    assert ok.status == 200 and ok.headers.get("Expires") == "600" and ok.contacts
    assert first.headers.get("Event") == "dialog"
    assert first.headers.get("Subscription-State") == "active;expires=600"
    assert first.headers.get("Content-Type") == "application/dialog-info+xml"
    assert first.to_tag == "caller" and first.from_tag == ok.to_tag, "in the subscription's dialog"
    assert version_and_states(first) == (0, []), "idle: no dialog element"
    seen = []
    for n, state in enumerate(("early", "confirmed", "terminated")):
        ua.set_presence("1", PortDialog("call-1", state, "recipient"), 2.0 + n)  # type: ignore[arg-type]
        (notify,) = requests(ua, "NOTIFY", 2.0 + n)
        seen.append(version_and_states(notify))
        ua.receive(answer(notify, 200, "OK", to_tag=None), PROXY, "udp", 2.1 + n)
    assert seen == [(1, ["early"]), (2, ["confirmed"]), (3, ["terminated"])]
    ua.set_presence("1", None, 6.0)
    assert requests(ua, "NOTIFY", 6.0) == [], "terminated was the last word until the next call"
    ua.set_presence("1", PortDialog("call-2", "trying", "initiator"), 7.0)
    (again,) = requests(ua, "NOTIFY", 7.0)
    assert version_and_states(again) == (4, ["trying"]) and 'direction="initiator"' in again.body.decode()


def test_refresh_unsubscribe_and_expiry() -> None:
    ua = make_ua()
    subscribe(ua, 1.0)
    (ok,), _ = out(ua, 1.0)
    subscribe(ua, 300.0, to_tag=ok.to_tag, cseq=2)  # refresh
    (refreshed,), (notify,) = out(ua, 300.0)
    assert refreshed.status == 200
    assert notify.headers.get("Subscription-State") == "active;expires=600"
    ua.handle_timer(899.0)
    assert out(ua, 899.0)[1] == [], "the refresh moved the expiry to 900"
    ua.handle_timer(900.0)
    _, (gone,) = out(ua, 900.0)
    assert gone.headers.get("Subscription-State") == "terminated;reason=timeout"
    subscribe(ua, 901.0, cseq=1, extra=WATCH + "\nX-New: 1")  # a new one, then Expires: 0 ends it
    (ok2,), _ = out(ua, 901.0)
    subscribe(ua, 902.0, to_tag=ok2.to_tag, cseq=2, expires=0)
    (ended,), (last,) = out(ua, 902.0)
    assert ended.status == 200
    assert last.headers.get("Subscription-State", "").startswith("terminated")


def test_a_481_to_a_notify_drops_the_watcher() -> None:
    ua = make_ua()
    subscribe(ua, 1.0)
    _, (notify,) = out(ua, 1.0, accept=False)
    ua.receive(answer(notify, 481, "Call/Transaction Does Not Exist", to_tag=None), PROXY, "udp", 1.1)
    ua.set_presence("1", PortDialog("c", "early", "recipient"), 2.0)
    assert requests(ua, "NOTIFY", 2.0) == []


def test_bad_subscribes_are_refused() -> None:
    ua = make_ua()
    subscribe(ua, 1.0, extra="Event: presence")
    subscribe(ua, 1.0, cseq=2, expires=10)
    subscribe(ua, 1.0, cseq=3, extra="Event: dialog\nAccept: application/pidf+xml")
    got, notifies = out(ua, 1.0)
    assert [r.status for r in got] == [489, 423, 406] and notifies == []
    assert got[0].headers.get("Allow-Events") == "dialog" and got[1].headers.get("Min-Expires") == "60"
