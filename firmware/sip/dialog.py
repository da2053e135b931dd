"""SIP dialogs (RFC 3261 §12-§15), session timers (RFC 4028) and UPDATE glare (RFC 3311), sans-IO.

A `Dialog` builds in-dialog requests and responses and checks incoming ones; it never sends anything.
Requests come out without a Via: the UA adds its transport's Via and hands them to the transaction layer
(`send_request`, or `send_stateless` for the ACK of a 2xx). Bodies (SDP for hold/resume) are carried,
never interpreted: an INVITE or UPDATE with a body counts as an offer for RFC 3311 §5.2 glare.

Like the transaction layer it has `get_timer()`, `handle_timer(now)` and `next_event()`: the timers are
the §14.1 glare back-off and the RFC 4028 refresh/expiry, with every time passed in by the caller.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from firmware.sip.headers import HeaderError, NameAddr, canonical_name, parse_delta_seconds, parse_params
from firmware.sip.message import Headers, Request, Response, build_error_response
from firmware.sip.uri import SipUri, TelUri, Uri

__all__ = [
    "MIN_SE",
    "Dialog",
    "DialogEvent",
    "DialogState",
    "ForkResult",
    "InviteForks",
    "RefreshDue",
    "RetryDue",
    "SessionExpired",
    "SessionExpires",
    "check_session_interval",
    "glare_delay",
    "parse_session_expires",
    "retry_after_422",
    "set_session_timer",
]

MIN_SE = 90
"""RFC 4028 §4: the smallest session interval anyone may ask for."""
_TARGET_REFRESH = frozenset({"INVITE", "UPDATE"})
"""Requests whose Contact replaces the remote target (§12.2, RFC 3311 §5.1)."""
_WITH_CONTACT = frozenset({"INVITE", "UPDATE", "REFER", "NOTIFY", "SUBSCRIBE"})
"""Requests that must carry our Contact (§8.1.1.8, RFC 3311, RFC 3515, RFC 6665)."""
_CREDENTIALS = ("Authorization", "Proxy-Authorization")
_DIALOG_BUILT = frozenset(
    {"Via", "Max-Forwards", "Route", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type"}
    | {"Content-Length", *_CREDENTIALS}
)
"""Headers `create_request` writes itself, so a retried request must not copy them."""


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class SessionExpires:
    """RFC 4028 §4 Session-Expires: the interval and who refreshes ("uac"/"uas" of that transaction)."""

    interval: int
    refresher: str | None = None

    def __str__(self) -> str:
        return f"{self.interval}" + (f";refresher={self.refresher}" if self.refresher else "")


def parse_session_expires(value: str) -> SessionExpires:
    number, semi, rest = value.partition(";")
    params = parse_params(semi + rest)
    refresher = next((v for k, v in params if k.lower() == "refresher"), None)
    if refresher is not None and refresher.lower() not in ("uac", "uas"):
        raise HeaderError(f"bad refresher: {refresher!r}")
    return SessionExpires(parse_delta_seconds(number), refresher.lower() if refresher else None)


def _session_expires(message: Request | Response) -> SessionExpires | None:
    value = message.headers.get("Session-Expires")
    return None if value is None else parse_session_expires(value)


def set_session_timer(headers: Headers, interval: int, min_se: int, refresher: str | None = None) -> None:
    """Ask for a session timer in an INVITE/UPDATE (RFC 4028 §7.1): Supported: timer, Session-Expires
    and, when above the default, Min-SE."""
    if not any(v.lower() == "timer" for v in headers.get_all("Supported")):
        headers.add("Supported", "timer")
    headers.set("Session-Expires", str(SessionExpires(interval, refresher)))
    if min_se > MIN_SE:
        headers.set("Min-SE", str(min_se))
    else:
        headers.remove("Min-SE")


def retry_after_422(request: Request, response: Response) -> Request:
    """The request again after 422 Session Interval Too Small (RFC 4028 §7.4): next CSeq, Min-SE
    raised to the response's and Session-Expires at least that much. The caller adds a new Via."""
    min_se = parse_delta_seconds(response.headers.get("Min-SE") or str(MIN_SE))
    asked = _session_expires(request)
    headers = request.headers.copy()
    headers.remove("Via")
    headers.set("CSeq", f"{request.cseq.number + 1} {request.method}")
    interval = max(min_se, asked.interval if asked else 0)
    set_session_timer(headers, interval, max(min_se, MIN_SE), asked.refresher if asked else None)
    return Request(request.method, request.uri, headers, request.body)


