"""SIP transactions (RFC 3261 §17, with the RFC 6026 "Accepted" state), sans-IO.

`TransactionLayer` follows the aioquic shape described in DESIGN.md: feed it with
`receive(data, addr, now)`, drain `next_event()`, send `datagrams_to_send(now)`, re-arm one timer for
`get_timer()` and call `handle_timer(now)` when it fires. Nothing here reads a clock or opens a socket,
so every timer (A..K, plus RFC 6026 L and M) is tested with invented times.

Reliability is per transaction (the adapter knows whether `addr` is a UDP peer or a TCP/TLS
connection); it switches retransmissions off and the "absorb retransmissions" waits (D, I, J, K) to
zero exactly as §17 says. Responses go back to the address the request came from: the transport adapter
has already applied §18.2.2 / RFC 3581 when it picked that address.

After a 2xx to an INVITE both sides stay in RFC 6026's Accepted state for 64*T1 instead of ending at
once (RFC 3261 §17.1.1.2/§17.2.1): the client keeps routing forked and retransmitted 2xx to the TU, which
ACKs each one; the server absorbs INVITE retransmissions and does the UAS core's §13.3.1.4 duty itself,
retransmitting the 2xx until the ACK arrives and reporting `AckTimeout` (the TU then sends BYE).
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass

from firmware.sip.headers import BRANCH_MAGIC_COOKIE, HeaderError, Via, split_list
from firmware.sip.message import (
    Headers,
    Request,
    Response,
    SipParseError,
    build_error_response,
    parse_message,
)

__all__ = [
    "T1",
    "T2",
    "T4",
    "AckReceived",
    "AckTimeout",
    "Addr",
    "CancelReceived",
    "ClientTransaction",
    "Event",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransaction",
    "State",
    "TransactionLayer",
    "TransactionTimeout",
    "TransportError",
    "build_cancel",
    "build_non2xx_ack",
]

T1 = 0.5
"""RTT estimate (RFC 3261 §17.1.1.1, table 4)."""
T2 = 4.0
"""Maximum retransmit interval for non-INVITE requests and INVITE responses (§17.1.2.2)."""
T4 = 5.0
"""Maximum time a message remains in the network (§17.1.2.2)."""
TIMEOUT = 64 * T1
"""Timers B, F, H, J and RFC 6026 L/M."""
TRYING_DELAY = 0.2
"""§17.2.1: send 100 Trying unless the TU answers within 200 ms."""

Addr = tuple[str, int]


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026 §7.1/§7.2: after a 2xx, absorb/route 2xx and ACK retransmissions
    TERMINATED = "Terminated"


def _rewrite_top_via(headers: Headers, via: Via) -> Headers:
    """A copy of `headers` whose topmost via-parm is `via` (other Via values untouched)."""
    out = Headers()
    done = False
    for name, value in headers:
        if not done and name.lower() in ("via", "v"):
            rest = split_list(value)[1:]
            value = ", ".join([str(via), *rest])
            done = True
        out.add(name, value)
    return out


def _with_param(via: Via, name: str, value: str) -> Via:
    kept = tuple((k, v) for k, v in via.params if k.lower() != name)
    return Via(via.transport, via.host, via.port, (*kept, (name, value)), via.protocol)


def build_non2xx_ack(request: Request, response: Response) -> Request:
    """ACK for a 300-699 to an INVITE (§17.1.1.3): Request-URI, Call-ID, From, CSeq number and the
    top Via (same branch) from the INVITE, To from the response (its tag), Route from the INVITE."""
    headers = Headers()
    headers.add("Via", str(request.top_via))
    for name in ("Max-Forwards", "Route"):
        for value in request.headers.lines(name):
            headers.add(name, value)
    headers.add("From", request.headers.lines("From")[0])
    headers.add("To", response.headers.lines("To")[0])
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", f"{request.cseq.number} ACK")
    return Request("ACK", request.uri, headers)


def build_cancel(request: Request) -> Request:
    """CANCEL for a pending request (§9.1): same Request-URI, Call-ID, From, To, CSeq number and top
    Via (so the same branch) as the request, method CANCEL, and the request's Route headers."""
    headers = Headers()
    headers.add("Via", str(request.top_via))
    for name in ("Max-Forwards", "Route"):
        for value in request.headers.lines(name):
            headers.add(name, value)
    for name in ("From", "To", "Call-ID"):
        headers.add(name, request.headers.lines(name)[0])
    headers.add("CSeq", f"{request.cseq.number} CANCEL")
    return Request("CANCEL", request.uri, headers)


