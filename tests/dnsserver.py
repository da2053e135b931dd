"""A tiny DNS server on a free loopback UDP port, for resolver tests (never leaves 127.0.0.1)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping, Set

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

Zone = Mapping[tuple[str, str], list[str]]
"""(name with trailing dot, record type) -> records in zone-file text."""


@contextlib.contextmanager
def dns_server(zone: Zone, dropped: Set[tuple[str, str]] = frozenset()) -> Iterator[int]:
    """Serve `zone` (NXDOMAIN for unknown names; queries in `dropped` never answered); yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name, rdtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
            if (name, rdtype) in dropped:
                continue
            if (name, rdtype) in zone:
                response.answer.append(dns.rrset.from_text(name, 60, "IN", rdtype, *zone[(name, rdtype)]))
            elif not any(key[0] == name for key in zone):
                response.set_rcode(dns.rcode.NXDOMAIN)
            sock.sendto(response.to_wire(), addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        sock.close()