def check_session_interval(request: Request, min_se: int, to_tag: str) -> Response | None:
    """The 422 for an INVITE/UPDATE asking for a session interval below our Min-SE (RFC 4028 §8.1),
    or None when it is acceptable (also for the dialog-creating INVITE, before any dialog exists)."""
    asked = _session_expires(request)
    if asked is None or asked.interval >= min_se:
        return None
    answer = build_error_response(request, 422, "Session Interval Too Small", to_tag=to_tag)
    assert answer is not None  # INVITE/UPDATE: always answerable
    answer.headers.add("Min-SE", str(min_se))
    return answer


def glare_delay(owns_call_id: bool, draw: float) -> float:
    """§14.1 back-off after a 491, in units of 10 ms: 2.1-4 s for the Call-ID owner, else 0-2 s.
    `draw` is a uniform random number in [0, 1)."""
    if owns_call_id:
        return round(2.1 + 1.9 * draw, 2)
    return round(2.0 * draw, 2)


def _allows_update(message: Request | Response) -> bool:
    return any(m.strip().upper() == "UPDATE" for m in message.headers.get_all("Allow"))


@dataclass(frozen=True)
class RefreshDue:
    """RFC 4028 §10: we are the refresher and half the interval passed: send this re-INVITE/UPDATE."""

    request: Request


@dataclass(frozen=True)
class RetryDue:
    """Send this request again: after 491 and the §14.1 back-off, or at once after 422 (RFC 4028)."""

    request: Request


@dataclass(frozen=True)
class SessionExpired:
    """RFC 4028 §10: no refresh came in time; the dialog is over and this BYE should be sent."""

    bye: Request


DialogEvent = RefreshDue | RetryDue | SessionExpired