@dataclass(frozen=True)
class RequestReceived:
    """A new request for the TU; answer it with `TransactionLayer.send_response`."""

    transaction: ServerTransaction
    request: Request


@dataclass(frozen=True)
class ResponseReceived:
    """A response for the TU (not retransmissions, except 2xx to INVITE: each one must be ACKed,
    §13.2.2.4, and forked 2xx responses arrive here too while the transaction is Accepted)."""

    transaction: ClientTransaction
    response: Response


@dataclass(frozen=True)
class TransactionTimeout:
    """Timer B or F (client: treat as 408, §8.1.3.1) or timer H (server: the ACK never came)."""

    transaction: ClientTransaction | ServerTransaction


@dataclass(frozen=True)
class CancelReceived:
    """A CANCEL matched this pending INVITE transaction; it has already been answered 200 and the TU
    must now answer the INVITE with 487 Request Terminated (§9.2)."""

    transaction: ServerTransaction
    request: Request


@dataclass(frozen=True)
class AckReceived:
    """An ACK for a 2xx (a new transaction of its own, §17.1.1.3). `transaction` is the INVITE
    transaction whose 2xx it acknowledges (its retransmissions stop), None if that is gone."""

    transaction: ServerTransaction | None
    request: Request


@dataclass(frozen=True)
class AckTimeout:
    """Our 2xx to an INVITE was retransmitted for 64*T1 without an ACK: the TU must BYE (§13.3.1.4)."""

    transaction: ServerTransaction


@dataclass(frozen=True)
class TransportError:
    """The transport could not deliver for this transaction (§17.1.4, §17.2.4): it is terminated
    and the TU treats it as a 503 (client) or gives up on the request (server)."""

    transaction: ClientTransaction | ServerTransaction


Event = (
    RequestReceived
    | ResponseReceived
    | TransactionTimeout
    | CancelReceived
    | AckReceived
    | AckTimeout
    | TransportError
)


class _Transaction:
    """State and timers shared by both sides; each timer is a deadline keyed by its RFC letter."""

    def __init__(self, request: Request, addr: Addr, reliable: bool) -> None:
        self.request = request
        self.addr = addr
        self.reliable = reliable
        self.method = request.method
        self.branch = request.top_via.branch or ""
        self.state = State.TERMINATED
        self.timers: dict[str, float] = {}
        self._interval = T1
        self._out: list[bytes] = []

    @property
    def is_invite(self) -> bool:
        return self.method == "INVITE"

    def deadline(self) -> float | None:
        return min(self.timers.values(), default=None)

    def _send(self, message: Request | Response) -> None:
        self._out.append(message.to_bytes())

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        self.timers.clear()

    def _linger(self, timer: str, delay: float, now: float) -> None:
        """Enter a wait that absorbs retransmissions (D, I, J, K): zero on reliable transports."""
        if self.reliable:
            self._terminate()
        else:
            self.timers[timer] = now + delay

    def fire_due(self, now: float) -> list[Event]:
        """Fire every timer due at `now`, earliest first (a fired timer may re-arm itself)."""
        events: list[Event] = []
        while self.timers:
            name, deadline = min(self.timers.items(), key=lambda item: item[1])
            if deadline > now:
                break
            del self.timers[name]
            events += self._on_timer(name, now)
        return events

    def _on_timer(self, name: str, now: float) -> list[Event]:
        raise NotImplementedError


