"""The SIP user agent core: registrations, calls and the glue between the sans-IO layers.

One `UserAgent` serves every port of the ATA. It owns the `TransactionLayer`, one `Registration`
per account, a `Dialog` (via `InviteForks` for our INVITEs) and an `SdpSession` per call, and the
incoming-request `RequestPolicy`. Like the layers below it is sans-IO (DESIGN.md "How a sans-IO core
meets asyncio"): `receive(data, addr, kind, now)`, `next_event()`, `datagrams_to_send(now)`,
`get_timer()`, `handle_timer(now)`; application calls (`place_call`, `answer`, `hangup`...) take `now`
too, and the adapter transmits after each.

Name resolution (RFC 3263) is the adapter's: it hands in `targets`, the ordered address list for each
configured registrar, secondary and outbound proxy host; IP-literal URIs (Record-Route, Contact) need no
lookup. A request whose transaction times out, meets a transport error or is answered 503 is sent again
to the server's next address (RFC 3263 §4.3), and later requests stay with the address that worked.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from firmware.sip import registration as reg
from firmware.sip.auth import AuthError, AuthHeader, Credentials, DigestClient
from firmware.sip.dialog import (
    MIN_SE,
    Dialog,
    DialogState,
    InviteForks,
    RefreshDue,
    RetryDue,
    SessionExpired,
    check_session_interval,
)
from firmware.sip.headers import HeaderError, NameAddr
from firmware.sip.message import (
    Headers,
    Request,
    Response,
    SipParseError,
    build_error_response,
    parse_message,
)
from firmware.sip.policy import Action, PolicyConfig, RequestPolicy
from firmware.sip.presence import DialogNotifier, PortDialog
from firmware.sip.refer import (
    REFER_EXPIRES,
    SIPFRAG,
    ReferError,
    Replaces,
    parse_refer_to,
    parse_sipfrag,
    refer_to,
    sipfrag,
    subscription_terminated,
)
from firmware.sip.registration import RegState
from firmware.sip.sdp import (
    Direction,
    MediaConfig,
    Negotiated,
    NotAcceptable,
    SdpError,
    SdpSession,
    SessionDescription,
    parse_sdp,
)
from firmware.sip.subscription import MwiSubscription, messages_waiting
from firmware.sip.transaction import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    State,
    TransactionLayer,
    TransactionTimeout,
    TransportError,
)
from firmware.sip.uri import SipUri, TelUri, UriError, is_ip_literal, parse_uri

__all__ = [
    "ALLOW",
    "AccountConfig",
    "CallAnswered",
    "CallEnded",
    "CallError",
    "CallHeld",
    "CallProgress",
    "CallResumed",
    "Event",
    "IncomingCall",
    "Kind",
    "MessageWaiting",
    "RegistrationChanged",
    "TransferProgress",
    "TransferRequested",
    "UaConfig",
    "UserAgent",
    "messages_waiting",
]

Kind = Literal["udp", "tcp", "tls"]
Addr = tuple[str, int]
ServerKey = tuple[str, int | None]
"""A configured server by name: (lower-case host, port or None), as `targets` is keyed."""

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, NOTIFY, SUBSCRIBE, REFER"
SUPPORTED = "timer"  # RFC 4028
_KEPT_ON_RETRY = frozenset({"refer-to", "referred-by", "event", "subscription-state"})
"""Headers an in-dialog request keeps when it is sent again with credentials."""
_DEFAULT_PORT: dict[str, int] = {"udp": 5060, "tcp": 5060, "tls": 5061}
ANONYMOUS_URI = SipUri("sip", "anonymous", "anonymous.invalid")
"""RFC 3323 §4.1.1.3: the From URI of a call that withholds its identity."""
_REASONS = {
    180: "Ringing",
    202: "Accepted",
    403: "Forbidden",
    404: "Not Found",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    603: "Decline",
}


@dataclass(frozen=True)
class AccountConfig:
    """One port's SIP identity. `name` is the application's handle (e.g. the port number)."""

    name: str
    user: str
    password: str
    auth_user: str | None = None
    """Digest username when it differs from the AOR user (many PBXs use an opaque auth id)."""
    display_name: str | None = None
    mwi_subscribe: bool = False
    """Subscribe to message-summary (RFC 3842) instead of relying on unsolicited NOTIFYs."""
    mailbox: str | None = None
    """The mailbox to subscribe to (user at our domain, or a URI); None: our own AOR (RFC 3842 §4)."""
    accept_refer: bool = False
    """Act on an in-dialog REFER (be transferred, RFC 3515); otherwise it is refused 403."""


@dataclass(frozen=True)
class UaConfig:
    """Server settings shared by every account: the AOR domain, registrar (+ secondary for
    failover), outbound proxy, transport and requested registration expiry."""

    domain: str
    accounts: tuple[AccountConfig, ...]
    registrar: SipUri | None = None
    secondary_registrar: SipUri | None = None
    outbound_proxy: SipUri | None = None
    transport: Kind = "udp"
    expires: int = 3600
    realm: str | None = None
    user_agent: str = "Hookflash"
    media: MediaConfig = field(default_factory=MediaConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    keepalive_interval: float | None = None


# -- events for the application -----------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationChanged:
    account: str
    state: RegState
    error: str | None


@dataclass(frozen=True)
class IncomingCall:
    """A new INVITE for `account`: ring the port, then `ringing`/`answer`/`reject`. Caller ID comes
    from `asserted_identity` (RFC 3325) when the PBX gives one, and `privacy` (RFC 3323) says
    whether to show it."""

    call: str
    account: str
    from_uri: str
    display_name: str | None
    asserted_identity: str | None
    privacy: str | None
    alert_info: str | None
    remote_sdp: bytes


@dataclass(frozen=True)
class CallProgress:
    """A provisional response to our INVITE; `early_media` when it carried the SDP answer."""

    call: str
    status: int
    early_media: Negotiated | None


@dataclass(frozen=True)
class CallAnswered:
    call: str
    negotiated: Negotiated


@dataclass(frozen=True)
class CallEnded:
    call: str
    reason: str
    status: int | None
    by_remote: bool


@dataclass(frozen=True)
class CallHeld:
    call: str
    by_remote: bool
    negotiated: Negotiated


@dataclass(frozen=True)
class CallResumed:
    call: str
    by_remote: bool
    negotiated: Negotiated


@dataclass(frozen=True)
class InfoReceived:
    """An in-dialog INFO (legacy use, RFC 6086 §1: DTMF as application/dtmf-relay or
    application/dtmf); already answered 200, the body is for the media layer to read."""

    call: str
    content_type: str | None
    body: bytes


@dataclass(frozen=True)
class MessageWaiting:
    """A message-summary NOTIFY (RFC 3842, `Messages-Waiting: yes|no`) for `account`'s mailbox,
    unsolicited or of our subscription (`AccountConfig.mwi_subscribe`); already answered 200."""

    account: str
    waiting: bool


@dataclass(frozen=True)
class TransferRequested:
    """The peer of `call` asks us (REFER, RFC 3515, already answered 202) to call `target`, an
    attended transfer when `replaces` names the dialog that call replaces (RFC 3891). Report how
    the new call goes with `transfer_progress`."""

    call: str
    target: str
    replaces: Replaces | None


@dataclass(frozen=True)
class TransferProgress:
    """How our REFER on `call` goes: the REFER's own final response (202, or a failure), then each
    sipfrag status the transferee NOTIFYs (RFC 3515 §2.4.4); `final` once nothing more comes."""

    call: str
    status: int
    final: bool


Event = (RegistrationChanged | IncomingCall | CallProgress | CallAnswered | CallEnded | CallHeld
         | CallResumed | InfoReceived | MessageWaiting | TransferRequested | TransferProgress)


class CallError(ValueError):
    """The application asked for something the call cannot do now (unknown call, wrong state)."""


class _Unroutable(Exception):
    """A next hop whose host the adapter did not resolve: the request fails like a 503."""


# -- internal state ------------------------------------------------------------------------------


@dataclass
class _Account:
    config: AccountConfig
    aor: SipUri
    registration: reg.Registration
    auth: DigestClient
    retired: bool = False
    """Removed by `remove_account`: still finishing its un-REGISTER, silent, matches no request."""
    mwi: MwiSubscription | None = None
    presence: DialogNotifier | None = None


@dataclass
class _Call:
    id: str
    account: _Account
    outgoing: bool
    sdp: SdpSession
    state: Literal["calling", "ringing", "connected", "ended"] = "calling"
    dialog: Dialog | None = None
    invite: Request | None = None
    """The INVITE that set the call up (ours as sent, or theirs)."""
    client_tx: ClientTransaction | None = None
    server_tx: ServerTransaction | None = None
    forks: InviteForks | None = None
    sent_acks: dict[str, Request] = field(default_factory=dict)
    """ACKs sent for 2xx, by To tag (initial INVITE) or "cseq:N" (re-INVITE), re-sent on a
    retransmitted 2xx (§13.2.2.4)."""
    negotiated: Negotiated | None = None
    remote_offer: SessionDescription | None = None
    cancelling: bool = False
    local_hold: bool = False
    hold_requested: bool = False
    remote_hold: bool = False
    offer_in_ack: bool = False
    """We put an offer in our 2xx (the INVITE had none): the answer comes in the ACK (RFC 3264 §4)."""
    refer_out: bool = False
    """Our REFER's implicit subscription is alive: refer NOTIFYs are expected (RFC 3515 §2.4.4)."""
    refer_in: bool = False
    """We accepted the peer's REFER and owe it NOTIFYs until a final one."""


