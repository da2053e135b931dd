"""Who may send us requests: the ghost-call defence, sans-IO.

An ATA on a public or shared network is found by SIP scanners within minutes; they send INVITEs
straight to port 5060 and the phone rings at 3 a.m. with nobody on the line. A real PBX only ever
reaches us through the proxy/registrar we registered with, and only for a user we registered, so by
default a request is accepted when it comes from one of those (resolved) addresses and its
Request-URI names one of our users. Anything else is answered 403 or silently dropped (configurable).

Only requests are policed: responses are matched to our own client transactions by branch (RFC 3261
§17.1.3) and anything unmatched is discarded by the transaction layer anyway. Refusals are rate
limited per source address with a token bucket, so a flood costs a few log lines and replies, not a
log storm or a reflection amplifier.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from firmware.sip.message import Request
from firmware.sip.uri import SipUri

__all__ = ["Action", "Decision", "PolicyConfig", "RequestPolicy"]

_log = logging.getLogger(__name__)


class Action(enum.Enum):
    ACCEPT = "accept"
    REPLY = "reply"
    """Answer with `Decision.status` statelessly and process nothing."""
    DROP = "drop"


@dataclass(frozen=True)
class Decision:
    action: Action
    status: int = 0
    reason: str = ""


ACCEPT = Decision(Action.ACCEPT)
DROP = Decision(Action.DROP)


@dataclass(frozen=True)
class PolicyConfig:
    """`trust_any_source` is the opt-out (direct IP-to-IP calling): any source, still only our users.
    `reject` chooses 403 (polite, tells a misconfigured PBX what is wrong) or silence (gives a scanner
    nothing). The bucket allows `burst` refusals (log line + reply) per source, refilled at `rate`/s."""

    trust_any_source: bool = False
    reject: Decision = Decision(Action.REPLY, 403, "Forbidden")
    burst: float = 5.0
    rate: float = 0.2
    max_sources: int = 1024
    """Buckets kept (least recently used evicted), so a spoofed-source flood cannot exhaust memory."""


def _normalize_ip(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host.lower()


class RequestPolicy:
    """Pure decision: `decide(request, source, now)`. The UA keeps `allowed_sources` current as DNS
    answers change (RFC 3263 resolution happens in the adapter)."""

    def __init__(
        self, allowed_sources: Iterable[str], users: Iterable[str], config: PolicyConfig | None = None
    ) -> None:
        self.config = config or PolicyConfig()
        self.allowed_sources = frozenset(_normalize_ip(ip) for ip in allowed_sources)
        self.users = frozenset(users)
        self.refused = 0
        """Requests refused so far (replied or dropped), for status pages and tests."""
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def set_allowed_sources(self, addresses: Iterable[str]) -> None:
        self.allowed_sources = frozenset(_normalize_ip(ip) for ip in addresses)

    def source_allowed(self, ip: str) -> bool:
        return self.config.trust_any_source or _normalize_ip(ip) in self.allowed_sources

    def decide(self, request: Request, source: tuple[str, int], now: float) -> Decision:
        """Accept, or refuse (reply/drop per config, and drop anyway once the source's bucket is
        empty). An ACK is never answered (RFC 3261 §17), so a refused ACK is always dropped."""
        why = self._refusal(request, source[0])
        if why is None:
            return ACCEPT
        self.refused += 1
        if not self._take_token(_normalize_ip(source[0]), now):
            return DROP
        _log.warning("refused %s %s from %s:%d: %s", request.method, request.uri, source[0], source[1], why)
        if request.method == "ACK":
            return DROP
        return self.config.reject

    def _refusal(self, request: Request, ip: str) -> str | None:
        if not self.source_allowed(ip):
            return "source is not the configured proxy/registrar"
        uri = request.uri
        user = uri.user if isinstance(uri, SipUri) else None  # already unescaped by the parser
        if user not in self.users:  # RFC 3261 §19.1.4: the user part compares case-sensitively
            return "Request-URI is not one of our users"
        return None

    def _take_token(self, key: str, now: float) -> bool:
        """Token bucket per source; True when this refusal may be logged and answered."""
        cfg = self.config
        tokens, last = self._buckets.pop(key, (cfg.burst, now))
        tokens = min(cfg.burst, tokens + (now - last) * cfg.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > cfg.max_sources:
            self._buckets.popitem(last=False)
        return allowed