class ClientTransaction(_Transaction):
    """INVITE (§17.1.1) or non-INVITE (§17.1.2) client transaction."""

    def __init__(self, request: Request, addr: Addr, reliable: bool) -> None:
        super().__init__(request, addr, reliable)
        self.last_response: Response | None = None
        self.ack: Request | None = None
        self.cancel_pending = False
        """§9.1: CANCEL requested before any provisional response; sent when one arrives."""

    def start(self, now: float) -> None:
        self._send(self.request)
        if self.is_invite:
            self.state = State.CALLING
            if not self.reliable:
                self.timers["A"] = now + T1  # §17.1.1.2
            self.timers["B"] = now + TIMEOUT
        else:
            self.state = State.TRYING
            if not self.reliable:
                self.timers["E"] = now + T1  # §17.1.2.2
            self.timers["F"] = now + TIMEOUT

    def _on_timer(self, name: str, now: float) -> list[Event]:
        if name in ("A", "E"):
            self._send(self.request)
            if name == "A":  # §17.1.1.2: A doubles without a cap
                self._interval *= 2
            elif self.state is State.PROCEEDING:  # §17.1.2.2: T2 once a provisional arrived
                self._interval = T2
            else:
                self._interval = min(2 * self._interval, T2)
            self.timers[name] = now + self._interval
            return []
        if name in ("B", "F"):
            self._terminate()
            return [TransactionTimeout(self)]
        self._terminate()  # D, K, M: the absorbing waits are over
        return []

    def receive_response(self, response: Response, now: float) -> list[Event]:
        status = response.status
        if self.is_invite:
            return self._invite_response(response, status, now)
        if self.state in (State.TRYING, State.PROCEEDING):
            self.last_response = response
            if status < 200:
                self.state = State.PROCEEDING
            else:  # §17.1.2.2: Completed, timer K absorbs response retransmissions
                self.state = State.COMPLETED
                self.timers.clear()
                self._linger("K", T4, now)
            return [ResponseReceived(self, response)]
        return []

    def _invite_response(self, response: Response, status: int, now: float) -> list[Event]:
        if self.state in (State.CALLING, State.PROCEEDING):
            self.last_response = response
            self.timers.pop("A", None)
            if status < 200:
                self.state = State.PROCEEDING
                self.timers.pop("B", None)  # §17.1.1.2: B only guards the Calling state
            elif status < 300:
                # RFC 6026 §7.2: Accepted for 64*T1 so forked 2xx still reach the TU, which ACKs them.
                self.state = State.ACCEPTED
                self.timers = {"M": now + TIMEOUT}
                self.cancel_pending = False
            else:
                self.state = State.COMPLETED
                self.timers.clear()
                self.cancel_pending = False
                self.ack = build_non2xx_ack(self.request, response)
                self._send(self.ack)  # §17.1.1.3
                self._linger("D", 32.0, now)  # timer D: >= 32 s on unreliable transports
            return [ResponseReceived(self, response)]
        if self.state is State.ACCEPTED and 200 <= status < 300:
            return [ResponseReceived(self, response)]
        if self.state is State.COMPLETED and status >= 300 and self.ack is not None:
            self._send(self.ack)  # §17.1.1.2: every final retransmission is ACKed again
        return []


