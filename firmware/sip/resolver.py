"""Locating SIP servers (RFC 3263 §4): URI -> ordered (transport, ip, port) targets.

Two halves. `locate` is pure: given the DNS answers gathered so far (plain data), it either names the
queries still missing or returns the ordered target list, so NAPTR/SRV/A/AAAA logic and the RFC 2782
weighted ordering are unit-tested without a network. `DnsResolver` is the thin asyncio adapter: it asks
dnspython for whatever `locate` is missing until the list is complete.

The caller tries the targets in order and moves to the next one on a transaction timeout, a transport
error or a 503 (RFC 3263 §4.3).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.NAPTR
import dns.rdtypes.IN.SRV
import dns.resolver

from firmware.sip.uri import SipUri, is_ip_literal

__all__ = [
    "DnsAnswers",
    "DnsResolver",
    "Located",
    "NaptrRecord",
    "Query",
    "ResolveError",
    "SrvRecord",
    "Target",
    "TransportName",
    "locate",
    "order_srv",
]

TransportName = Literal["udp", "tcp", "tls"]
RecordType = Literal["NAPTR", "SRV", "A", "AAAA"]
ALL_TRANSPORTS: tuple[TransportName, ...] = ("udp", "tcp", "tls")

# RFC 3263 §4.1 NAPTR services and the SRV prefixes of RFC 3263 §4.1 / RFC 5630 §3.2.
_NAPTR_SERVICE: dict[str, TransportName] = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
_SRV_PREFIX: dict[TransportName, str] = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
_DEFAULT_PORT: dict[TransportName, int] = {"udp": 5060, "tcp": 5060, "tls": 5061}


class ResolveError(Exception):
    """No server could be found for the URI (the message says why, for the UI)."""


@dataclass(frozen=True)
class Target:
    transport: TransportName
    host: str
    port: int


@dataclass(frozen=True)
class NaptrRecord:
    order: int
    preference: int
    flags: str
    service: str
    replacement: str


@dataclass(frozen=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str
    """"." means the service is decidedly not available at this domain (RFC 2782)."""


@dataclass(frozen=True)
class Query:
    name: str
    rdtype: RecordType


@dataclass
class DnsAnswers:
    """Answers gathered so far; a name absent from a dict has not been asked yet, an empty list means
    the query was answered with nothing (NXDOMAIN, no data, or a failing server)."""

    naptr: dict[str, list[NaptrRecord]] = field(default_factory=dict)
    srv: dict[str, list[SrvRecord]] = field(default_factory=dict)
    a: dict[str, list[str]] = field(default_factory=dict)
    aaaa: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Located:
    """Either queries still to make (`missing`) or, once none are, the ordered `targets`."""

    missing: list[Query]
    targets: list[Target]


def _key(name: str) -> str:
    return name.lower().rstrip(".")


def order_srv(records: Sequence[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """RFC 2782: ascending priority; within a priority, repeated weighted random selection, with
    zero-weight records placed first so they are chosen only when the dice say so."""
    out: list[SrvRecord] = []
    for priority in sorted({r.priority for r in records}):
        group = sorted((r for r in records if r.priority == priority), key=lambda r: r.weight != 0)
        while group:
            pick = rng.randint(0, sum(r.weight for r in group))
            running = 0
            for i, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    out.append(group.pop(i))
                    break
    return out


def _naptr_services(
    records: Sequence[NaptrRecord], secure: bool, transports: Sequence[TransportName]
) -> list[tuple[TransportName, str]]:
    """RFC 3263 §4.1: SRV-pointing (flag "s") NAPTRs of services we support, by order then preference;
    a sips URI only over TLS."""
    chosen: list[tuple[TransportName, str]] = []
    for record in sorted(records, key=lambda r: (r.order, r.preference)):
        transport = _NAPTR_SERVICE.get(record.service.upper())
        if transport is None or record.flags.lower() != "s" or transport not in transports:
            continue
        if secure and transport != "tls":
            continue
        chosen.append((transport, _key(record.replacement)))
    return chosen


def locate(
    uri: SipUri,
    answers: DnsAnswers,
    rng: random.Random,
    transports: Sequence[TransportName] = ALL_TRANSPORTS,
) -> Located:
    """The RFC 3263 §4 procedure for `uri` (maddr honoured) over the transports we can use."""
    secure = uri.scheme == "sips"
    host = _key((uri.param("maddr") or uri.host).strip("[]"))
    explicit = _transport_param(uri, secure)
    fallback: TransportName = explicit or ("tls" if secure else "udp" if "udp" in transports else "tcp")
    if explicit is not None and explicit not in transports:
        return Located([], [])
    # §4.2: a numeric address needs no DNS; neither does the transport when a port is given (§4.1).
    if is_ip_literal(host):
        return Located([], [Target(fallback, host, uri.port or _DEFAULT_PORT[fallback])])
    if uri.port is not None:
        return _with_addresses([(fallback, host, uri.port)], answers)
    if explicit is not None:
        services = [(explicit, _SRV_PREFIX[explicit] + host)]
    else:
        naptr = answers.naptr.get(host)
        if naptr is None:
            return Located([Query(host, "NAPTR")], [])
        services = _naptr_services(naptr, secure, transports)
        if not services:  # §4.1: no usable NAPTR, so SRV for each transport we support
            allowed = [t for t in transports if t == "tls" or not secure]
            services = [(t, _SRV_PREFIX[t] + host) for t in allowed]
    missing = [Query(name, "SRV") for _, name in services if name not in answers.srv]
    if missing:
        return Located(missing, [])
    if not any(answers.srv[name] for _, name in services):  # §4.2: no SRV, so A/AAAA on the default port
        return _with_addresses([(fallback, host, _DEFAULT_PORT[fallback])], answers)
    unresolved = {_key(r.target) for _, name in services for r in answers.srv[name] if r.target != "."}
    missing = _address_queries(unresolved, answers)
    if missing:
        return Located(missing, [])
    hops = [
        (transport, _key(record.target), record.port)
        for transport, name in services
        for record in order_srv(answers.srv[name], rng)
        if record.target != "."
    ]
    return _with_addresses(hops, answers)


def _transport_param(uri: SipUri, secure: bool) -> TransportName | None:
    """The URI's transport; `sips:...;transport=tcp` means TLS (RFC 3261 §26.2.2)."""
    value = uri.transport
    if value == "tcp" and secure:
        return "tls"
    return next((t for t in ALL_TRANSPORTS if t == value), None)


