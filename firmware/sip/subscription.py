"""Message waiting by subscription, sans-IO: SUBSCRIBE to a mailbox's `message-summary` event
package (RFC 3842) with the SIP-specific event notification rules of RFC 6665.

One `MwiSubscription` per account that asks for it. It sends the initial SUBSCRIBE (Event,
Accept: application/simple-message-summary, Expires), answers digest challenges, refreshes before
the granted expiry, and reads NOTIFYs (in the subscription's dialog, possibly before the 2xx arrives,
RFC 6665 §4.1.2.4) for their `Messages-Waiting` and `Subscription-State`. Failures follow RFC 6665:
481 to a refresh means the subscription is gone, so a new one starts at once (§4.1.2.2); 489 Bad
Event means the notifier does not offer the package, so there is no retry; 423 raises Expires to
Min-Expires (RFC 3261 §21.4.17); other failures and `terminated` NOTIFYs retry after Retry-After or
`retry_s` (§4.1.3: `deactivated`/`timeout` at once, `rejected` and `noresource` never). The owner
moves requests and responses; nothing here touches a socket.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from firmware.sip.auth import AuthError, AuthHeader, DigestClient
from firmware.sip.dialog import Dialog
from firmware.sip.headers import NameAddr
from firmware.sip.message import Headers, Request, Response
from firmware.sip.uri import SipUri, TelUri, Uri

EVENT = "message-summary"
ACCEPT = "application/simple-message-summary"
MIN_REFRESH_MARGIN = 32.0
"""Refresh this long before expiry, or at half the interval when that is later (a short grant); the
margin covers a refresh that needs a digest round and UDP retransmissions (RFC 3261 Timer F is 32 s)."""


class SubState(StrEnum):
    IDLE = "idle"
    SUBSCRIBING = "subscribing"
    ACTIVE = "active"
    """Granted (2xx) or confirmed by a NOTIFY; `pending` NOTIFYs also count as alive."""
    WAITING = "waiting"
    """Failed or terminated: a new subscription is due at `retry_at`."""
    FAILED = "failed"
    """The notifier said no for good (489, rejected, noresource): no retry."""


@dataclass(frozen=True)
class Notified:
    """What a NOTIFY said: `waiting` is None when its body had no Messages-Waiting line."""

    status: int
    reason: str
    waiting: bool | None


@dataclass
class MwiSubscription:
    aor: SipUri
    """Our address of record (From), and by default the mailbox (RFC 3842 §4: the user's own AOR)."""
    contact: str
    auth: DigestClient
    expires: int = 3600
    retry_s: float = 300.0
    user_agent: str = "Hookflash"
    mailbox: SipUri | TelUri | None = None
    outbound_proxy: SipUri | None = None
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        self.state = SubState.IDLE
        self.last_error: str | None = None
        self.call_id = ""
        self.tag = ""
        self.dialog: Dialog | None = None
        self.refresh_at: float | None = None
        self.retry_at: float | None = None
        self._expires = self.expires
        self._cseq = 0
        self._stopping = False
        self._out: deque[tuple[Request, Uri | None]] = deque()
        self._rand = self.rng or random.SystemRandom()

    # -- the owner's interface ---------------------------------------------------------------------
    def start(self, now: float) -> None:
        self._stopping = False
        self._new(now)

    def stop(self, now: float) -> None:
        """Unsubscribe (SUBSCRIBE with Expires: 0, RFC 6665 §4.1.2.3) if a subscription is alive."""
        self._stopping = True
        self.refresh_at = self.retry_at = None
        if self.dialog is not None and self.state is SubState.ACTIVE:
            self._in_dialog(0)
        self.state = SubState.IDLE

    def next_request(self) -> tuple[Request, Uri | None] | None:
        """A SUBSCRIBE to send and its next hop (None: the account's first hop, out of dialog)."""
        return self._out.popleft() if self._out else None

    def get_timer(self) -> float | None:
        return min((t for t in (self.refresh_at, self.retry_at) if t is not None), default=None)

    def handle_timer(self, now: float) -> None:
        if self.refresh_at is not None and now >= self.refresh_at:
            self.refresh_at = None
            if self.dialog is not None:
                self._in_dialog(self._expires)
            else:
                self._new(now)
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            self._new(now)

    def owns(self, message: Request | Response) -> bool:
        """A response to our SUBSCRIBE, or a NOTIFY of our subscription (Call-ID and our tag)."""
        if not self.call_id or message.call_id != self.call_id:
            return False
        tag = message.to_tag if isinstance(message, Request) else message.from_tag
        return tag == self.tag

    def handle_response(self, request: Request, response: Response, now: float) -> None:
        status = response.status
        if status < 200 or request.call_id != self.call_id or self._stopping:
            return
        expires = _int(request.headers.get("Expires"))
        if status in (401, 407):
            answer = self._auth_answer(request, response)
            if answer is None:
                self._fail(f"{status}: authentication failed", now)
            else:
                self._again(request, answer)
            return
        if 200 <= status < 300:
            if expires == 0:
                return  # our unsubscribe was accepted
            if self.dialog is None and response.to_tag is not None:
                self.dialog = Dialog.create_uac(request, response, now, rng=self._rand)
            granted = _int(response.headers.get("Expires"))
            self._alive(granted if granted is not None else (expires or self._expires), now)
            return
        if status == 423 and (least := _int(response.headers.get("Min-Expires"))) is not None:
            self._expires = least
            self._new(now)
            return
        if status == 481 and self.dialog is not None:  # RFC 6665 §4.1.2.2: a fresh subscription
            self.dialog = None
            self._new(now)
            return
        reason = f"{status} {response.reason}".strip()
        if status == 489:
            self._give_up(reason)
            return
        self._fail(reason, now, _int(response.headers.get("Retry-After")))

    def handle_timeout(self, request: Request, now: float) -> None:
        if request.call_id == self.call_id and not self._stopping:
            self._fail("no answer to SUBSCRIBE", now)

    def handle_notify(self, request: Request, now: float) -> Notified:
        """Read a NOTIFY of this subscription; the answer to send is in the result."""
        package = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if package != EVENT:
            return Notified(489, "Bad Event", None)
        if self.dialog is not None and self.dialog.receive_request(request) is not None:
            return Notified(500, "Request out of order", None)  # §12.2.2 remote CSeq check
        value, params = _sub_state(request.headers.get("Subscription-State") or "")
        if not value:
            return Notified(400, "Missing Subscription-State", None)
        waiting = messages_waiting(request.body)
        if value in ("active", "pending") and not self._stopping:
            if (expires := _int(params.get("expires"))) is not None:
                self._alive(expires, now)
        elif value == "terminated":
            self.dialog = None
            self.refresh_at = None
            reason = params.get("reason", "")
            if reason in ("rejected", "noresource"):
                self._give_up(f"terminated: {reason}")
            elif not self._stopping:
                retry = _int(params.get("retry-after"))
                self._fail(f"terminated: {reason or 'no reason'}", now,
                           0 if reason in ("deactivated", "timeout") and retry is None else retry)
        return Notified(200, "OK", waiting)

    # -- internals ----------------------------------------------------------------------------------
    def _new(self, now: float) -> None:
        """A new subscription: new Call-ID and tag, out of dialog (RFC 6665 §4.1.2.1)."""
        self.dialog = None
        self.call_id = f"{self._rand.getrandbits(96):024x}@hookflash"
        self.tag = f"{self._rand.getrandbits(48):012x}"
        self._cseq = 1
        target = self.mailbox or self.aor
        headers = Headers()
        if self.outbound_proxy is not None:
            headers.add("Route", str(NameAddr(self.outbound_proxy.with_params(lr=None))))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(NameAddr(self.aor, None, (("tag", self.tag),))))
        headers.add("To", str(NameAddr(target)))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self._cseq} SUBSCRIBE")
        headers.add("Contact", self.contact)
        for name, value in self._package_headers(self._expires):
            headers.add(name, value)
        self.state = SubState.SUBSCRIBING
        self._out.append((Request("SUBSCRIBE", target, headers), None))

    def _package_headers(self, expires: int) -> list[tuple[str, str]]:
        return [("Event", EVENT), ("Accept", ACCEPT), ("Expires", str(expires)),
                ("User-Agent", self.user_agent)]

    def _in_dialog(self, expires: int, auth: list[AuthHeader] | None = None) -> None:
        dialog = self.dialog
        assert dialog is not None
        extra = self._package_headers(expires) + list(auth or [])
        self._out.append((dialog.create_request("SUBSCRIBE", extra=extra), dialog.next_hop))

    def _again(self, request: Request, answer: list[AuthHeader]) -> None:
        if self.dialog is not None:
            self._in_dialog(_int(request.headers.get("Expires")) or 0, answer)
            return
        replaced = {name.lower() for name, _ in answer}
        headers = Headers()
        for name, value in request.headers:
            if name.lower() not in ("via", "v", *replaced):
                headers.add(name, value)
        for name, value in answer:
            headers.add(name, value)
        self._cseq = request.cseq.number + 1
        headers.set("CSeq", f"{self._cseq} SUBSCRIBE")  # a new transaction (RFC 3261 §8.1.3.5)
        self._out.append((Request("SUBSCRIBE", request.uri, headers, request.body), None))

    def _auth_answer(self, request: Request, response: Response) -> list[AuthHeader] | None:
        status = response.status
        challenge = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        sent = "Authorization" if status == 401 else "Proxy-Authorization"
        try:
            return self.auth.handle_challenge(status, response.headers.lines(challenge), request.method,
                                              str(request.uri), request.body,
                                              sent=request.headers.lines(sent))
        except AuthError:
            return None

    def _alive(self, expires: int, now: float) -> None:
        self.state = SubState.ACTIVE
        self.last_error = None
        self.retry_at = None
        self.refresh_at = now + max(expires - MIN_REFRESH_MARGIN, expires / 2, 1.0)

    def _fail(self, error: str, now: float, retry_after: int | None = None) -> None:
        self.state = SubState.WAITING
        self.last_error = error
        self.refresh_at = None
        self.retry_at = now + (self.retry_s if retry_after is None else retry_after)

    def _give_up(self, error: str) -> None:
        self.state = SubState.FAILED
        self.last_error = error
        self.dialog = None
        self.refresh_at = self.retry_at = None


def _int(value: str | None) -> int | None:
    try:
        return int(value.strip()) if value is not None else None
    except ValueError:
        return None


def _sub_state(value: str) -> tuple[str, dict[str, str]]:
    """`active;expires=600` -> ('active', {'expires': '600'}) (RFC 6665 §8.2.3)."""
    head, *params = [p.strip() for p in value.split(";")]
    pairs = (p.partition("=") for p in params if p)
    return head.lower(), {k.strip().lower(): v.strip().strip('"') for k, _, v in pairs}


def messages_waiting(body: bytes) -> bool | None:
    """The `Messages-Waiting: yes|no` line of a message-summary body (RFC 3842 §5.2), or None."""
    for line in body.decode("utf-8", "replace").splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() == "messages-waiting":
            return {"yes": True, "no": False}.get(value.strip().lower())
    return None
