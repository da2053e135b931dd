"""SIP over UDP (RFC 3261 §18): one socket per local address, one datagram per message."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from typing import Literal, cast

from firmware.sip.transports.base import (
    Addr,
    OnError,
    OnMessage,
    TransportClosed,
    family_of,
    normalize_addr,
    safe_call,
)

__all__ = ["MAX_DATAGRAM", "UdpTransport", "open_udp"]

MAX_DATAGRAM = 65_535
"""Largest UDP datagram; anything bigger must go over a stream (RFC 3261 §18.1.1)."""

# Linux queues ICMP errors of an unconnected socket, each with the destination it concerns, only when
# IP_RECVERR/IPV6_RECVERR is on (ip(7), ipv6(7)); the socket module of Python 3.11 lacks the names.
_IP_RECVERR = 11
_IPV6_RECVERR = 25
_EE_ERRNO = struct.Struct("=I")  # first field of struct sock_extended_err


class UdpTransport(asyncio.DatagramProtocol):
    """The asyncio adapter for one UDP socket; create it with `open_udp`."""

    kind: Literal["udp"] = "udp"
    reliable = False

    def __init__(
        self, sock: socket.socket, on_message: OnMessage, on_error: OnError, *, error_queue: bool
    ) -> None:
        self._sock = sock
        self._error_queue = error_queue
        self._on_message = on_message
        self._on_error = on_error
        self.local_addr: Addr = normalize_addr(sock.getsockname())
        self._transport: asyncio.DatagramTransport | None = None
        self._last_dest: Addr | None = None
        self._sending: Addr | None = None  # destination of the sendto in progress
        self._resend = False
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def send(self, data: bytes, addr: Addr) -> None:
        """Send one datagram; oversize, send and ICMP errors come back via `on_error`."""
        if self._transport is None or self._transport.is_closing():
            self._on_error(addr, TransportClosed("UDP transport closed"))
            return
        if len(data) > MAX_DATAGRAM:
            self._on_error(addr, OSError(errno.EMSGSIZE, f"{len(data)} bytes exceed a UDP datagram"))
            return
        self._last_dest = self._sending = addr
        try:
            self._transport.sendto(data, addr)  # a synchronous failure lands in error_received
            if self._resend:
                self._resend = False
                self._transport.sendto(data, addr)
        finally:
            self._sending = None

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            await self._closed

    # -- asyncio.DatagramProtocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)  # selector class lacks the ABC

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        """Deliver a datagram; empty ones and CRLF keep-alives (RFC 5626 §3.5.1 style pings that
        some UAs also send on UDP) carry no message and are dropped."""
        if data.strip():
            safe_call(self._on_message, data, normalize_addr(addr), self)

    def error_received(self, exc: Exception) -> None:
        """Attribute the error to the peer it concerns: the error queue names the destination of each
        ICMP error; otherwise the error came from the send in progress or the latest one.

        Linux fails the next sendto with a pending ICMP error even if it concerns another peer; that
        datagram was not sent, so `send` tries it once more.
        """
        queued = self._drain_error_queue()
        for dest, error in queued:
            self._on_error(dest, error)
        if queued:
            self._resend = self._sending is not None and all(d != self._sending for d, _ in queued)
        elif (culprit := self._sending or self._last_dest) is not None:
            self._on_error(culprit, exc)

    def _drain_error_queue(self) -> list[tuple[Addr, OSError]]:
        errors: list[tuple[Addr, OSError]] = []
        while self._error_queue:
            try:
                _, ancdata, _, dest = self._sock.recvmsg(1, 512, socket.MSG_ERRQUEUE)
            except BlockingIOError:
                break
            code = next(
                (_EE_ERRNO.unpack_from(data)[0] for _, _, data in ancdata if len(data) >= _EE_ERRNO.size),
                errno.EHOSTUNREACH,
            )
            errors.append((normalize_addr(dest), OSError(code, os.strerror(code))))
        return errors


async def open_udp(local: Addr, on_message: OnMessage, on_error: OnError) -> UdpTransport:
    """Bind a UDP socket on `local` (port 0 picks a free one; see `local_addr`)."""
    family = family_of(local[0])
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            level, option = socket.IPPROTO_IPV6, _IPV6_RECVERR
        else:
            level, option = socket.IPPROTO_IP, _IP_RECVERR
        try:
            sock.setsockopt(level, option, 1)
            error_queue = True
        except OSError:  # not Linux: errors are still reported, attributed to the latest destination
            error_queue = False
        sock.bind(local)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        protocol = UdpTransport(sock, on_message, on_error, error_queue=error_queue)
        await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    return protocol