class ServerTransaction(_Transaction):
    """INVITE (§17.2.1) or non-INVITE (§17.2.2) server transaction."""

    def __init__(self, request: Request, addr: Addr, reliable: bool) -> None:
        super().__init__(request, addr, reliable)
        via = request.top_via
        self.sent_by = via.sent_by.lower()
        self.last_response: Response | None = None
        self.acked = False
        self.state = State.PROCEEDING if self.is_invite else State.TRYING

    @property
    def local_tag(self) -> str | None:
        """The To tag of the latest response we sent (reused in the 200 to a CANCEL, §9.2)."""
        return None if self.last_response is None else self.last_response.to_tag

    def start(self, now: float, trying_delay: float) -> None:
        if self.is_invite:
            self.timers["trying"] = now + trying_delay

    def _on_timer(self, name: str, now: float) -> list[Event]:
        if name == "trying":
            self._send_trying()
            return []
        if name in ("G", "2xx"):
            assert self.last_response is not None
            self._send(self.last_response)
            self._interval = min(2 * self._interval, T2)  # §17.2.1 timer G, §13.3.1.4 the same
            self.timers[name] = now + self._interval
            return []
        if name == "H":
            self._terminate()
            return [TransactionTimeout(self)]
        if name == "L":
            acked = self.acked
            self._terminate()
            return [] if acked else [AckTimeout(self)]
        self._terminate()  # I, J
        return []

    def _send_trying(self) -> None:
        trying = build_error_response(self.request, 100, "Trying")
        assert trying is not None  # INVITE, parsed: always answerable
        if "Timestamp" in self.request.headers:  # §8.2.6.1
            trying.headers.add("Timestamp", self.request.headers.lines("Timestamp")[0])
        self.last_response = trying
        self._send(trying)

    def receive_request(self, request: Request, now: float) -> list[Event]:
        """A retransmission of our request, or the ACK for a non-2xx final response."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED  # §17.2.1: stop G and H, absorb ACKs during I
                self.timers.clear()
                self._linger("I", T4, now)
            return []
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            self._send(self.last_response)  # §17.2.1, §17.2.2: resend the latest response
        return []  # Trying without a response, Accepted (RFC 6026 §7.1), Confirmed: absorb

    def ack_2xx(self) -> None:
        """The ACK for our 2xx arrived: stop retransmitting it (§13.3.1.4); L keeps absorbing."""
        self.acked = True
        self.timers.pop("2xx", None)

    def send_response(self, response: Response, now: float) -> None:
        status = response.status
        if self.state in (State.TRYING, State.PROCEEDING):
            self.timers.pop("trying", None)
            self.last_response = response
            self._send(response)
            if status < 200:
                self.state = State.PROCEEDING
            elif not self.is_invite:
                self.state = State.COMPLETED
                self._linger("J", TIMEOUT, now)  # §17.2.2
            elif status < 300:
                # RFC 6026 §7.1 Accepted + §13.3.1.4: the 2xx is retransmitted whatever the transport,
                # from T1 doubling to T2, until the ACK comes or 64*T1 passes.
                self.state = State.ACCEPTED
                self._interval = T1
                self.timers = {"2xx": now + T1, "L": now + TIMEOUT}
            else:
                self.state = State.COMPLETED
                self._interval = T1
                if not self.reliable:
                    self.timers["G"] = now + T1
                self.timers["H"] = now + TIMEOUT
        elif self.state is State.ACCEPTED and 200 <= status < 300:
            self._send(response)  # RFC 6026 §7.1: further 2xx from the TU go out
        else:
            raise ValueError(f"cannot send {status} in state {self.state.value}")

    def matches_legacy(self, request: Request) -> bool:
        """RFC 2543 matching for a branch without the magic cookie (§17.2.3): Request-URI, To tag,
        From tag, Call-ID, CSeq and top Via; an ACK matches the INVITE when its To tag is the one our
        response carried."""
        own = self.request
        if request.method == "ACK":
            if not self.is_invite or self.last_response is None:
                return False
            to_tag_ok = request.to_tag == self.last_response.to_tag
            method_ok = True
        else:
            to_tag_ok = request.to_tag == own.to_tag
            method_ok = request.method == own.method
        return (
            method_ok
            and to_tag_ok
            and request.uri == own.uri
            and request.from_tag == own.from_tag
            and request.call_id == own.call_id
            and request.cseq.number == own.cseq.number
            and request.top_via == own.top_via
        )


_ServerKey = tuple[str, str, str]


def _server_key(request: Request) -> _ServerKey:
    """§17.2.3: branch, sent-by and method, ACK standing for the INVITE it acknowledges."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    return (via.branch or "", via.sent_by.lower(), method)


