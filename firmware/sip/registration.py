"""Client registration (RFC 3261 §10) with NAT help (RFC 3581 rport, RFC 5626 keep-alives), sans-IO.

One `Registration` per port/account. It sits above the transaction layer: it produces REGISTER (and,
optionally, OPTIONS keep-alive) requests for the UA to send through a client transaction toward
`OutgoingRequest.next_hop`, and consumes the final responses (`handle_response`) and transaction
timeouts or transport errors (`handle_timeout`) the UA hands back. Time is always a parameter, so a
3600 s refresh or a 30-minute backoff is tested in microseconds. Randomness (branches, tags, jitter) comes
from an injected `random.Random`, so tests are deterministic.

Policy choices, each documented where it is made:
- refresh at `granted - min(granted / 2, REFRESH_MARGIN)`: half-way for short grants, 60 s early for long
  ones (RFC 3261 §10.2.4 only asks to refresh before expiry);
- backoff after failures per RFC 5626 §4.5 (random 50..100 % of min(max, base * 2^failures));
- failover to the secondary registrar on a timeout or 5xx, failback to the primary at the first refresh
  after `failback_after` seconds on the secondary;
- a 2xx whose top Via shows a different public address (RFC 3581 received/rport) triggers an immediate
  re-registration whose Contact carries the public address, removing the stale binding in the same request.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from firmware.sip.auth import AuthError, AuthFailed, AuthHeader, Credentials, DigestClient
from firmware.sip.headers import BRANCH_MAGIC_COOKIE, HeaderError, NameAddr, parse_delta_seconds
from firmware.sip.message import Headers, Request, Response
from firmware.sip.uri import SipUri

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_MAX",
    "REFRESH_MARGIN",
    "Event",
    "OutgoingRequest",
    "RegState",
    "Registration",
    "RegistrationChanged",
    "RegistrationConfig",
    "SendKeepAlive",
    "Transport",
]

BACKOFF_BASE = 30.0
"""RFC 5626 §4.5 base-time when all flows have failed."""
BACKOFF_MAX = 1800.0
"""RFC 5626 §4.5 max-time."""
REFRESH_MARGIN = 60.0
"""Refresh this long before a long registration expires (half-way for grants under 120 s)."""
STREAM_KEEPALIVE = 120.0
"""RFC 5626 §4.4.1: recommended keep-alive interval for connection-oriented transports."""
UDP_KEEPALIVE = 25.0
"""Below the ~30 s UDP binding lifetime of common NATs (RFC 5626 §3.5.1 keeps it configurable)."""
MAX_FORWARDS = "70"  # RFC 3261 §8.1.1.6

Transport = Literal["udp", "tcp", "tls"]
_DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "tls": 5061}


class RegState(enum.Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"
    UNREGISTERING = "unregistering"


@dataclass(frozen=True)
class RegistrationConfig:
    """One account. `registrar` defaults to the AOR's domain (RFC 3261 §10.2 Request-URI);
    `local_host`/`local_port` are our transport address, used for Via sent-by and the Contact."""

    aor: SipUri
    username: str
    password: str
    local_host: str
    local_port: int
    registrar: SipUri | None = None
    secondary: SipUri | None = None
    outbound_proxy: SipUri | None = None
    display_name: str | None = None
    transport: Transport = "udp"
    expires: int = 3600
    realm: str | None = None
    user_agent: str | None = "Hookflash"
    failback_after: float = 600.0
    keepalive_interval: float | None = None
    """Seconds between NAT keep-alives; None = per-transport default (25 s UDP, 120 s TCP/TLS), 0 = off."""
    udp_keepalive: Literal["crlf", "options"] = "crlf"
    """UDP keep-alive form: a CRLFCRLF datagram, or an OPTIONS request whose timeout counts as a dead flow."""


@dataclass(frozen=True)
class OutgoingRequest:
    """A request for the UA to send in a new client transaction toward `next_hop` (resolve it per
    RFC 3263): the outbound proxy when configured, else the registrar in use."""

    request: Request
    next_hop: SipUri


@dataclass(frozen=True)
class RegistrationChanged:
    """State, error or registrar changed (what the UI and event log show)."""

    state: RegState
    error: str | None
    registrar: SipUri
    expires_at: float | None


@dataclass(frozen=True)
class SendKeepAlive:
    """Send `data` on the flow toward `next_hop` (RFC 5626 §3.5.1 CRLFCRLF ping)."""

    data: bytes
    next_hop: SipUri


Event = RegistrationChanged | SendKeepAlive


@dataclass
class _Pending:
    """The request awaiting its final response; `key` is (Call-ID, CSeq number, method)."""

    request: Request
    key: tuple[str, int, str]
    next_hop: SipUri
    unregister: bool = False


def _key(message: Request | Response) -> tuple[str, int, str]:
    cseq = message.cseq
    return (message.call_id, cseq.number, cseq.method)


@dataclass
class _Flow:
    """The Contact we bind, and the pre-NAT-discovery Contacts still to remove at the registrar."""

    contact: SipUri
    stale_contacts: list[SipUri] = field(default_factory=list)


class Registration:
    """REGISTER state machine for one account (RFC 3261 §10.2)."""

    def __init__(self, config: RegistrationConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.SystemRandom()
        self._registrars = [config.registrar or SipUri(config.aor.scheme, None, config.aor.host)]
        if config.secondary is not None:
            self._registrars.append(config.secondary)
        self._index = 0
        self._tried: set[int] = set()
        self._auth = DigestClient(
            Credentials(config.username, config.password, config.realm),
            cnonce_factory=lambda: f"{self._rng.getrandbits(64):016x}",
        )
        # RFC 3261 §10.2.4: one Call-ID for all registrations from this UA, CSeq incrementing.
        self.call_id = f"{self._rng.getrandbits(96):024x}"
        self.local_tag = f"{self._rng.getrandbits(64):016x}"
        self._cseq = 0
        self._requested = config.expires
        self._flow = _Flow(self._initial_contact())
        self.state = RegState.UNREGISTERED
        self.last_error: str | None = None
        self.expires_at: float | None = None
        self._failures = 0
        self._deadline: float | None = None
        self._keepalive_at: float | None = None
        self._failback_at: float | None = None
        self._pending: _Pending | None = None
        self._keepalive_key: tuple[str, int, str] | None = None
        self._outbox: deque[OutgoingRequest] = deque()
        self._events: deque[Event] = deque()
        self._announced: tuple[RegState, str | None, SipUri] = (self.state, None, self.registrar)

    # -- public interface ------------------------------------------------------------------------

    @property
    def registrar(self) -> SipUri:
        """The registrar in use (primary or secondary)."""
        return self._registrars[self._index]

    @property
    def contact(self) -> SipUri:
        """The Contact we register (rewritten to the public address after an RFC 3581 discovery)."""
        return self._flow.contact

    def start(self, now: float) -> None:
        """Register now; a no-op while already active."""
        if self.state in (RegState.REGISTERING, RegState.REGISTERED):
            return
        self._failures = 0
        self._begin_round()

    def stop(self, now: float) -> None:
        """Remove our binding (RFC 3261 §10.2.2: Expires 0) if one may exist, then go idle."""
        self._deadline = self._keepalive_at = None
        bound = self.expires_at is not None and self.expires_at > now
        if not bound and self._pending is None:
            self._set_state(RegState.UNREGISTERED, None)
            return
        self._send_register(unregister=True)
        self._set_state(RegState.UNREGISTERING, None)

    def next_request(self) -> OutgoingRequest | None:
        return self._outbox.popleft() if self._outbox else None

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines = [d for d in (self._deadline, self._keepalive_at) if d is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        if self._keepalive_at is not None and now >= self._keepalive_at:
            self._send_keepalive(now)
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            if self.state is RegState.REGISTERED:
                self._refresh(now)
            else:
                self._begin_round()

    def handle_response(self, response: Response, now: float) -> None:
        """A final response to one of our requests; provisional and unknown ones are ignored, and so
        is any answer to an OPTIONS keep-alive (it proves the path alive, which is all we asked)."""
        if response.status < 200:
            return
        try:
            key = _key(response)
        except HeaderError:
            return
        pending = self._pending
        if pending is None or key != pending.key:
            return  # a stale or foreign response (§10.2.4 CSeq ordering)
        self._pending = None
        if response.status in (401, 407):
            self._challenged(pending, response, now)
        elif pending.unregister:
            self._finish_unregister(None if response.status < 300 else f"{response.status} {response.reason}")
        elif 200 <= response.status < 300:
            self._registered(response, now)
        elif response.status == 423:
            self._too_brief(response, now)
        else:
            error = f"{response.status} {response.reason}".strip()
            self._fail(error, now, failover=response.status >= 500, retry_after=_retry_after(response))

    def handle_timeout(self, request: Request, now: float, error: str | None = None) -> None:
        """Timer F fired or the transport failed for `request` (RFC 3261 §8.1.3.1: treat as 408);
        `error` says what the transport saw, when it knows (refused, certificate rejected...)."""
        key = _key(request)
        if key == self._keepalive_key:
            self._keepalive_key = None
            self.handle_flow_failure(now)
            return
        pending = self._pending
        if pending is None or key != pending.key:
            return
        self._pending = None
        error = error or f"timeout contacting {pending.next_hop.host_port}"
        if pending.unregister:
            self._finish_unregister(error)
        else:
            self._fail(error, now, failover=True)

    def handle_flow_failure(self, now: float) -> None:
        """The flow toward the next hop died: a TCP/TLS connection closed, a CRLF ping went unanswered
        (RFC 5626 §4.4.1: no pong within 10 s) or an OPTIONS keep-alive timed out. Register again at
        once, so the registrar's binding points at the new flow (RFC 5626 §4.4.1)."""
        if self.state is RegState.REGISTERED and self._pending is None:
            self._keepalive_at = None
            self._refresh(now)

    # -- building requests -----------------------------------------------------------------------

    def _initial_contact(self) -> SipUri:
        cfg = self.config
        params: tuple[tuple[str, str | None], ...] = ()
        if cfg.transport != "udp":
            params = (("transport", cfg.transport),)
        return SipUri(cfg.aor.scheme, cfg.aor.user, cfg.local_host, cfg.local_port, None, params)

    @property
    def _next_hop(self) -> SipUri:
        return self.config.outbound_proxy or self.registrar

    def _base_headers(self, method: str, cseq: int, call_id: str, to: str) -> Headers:
        cfg = self.config
        host = SipUri(host=cfg.local_host, port=cfg.local_port).host_port
        branch = f"{BRANCH_MAGIC_COOKIE}{self._rng.getrandbits(64):016x}"
        headers = Headers()
        # RFC 3581 §3: a valueless rport asks the server to tell us the port our packets came from.
        headers.add("Via", f"SIP/2.0/{cfg.transport.upper()} {host};rport;branch={branch}")
        if cfg.outbound_proxy is not None:
            headers.add("Route", str(NameAddr(cfg.outbound_proxy.with_params(lr=None))))
        headers.add("Max-Forwards", MAX_FORWARDS)
        headers.add("From", str(NameAddr(cfg.aor, cfg.display_name, (("tag", self.local_tag),))))
        headers.add("To", to)
        headers.add("Call-ID", call_id)
        headers.add("CSeq", f"{cseq} {method}")
        if cfg.user_agent:
            headers.add("User-Agent", cfg.user_agent)
        return headers

    def _send_register(self, *, unregister: bool = False, auth: list[AuthHeader] | None = None) -> None:
        """A REGISTER to the registrar in use; any earlier request is abandoned (its answer is stale).
        `auth` answers a challenge; otherwise cached challenges are answered pre-emptively (nc + 1)."""
        self._cseq += 1
        uri = self.registrar
        headers = self._base_headers(
            "REGISTER", self._cseq, self.call_id, str(NameAddr(self.config.aor, self.config.display_name))
        )
        expires = 0 if unregister else self._requested
        headers.add("Contact", str(NameAddr(self._flow.contact, params=(("expires", str(expires)),))))
        for stale in self._flow.stale_contacts:  # the pre-NAT-discovery binding, removed in passing
            headers.add("Contact", str(NameAddr(stale, params=(("expires", "0"),))))
        headers.add("Expires", str(expires))
        for name, value in self._auth.authorize("REGISTER", str(uri)) if auth is None else auth:
            headers.add(name, value)
        self._queue(Request("REGISTER", uri, headers), unregister)

    def _queue(self, request: Request, unregister: bool) -> None:
        hop = self._next_hop
        self._pending = _Pending(request, _key(request), hop, unregister)
        self._outbox.append(OutgoingRequest(request, hop))

    # -- state transitions -----------------------------------------------------------------------

    def _set_state(self, state: RegState, error: str | None) -> None:
        self.state, self.last_error = state, error
        announced = (state, error, self.registrar)
        if announced != self._announced:
            self._announced = announced
            self._events.append(RegistrationChanged(state, error, self.registrar, self.expires_at))

    def _begin_round(self) -> None:
        """A fresh attempt, primary registrar first."""
        self._tried = set()
        self._switch(0)
        self._attempt()

    def _switch(self, index: int) -> None:
        if index != self._index:
            self._failback_at = None  # the failback clock runs from the first success on the secondary
        self._index = index
        self._tried.add(index)

    def _attempt(self) -> None:
        self._deadline = self._keepalive_at = None
        self._send_register()
        self._set_state(RegState.REGISTERING, self.last_error)

    def _refresh(self, now: float) -> None:
        """Refresh the binding; from the secondary, first try the primary again once due (failback).
        The state stays registered meanwhile: the current binding is still valid."""
        self._deadline = None
        self._tried = set()
        failback = self._index != 0 and self._failback_at is not None and now >= self._failback_at
        self._switch(0 if failback else self._index)
        self._send_register()

    def _registered(self, response: Response, now: float) -> None:
        try:
            public = _public_address(response)
        except HeaderError:
            public = None
        contact = self._flow.contact
        ours = (contact.host, contact.port or _DEFAULT_PORT[self.config.transport])
        if public is not None and public != ours and not self._flow.stale_contacts:
            # RFC 3581 §4: our packets arrive from a NAT's address; bind that instead so calls reach us.
            # Once per attempt: a registrar whose view keeps changing must not make us loop.
            moved = SipUri(contact.scheme, contact.user, public[0], public[1], None, contact.params)
            self._flow = _Flow(moved, [contact])
            self._send_register()
            return
        granted = self._granted(response)
        if granted <= 0:
            self._fail(f"{response.status} {response.reason} granted no binding", now, failover=False)
            return
        self._flow.stale_contacts = []
        self._failures = 0
        self.expires_at = now + granted
        # Policy: half-way for short grants, REFRESH_MARGIN early for long ones (§10.2.4 "before expiry").
        self._deadline = now + granted - min(granted / 2, REFRESH_MARGIN)
        if self._index != 0 and self._failback_at is None:
            self._failback_at = now + self.config.failback_after
        self._set_state(RegState.REGISTERED, None)
        self._schedule_keepalive(now)

    def _granted(self, response: Response) -> int:
        """RFC 3261 §10.2.4: our Contact's expires param, else the Expires header, else what we asked."""
        try:
            for na in response.contacts:
                if na.uri == self._flow.contact and na.expires is not None:
                    return na.expires
            expires = response.expires
        except HeaderError:
            expires = None
        return self._requested if expires is None else expires

    def _challenged(self, pending: _Pending, response: Response, now: float) -> None:
        """RFC 3261 §22.2: answer once; DigestClient reports a rejected fresh answer as AuthFailed."""
        status = response.status
        name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        sent_name = "Authorization" if status == 401 else "Proxy-Authorization"
        try:
            answer = self._auth.handle_challenge(
                status,
                response.headers.lines(name),
                "REGISTER",
                str(pending.request.uri),
                sent=pending.request.headers.lines(sent_name),
            )
        except AuthFailed:
            error = f"{status}: wrong password for user {self.config.username}"
            self._after_auth_failure(pending, error, now)
            return
        except AuthError as exc:
            self._after_auth_failure(pending, f"{status}: {exc}", now)
            return
        # Keep the answer to the other kind of challenge (registrar vs proxy) that got us this far.
        other = "Proxy-Authorization" if status == 401 else "Authorization"
        kept = [AuthHeader(other, value) for value in pending.request.headers.lines(other)]
        self._send_register(unregister=pending.unregister, auth=kept + answer)

    def _after_auth_failure(self, pending: _Pending, error: str, now: float) -> None:
        if pending.unregister:
            self._finish_unregister(error)
        else:
            self._fail(error, now, failover=False)

    def _too_brief(self, response: Response, now: float) -> None:
        """RFC 3261 §10.2.8: retry with Min-Expires; a 423 that does not raise the bar is a failure."""
        value = response.headers.get("Min-Expires")
        try:
            minimum = None if value is None else parse_delta_seconds(value)
        except HeaderError:
            minimum = None
        if minimum is None or minimum <= self._requested:
            self._fail(f"423 {response.reason} without a usable Min-Expires", now, failover=False)
            return
        self._requested = minimum
        self._send_register()

    def _fail(self, error: str, now: float, *, failover: bool, retry_after: int | None = None) -> None:
        """Try the other registrar at once on a timeout/5xx; otherwise back off (RFC 5626 §4.5), but
        never retry before a server's Retry-After (RFC 3261 §21.5.4)."""
        untried = [i for i in range(len(self._registrars)) if i not in self._tried]
        if failover and untried:
            self._switch(untried[0])
            self._send_register()
            bound = self.expires_at is not None and self.expires_at > now
            self._set_state(RegState.REGISTERED if bound else RegState.REGISTERING, error)
            return
        self._failures += 1
        wait = min(BACKOFF_MAX, BACKOFF_BASE * 2**self._failures) * self._rng.uniform(0.5, 1.0)
        self._deadline = now + max(wait, retry_after or 0)
        self._keepalive_at = None
        self._set_state(RegState.FAILED, error)

    def _finish_unregister(self, error: str | None) -> None:
        self.expires_at = None
        self._set_state(RegState.UNREGISTERED, error)

    # -- keep-alives -----------------------------------------------------------------------------

    def _keepalive_interval(self) -> float:
        configured = self.config.keepalive_interval
        if configured is not None:
            return configured
        return UDP_KEEPALIVE if self.config.transport == "udp" else STREAM_KEEPALIVE

    def _schedule_keepalive(self, now: float) -> None:
        """RFC 5626 §4.4.1: a random 80-100 % of the interval, so a fleet does not ping in lockstep."""
        interval = self._keepalive_interval()
        self._keepalive_at = now + interval * self._rng.uniform(0.8, 1.0) if interval > 0 else None

    def _send_keepalive(self, now: float) -> None:
        if self.config.transport == "udp" and self.config.udp_keepalive == "options":
            call_id = f"{self._rng.getrandbits(96):024x}"
            uri = self.registrar
            request = Request("OPTIONS", uri, self._base_headers("OPTIONS", 1, call_id, str(NameAddr(uri))))
            self._keepalive_key = _key(request)
            self._outbox.append(OutgoingRequest(request, self._next_hop))
        else:
            self._events.append(SendKeepAlive(b"\r\n\r\n", self._next_hop))
        self._schedule_keepalive(now)


def _retry_after(response: Response) -> int | None:
    """RFC 3261 §20.33 delta-seconds, ignoring any comment or parameters after it."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return parse_delta_seconds(value.split(";")[0].split("(")[0])
    except HeaderError:
        return None


def _public_address(response: Response) -> tuple[str, int] | None:
    """Our address as the first hop saw it (RFC 3581 §4), or None when the response does not say."""
    via = response.top_via
    if via.received is None and via.rport is None:
        return None
    default = _DEFAULT_PORT["tls" if via.transport == "TLS" else "udp"]
    return (via.received or via.host, via.rport or via.port or default)