@dataclass
class _Pending:
    """What a client transaction is for, so its response reaches the right place."""

    purpose: Literal["register", "invite", "reinvite", "bye", "subscribe", "notify", "refer", "other"]
    account: _Account
    call: _Call | None = None
    server: ServerKey | None = None
    """The resolved server the request went to (None for an IP literal), which of its addresses it
    went to first and which it went to last."""
    first_target: int = 0
    target: int = 0


class UserAgent:
    """Sans-IO SIP user agent for all ports (RFC 3261 §8, §10, §12-§15, RFC 3264)."""

    def __init__(
        self,
        config: UaConfig,
        local_addr: Addr,
        *,
        targets: Mapping[ServerKey, Sequence[Addr]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`local_addr` is the transport address for Via sent-by and Contact; `targets` maps a
        configured server's (host, port-or-None) to the addresses RFC 3263 found for it, in order."""
        self.config = config
        self.local_addr = local_addr
        self._rng = rng or random.SystemRandom()
        self._targets = {key: list(addrs) for key, addrs in (targets or {}).items() if addrs}
        self._current: dict[ServerKey, int] = {}
        """Per server, the index of the address in use: the first, or the last that worked (§4.3)."""
        self.transactions = TransactionLayer(rng=self._rng)
        self._accounts: dict[str, _Account] = {}
        for acct in config.accounts:
            self._accounts[acct.name] = self._new_account(acct)
        self.policy = RequestPolicy(self._trusted_ips(), [a.user for a in config.accounts], config.policy)
        self._calls: dict[str, _Call] = {}
        self._pending: dict[ClientTransaction, _Pending] = {}
        self._kinds: dict[Addr, Kind] = {}
        self._transport_errors: dict[Addr, str] = {}
        """What the transport last said about an address, for the registration's error text."""
        self._out: list[tuple[bytes, Addr, Kind]] = []
        self._events: deque[Event] = deque()
        self._stopping = False

    def _new_account(self, acct: AccountConfig) -> _Account:
        config, local_addr = self.config, self.local_addr
        aor = SipUri("sip", acct.user, config.domain)
        registration = reg.Registration(
            reg.RegistrationConfig(
                aor=aor,
                username=acct.auth_user or acct.user,
                password=acct.password,
                local_host=local_addr[0],
                local_port=local_addr[1],
                registrar=config.registrar,
                secondary=config.secondary_registrar,
                outbound_proxy=config.outbound_proxy,
                display_name=acct.display_name,
                transport=config.transport,
                expires=config.expires,
                realm=config.realm,
                user_agent=config.user_agent,
                keepalive_interval=config.keepalive_interval,
            ),
            rng=self._rng,
        )
        credentials = Credentials(acct.auth_user or acct.user, acct.password, config.realm)
        account = _Account(acct, aor, registration, DigestClient(credentials))
        if acct.mwi_subscribe:
            account.mwi = self._mwi_subscription(account)
        account.presence = DialogNotifier(aor, self._contact(account), rng=self._rng)
        return account

    # -- aioquic-style interface --------------------------------------------------------------------

    def receive(self, data: bytes, addr: Addr, kind: Kind, now: float) -> None:
        """One datagram, or one message framed from a stream, from `addr`."""
        reliable = kind != "udp"
        try:
            message = parse_message(data)
        except SipParseError:
            if self.policy.source_allowed(addr[0]):  # let the transaction layer answer 400 etc.
                self._kinds[addr] = kind
                self.transactions.receive(data, addr, now, reliable=reliable)
                self._pump(now)
            return
        if isinstance(message, Request) and not self._known_dialog(message):
            decision = self.policy.decide(message, addr, now)
            if decision.action is Action.DROP:
                return
            if decision.action is Action.REPLY:
                answer = build_error_response(message, decision.status, decision.reason, to_tag=self._tag())
                if answer is not None:
                    self._out.append((answer.to_bytes(), addr, kind))
                return
        self._kinds[addr] = kind  # only for accepted peers: a spoofed flood must not grow this table
        self.transactions.receive(message, addr, now, reliable=reliable)
        self._pump(now)

    def transport_error(self, addr: Addr, now: float, reason: str = "") -> None:
        """The adapter could not reach `addr` (ICMP unreachable, connection refused or reset, TLS
        certificate rejected): its transactions fail at once instead of waiting for Timer B/F (RFC 3261
        §17.1.4), and `reason` becomes the registration's last error."""
        self._transport_errors[addr] = reason
        self.transactions.transport_error(addr)
        self._pump(now)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr, Kind]]:
        out, self._out = self._out, []
        default = self.config.transport
        out += [
            (data, addr, self._kinds.get(addr, default))
            for data, addr in self.transactions.datagrams_to_send(now)
        ]
        return out

    def get_timer(self) -> float | None:
        deadlines = [self.transactions.get_timer()]
        deadlines += [a.registration.get_timer() for a in self._accounts.values()]
        deadlines += [a.mwi.get_timer() for a in self._accounts.values() if a.mwi is not None]
        deadlines += [a.presence.get_timer() for a in self._accounts.values() if a.presence is not None]
        deadlines += [c.dialog.get_timer() for c in self._calls.values() if c.dialog is not None]
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timer(self, now: float) -> None:
        self.transactions.handle_timer(now)
        for account in self._accounts.values():
            account.registration.handle_timer(now)
            if account.mwi is not None:
                account.mwi.handle_timer(now)
            if account.presence is not None:
                account.presence.handle_timer(now)
        for call in list(self._calls.values()):
            if call.dialog is not None:
                call.dialog.handle_timer(now)
        self._pump(now)
        self._pending = {tx: p for tx, p in self._pending.items() if tx.state is not State.TERMINATED}

    # -- application API ------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Register every account (RFC 3261 §10.2)."""
        self._stopping = False
        for account in self._accounts.values():
            account.registration.start(now)
            if account.mwi is not None:
                account.mwi.start(now)
        self._pump(now)

    def stop(self, now: float) -> None:
        """Hang up every call and remove every binding; `idle` tells when that is done."""
        self._stopping = True
        for call in list(self._calls.values()):
            self.hangup(call.id, now)
        for account in self._accounts.values():
            account.registration.stop(now)
            if account.mwi is not None:
                account.mwi.stop(now)
            if account.presence is not None:
                account.presence.stop()
        self._pump(now)

    @property
    def idle(self) -> bool:
        """No registration still being removed and no request of ours still unanswered."""
        unregistering = any(a.registration.state is RegState.UNREGISTERING for a in self._accounts.values())
        busy = any(tx.state in (State.CALLING, State.TRYING, State.PROCEEDING) for tx in self._pending)
        return not unregistering and not busy

    def add_account(self, acct: AccountConfig, now: float) -> None:
        """Start registering a new account (an edited port's new identity), at run time."""
        if acct.name in self._accounts:
            raise CallError(f"account {acct.name!r} exists: remove it first")
        account = self._new_account(acct)
        self._accounts[acct.name] = account
        self._refresh_users()
        if not self._stopping:
            account.registration.start(now)
            if account.mwi is not None:
                account.mwi.start(now)
        self._pump(now)

    def remove_account(self, name: str, now: float, *, unregister: bool = True) -> None:
        """Forget an account. With `unregister` its binding is removed (RFC 3261 §10.2.2, Expires 0)
        in the background; without (the same AOR is about to register again with new credentials,
        whose REGISTER refreshes the same Contact) it is dropped at once, so no un-REGISTER can
        remove the new binding. Its calls keep running to their end; it gets no new ones."""
        account = self._account(name)
        del self._accounts[name]
        self._refresh_users()
        if account.presence is not None:
            account.presence.stop()
        if unregister and account.registration.state is not RegState.UNREGISTERED:
            account.retired = True
            self._accounts[f"{name}~{id(account):x}"] = account  # kept until its un-REGISTER ends
            account.registration.stop(now)
            if account.mwi is not None:
                account.mwi.stop(now)
        self._pump(now)

    def _refresh_users(self) -> None:
        self.policy.users = frozenset(a.config.user for a in self._accounts.values() if not a.retired)

    def registration_state(self, account: str) -> tuple[RegState, str | None]:
        registration = self._account(account).registration
        return registration.state, registration.last_error

    def place_call(
        self, account: str, target: str, now: float, media: Addr, *, anonymous: bool = False,
        replaces: Replaces | None = None,
    ) -> str:
        """INVITE `target` (a SIP/tel URI, or digits/user at our domain) with an SDP offer for our RTP
        endpoint `media`; returns the call handle (its Call-ID). `anonymous` withholds our identity
        (`_anonymous_headers`). `replaces`: the dialog this call takes over at the target (RFC 3891
        §6.1), when a REFER asked for it."""
        acct = self._account(account)
        uri = self._target_uri(target)
        call_id = f"{self._rng.getrandbits(96):024x}@hookflash"
        sdp = SdpSession(self.config.media, media[0], media[1], random_bytes=self._random_bytes)
        offer = sdp.create_offer().serialize().encode()
        headers = Headers()
        if self.config.outbound_proxy is not None:  # RFC 3261 §8.1.2 pre-loaded route
            headers.add("Route", str(NameAddr(self.config.outbound_proxy.with_params(lr=None))))
        headers.add("Max-Forwards", "70")
        from_params = (("tag", self._tag()),)
        if anonymous:
            headers.add("From", str(NameAddr(ANONYMOUS_URI, "Anonymous", from_params)))
        else:
            headers.add("From", str(NameAddr(acct.aor, acct.config.display_name, from_params)))
        headers.add("To", str(NameAddr(uri)))
        headers.add("Call-ID", call_id)
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", self._contact(acct))
        if anonymous:
            self._anonymous_headers(headers, acct)
        if replaces is not None:
            headers.add("Replaces", str(replaces))
        self._add_capabilities(headers)
        headers.add("Content-Type", "application/sdp")
        call = _Call(call_id, acct, True, sdp)
        self._calls[call_id] = call
        self._send_invite(call, Request("INVITE", uri, headers, offer), now)
        self._pump(now)
        return call_id

    def ringing(self, call_id: str, now: float) -> None:
        """180 Ringing for an incoming call (the port is ringing)."""
        call = self._incoming(call_id)
        assert call.dialog is not None and call.invite is not None and call.server_tx is not None
        response = call.dialog.create_response(call.invite, 180, "Ringing", now)
        self._add_capabilities(response.headers, response=True)
        self.transactions.send_response(call.server_tx, response, now)
        call.state = "ringing"

    def answer(self, call_id: str, now: float, media: Addr) -> None:
        """200 OK with our SDP answer for RTP endpoint `media` (or an offer, if the INVITE had none);
        the transaction layer retransmits it until the ACK comes (RFC 6026)."""
        call = self._incoming(call_id)
        assert call.dialog is not None and call.invite is not None and call.server_tx is not None
        call.sdp.address, call.sdp.port = media
        if call.remote_offer is None:
            body = call.sdp.create_offer().serialize().encode()
        else:
            answer, call.negotiated = call.sdp.create_answer(call.remote_offer)
            body = answer.serialize().encode()
        response = call.dialog.create_response(call.invite, 200, "OK", now, body, "application/sdp")
        self._add_capabilities(response.headers, response=True)
        self.transactions.send_response(call.server_tx, response, now)
        call.state = "connected"
        if call.negotiated is not None:
            self._events.append(CallAnswered(call.id, call.negotiated))

    def reject(self, call_id: str, status: int, now: float) -> None:
        """Refuse an incoming call, e.g. 486 Busy Here or 603 Decline."""
        if not 300 <= status < 700:
            raise CallError(f"{status} is not a final error status")
        call = self._incoming(call_id)
        self._final_error(call, status, now)
        self._end(call, "rejected", status, by_remote=False)

    # -- call features: privacy and redirection ---------------------------------------------------------

    @staticmethod
    def _anonymous_headers(headers: Headers, account: _Account) -> None:
        """An anonymous call: From is "Anonymous" <sip:anonymous@anonymous.invalid> (RFC 3323
        §4.1.1.3), `Privacy: id` asks the trusted proxy to withhold our asserted identity (RFC 3325
        §9.3), and P-Preferred-Identity tells that proxy who we are, so it can still authenticate,
        bill and assert us inside its trust domain (RFC 3325 §9.2). Contact keeps our address: the
        PBX needs it to reach us, and hiding it is an anonymizer's job (RFC 3323 §5.1)."""
        headers.add("Privacy", "id")
        headers.add("P-Preferred-Identity", str(NameAddr(account.aor)))

    def redirect(self, call_id: str, target: str, now: float) -> None:
        """Forward an unanswered incoming call: 302 Moved Temporarily with `target` (a URI, or
        digits/user at our domain) as the Contact (RFC 3261 §21.3.3, §8.1.3.4); the caller's side
        tries the new target and we are out of the call."""
        call = self._incoming(call_id)
        assert call.dialog is not None and call.invite is not None and call.server_tx is not None
        contact = NameAddr(self._target_uri(target))
        response = call.dialog.create_response(call.invite, 302, "Moved Temporarily", now)
        response.headers.add("Contact", str(contact))
        self.transactions.send_response(call.server_tx, response, now)
        self._end(call, "redirected", 302, by_remote=False)

    def hangup(self, call_id: str, now: float) -> None:
        """CANCEL before answer (§9.1), BYE after (§15.1.1), refusal for an incoming call not yet
        answered. Ending twice is harmless."""
        call = self._calls.get(call_id)
        if call is None:
            return
        if call.outgoing and call.state != "connected":
            tx = call.client_tx
            if tx is not None and not call.cancelling and self.transactions.cancel(tx, now):
                call.cancelling = True  # the 487 (or Timer B) ends it; a crossing 2xx is ACKed and BYEd
                self._pump(now)
                return
            self._end(call, "cancelled", None, by_remote=False)
        elif not call.outgoing and call.state != "connected":
            self._final_error(call, 480, now)
            self._end(call, "rejected", 480, by_remote=False)
        else:
            self._send_bye(call, now)
            self._end(call, "hangup", None, by_remote=False)
        self._pump(now)

    def send_info(self, call_id: str, content_type: str, body: bytes, now: float) -> None:
        """Send an in-dialog INFO (RFC 6086), e.g. a DTMF digit as application/dtmf-relay."""
        call = self._connected(call_id)
        dialog = call.dialog
        assert dialog is not None
        info = dialog.create_request("INFO", body=body, content_type=content_type)
        self._send(info, dialog.next_hop, _Pending("other", call.account, call), now)
        self._pump(now)

    def refer(self, call_id: str, target: str, now: float, *, replacing: str | None = None) -> None:
        """Transfer `call_id`'s peer to `target` with an in-dialog REFER (RFC 3515 §2.4.1): blind, or
        attended when `replacing` is another connected call of ours, whose dialog the peer's INVITE
        to `target` is to replace (Refer-To with Replaces, RFC 3891 §7; tags as the target sees
        them, §3). TransferProgress events follow; the application ends the calls."""
        call = self._connected(call_id)
        dialog = call.dialog
        assert dialog is not None
        replaces = None
        if replacing is not None:
            other = self._connected(replacing).dialog
            assert other is not None
            replaces = Replaces(other.call_id, to_tag=other.remote_tag, from_tag=other.local_tag)
        try:
            value = refer_to(self._refer_target(target), replaces)
        except ReferError as exc:
            raise CallError(str(exc)) from None
        extra = [("Refer-To", value), ("Referred-By", str(NameAddr(call.account.aor)))]  # RFC 3892
        request = dialog.create_request("REFER", extra=extra)
        self._add_capabilities(request.headers)
        call.refer_out = True
        self._send(request, dialog.next_hop, _Pending("refer", call.account, call), now)
        self._pump(now)

    def transfer_progress(self, call_id: str, status: int, reason: str, now: float) -> None:
        """NOTIFY the referrer of `call_id` how the call its REFER asked for goes (RFC 3515 §2.4.4:
        a message/sipfrag status line); a final status (>= 200) terminates the subscription."""
        call = self._call(call_id)
        dialog = call.dialog
        if not call.refer_in or dialog is None or call.state == "ended":
            return
        final = status >= 200
        state = "terminated;reason=noresource" if final else f"active;expires={REFER_EXPIRES}"
        request = dialog.create_request("NOTIFY", sipfrag(status, reason), SIPFRAG,
                                        extra=[("Event", "refer"), ("Subscription-State", state)])
        call.refer_in = not final
        self._send(request, dialog.next_hop, _Pending("other", call.account, call), now)
        self._pump(now)

    def hold(self, call_id: str, now: float) -> None:
        """Re-INVITE with a=sendonly (RFC 3264 §8.4); CallHeld follows the 2xx."""
        self._reoffer(self._connected(call_id), True, now)

    def resume(self, call_id: str, now: float) -> None:
        """Re-INVITE with a=sendrecv; CallResumed follows the 2xx."""
        self._reoffer(self._connected(call_id), False, now)

    # -- helpers: identity, addressing ------------------------------------------------------------------

    def _account(self, name: str) -> _Account:
        try:
            return self._accounts[name]
        except KeyError:
            raise CallError(f"no account {name!r}") from None

    def _call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            raise CallError(f"no call {call_id!r}")
        return call

    def _incoming(self, call_id: str) -> _Call:
        call = self._call(call_id)
        if call.outgoing or call.state not in ("calling", "ringing"):
            raise CallError(f"call {call_id!r} is not an unanswered incoming call")
        return call

    def _connected(self, call_id: str) -> _Call:
        call = self._call(call_id)
        if call.state != "connected" or call.dialog is None:
            raise CallError(f"call {call_id!r} is not connected")
        return call

    def _tag(self) -> str:
        return self.transactions.new_tag()

    def _random_bytes(self, n: int) -> bytes:
        return self._rng.getrandbits(8 * n).to_bytes(n, "big")

    def _trusted_ips(self) -> list[str]:
        """The policy's allowed sources: every resolved server address and IP-literal server URI."""
        ips = [addr[0] for addrs in self._targets.values() for addr in addrs]
        for uri in (self.config.registrar, self.config.secondary_registrar, self.config.outbound_proxy):
            if uri is not None and is_ip_literal(uri.host):
                ips.append(uri.host.strip("[]"))
        if self.config.registrar is None and is_ip_literal(self.config.domain):
            ips.append(self.config.domain.strip("[]"))
        return ips

    def _contact(self, account: _Account) -> str:
        return str(NameAddr(account.registration.contact))

    def _via(self) -> str:
        host = SipUri(host=self.local_addr[0], port=self.local_addr[1]).host_port
        return f"SIP/2.0/{self.config.transport.upper()} {host};rport;branch={self.transactions.new_branch()}"

    def _add_capabilities(self, headers: Headers, *, response: bool = False) -> None:
        """Allow/Supported (RFC 3261 §20.5, §20.37) and who we are: Server in responses (§20.35)."""
        headers.add("Allow", ALLOW)
        headers.add("Supported", SUPPORTED)
        headers.add("Server" if response else "User-Agent", self.config.user_agent)

    def _target_uri(self, target: str) -> SipUri | TelUri:
        if ":" in target:
            try:
                uri = parse_uri(target)
            except UriError as exc:
                raise CallError(f"bad target {target!r}: {exc}") from None
            if not isinstance(uri, SipUri | TelUri):
                raise CallError(f"cannot call a {target.split(':')[0]} URI")
            return uri
        return SipUri("sip", target, self.config.domain)

    def _refer_target(self, target: str) -> SipUri | TelUri:
        """A REFER's target as the transferee can reach it: a bare number at our domain gets the
        registrar's port when the domain is the registrar's host (the transferee may send it there
        directly, without our outbound proxy)."""
        if ":" in target:
            return self._target_uri(target)
        registrar = self.config.registrar
        same = registrar is not None and registrar.host.lower() == self.config.domain.lower()
        return SipUri("sip", target, self.config.domain, registrar.port if same and registrar else None)

    def _addr_for(self, uri: SipUri | TelUri | object) -> Addr:
        """RFC 3263 result for a next hop: IP literals directly, configured hosts from `targets`."""
        return self._route(uri)[0]

    def _route(self, uri: SipUri | TelUri | object) -> tuple[Addr, ServerKey | None, int]:
        """The address for a next hop, with the server and address index when it was resolved: the
        address in use for that server (RFC 3263 §4.3)."""
        if not isinstance(uri, SipUri):
            raise _Unroutable(f"cannot route to {uri}")
        host = uri.host.strip("[]")
        if is_ip_literal(host):
            return (host, uri.port or _DEFAULT_PORT[self.config.transport]), None, 0
        key = (uri.host.lower(), uri.port)
        found = self._targets.get(key)
        if found is None:
            raise _Unroutable(f"{uri.host_port} is not resolved")
        index = self._current.get(key, 0)
        return found[index], key, index

    def _first_hop(self, account: _Account) -> SipUri:
        """Out-of-dialog requests go to the outbound proxy, else to the registrar in use (so calls
        follow a registration that failed over to the secondary)."""
        return self.config.outbound_proxy or account.registration.registrar

    def _reliable(self) -> bool:
        return self.config.transport != "udp"

    def _send(
        self, request: Request, hop: SipUri | TelUri | object, pending: _Pending, now: float
    ) -> ClientTransaction | None:
        """New client transaction with our Via (Registration writes its own); an unroutable hop is
        reported like a transport error."""
        try:
            addr, pending.server, pending.target = self._route(hop)
        except _Unroutable as exc:
            self._failed_to_send(request, pending, str(exc), now)
            return None
        pending.first_target = pending.target
        return self._transmit(request, addr, pending, now)

    def _transmit(self, request: Request, addr: Addr, pending: _Pending, now: float) -> ClientTransaction:
        """Send `request` to `addr` in a new client transaction; an INVITE becomes its call's."""
        if "Via" not in request.headers:
            request.headers.insert(0, "Via", self._via())
        self._kinds.setdefault(addr, self.config.transport)
        tx = self.transactions.send_request(request, addr, self._reliable(), now)
        self._pending[tx] = pending
        if pending.purpose == "invite" and pending.call is not None:
            call = pending.call
            call.client_tx = tx
            call.invite = tx.request
            call.forks = InviteForks(tx.request, rng=self._rng)
        return tx

    def _fail_over(self, tx: ClientTransaction, pending: _Pending, now: float) -> bool:
        """RFC 3263 §4.3: after a timeout, transport error or 503, send the request again, identical
        but for a new Via branch (a new transaction), to the server's next address (wrapping round, as
        a request may have started at a later address that worked before). The server's address in
        use moves on with it, back to the first once all have failed. False when every address has
        had the request, or it no longer matters (a cancelled or ended call)."""
        key = pending.server
        if key is None:
            return False
        addrs = self._targets[key]
        following = (pending.target + 1) % len(addrs)
        exhausted = following == pending.first_target
        if self._current.get(key, 0) == pending.target:
            self._current[key] = 0 if exhausted else following
        if exhausted or not self._still_wanted(tx, pending):
            return False
        headers = Headers()
        for name, value in tx.request.headers:
            if name.lower() not in ("via", "v"):
                headers.add(name, value)
        request = Request(tx.request.method, tx.request.uri, headers, tx.request.body)
        pending.target = following
        self._transmit(request, addrs[following], pending, now)
        return True

    def _send_ack(self, ack: Request, dialog: Dialog) -> Request:
        ack.headers.insert(0, "Via", self._via())
        try:
            addr = self._addr_for(dialog.next_hop)
        except _Unroutable:
            return ack
        self._kinds.setdefault(addr, self.config.transport)
        return self.transactions.send_stateless(ack, addr)

    def _resend_ack(self, ack: Request, dialog: Dialog) -> None:
        try:
            self.transactions.send_stateless(ack, self._addr_for(dialog.next_hop))
        except _Unroutable:
            return

    def _failed_to_send(self, request: Request, pending: _Pending, error: str, now: float) -> None:
        if pending.purpose == "register":
            pending.account.registration.handle_timeout(request, now)
        elif pending.purpose == "invite" and pending.call is not None:
            self._end(pending.call, error, 503, by_remote=False)

    @staticmethod
    def _still_wanted(tx: ClientTransaction, pending: _Pending) -> bool:
        """Whether a failed request is worth sending again: not for a call already over (except its
        BYE), nor for an INVITE that was cancelled or replaced."""
        call = pending.call
        if call is None or pending.purpose == "bye":
            return True
        if pending.purpose == "invite":
            return tx is call.client_tx and not call.cancelling and call.state != "ended"
        return call.state != "ended"

    # -- calls: sending ------------------------------------------------------------------------------------

    def _send_invite(self, call: _Call, invite: Request, now: float) -> None:
        self._send(invite, self._first_hop(call.account), _Pending("invite", call.account, call), now)

    def _send_bye(self, call: _Call, now: float) -> None:
        dialog = call.dialog
        if dialog is None:
            return
        bye = dialog.create_request("BYE")
        self._send(bye, dialog.next_hop, _Pending("bye", call.account, call), now)

    def _reoffer(self, call: _Call, hold: bool, now: float) -> None:
        dialog = call.dialog
        assert dialog is not None
        if any(
            p.call is call and p.purpose == "reinvite" and tx.state in (State.CALLING, State.PROCEEDING)
            for tx, p in self._pending.items()
        ):
            raise CallError("a re-INVITE of ours is still pending (RFC 3261 §14.1)")
        offer = call.sdp.create_offer("sendonly" if hold else "sendrecv").serialize().encode()
        call.hold_requested = hold
        request = dialog.create_request("INVITE", offer, "application/sdp")
        self._add_capabilities(request.headers)
        self._send(request, dialog.next_hop, _Pending("reinvite", call.account, call), now)
        self._pump(now)

    def _final_error(self, call: _Call, status: int, now: float) -> None:
        assert call.dialog is not None and call.invite is not None and call.server_tx is not None
        response = call.dialog.create_response(call.invite, status, _REASONS.get(status, "Error"), now)
        self.transactions.send_response(call.server_tx, response, now)

    def _end(self, call: _Call, reason: str, status: int | None, *, by_remote: bool) -> None:
        if call.state == "ended":
            return
        call.state = "ended"
        self._calls.pop(call.id, None)
        self._events.append(CallEnded(call.id, reason, status, by_remote))

    @staticmethod
    def _auth_answer(request: Request, response: Response, account: _Account) -> list[AuthHeader] | None:
        """Credentials answering a 401/407 (RFC 3261 §22.2), or None when the challenge cannot (or,
        after a rejected fresh answer, must not again) be answered."""
        status = response.status
        challenge = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        sent_name = "Authorization" if status == 401 else "Proxy-Authorization"
        try:
            return account.auth.handle_challenge(
                status,
                response.headers.lines(challenge),
                request.method,
                str(request.uri),
                request.body,
                sent=request.headers.lines(sent_name),
            )
        except AuthError:
            return None

    @staticmethod
    def _with_credentials(request: Request, answer: list[AuthHeader]) -> Request:
        """An out-of-dialog request again with credentials, keeping those answering the other kind of
        challenge; CSeq grows since it is a new transaction (§8.1.3.5)."""
        replaced = {name.lower() for name, _ in answer}
        headers = Headers()
        for name, value in request.headers:
            if name.lower() not in ("via", "v", *replaced):
                headers.add(name, value)
        for name, value in answer:
            headers.add(name, value)
        headers.set("CSeq", f"{request.cseq.number + 1} {request.method}")
        return Request(request.method, request.uri, headers, request.body)

    # -- event pump ---------------------------------------------------------------------------------

    def _pump(self, now: float) -> None:
        """Move everything the layers produced until nothing is left: transaction events to calls and
        registrations, registration requests to the transaction layer, dialog timers to requests."""
        progress = True
        while progress:
            progress = False
            while (event := self.transactions.next_event()) is not None:
                progress = True
                self._on_transaction_event(event, now)
            for account in self._accounts.values():
                while account.mwi is not None and (sub := account.mwi.next_request()) is not None:
                    progress = True
                    request, hop = sub
                    self._send(request, hop or self._first_hop(account), _Pending("subscribe", account), now)
                while account.presence is not None and (out_notify := account.presence.next_request()):
                    progress = True
                    self._send(out_notify[0], out_notify[1], _Pending("notify", account), now)
                registration = account.registration
                while (out := registration.next_request()) is not None:
                    progress = True
                    self._send(out.request, out.next_hop, _Pending("register", account), now)
                while (rev := registration.next_event()) is not None:
                    progress = True
                    if isinstance(rev, reg.SendKeepAlive):
                        try:
                            addr = self._addr_for(rev.next_hop)
                        except _Unroutable:
                            continue
                        self._out.append((rev.data, addr, self.config.transport))
                    elif not account.retired:
                        self._events.append(RegistrationChanged(account.config.name, rev.state, rev.error))
            for call in list(self._calls.values()):
                while call.dialog is not None and (dev := call.dialog.next_event()) is not None:
                    progress = True
                    self._on_dialog_event(call, dev, now)
        for key, account in list(self._accounts.items()):
            if account.retired and account.registration.state in (RegState.UNREGISTERED, RegState.FAILED):
                del self._accounts[key]

    def _on_dialog_event(
        self, call: _Call, event: RefreshDue | RetryDue | SessionExpired, now: float
    ) -> None:
        dialog = call.dialog
        assert dialog is not None
        if isinstance(event, SessionExpired):
            self._send(event.bye, dialog.next_hop, _Pending("bye", call.account, call), now)
            self._end(call, "session expired", None, by_remote=False)
            return
        purpose: Literal["reinvite", "other"] = "reinvite" if event.request.method == "INVITE" else "other"
        self._send(event.request, dialog.next_hop, _Pending(purpose, call.account, call), now)

    def _on_transaction_event(
        self,
        event: RequestReceived
        | ResponseReceived
        | TransactionTimeout
        | CancelReceived
        | AckReceived
        | AckTimeout
        | TransportError,
        now: float,
    ) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(event.transaction, event.request, now)
        elif isinstance(event, ResponseReceived):
            pending = self._pending.get(event.transaction)
            if pending is not None:
                self._on_response(event.transaction, pending, event.response, now)
        elif isinstance(event, TransactionTimeout | TransportError):
            tx = event.transaction
            if isinstance(tx, ClientTransaction):
                pending = self._pending.pop(tx, None)
                if pending is not None:
                    status = 408 if isinstance(event, TransactionTimeout) else 503
                    self._client_failed(tx, pending, status, now)
        elif isinstance(event, CancelReceived):
            call = self._call_of_server_tx(event.transaction)
            if call is not None:
                self._final_error(call, 487, now)
                self._end(call, "cancelled", 487, by_remote=True)
        elif isinstance(event, AckReceived):
            self._on_ack(event.request, now)
        else:  # AckTimeout: our 2xx was never acknowledged (§13.3.1.4)
            call = self._call_of_server_tx(event.transaction)
            if call is not None:
                self._send_bye(call, now)
                self._end(call, "no ACK for our 200 OK", None, by_remote=False)

    def _call_of_server_tx(self, tx: ServerTransaction) -> _Call | None:
        return next((c for c in self._calls.values() if c.server_tx is tx), None)

    def _client_failed(self, tx: ClientTransaction, pending: _Pending, status: int, now: float) -> None:
        """Timer B/F or a transport error: the next address of the server if it has one (RFC 3263
        §4.3), else §8.1.3.1 treats it as 408 (503 for the transport)."""
        cause = self._transport_errors.pop(tx.addr, "") if status == 503 else ""
        if self._fail_over(tx, pending, now):
            return
        if pending.purpose == "register":
            error = f"cannot reach {tx.addr[0]}:{tx.addr[1]}: {cause}" if cause else None
            pending.account.registration.handle_timeout(tx.request, now, error)
            return
        if pending.purpose == "subscribe":
            if pending.account.mwi is not None:
                pending.account.mwi.handle_timeout(tx.request, now)
            return
        if pending.purpose == "notify":
            if pending.account.presence is not None:
                pending.account.presence.notify_failed(tx.request.call_id, 408)
            return
        call = pending.call
        if call is None:
            return
        if pending.purpose == "invite" and tx is call.client_tx:
            reason = "cancelled" if call.cancelling else ("timeout" if status == 408 else "transport error")
            self._end(call, reason, status, by_remote=False)
        elif pending.purpose == "refer":  # no answer to our REFER: the transfer failed (RFC 3515 §2.4.2)
            call.refer_out = False
            self._events.append(TransferProgress(call.id, status, final=True))
        elif pending.purpose in ("reinvite", "other") and call.state == "connected":
            self._send_bye(call, now)  # §12.2.1.2: the dialog is gone
            self._end(call, "timeout" if status == 408 else "transport error", status, by_remote=False)

    # -- responses ----------------------------------------------------------------------------------

    def _on_response(self, tx: ClientTransaction, pending: _Pending, response: Response, now: float) -> None:
        if response.status == 503 and self._fail_over(tx, pending, now):  # RFC 3263 §4.3
            return
        if pending.purpose == "register":
            pending.account.registration.handle_response(response, now)
            return
        if pending.purpose == "subscribe":
            if pending.account.mwi is not None:
                pending.account.mwi.handle_response(tx.request, response, now)
            return
        if pending.purpose == "notify":
            if pending.account.presence is not None and response.status >= 300:
                pending.account.presence.notify_failed(tx.request.call_id, response.status)
            return
        call = pending.call
        if call is None:
            return
        if response.status in (401, 407):
            self._challenged(tx, pending, call, response, now)
            return
        if pending.purpose == "invite":
            self._on_invite_response(call, tx, response, now)
        elif pending.purpose == "reinvite":
            self._on_reinvite_response(call, tx, response, now)
        elif pending.purpose == "refer" and call.dialog is not None:
            call.dialog.receive_response(tx.request, response, now)
            if response.status >= 200:
                failed = response.status >= 300
                call.refer_out = call.refer_out and not failed
                self._events.append(TransferProgress(call.id, response.status, final=failed))
        elif call.dialog is not None:
            call.dialog.receive_response(tx.request, response, now)
            self._dialog_gone(call, response)

    def _dialog_gone(self, call: _Call, response: Response) -> None:
        """A 408/481 to an in-dialog request ended the dialog at the peer (§12.2.1.2): so is the call."""
        if call.dialog is not None and call.dialog.state is DialogState.TERMINATED and response.status >= 300:
            self._end(call, f"{response.status} {response.reason}".strip(), response.status, by_remote=True)

    def _challenged(
        self, tx: ClientTransaction, pending: _Pending, call: _Call, response: Response, now: float
    ) -> None:
        answer = self._auth_answer(tx.request, response, pending.account)
        if pending.purpose == "invite":
            if tx is not call.client_tx:
                return
            if answer is None or call.state == "ended" or call.cancelling:
                self._end(call, "authentication failed", response.status, by_remote=True)
            else:
                self._send_invite(call, self._with_credentials(tx.request, answer), now)
            return
        dialog = call.dialog
        if dialog is None:
            return
        dialog.receive_response(tx.request, response, now)
        if answer is None:
            return
        # In-dialog: the dialog numbers the retry so its CSeq space stays consistent (§12.2.1.1).
        extra: list[tuple[str, str]] = list(answer)
        if tx.request.method == "INVITE":
            extra += [("Allow", ALLOW), ("Supported", SUPPORTED), ("User-Agent", self.config.user_agent)]
        extra += [(n, v) for n, v in tx.request.headers if n.lower() in _KEPT_ON_RETRY]
        retry = dialog.create_request(tx.request.method, tx.request.body, tx.request.content_type, extra)
        self._send(retry, dialog.next_hop, pending, now)

    def _on_invite_response(self, call: _Call, tx: ClientTransaction, response: Response, now: float) -> None:
        if tx is not call.client_tx or call.forks is None:
            return
        status = response.status
        result = call.forks.receive_response(response, now)
        if 200 <= status < 300:
            tag = response.to_tag or ""
            dialog = result.dialog
            if dialog is None or result.ack is None:
                return
            if tag in call.sent_acks:
                self._resend_ack(call.sent_acks[tag], dialog)
                return
            call.sent_acks[tag] = self._send_ack(result.ack, dialog)
            if result.bye is not None:  # another fork answered too: keep the first (§13.2.2.4)
                self._send(result.bye, dialog.next_hop, _Pending("other", call.account, call), now)
                return
            call.dialog = dialog
            if call.state == "ended" or call.cancelling:
                self._send_bye(call, now)  # our CANCEL crossed their 200 (§9.1)
                self._end(call, "cancelled", None, by_remote=False)
                return
            negotiated = call.negotiated
            if response.body and negotiated is None:
                try:
                    negotiated = call.sdp.process_answer(parse_sdp(response.body))
                except (SdpError, NotAcceptable) as exc:
                    self._send_bye(call, now)
                    self._end(call, f"unusable SDP answer: {exc}", None, by_remote=False)
                    return
            if negotiated is None:
                self._send_bye(call, now)
                self._end(call, "2xx without an SDP answer", None, by_remote=False)
                return
            call.negotiated = negotiated
            call.state = "connected"
            self._events.append(CallAnswered(call.id, negotiated))
        elif status < 200:
            if result.dialog is not None and call.dialog is None:
                call.dialog = result.dialog
            early = None
            if response.body and call.negotiated is None:
                try:
                    early = call.sdp.process_answer(parse_sdp(response.body))
                except (SdpError, NotAcceptable):
                    early = None
                call.negotiated = early
            if status > 100:
                call.state = "ringing"
                self._events.append(CallProgress(call.id, status, early))
        else:
            cancelled = call.cancelling and status == 487
            reason = "cancelled" if cancelled else f"{status} {response.reason}".strip()
            self._end(call, reason, status, by_remote=not cancelled)

    def _on_reinvite_response(
        self, call: _Call, tx: ClientTransaction, response: Response, now: float
    ) -> None:
        dialog = call.dialog
        if dialog is None:
            return
        status = response.status
        key = f"cseq:{tx.request.cseq.number}"
        if 200 <= status < 300 and key in call.sent_acks:
            self._resend_ack(call.sent_acks[key], dialog)
            return
        dialog.receive_response(tx.request, response, now)
        if status < 200:
            return
        if status >= 300:
            self._dialog_gone(call, response)
            return  # 491/422 are retried by the dialog; other failures leave the hold state as it was
        call.sent_acks[key] = self._send_ack(dialog.create_ack(tx.request), dialog)
        if call.state == "ended" or not response.body:
            return
        try:
            negotiated = call.sdp.process_answer(parse_sdp(response.body))
        except SdpError:
            return  # a session refresh answered with our old SDP: nothing outstanding, nothing changes
        except NotAcceptable as exc:
            self._send_bye(call, now)
            self._end(call, f"unusable SDP answer: {exc}", None, by_remote=False)
            return
        call.negotiated = negotiated
        call.local_hold = call.hold_requested
        self._hold_events(call, negotiated, by_remote=False)

    def _hold_events(self, call: _Call, negotiated: Negotiated, *, by_remote: bool) -> None:
        """CallHeld/CallResumed when the hold state on this side changed."""
        if by_remote:
            held = negotiated.direction in ("recvonly", "inactive")
            if held != call.remote_hold:
                call.remote_hold = held
                self._events.append((CallHeld if held else CallResumed)(call.id, True, negotiated))
        else:
            event = CallHeld if call.local_hold else CallResumed
            self._events.append(event(call.id, False, negotiated))

    # -- requests -----------------------------------------------------------------------------------

    def _known_dialog(self, request: Request) -> bool:
        """An in-dialog request for a call of ours: it proves knowledge of both random tags, so the
        policy's source check does not apply (a peer that does not Record-Route sends BYE directly)."""
        try:
            if request.to_tag is None:
                return False
            call = self._calls.get(request.call_id)
            return (
                call is not None
                and call.dialog is not None
                and call.dialog.id == Dialog.id_of_request(request)
            )
        except HeaderError:
            return False

    def _respond(
        self, tx: ServerTransaction, request: Request, status: int, reason: str, now: float
    ) -> Response:
        response = build_error_response(request, status, reason, to_tag=self._tag())
        assert response is not None
        if status == 405 or (request.method == "OPTIONS" and status == 200):
            self._add_capabilities(response.headers, response=True)
            response.headers.add("Accept", "application/sdp")
        self.transactions.send_response(tx, response, now)
        return response

    def _on_request(self, tx: ServerTransaction, request: Request, now: float) -> None:
        method = request.method
        if method == "NOTIFY" and (account := self._subscriber_of(request)) is not None:
            self._subscription_notify(account, tx, request, now)
        elif method == "SUBSCRIBE":
            self._watcher_subscribe(tx, request, now)
        elif request.to_tag is not None:
            self._in_dialog(tx, request, now)
        elif method == "INVITE":
            self._incoming_invite(tx, request, now)
        elif method == "OPTIONS":
            self._respond(tx, request, 200, "OK", now)  # RFC 3261 §11.2
        elif method == "NOTIFY":
            self._unsolicited_notify(tx, request, now)
        elif method in ("BYE", "UPDATE", "INFO"):
            self._respond(tx, request, 481, "Call/Transaction Does Not Exist", now)
        else:
            self._respond(tx, request, 405, "Method Not Allowed", now)

    def _unsolicited_notify(self, tx: ServerTransaction, request: Request, now: float) -> None:
        """Unsolicited message-summary NOTIFY from the PBX (RFC 3842 §3, the Asterisk/FreePBX way):
        200 and a MessageWaiting event; other event packages get 489 Bad Event (RFC 6665 §4.1.3)."""
        package = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if package != "message-summary":
            self._respond(tx, request, 489, "Bad Event", now)
            return
        account = self._account_for(request)
        if account is None:
            self._respond(tx, request, 404, _REASONS[404], now)
            return
        waiting = messages_waiting(request.body)
        if waiting is None:
            self._respond(tx, request, 400, "Bad message-summary body", now)
            return
        self._respond(tx, request, 200, "OK", now)
        self._events.append(MessageWaiting(account.config.name, waiting))

    # -- message waiting by subscription (RFC 3842, RFC 6665; the state machine is in subscription.py) --

    def _mwi_subscription(self, account: _Account) -> MwiSubscription:
        mailbox = account.config.mailbox
        return MwiSubscription(
            aor=account.aor, contact=self._contact(account), auth=account.auth,
            user_agent=self.config.user_agent, outbound_proxy=self.config.outbound_proxy, rng=self._rng,
            mailbox=self._target_uri(mailbox) if mailbox else None)

    def _subscriber_of(self, request: Request) -> _Account | None:
        try:
            return next((a for a in self._accounts.values() if a.mwi is not None and a.mwi.owns(request)),
                        None)
        except HeaderError:
            return None

    def _subscription_notify(
        self, account: _Account, tx: ServerTransaction, request: Request, now: float
    ) -> None:
        """A NOTIFY of our message-summary subscription: answered, and the lamp's state passed on."""
        assert account.mwi is not None
        notified = account.mwi.handle_notify(request, now)
        self._respond(tx, request, notified.status, notified.reason, now)
        if notified.waiting is not None:
            self._events.append(MessageWaiting(account.config.name, notified.waiting))

    # -- presence: the dialog event package (RFC 4235; the notifier is in presence.py) ----------------

    def set_presence(self, account: str, dialog: PortDialog | None, now: float) -> None:
        """The port's call state for its watchers (None: idle); NOTIFYs go out to each."""
        notifier = self._account(account).presence
        if notifier is not None:
            notifier.set_state(dialog, now)
            self._pump(now)

    def _watcher_subscribe(self, tx: ServerTransaction, request: Request, now: float) -> None:
        """A SUBSCRIBE: `Event: dialog` for one of our accounts is a busy-lamp watcher (RFC 4235);
        other packages are 489 Bad Event (RFC 6665 §4.2.1.1)."""
        package = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if package != "dialog":
            response = build_error_response(request, 489, "Bad Event", to_tag=self._tag())
            assert response is not None
            response.headers.add("Allow-Events", "dialog")
            self.transactions.send_response(tx, response, now)
            return
        account = self._account_for(request)
        if account is None or account.presence is None:
            self._respond(tx, request, 404, _REASONS[404], now)
            return
        try:
            response = account.presence.subscribe(request, self._tag(), now)
        except (ValueError, HeaderError):
            self._respond(tx, request, 400, "Bad Request", now)
            return
        self.transactions.send_response(tx, response, now)

    def _account_for(self, request: Request) -> _Account | None:
        user = request.uri.user if isinstance(request.uri, SipUri) else None
        return next((a for a in self._accounts.values() if a.config.user == user and not a.retired), None)

    def _incoming_invite(self, tx: ServerTransaction, request: Request, now: float) -> None:
        account = self._account_for(request)
        if account is None or self._stopping:
            self._respond(
                tx, request, 404 if account is None else 480, _REASONS[404 if account is None else 480], now
            )
            return
        unknown = [r for r in request.headers.get_all("Require") if r.strip().lower() != "timer"]
        if unknown:
            response = build_error_response(request, 420, "Bad Extension", to_tag=self._tag())
            assert response is not None
            response.headers.add("Unsupported", ", ".join(unknown))  # RFC 3261 §8.2.2.3
            self.transactions.send_response(tx, response, now)
            return
        tag = self._tag()
        try:
            too_small = check_session_interval(request, MIN_SE, tag)
            dialog = Dialog.create_uas(request, tag, self._contact(account), rng=self._rng)
        except (ValueError, HeaderError):
            self._respond(tx, request, 400, "Bad Request", now)
            return
        if too_small is not None:
            self.transactions.send_response(tx, too_small, now)
            return
        # Our RTP endpoint is the application's to choose at answer time; the answer is tried now,
        # with a placeholder port, only to refuse an unusable offer before the phone rings.
        sdp = SdpSession(self.config.media, self.local_addr[0], 9, random_bytes=self._random_bytes)
        call = _Call(request.call_id, account, False, sdp)
        call.dialog, call.invite, call.server_tx = dialog, request, tx
        if request.body:
            try:
                call.remote_offer = parse_sdp(request.body)
                sdp.create_answer(call.remote_offer)
            except SdpError as exc:
                self._respond(tx, request, 400, f"Bad SDP: {exc}"[:100], now)
                return
            except NotAcceptable:
                self.transactions.send_response(
                    tx, dialog.create_response(request, 488, _REASONS[488], now), now
                )
                return
        else:
            call.offer_in_ack = True
        self._calls[call.id] = call
        from_ = request.from_
        self._events.append(
            IncomingCall(
                call=call.id,
                account=account.config.name,
                from_uri=str(from_.uri),
                display_name=from_.display_name,
                asserted_identity=request.headers.get("P-Asserted-Identity"),
                privacy=request.headers.get("Privacy"),
                alert_info=request.headers.get("Alert-Info"),
                remote_sdp=request.body,
            )
        )

    def _on_ack(self, ack: Request, now: float) -> None:
        """The ACK for a 2xx: it carries the answer when our 2xx carried the offer (RFC 3264 §4)."""
        call = self._calls.get(ack.call_id)
        if call is None or not call.offer_in_ack or call.dialog is None:
            return
        if call.dialog.id != Dialog.id_of_request(ack):
            return
        call.offer_in_ack = False
        try:
            negotiated = call.sdp.process_answer(parse_sdp(ack.body))
        except (SdpError, NotAcceptable) as exc:
            self._send_bye(call, now)
            self._end(call, f"unusable SDP answer in ACK: {exc}", None, by_remote=False)
            return
        first = call.negotiated is None  # the call's first exchange; else an offerless re-INVITE's
        call.negotiated = negotiated
        if first:
            self._events.append(CallAnswered(call.id, negotiated))
        else:
            self._hold_events(call, negotiated, by_remote=True)

    def _in_dialog(self, tx: ServerTransaction, request: Request, now: float) -> None:
        call = self._calls.get(request.call_id)
        dialog = call.dialog if call is not None else None
        if call is None or dialog is None or dialog.id != Dialog.id_of_request(request):
            self._respond(tx, request, 481, "Call/Transaction Does Not Exist", now)  # §12.2.2
            return
        error = dialog.receive_request(request)
        if error is not None:
            self.transactions.send_response(tx, error, now)
            return
        method = request.method
        if method == "BYE":
            self.transactions.send_response(tx, dialog.create_response(request, 200, "OK", now), now)
            if not call.outgoing and call.state != "connected":
                self._final_error(call, 487, now)  # §15.1.2: the unanswered INVITE is terminated too
            self._end(call, "remote hangup", None, by_remote=True)
        elif method in ("INVITE", "UPDATE"):
            self._remote_offer(call, dialog, tx, request, now)
        elif method == "REFER":
            self._incoming_refer(call, dialog, tx, request, now)
        elif method == "NOTIFY":
            self._refer_notify(call, dialog, tx, request, now)
        elif method in ("OPTIONS", "INFO"):
            response = dialog.create_response(request, 200, "OK", now)
            if method == "OPTIONS":
                self._add_capabilities(response.headers, response=True)
            self.transactions.send_response(tx, response, now)
            if method == "INFO" and request.body:
                self._events.append(InfoReceived(call.id, request.content_type, request.body))
        else:
            response = dialog.create_response(request, 405, "Method Not Allowed", now)
            self._add_capabilities(response.headers, response=True)
            self.transactions.send_response(tx, response, now)

    def _incoming_refer(
        self, call: _Call, dialog: Dialog, tx: ServerTransaction, request: Request, now: float
    ) -> None:
        """A REFER in a connected call (RFC 3515 §2.4.2): 403 unless the account accepts transfers,
        400 without exactly one usable Refer-To, else 202 and the NOTIFY 100 Trying that §2.4.4
        requires at once; the application places the call and reports with `transfer_progress`."""
        def answer(status: int, reason: str) -> None:
            self.transactions.send_response(tx, dialog.create_response(request, status, reason, now), now)

        if not call.account.config.accept_refer or call.state != "connected":
            answer(403, "Forbidden")
            return
        values = request.headers.get_all("Refer-To")
        try:
            if len(values) != 1:
                raise ReferError("exactly one Refer-To is required (RFC 3515 §2.4.1)")
            target = parse_refer_to(values[0])
        except ReferError as exc:
            answer(400, str(exc)[:100])
            return
        if call.refer_in:
            answer(491, "Request Pending")  # one transfer at a time in this dialog
            return
        answer(202, _REASONS[202])
        call.refer_in = True
        self._events.append(TransferRequested(call.id, str(target.uri), target.replaces))
        self.transfer_progress(call.id, 100, "Trying", now)

    def _refer_notify(
        self, call: _Call, dialog: Dialog, tx: ServerTransaction, request: Request, now: float
    ) -> None:
        """A NOTIFY of our REFER's implicit subscription (RFC 3515 §2.4.4): 200 and a TransferProgress
        with the sipfrag's status; other packages 489, none alive 481 (RFC 6665 §4.1.3)."""
        def answer(status: int, reason: str) -> None:
            self.transactions.send_response(tx, dialog.create_response(request, status, reason, now), now)

        package = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if package != "refer":
            answer(489, "Bad Event")
            return
        if not call.refer_out:
            answer(481, "Subscription Does Not Exist")
            return
        try:
            status = parse_sipfrag(request.body)
        except ReferError as exc:
            answer(400, str(exc)[:100])
            return
        answer(200, "OK")
        final = status >= 200 or subscription_terminated(request.headers.get("Subscription-State"))
        call.refer_out = not final
        self._events.append(TransferProgress(call.id, status, final))

    def _remote_offer(
        self, call: _Call, dialog: Dialog, tx: ServerTransaction, request: Request, now: float
    ) -> None:
        """A re-INVITE or UPDATE (RFC 3264 §8, RFC 3311): answer keeping our own hold state; their
        sendonly/inactive (or c=0.0.0.0) is a remote hold."""
        direction: Direction = "sendonly" if call.local_hold else "sendrecv"
        if not request.body:
            if request.method == "UPDATE":  # a session refresh (RFC 4028 §7): no offer
                self.transactions.send_response(tx, dialog.create_response(request, 200, "OK", now), now)
                return
            body = call.sdp.create_offer(direction).serialize().encode()
            call.offer_in_ack = True
            response = dialog.create_response(request, 200, "OK", now, body, "application/sdp")
            self._add_capabilities(response.headers, response=True)
            self.transactions.send_response(tx, response, now)
            return
        try:
            answer, negotiated = call.sdp.create_answer(parse_sdp(request.body), direction)
        except SdpError as exc:
            self.transactions.send_response(
                tx, dialog.create_response(request, 400, f"Bad SDP: {exc}"[:100], now), now
            )
            return
        except NotAcceptable:
            self.transactions.send_response(tx, dialog.create_response(request, 488, _REASONS[488], now), now)
            return
        response = dialog.create_response(
            request, 200, "OK", now, answer.serialize().encode(), "application/sdp"
        )
        self._add_capabilities(response.headers, response=True)
        self.transactions.send_response(tx, response, now)
        call.negotiated = negotiated
        self._hold_events(call, negotiated, by_remote=True)