def _address_queries(hosts: set[str], answers: DnsAnswers) -> list[Query]:
    missing: list[Query] = []
    for host in sorted(hosts):
        if is_ip_literal(host):
            continue
        if host not in answers.a:
            missing.append(Query(host, "A"))
        if host not in answers.aaaa:
            missing.append(Query(host, "AAAA"))
    return missing


def _with_addresses(hops: list[tuple[TransportName, str, int]], answers: DnsAnswers) -> Located:
    """Expand each (transport, host, port) into addresses, IPv4 first, without duplicates."""
    missing = _address_queries({host for _, host, _ in hops}, answers)
    if missing:
        return Located(missing, [])
    targets: list[Target] = []
    for transport, host, port in hops:
        addresses = [host] if is_ip_literal(host) else answers.a[host] + answers.aaaa[host]
        for address in addresses:
            target = Target(transport, address, port)
            if target not in targets:
                targets.append(target)
    return Located([], targets)


class DnsResolver:
    """asyncio adapter: runs the queries `locate` asks for with dnspython until the list is complete."""

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        port: int = 53,
        timeout: float = 3.0,
        rng: random.Random | None = None,
    ) -> None:
        """`nameservers=None` uses the system configuration (/etc/resolv.conf)."""
        self._resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        self._resolver.lifetime = timeout
        self._rng = rng or random.SystemRandom()

    async def resolve(
        self, uri: SipUri, transports: Sequence[TransportName] = ALL_TRANSPORTS
    ) -> list[Target]:
        """Ordered targets for `uri`; raises ResolveError when there are none.

        A query that times out counts as answered with nothing, so a home router that drops NAPTR or
        AAAA queries does not stop us; the timeout is the reported cause only if nothing was found."""
        answers = DnsAnswers()
        timeouts: list[Query] = []
        while True:
            located = locate(uri, answers, self._rng, transports)
            if not located.missing:
                if located.targets:
                    return located.targets
                if timeouts:
                    raise ResolveError(f"DNS timeout looking up {timeouts[0].rdtype} {timeouts[0].name}")
                raise ResolveError(f"no SIP server found for {uri}")
            results = await asyncio.gather(*(self._query(q, timeouts) for q in located.missing))
            for query, answer in zip(located.missing, results, strict=True):
                _store(answers, query, answer)

    async def _query(self, query: Query, timeouts: list[Query]) -> dns.resolver.Answer | None:
        try:
            return await self._resolver.resolve(query.name + ".", query.rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers):
            return None
        except dns.exception.Timeout:
            timeouts.append(query)
            return None


def _name(name: dns.name.Name) -> str:
    return "." if name == dns.name.root else name.to_text(omit_final_dot=True)


def _store(answers: DnsAnswers, query: Query, answer: dns.resolver.Answer | None) -> None:
    """Record an answer as plain data (an absent answer as an empty list)."""
    rdatas = [] if answer is None or answer.rrset is None else list(answer.rrset)
    if query.rdtype == "NAPTR":
        answers.naptr[query.name] = [
            NaptrRecord(r.order, r.preference, r.flags.decode(), r.service.decode(), _name(r.replacement))
            for r in rdatas
            if isinstance(r, dns.rdtypes.IN.NAPTR.NAPTR)
        ]
    elif query.rdtype == "SRV":
        answers.srv[query.name] = [
            SrvRecord(r.priority, r.weight, r.port, _name(r.target))
            for r in rdatas
            if isinstance(r, dns.rdtypes.IN.SRV.SRV)
        ]
    elif query.rdtype == "A":
        answers.a[query.name] = [r.address for r in rdatas if isinstance(r, dns.rdtypes.IN.A.A)]
    else:
        answers.aaaa[query.name] = [r.address for r in rdatas if isinstance(r, dns.rdtypes.IN.AAAA.AAAA)]
