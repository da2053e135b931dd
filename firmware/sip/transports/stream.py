"""SIP over TCP and TLS (RFC 3261 §18, §26.3.1; keep-alives RFC 5626 §3.5.1, §4.4.1).

One connection per remote address, used both ways: a connection we opened carries our requests and
the peer's responses and requests, and a connection the peer opened is indexed by the peer's address
so our responses go back on it (RFC 3261 §18.2.2). Messages are cut from the byte stream by
`StreamFramer` (Content-Length is mandatory on streams, RFC 3261 §18.3); a stream that cannot be framed
is closed, since there is no telling where the next message starts.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Literal

from firmware.sip.message import CrlfPing, CrlfPong, FramedMessage, FramingError, StreamFramer
from firmware.sip.transports.base import (
    Addr,
    OnError,
    OnMessage,
    TransportClosed,
    normalize_addr,
    safe_call,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "IDLE_TIMEOUT",
    "PONG_TIMEOUT",
    "StreamTransport",
    "client_tls_context",
    "open_tcp",
    "open_tls",
]

CONNECT_TIMEOUT = 10.0
"""Seconds for TCP connect plus TLS handshake; well inside Timer B/F (32 s), so the transaction
hears of a dead peer as a transport error rather than a timeout (RFC 3261 §17.1.4)."""
IDLE_TIMEOUT = 300.0
"""A connection that carried nothing (not even a keep-alive) for this long is closed; RFC 3261 §18
leaves the policy to the implementation, RFC 5626 keep-alives hold a registration's flow open."""
PONG_TIMEOUT = 10.0
"""RFC 5626 §4.4.1: no pong within 10 s of a ping means the flow failed."""

_PING = b"\r\n\r\n"
_PONG = b"\r\n"
_CLOSE_GRACE = 2.0  # seconds a graceful close (TLS close_notify, buffered data) may take in close()
_log = logging.getLogger(__name__)


