"""The interface the user agent codes against, shared by the UDP, TCP and TLS adapters.

A transport only moves bytes: it hands `on_message` one complete SIP message at a time (a datagram,
or a frame cut by `StreamFramer` on a stream) and never parses beyond framing, so the sans-IO
transaction layer stays the one place that decides what a message means. Failures never raise out
of `send`: they arrive on `on_error(addr, exc)` so the UA can call
`TransactionLayer.transport_error(addr)` (RFC 3261 §17.1.4, §17.2.4, §18.4).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any, Literal, ParamSpec, Protocol

__all__ = [
    "Addr",
    "Kind",
    "OnError",
    "OnMessage",
    "Transport",
    "TransportClosed",
    "family_of",
    "normalize_addr",
    "safe_call",
]

Addr = tuple[str, int]
"""(ip, port); an IPv6 ip is written without brackets."""

Kind = Literal["udp", "tcp", "tls"]


class Transport(Protocol):
    """One per (kind, local address). Read-only members, so a UDP transport whose `kind` is
    Literal["udp"] still satisfies the protocol."""

    @property
    def kind(self) -> Kind:
        """ "udp", "tcp" or "tls": the Via transport token, upper-cased (RFC 3261 §18.1.1)."""

    @property
    def reliable(self) -> bool:
        """False for UDP: the transaction layer retransmits (RFC 3261 §17.1.1.2)."""

    @property
    def local_addr(self) -> Addr:
        """The bound address, for Via sent-by and Contact."""

    def send(self, data: bytes, addr: Addr) -> None:
        """Queue `data` for `addr`; never blocks, errors are reported through `on_error`."""

    async def close(self) -> None:
        """Close every socket of this transport."""


OnMessage = Callable[[bytes, Addr, Transport], None]
OnError = Callable[[Addr, Exception], None]

_log = logging.getLogger(__name__)
P = ParamSpec("P")


class TransportClosed(ConnectionError):
    """The transport (or the connection to this peer) was closed before the data could go out."""


def family_of(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal, AF_INET otherwise (hosts are IP literals, resolution is the
    resolver's job, RFC 3263)."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def normalize_addr(sockaddr: Any) -> Addr:
    """(host, port) of a socket address: drops IPv6 flowinfo/scope so addresses compare equal to
    the ones the UA passes in and connection lookup by peer works (RFC 3261 §18.2.2)."""
    return (str(sockaddr[0]), int(sockaddr[1]))


def safe_call(callback: Callable[P, None], *args: P.args, **kwargs: P.kwargs) -> None:
    """Run a UA callback; a bug there must not tear down the socket that delivered the data
    (asyncio closes a transport whose protocol callback raises)."""
    try:
        callback(*args, **kwargs)
    except Exception:
        _log.exception("SIP transport callback %r failed", callback)
