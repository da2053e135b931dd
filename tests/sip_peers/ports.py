"""Free loopback port allocation.

Binding port 0 and releasing it leaves a small race with other processes, so ports handed out in
this run are remembered and never handed out twice; SO_REUSEADDR stays off so a port still held
(or in TIME_WAIT) by anyone is seen as taken.
"""

from __future__ import annotations

import socket
import threading

_given: set[int] = set()
_lock = threading.Lock()


def ipv6_loopback_available() -> bool:
    """True when [::1] can be bound (some CI containers have IPv6 disabled)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def _bindable(port: int, families: tuple[int, ...]) -> bool:
    """Whether `port` can be bound for UDP and TCP on every loopback family given."""
    for family in families:
        host = "127.0.0.1" if family == socket.AF_INET else "::1"
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(family, kind) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
                try:
                    s.bind((host, port))
                except OSError:
                    return False
    return True


def free_port(count: int = 1, ipv6: bool = False, attempts: int = 200) -> int:
    """First of `count` consecutive ports free for UDP and TCP on 127.0.0.1 (and [::1] if `ipv6`).

    Consecutive ports matter for baresip, which puts TLS on its SIP port + 1.
    """
    families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6) if ipv6 else (socket.AF_INET,)
    with _lock:
        for _ in range(attempts):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", 0))
                base = int(probe.getsockname()[1])
            wanted = range(base, base + count)
            if base + count > 65535 or any(p in _given for p in wanted):
                continue
            if all(_bindable(p, families) for p in wanted):
                _given.update(wanted)
                return base
    raise RuntimeError(f"no {count} consecutive free loopback port(s) after {attempts} attempts")
