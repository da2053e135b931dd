"""asyncio adapters that move SIP messages over UDP, TCP and TLS (RFC 3261 §18, RFC 5626 §3.5.1).

The user agent feeds what `on_message` delivers to the sans-IO `TransactionLayer` (with
`reliable=transport.reliable`) and sends what it returns with `transport.send`.
"""

from firmware.sip.transports.base import Addr, Kind, OnError, OnMessage, Transport, TransportClosed
from firmware.sip.transports.stream import (
    CONNECT_TIMEOUT,
    IDLE_TIMEOUT,
    PONG_TIMEOUT,
    StreamTransport,
    client_tls_context,
    open_tcp,
    open_tls,
)
from firmware.sip.transports.udp import MAX_DATAGRAM, UdpTransport, open_udp

__all__ = [
    "CONNECT_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_DATAGRAM",
    "PONG_TIMEOUT",
    "Addr",
    "Kind",
    "OnError",
    "OnMessage",
    "StreamTransport",
    "Transport",
    "TransportClosed",
    "UdpTransport",
    "client_tls_context",
    "open_tcp",
    "open_tls",
    "open_udp",
]