class Dialog:
    """Dialog state (§12): identifiers, sequence numbers, route set and remote target."""

    def __init__(
        self,
        *,
        call_id: str,
        local: NameAddr,
        remote: NameAddr,
        remote_target: Uri,
        route_set: list[NameAddr],
        local_seq: int | None,
        remote_seq: int | None,
        local_contact: str,
        is_uac: bool,
        state: DialogState,
        rng: random.Random | None = None,
    ) -> None:
        self.call_id = call_id
        self.local = local
        """Our From (UAC) / To (UAS) value including our tag."""
        self.remote = remote
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.local_contact = local_contact
        self.is_uac = is_uac
        """We sent the dialog-creating INVITE, so we own the Call-ID (§14.1)."""
        self.state = state
        self.peer_allows_update = False
        self.min_se = MIN_SE
        self.session: SessionExpires | None = None
        """The negotiated session timer, refresher relative to the transaction that set it."""
        self.we_refresh = False
        self.local_body = b""
        self.local_content_type: str | None = None
        self._rng = rng or random.SystemRandom()
        self._timers: dict[str, float] = {}
        self._retry: Request | None = None
        self._events: deque[DialogEvent] = deque()
        self._invite_out: int | None = None  # CSeq of our re-INVITE still waiting for a final response
        self._invite_in: int | None = None  # CSeq of their INVITE we have not answered finally
        self._offer_out = False  # RFC 3311 §5.2: we made an offer not yet answered
        self._offer_in = False  # ...and they made one we have not answered
        self._last_2xx: tuple[int, str] | None = None  # CSeq of the last 2xx we acted on

    # -- creation (§12.1) ---------------------------------------------------------------------------

    @classmethod
    def create_uac(
        cls, invite: Request, response: Response, now: float, *, rng: random.Random | None = None
    ) -> Dialog:
        """From a 1xx with a To tag (early) or a 2xx (confirmed) to our INVITE (§12.1.2); a 2xx also
        settles the session timer."""
        if response.to_tag is None:
            raise ValueError("a response without a To tag creates no dialog")
        contacts = response.contacts
        dialog = cls(
            call_id=invite.call_id,
            local=invite.from_,
            remote=response.to,
            remote_target=contacts[0].uri if contacts and contacts[0].uri else invite.uri,
            route_set=list(reversed(response.record_routes)),
            local_seq=invite.cseq.number,
            remote_seq=None,
            local_contact=invite.headers.get("Contact") or "",
            is_uac=True,
            state=DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY,
            rng=rng,
        )
        dialog.local_body, dialog.local_content_type = invite.body, invite.content_type
        dialog.peer_allows_update = _allows_update(response)
        if dialog.state is DialogState.CONFIRMED:
            dialog._last_2xx = (invite.cseq.number, "INVITE")
            dialog._negotiated(_session_expires(response), as_uac=True, now=now)
        return dialog

    @classmethod
    def create_uas(
        cls, invite: Request, local_tag: str, local_contact: str, *, rng: random.Random | None = None
    ) -> Dialog:
        """From an INVITE we will answer with a To tag (§12.1.1): early until our 2xx is built."""
        contacts = invite.contacts
        if not contacts or contacts[0].uri is None:
            raise ValueError("a dialog-creating INVITE must carry a Contact (§8.1.1.8)")
        dialog = cls(
            call_id=invite.call_id,
            local=invite.to.with_param("tag", local_tag),
            remote=invite.from_,
            remote_target=contacts[0].uri,
            route_set=invite.record_routes,
            local_seq=None,
            remote_seq=invite.cseq.number,
            local_contact=local_contact,
            is_uac=False,
            state=DialogState.EARLY,
            rng=rng,
        )
        dialog._invite_in = invite.cseq.number
        dialog._offer_in = bool(invite.body)
        dialog.peer_allows_update = _allows_update(invite)
        return dialog

    @property
    def local_tag(self) -> str:
        return self.local.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote.tag or ""

    @property
    def id(self) -> tuple[str, str, str]:
        """Call-ID, local tag, remote tag (§12)."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @staticmethod
    def id_of_request(request: Request) -> tuple[str, str, str]:
        """The `id` of the dialog an incoming request belongs to: we are its To (§12.2.2)."""
        return (request.call_id, request.to_tag or "", request.from_tag or "")

    @staticmethod
    def id_of_response(response: Response) -> tuple[str, str, str]:
        """The `id` of the dialog a response to our request belongs to: we are its From (§12.1.2)."""
        return (response.call_id, response.from_tag or "", response.to_tag or "")

    @property
    def next_hop(self) -> Uri:
        """Where the request goes first: the top route, else the remote target (§8.1.2)."""
        return self.route_set[0].uri if self.route_set and self.route_set[0].uri else self.remote_target

    # -- requests we send (§12.2.1.1) ----------------------------------------------------------------

    def _request_line_and_routes(self) -> tuple[SipUri | TelUri, list[str]]:
        """§12.2.1.1: loose routing (lr on the first route) keeps the remote target as Request-URI;
        strict routing puts the first route there and the remote target last in Route."""
        target = self.remote_target
        if not self.route_set or self.route_set[0].uri is None:
            return _request_uri(target), [str(r) for r in self.route_set]
        first = self.route_set[0].uri
        if isinstance(first, SipUri) and first.lr:
            return _request_uri(target), [str(r) for r in self.route_set]
        return _request_uri(first), [*(str(r) for r in self.route_set[1:]), f"<{target}>"]

    def _base_headers(self, method: str, number: int) -> tuple[SipUri | TelUri, Headers]:
        uri, routes = self._request_line_and_routes()
        headers = Headers()
        headers.add("Max-Forwards", "70")
        for route in routes:
            headers.add("Route", route)
        headers.add("From", str(self.local))
        headers.add("To", str(self.remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{number} {method}")
        return uri, headers

    def create_request(
        self,
        method: str,
        body: bytes = b"",
        content_type: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """A new in-dialog request with the next local CSeq (§12.2.1.1); ACK has `create_ack`."""
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} reuses its request's CSeq: not a new dialog request")
        if self.state is DialogState.TERMINATED and method != "BYE":
            raise ValueError("dialog terminated")
        self.local_seq = (self.local_seq or 0) + 1  # §8.1.1.5 allows any start; empty means none yet
        uri, headers = self._base_headers(method, self.local_seq)
        if method in _WITH_CONTACT:
            headers.add("Contact", self.local_contact)
        for name, value in extra:
            headers.add(name, value)
        if body:
            headers.add("Content-Type", content_type or "application/sdp")
        if method in _TARGET_REFRESH:
            if self.session is not None:
                refresher = "uac" if self.we_refresh else "uas"
                interval = max(self.session.interval, self.min_se)
                set_session_timer(headers, interval, self.min_se, refresher)
            if method == "INVITE":
                self._invite_out = self.local_seq
            if body:
                self._offer_out = True
                self.local_body, self.local_content_type = body, content_type or "application/sdp"
        return Request(method, uri, headers, body)

    def create_ack(self, invite: Request, body: bytes = b"", content_type: str | None = None) -> Request:
        """ACK for a 2xx (§13.2.2.4): the INVITE's CSeq number, the dialog's route, its credentials."""
        uri, headers = self._base_headers("ACK", invite.cseq.number)
        for name in _CREDENTIALS:
            for value in invite.headers.lines(name):
                headers.add(name, value)
        if body:
            headers.add("Content-Type", content_type or "application/sdp")
        return Request("ACK", uri, headers, body)

    def receive_response(self, request: Request, response: Response, now: float) -> None:
        """A final or provisional response to a request we sent in (or to create) this dialog."""
        status, method = response.status, request.method
        if response.to_tag is not None and response.to_tag != self.remote_tag and status >= 200:
            return  # another fork's response: InviteForks routes it to its own dialog
        if _allows_update(response):
            self.peer_allows_update = True
        if status < 200:
            if method == "INVITE" and self.state is DialogState.EARLY:
                self._refresh_target(response)
            return
        if method in _TARGET_REFRESH and request.body:
            self._offer_out = False
        if method == "INVITE" and self._invite_out == request.cseq.number:
            self._invite_out = None
        if status < 300:
            if (request.cseq.number, method) == self._last_2xx:
                return  # a 2xx retransmission (§13.2.2.4): the UA re-sends its ACK, nothing changes
            self._last_2xx = (request.cseq.number, method)
            if method == "INVITE" and self.state is DialogState.EARLY:
                self.state = DialogState.CONFIRMED
                self.route_set = list(reversed(response.record_routes))  # §13.2.2.4: recomputed
            if method in _TARGET_REFRESH:
                self._refresh_target(response)
                self._negotiated(_session_expires(response), as_uac=True, now=now)
            return
        if method == "INVITE" and request.to_tag is None:
            self._terminate()  # the dialog-creating INVITE failed: so does its early dialog (§12.3)
        elif status == 491 and method in _TARGET_REFRESH:
            self._retry = request  # rebuilt when the back-off ends: nothing of ours is pending meanwhile
            self._timers["retry"] = now + glare_delay(self.is_uac, self._rng.random())
        elif status == 422 and method in _TARGET_REFRESH:
            retry = retry_after_422(request, response)
            self.min_se = max(self.min_se, parse_delta_seconds(retry.headers.get("Min-SE") or str(MIN_SE)))
            self._events.append(RetryDue(self._again(retry)))
        elif status in (408, 481):
            self._terminate()  # §12.2.1.2: the dialog is gone at the peer

    def _again(self, request: Request) -> Request:
        """The same request as a new transaction with our next CSeq (§14.1 after 491, RFC 4028 §7.4
        after 422), keeping its own headers but not stale credentials."""
        extra = [(n, v) for n, v in request.headers if canonical_name(n) not in _DIALOG_BUILT]
        return self.create_request(request.method, request.body, request.content_type, extra)

    def _refresh_target(self, message: Request | Response) -> None:
        contacts = message.contacts
        if contacts and contacts[0].uri is not None:
            self.remote_target = contacts[0].uri

    # -- requests we receive (§12.2.2) ---------------------------------------------------------------

    def receive_request(self, request: Request) -> Response | None:
        """Check an in-dialog request. Returns the error response to send, or None: the TU goes on
        and answers with `create_response`."""
        method = request.method
        if method in ("ACK", "CANCEL"):
            return None  # they carry the CSeq of the request they belong to
        number = request.cseq.number
        if self.remote_seq is not None and number < self.remote_seq:
            return self._reject(request, 500, "Server Internal Error")  # §12.2.2: out of order
        self.remote_seq = number
        if _allows_update(request):
            self.peer_allows_update = True
        if method == "BYE":
            self._terminate()  # §15.1.2
            return None
        if method not in _TARGET_REFRESH:
            return None
        offer = bool(request.body)
        if (method == "INVITE" and self._invite_in is not None) or (offer and self._offer_in):
            answer = self._reject(request, 500, "Server Internal Error")  # §14.2, RFC 3311 §5.2
            answer.headers.add("Retry-After", str(self._rng.randint(0, 10)))
            return answer
        if (method == "INVITE" and (self._invite_out is not None or self._offer_out)) or (
            offer and self._offer_out
        ):
            return self._reject(request, 491, "Request Pending")  # §14.2, RFC 3311 §5.2: glare
        too_small = check_session_interval(request, self.min_se, self.local_tag)
        if too_small is not None:
            return too_small
        if method == "INVITE":
            self._invite_in = number
        if offer:
            self._offer_in = True
        self._refresh_target(request)
        return None

    def _reject(self, request: Request, status: int, reason: str) -> Response:
        answer = build_error_response(request, status, reason, to_tag=self.local_tag)
        assert answer is not None  # not an ACK, and parsed
        return answer

    def create_response(
        self,
        request: Request,
        status: int,
        reason: str,
        now: float,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """Our response to a request in (or creating) this dialog: our To tag, Contact on target
        refresh responses, Record-Route echoed on the dialog-creating INVITE's (§12.1.1), and
        Session-Expires on a 2xx when the request asked for a session timer (RFC 4028 §9)."""
        response = build_error_response(request, status, reason, to_tag=self.local_tag)
        if response is None:
            raise ValueError("ACK is never answered")
        method = request.method
        headers = response.headers
        initial = request.to_tag is None
        if initial and method == "INVITE":
            for value in request.headers.lines("Record-Route"):
                headers.add("Record-Route", value)
        if method in _TARGET_REFRESH and 100 < status < 300:
            headers.add("Contact", self.local_contact)
        if body:
            headers.add("Content-Type", content_type or "application/sdp")
            if method in _TARGET_REFRESH and status < 300:
                self.local_body, self.local_content_type = body, content_type or "application/sdp"
        response.body = body
        if status < 200:
            return response
        if method in _TARGET_REFRESH and request.body:
            self._offer_in = False  # answered (2xx) or refused (error): no longer pending
        if method == "INVITE" and self._invite_in == request.cseq.number:
            self._invite_in = None
        if status < 300:
            if method == "INVITE" and self.state is DialogState.EARLY:
                self.state = DialogState.CONFIRMED
            if method in _TARGET_REFRESH:
                self._answer_session_timer(request, headers, now)
        elif initial and method == "INVITE":
            self._terminate()
        return response

    def _answer_session_timer(self, request: Request, headers: Headers, now: float) -> None:
        asked = _session_expires(request)
        if asked is None:
            self._negotiated(None, as_uac=False, now=now)
            return
        supported = any(v.lower() == "timer" for v in request.headers.get_all("Supported"))
        refresher = asked.refresher or ("uac" if supported else "uas")  # RFC 4028 §9
        agreed = SessionExpires(asked.interval, refresher)
        headers.add("Session-Expires", str(agreed))
        if refresher == "uac":
            headers.add("Require", "timer")  # RFC 4028 §9: they must know they refresh
        self._negotiated(agreed, as_uac=False, now=now)

    # -- timers (§14.1 back-off, RFC 4028 §10) --------------------------------------------------------

    def _negotiated(self, agreed: SessionExpires | None, *, as_uac: bool, now: float) -> None:
        """Arm the session timer the last 2xx agreed on (or switch it off if it carried none)."""
        self._timers.pop("refresh", None)
        self._timers.pop("expire", None)
        self.session = agreed
        if agreed is None:
            self.we_refresh = False
            return
        self.we_refresh = (agreed.refresher == "uac") == as_uac
        interval = agreed.interval
        if self.we_refresh:
            self._timers["refresh"] = now + interval / 2  # RFC 4028 §10: half the interval
        else:
            self._timers["expire"] = now + interval - min(32, interval / 3)  # RFC 4028 §10

    def get_timer(self) -> float | None:
        return min(self._timers.values(), default=None)

    def handle_timer(self, now: float) -> None:
        for name, deadline in sorted(self._timers.items(), key=lambda item: item[1]):
            if deadline > now or name not in self._timers:
                continue
            del self._timers[name]
            if name == "retry" and self._retry is not None:
                self._events.append(RetryDue(self._again(self._retry)))
                self._retry = None
            elif name == "refresh":
                method = "UPDATE" if self.peer_allows_update else "INVITE"
                body = b"" if method == "UPDATE" else self.local_body
                self._events.append(RefreshDue(self.create_request(method, body, self.local_content_type)))
            elif name == "expire":
                bye = self.create_request("BYE")
                self._terminate()
                self._events.append(SessionExpired(bye))

    def next_event(self) -> DialogEvent | None:
        return self._events.popleft() if self._events else None

    def _terminate(self) -> None:
        self.state = DialogState.TERMINATED
        self._timers.clear()
        self._retry = None


def _request_uri(uri: Uri) -> SipUri | TelUri:
    """A URI fit for a Request-URI: no headers, no method parameter (§19.1.1 table 1)."""
    if isinstance(uri, TelUri):
        return uri
    if not isinstance(uri, SipUri):
        raise ValueError(f"cannot send a request to {uri}")
    params = tuple((k, v) for k, v in uri.params if k.lower() != "method")
    return SipUri(uri.scheme, uri.user, uri.host, uri.port, uri.password, params, ())


@dataclass(frozen=True)
class ForkResult:
    """What one response to our INVITE means (§13.2.2.4). `ack` and `bye` are to be sent (a Via
    added) as they are; `dialog` is None for responses that create none (100, tagless 1xx, errors)."""

    dialog: Dialog | None
    ack: Request | None = None
    bye: Request | None = None


class InviteForks:
    """The dialogs one outgoing INVITE creates when proxies fork it: early dialogs per To tag, the
    first 2xx wins, and every later 2xx from another fork is ACKed and then BYEd (§13.2.2.4)."""

    def __init__(self, invite: Request, *, rng: random.Random | None = None) -> None:
        self.invite = invite
        self.dialogs: dict[str, Dialog] = {}
        self.winner: Dialog | None = None
        self._acks: dict[str, Request] = {}
        self._rng = rng

    def receive_response(self, response: Response, now: float) -> ForkResult:
        tag = response.to_tag
        status = response.status
        if status >= 300:
            for dialog in self.dialogs.values():
                if dialog.state is DialogState.EARLY:
                    dialog._terminate()
            return ForkResult(None)
        if tag is None or status == 100:
            return ForkResult(None)  # §12.1: no To tag, no dialog
        if tag in self._acks:
            return ForkResult(self.dialogs[tag], ack=self._acks[tag])  # a 2xx retransmission
        known = self.dialogs.get(tag)
        if known is None:
            dialog = Dialog.create_uac(self.invite, response, now, rng=self._rng)
            self.dialogs[tag] = dialog
        else:
            dialog = known
            dialog.receive_response(self.invite, response, now)
        if status < 200:
            return ForkResult(dialog)
        ack = dialog.create_ack(self.invite)
        self._acks[tag] = ack
        if self.winner is None:
            self.winner = dialog
            for other in self.dialogs.values():
                if other is not dialog and other.state is DialogState.EARLY:
                    other._terminate()
            return ForkResult(dialog, ack=ack)
        bye = dialog.create_request("BYE")
        dialog._terminate()
        return ForkResult(dialog, ack=ack, bye=bye)
