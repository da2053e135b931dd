"""Login rate limiting per client address, sans-IO (`now` is passed in, tests invent it).

A token bucket per address: `burst` failed logins at once, then one more every `refill` seconds. With
the defaults (5, 60 s) a password guesser gets about 1 440 tries a day per address, while an owner
who mistypes a few times is never locked out for long. NIST SP 800-63B §5.2.2 asks a verifier to
limit consecutive failed attempts on an account (at most 100); OWASP's Authentication Cheat Sheet
recommends per-address throttling rather than account lockout, which would let anyone lock the
owner out. Successful logins do not consume tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class LimitConfig:
    burst: float = 5.0
    refill: float = 60.0
    """Seconds per regained attempt."""
    max_clients: int = 4096
    """Buckets kept (least recently used evicted): a flood of spoofed addresses cannot exhaust memory."""


class LoginLimiter:
    """`retry_after(addr, now)` before checking a password; `failed(addr, now)` after a wrong one."""

    def __init__(self, config: LimitConfig | None = None) -> None:
        self.config = config or LimitConfig()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, addr: str, now: float) -> float:
        cfg = self.config
        tokens, last = self._buckets.get(addr, (cfg.burst, now))
        return min(cfg.burst, tokens + max(0.0, now - last) / cfg.refill)

    def retry_after(self, addr: str, now: float) -> float:
        """0 when `addr` may try a password now, else the seconds until it may."""
        tokens = self._tokens(addr, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) * self.config.refill

    def failed(self, addr: str, now: float) -> None:
        tokens = self._tokens(addr, now)
        self._buckets.pop(addr, None)
        self._buckets[addr] = (max(0.0, tokens - 1.0), now)
        while len(self._buckets) > self.config.max_clients:
            self._buckets.popitem(last=False)