def client_tls_context(ca_file: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """TLS client context: certificate and hostname verification on (RFC 5922 §7.3), trusting
    `ca_file` alone when given, else the system store; TLS 1.2 or later (RFC 8996).

    `verify=False` is for lab PBXs with self-signed certificates: it gives up authentication.
    """
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Connection(asyncio.Protocol):
    """One TCP/TLS connection: its framer, data queued before it is up, and its timers."""

    def __init__(self, owner: StreamTransport, peer: Addr | None) -> None:
        self.owner = owner
        self.peer = peer  # None for an accepted connection until connection_made names it
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.last_activity = owner.loop.time()
        self.pong_timer: asyncio.TimerHandle | None = None
        self.deliberate = False  # we closed it: no error to report
        self.lost: asyncio.Future[None] = owner.loop.create_future()

    @property
    def usable(self) -> bool:
        return not self.deliberate and (self.transport is None or not self.transport.is_closing())

    def write(self, data: bytes) -> None:
        self.last_activity = self.owner.loop.time()
        if self.transport is None:
            self.pending.append(data)
        else:
            self.transport.write(data)

    def close(self) -> None:
        """Close on our initiative (idle, shutdown): the UA is not told."""
        self.deliberate = True
        if self.transport is not None:
            self.transport.close()

    def fail(self, exc: Exception) -> None:
        """Drop the connection and report `exc` for its peer."""
        if self.peer is not None and not self.deliberate:
            self.owner.on_error(self.peer, exc)
        self.deliberate = True
        if self.transport is not None:
            self.transport.abort()

    def pong_missed(self) -> None:
        self.pong_timer = None
        self.fail(TimeoutError("no CRLF pong to a keep-alive ping (RFC 5626 §4.4.1)"))

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.last_activity = self.owner.loop.time()
        if self.peer is None:
            self.peer = normalize_addr(transport.get_extra_info("peername"))
        self.owner.adopt(self)
        if self.deliberate:  # the owner closed meanwhile
            return
        for data in self.pending:
            transport.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        self.last_activity = self.owner.loop.time()
        error: FramingError | None = None
        try:
            events = self.framer.feed(data)
        except FramingError as exc:
            events, error = exc.framed, exc  # deliver what came before the bad message, then close
        for event in events:
            if isinstance(event, FramedMessage):
                safe_call(self.owner.on_message, event.data, self.peer, self.owner)
            elif isinstance(event, CrlfPing):
                if not self.transport.is_closing():
                    self.transport.write(_PONG)  # RFC 5626 §3.5.1: a ping is answered by a pong
            elif isinstance(event, CrlfPong) and self.pong_timer is not None:
                self.pong_timer.cancel()
                self.pong_timer = None
        if error is not None:
            self.fail(error)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pong_timer is not None:
            self.pong_timer.cancel()
            self.pong_timer = None
        self.owner.forget(self)
        if self.peer is not None and not self.deliberate:
            self.owner.on_error(self.peer, exc or TransportClosed("connection closed by the peer"))
        self.deliberate = True
        if not self.lost.done():
            self.lost.set_result(None)


class StreamTransport:
    """TCP or TLS transport for one local address; create it with `open_tcp` or `open_tls`."""

    reliable = True

    def __init__(
        self,
        kind: Literal["tcp", "tls"],
        local: Addr | None,
        on_message: OnMessage,
        on_error: OnError,
        *,
        ssl_client: ssl.SSLContext | None,
        server_name: str | None,
        connect_timeout: float,
        idle_timeout: float,
    ) -> None:
        self.kind: Literal["tcp", "tls"] = kind
        self.loop = asyncio.get_running_loop()
        self.on_message = on_message
        self.on_error = on_error
        self._bind_host = local[0] if local is not None else None
        self.local_addr: Addr = local if local is not None else ("0.0.0.0", 0)
        self._ssl_client = ssl_client
        self._server_name = server_name
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._by_peer: dict[Addr, _Connection] = {}
        self._all: set[_Connection] = set()
        self._connecting: set[asyncio.Task[None]] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    async def _listen(self, local: Addr, ssl_server: ssl.SSLContext | None) -> None:
        self._server = await self.loop.create_server(
            lambda: _Connection(self, None), local[0], local[1], ssl=ssl_server, reuse_address=True
        )
        self.local_addr = normalize_addr(self._server.sockets[0].getsockname())

    # -- the Transport interface ----------------------------------------------------------------

    def send(self, data: bytes, addr: Addr) -> None:
        """Write on the connection to `addr`, opening one (connect timeout, TLS handshake) if none is
        up; data sent meanwhile waits for it. A failed connect drops the queued data and reports."""
        if self._closed:
            self.on_error(addr, TransportClosed(f"{self.kind} transport closed"))
            return
        conn = self._by_peer.get(addr)
        if conn is None or not conn.usable:
            conn = self._connect(addr)
        conn.write(data)

    async def close(self) -> None:
        """Stop listening and close every connection (gracefully, then forcibly after a grace time)."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for task in list(self._connecting):
            task.cancel()
        if self._server is not None:
            self._server.close()
        conns = list(self._all)
        for conn in conns:
            conn.close()
        if self._connecting:
            await asyncio.wait(list(self._connecting))
        lost = [conn.lost for conn in conns if conn.transport is not None]
        if lost:
            _, stuck = await asyncio.wait(lost, timeout=_CLOSE_GRACE)
            for conn in conns:
                if conn.lost in stuck and conn.transport is not None:
                    conn.transport.abort()
            if stuck:
                await asyncio.wait(stuck)
        if self._server is not None:
            await self._server.wait_closed()

    # -- extras for the UA ------------------------------------------------------------------------

    def send_keepalive(self, addr: Addr, pong_timeout: float | None = PONG_TIMEOUT) -> None:
        """Send a CRLFCRLF ping on the connection to `addr` (RFC 5626 §3.5.1, §4.4.1). With a
        `pong_timeout`, a missing pong fails the flow: the connection is dropped and `on_error` told.
        Pass None towards a server that did not announce outbound keep-alive support."""
        conn = self._by_peer.get(addr)
        if conn is None or not conn.usable:
            self.on_error(addr, TransportClosed("no connection to keep alive"))
            return
        conn.write(_PING)
        if pong_timeout is not None and conn.pong_timer is None:
            conn.pong_timer = self.loop.call_later(pong_timeout, conn.pong_missed)

    def connection_local_addr(self, addr: Addr) -> Addr | None:
        """Our end of the live connection to `addr` (the sent-by of a Via on an outgoing connection
        when we do not listen), or None."""
        conn = self._by_peer.get(addr)
        if conn is None or conn.transport is None:
            return None
        return normalize_addr(conn.transport.get_extra_info("sockname"))

    @property
    def peers(self) -> list[Addr]:
        """Remote addresses with a connection up or being opened."""
        return [peer for peer, conn in self._by_peer.items() if conn.usable]

    # -- connection bookkeeping (called by _Connection) ---------------------------------------------

    def adopt(self, conn: _Connection) -> None:
        """Index a connection that came up by its peer (a newer one wins) and start the idle sweep."""
        assert conn.peer is not None
        if self._closed:
            conn.close()
            return
        self._all.add(conn)
        self._by_peer[conn.peer] = conn
        if self._sweep is None:
            self._sweep = self.loop.call_later(self._idle_timeout / 2, self._sweep_idle)

    def forget(self, conn: _Connection) -> None:
        self._all.discard(conn)
        if conn.peer is not None and self._by_peer.get(conn.peer) is conn:
            del self._by_peer[conn.peer]

    def _connect(self, addr: Addr) -> _Connection:
        conn = _Connection(self, addr)
        self._by_peer[addr] = conn
        task = self.loop.create_task(self._open(conn, addr))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)
        return conn

    async def _open(self, conn: _Connection, addr: Addr) -> None:
        server_hostname = None
        if self._ssl_client is not None:
            server_hostname = self._server_name or addr[0]  # an IP is checked against IP SANs
        try:
            await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: conn,
                    addr[0],
                    addr[1],
                    ssl=self._ssl_client,
                    server_hostname=server_hostname,
                    local_addr=(self._bind_host, 0) if self._bind_host is not None else None,
                ),
                self._connect_timeout,
            )
        except Exception as exc:  # refused, unreachable, timeout, certificate rejected...
            self.forget(conn)
            conn.pending.clear()
            if not conn.deliberate:
                conn.deliberate = True
                self.on_error(addr, exc)

    def _sweep_idle(self) -> None:
        """Close connections idle for `idle_timeout`; re-armed while any connection is left."""
        self._sweep = None
        deadline = self.loop.time() - self._idle_timeout
        for conn in list(self._all):
            if conn.last_activity <= deadline and conn.pong_timer is None:
                _log.debug("closing idle %s connection to %s", self.kind, conn.peer)
                conn.close()
                self.forget(conn)
        if self._all and not self._closed:
            self._sweep = self.loop.call_later(self._idle_timeout / 2, self._sweep_idle)


async def open_tcp(
    local: Addr | None,
    on_message: OnMessage,
    on_error: OnError,
    *,
    listen: bool = True,
    connect_timeout: float = CONNECT_TIMEOUT,
    idle_timeout: float = IDLE_TIMEOUT,
) -> StreamTransport:
    """A TCP transport listening on `local` (port 0 picks one; see `local_addr`) unless `listen` is
    False; outgoing connections leave from `local`'s host when one is given."""
    if listen and local is None:
        raise ValueError("listening needs a local address")
    transport = StreamTransport(
        "tcp",
        local,
        on_message,
        on_error,
        ssl_client=None,
        server_name=None,
        connect_timeout=connect_timeout,
        idle_timeout=idle_timeout,
    )
    if listen and local is not None:
        await transport._listen(local, None)
    return transport


async def open_tls(
    local: Addr | None,
    on_message: OnMessage,
    on_error: OnError,
    *,
    ssl_client: ssl.SSLContext,
    ssl_server: ssl.SSLContext | None = None,
    server_name: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    idle_timeout: float = IDLE_TIMEOUT,
) -> StreamTransport:
    """A TLS transport; it listens on `local` only when given `ssl_server` (our certificate).

    Outgoing connections send `server_name` as SNI and verify the certificate against it, or
    against the peer's IP when None (RFC 5922 §7.2, §7.3), as `ssl_client` dictates.
    """
    if ssl_server is not None and local is None:
        raise ValueError("listening needs a local address")
    transport = StreamTransport(
        "tls",
        local,
        on_message,
        on_error,
        ssl_client=ssl_client,
        server_name=server_name,
        connect_timeout=connect_timeout,
        idle_timeout=idle_timeout,
    )
    if ssl_server is not None and local is not None:
        await transport._listen(local, ssl_server)
    return transport