class TransactionLayer:
    """Matches messages to transactions, creates server transactions and runs all their timers."""

    def __init__(self, *, rng: random.Random | None = None, trying_delay: float = TRYING_DELAY) -> None:
        self._rng = rng or random.SystemRandom()
        self._trying_delay = trying_delay
        self._clients: dict[tuple[str, str], ClientTransaction] = {}
        self._servers: dict[_ServerKey, ServerTransaction] = {}
        self._legacy: list[ServerTransaction] = []
        self._events: deque[Event] = deque()
        self._stateless: list[tuple[bytes, Addr]] = []
        self._accepted: dict[tuple[str, str | None, str, int], ServerTransaction] = {}
        """Server INVITEs whose 2xx is out, by Call-ID, From tag, To tag, CSeq: the ACK for a 2xx has
        a new branch (§13.2.2.4), so this is how it finds the 2xx to stop retransmitting."""

    # -- identifiers ---------------------------------------------------------------------------

    def new_branch(self) -> str:
        """A branch unique in space and time, with the §8.1.1.7 magic cookie."""
        return f"{BRANCH_MAGIC_COOKIE}{self._rng.getrandbits(64):016x}"

    def new_tag(self) -> str:
        """A From/To tag with the 32 bits of randomness §19.3 asks for (we use 64)."""
        return f"{self._rng.getrandbits(64):016x}"

    def _with_branch(self, request: Request, keep: bool) -> Request:
        """The request with a new branch in its top Via (§8.1.1.7: one per transaction); `keep`
        leaves an RFC 3261 branch alone, so a re-sent ACK can stay the same message."""
        via = request.top_via
        if keep and via.has_magic_cookie:
            return request
        headers = _rewrite_top_via(request.headers, _with_param(via, "branch", self.new_branch()))
        return Request(request.method, request.uri, headers, request.body)

    # -- aioquic-style interface ----------------------------------------------------------------

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self._stateless = self._stateless, []
        for tx in self._all():
            out += [(data, tx.addr) for data in tx._out]
            tx._out.clear()
        self._collect()
        return out

    def get_timer(self) -> float | None:
        return min((d for tx in self._all() if (d := tx.deadline()) is not None), default=None)

    def handle_timer(self, now: float) -> None:
        for tx in self._all():
            self._events.extend(tx.fire_due(now))

    def receive(
        self, data: bytes | Request | Response, addr: Addr, now: float, *, reliable: bool = False
    ) -> None:
        """One datagram (or one framed stream message) from `addr`."""
        if isinstance(data, bytes):
            try:
                message = parse_message(data)
            except SipParseError as exc:
                answer = build_error_response(exc)  # §8.2.6 stateless; malformed responses: dropped
                if answer is not None:
                    self._stateless.append((answer.to_bytes(), addr))
                return
        else:
            message = data
        try:
            if isinstance(message, Response):
                self._receive_response(message, now)
            else:
                self._receive_request(message, addr, now, reliable)
        except HeaderError:
            return  # an unparsable Via/To/From on a message object handed in directly: drop it

    def send_request(self, request: Request, addr: Addr, reliable: bool, now: float) -> ClientTransaction:
        """Start a client transaction. The request must carry a top Via (the transport's sent-by);
        its branch is always replaced by a fresh one, so a request re-sent after 401/491/422 is a
        new transaction as §8.1.1.7 requires. `transaction.request` is what went out."""
        if request.method == "ACK":
            raise ValueError("ACK is not a transaction: use send_stateless (§17.1.1.3)")
        request = self._with_branch(request, keep=False)
        tx = ClientTransaction(request, addr, reliable)
        self._clients[(tx.branch, request.cseq.method)] = tx
        tx.start(now)
        return tx

    def send_stateless(self, request: Request, addr: Addr) -> Request:
        """Send outside any transaction: the ACK for a 2xx (§13.2.2.4), which gets its own branch
        unless it already has one. Returns what went out (keep it to re-send the same ACK)."""
        request = self._with_branch(request, keep=True)
        self._stateless.append((request.to_bytes(), addr))
        return request

    def send_response(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        transaction.send_response(response, now)
        if transaction.state is State.ACCEPTED and response.to_tag is not None:
            self._accepted[self._ack_key(transaction.request, response.to_tag)] = transaction

    def cancel(self, transaction: ClientTransaction, now: float) -> bool:
        """Cancel a pending INVITE (§9.1). The CANCEL goes out at once if a provisional response
        has arrived, else as soon as one does. False when there is nothing left to cancel."""
        if not transaction.is_invite or transaction.state not in (State.CALLING, State.PROCEEDING):
            return False
        if (transaction.branch, "CANCEL") in self._clients:
            return True  # already cancelling
        if transaction.state is State.PROCEEDING:
            self._start_cancel(transaction, now)
        else:
            transaction.cancel_pending = True
        return True

    def transport_error(self, addr: Addr) -> None:
        """The adapter could not send to `addr` (ICMP unreachable, connection refused or reset):
        every live transaction with that peer ends and the TU hears of it (§17.1.4, §17.2.4)."""
        for tx in self._all():
            if tx.addr == addr and tx.state is not State.TERMINATED:
                tx._terminate()
                tx._out.clear()
                self._events.append(TransportError(tx))

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _ack_key(request: Request, to_tag: str | None) -> tuple[str, str | None, str, int]:
        return (request.call_id, request.from_tag, to_tag or "", request.cseq.number)

    def _all(self) -> list[ClientTransaction | ServerTransaction]:
        return [*self._clients.values(), *self._servers.values(), *self._legacy]

    def _collect(self) -> None:
        """Forget terminated transactions once nothing of theirs is left to send."""
        self._clients = {k: t for k, t in self._clients.items() if t.state is not State.TERMINATED or t._out}
        self._servers = {k: t for k, t in self._servers.items() if t.state is not State.TERMINATED or t._out}
        self._legacy = [t for t in self._legacy if t.state is not State.TERMINATED or t._out]
        live = {id(t) for t in self._servers.values()} | {id(t) for t in self._legacy}
        self._accepted = {k: t for k, t in self._accepted.items() if id(t) in live}

    def _start_cancel(self, invite: ClientTransaction, now: float) -> None:
        invite.cancel_pending = False
        cancel = ClientTransaction(build_cancel(invite.request), invite.addr, invite.reliable)
        self._clients[(invite.branch, "CANCEL")] = cancel
        cancel.start(now)

    def _receive_response(self, response: Response, now: float) -> None:
        tx = self._clients.get((response.top_via.branch or "", response.cseq.method))
        if tx is None:
            return  # §18.1.2: a response matching no transaction is discarded
        self._events.extend(tx.receive_response(response, now))
        if tx.cancel_pending and tx.state is State.PROCEEDING:
            self._start_cancel(tx, now)

    def _find_server(self, request: Request) -> ServerTransaction | None:
        if request.top_via.has_magic_cookie:
            return self._servers.get(_server_key(request))
        return next((t for t in self._legacy if t.matches_legacy(request)), None)

    def _receive_request(self, request: Request, addr: Addr, now: float, reliable: bool) -> None:
        if request.method == "CANCEL":
            self._receive_cancel(request, addr, now, reliable)
            return
        tx = self._find_server(request)
        if tx is not None and not (request.method == "ACK" and tx.state is State.ACCEPTED):
            self._events.extend(tx.receive_request(request, now))
            return
        if request.method == "ACK":
            accepted = tx or self._accepted.get(self._ack_key(request, request.to_tag))
            if accepted is not None:
                accepted.ack_2xx()
            self._events.append(AckReceived(accepted, request))
            return
        tx = self._new_server(request, addr, reliable, now)
        merged = self._merged_with(request, tx)
        if merged:
            answer = build_error_response(request, 482, "Loop Detected", to_tag=self.new_tag())
            assert answer is not None
            tx.send_response(answer, now)  # §8.2.2.2
            return
        self._events.append(RequestReceived(tx, request))

    def _merged_with(self, request: Request, new: ServerTransaction) -> bool:
        """§8.2.2.2: no To tag, and From tag, Call-ID and CSeq of a transaction in progress, but a
        different transaction: the same request reached us twice by different paths."""
        if request.to_tag is not None:
            return False
        cseq = request.cseq
        return any(
            tx is not new
            and tx.state is not State.TERMINATED
            and tx.request.from_tag == request.from_tag
            and tx.request.call_id == request.call_id
            and tx.request.cseq == cseq
            for tx in [*self._servers.values(), *self._legacy]
        )

    def _new_server(self, request: Request, addr: Addr, reliable: bool, now: float) -> ServerTransaction:
        tx = ServerTransaction(request, addr, reliable)
        if request.top_via.has_magic_cookie:
            self._servers[_server_key(request)] = tx
        else:
            self._legacy.append(tx)
        tx.start(now, self._trying_delay)
        if tx.is_invite and self._trying_delay <= 0:
            self._events.extend(tx.fire_due(now))
        return tx

    def _receive_cancel(self, cancel: Request, addr: Addr, now: float, reliable: bool) -> None:
        existing = self._find_server(cancel)
        if existing is not None:
            existing.receive_request(cancel, now)
            return
        tx = self._new_server(cancel, addr, reliable, now)
        probe = Request("INVITE", cancel.uri, _cseq_as(cancel.headers, "INVITE"), b"")
        invite = self._find_server(probe)
        if invite is None or not invite.is_invite:
            answer = build_error_response(
                cancel, 481, "Call/Transaction Does Not Exist", to_tag=self.new_tag()
            )
        else:
            tag = invite.local_tag or self.new_tag()
            answer = build_error_response(cancel, 200, "OK", to_tag=tag)
        assert answer is not None
        tx.send_response(answer, now)
        if invite is not None and invite.is_invite and invite.state is State.PROCEEDING:
            self._events.append(CancelReceived(invite, cancel))  # §9.2: TU answers the INVITE 487


def _cseq_as(headers: Headers, method: str) -> Headers:
    """The CANCEL's headers with its CSeq method replaced, to look up the INVITE it targets (§9.2)."""
    out = headers.copy()
    out.set("CSeq", f"{headers.lines('CSeq')[0].split()[0]} {method}")
    return out
