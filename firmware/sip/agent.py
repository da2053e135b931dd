"""The asyncio adapter around the sans-IO `UserAgent` (DESIGN.md "How a sans-IO core meets asyncio").

It opens the configured transport, resolves the configured servers (RFC 3263, via `DnsResolver`;
IP literals skip DNS), and after anything happens (a message, a transport error, the timer, an
application call) does the same three steps: feed the core with `now=loop.time()`, hand its events to
the application (an `asyncio.Queue` and an optional callback), transmit what it wants sent and re-arm
the one `loop.call_at()` for `get_timer()`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from firmware.sip.presence import PortDialog
from firmware.sip.refer import Replaces
from firmware.sip.registration import RegState
from firmware.sip.resolver import DnsResolver, ResolveError
from firmware.sip.transports import Transport, client_tls_context, open_tcp, open_tls, open_udp
from firmware.sip.ua import AccountConfig, Addr, Event, ServerKey, UaConfig, UserAgent
from firmware.sip.uri import SipUri, is_ip_literal

__all__ = ["AgentConfig", "SipAgent"]

_log = logging.getLogger(__name__)
_DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "tls": 5061}


@dataclass(frozen=True)
class AgentConfig:
    """`local_host`/`local_port` is where we bind (port 0: any free one). When bound to a wildcard,
    `advertised_host` (or, when None, the source address the OS picks toward the registrar) goes
    into Via and Contact. TLS verifies the server against `tls_ca_file` (system store when None);
    without `tls_server` we accept no TLS connections and take requests on our own connection.
    `nameservers` (with `dns_port`) replaces the system's DNS servers for RFC 3263 lookups."""

    ua: UaConfig
    local_host: str = "0.0.0.0"
    local_port: int = 5060
    advertised_host: str | None = None
    tls_ca_file: str | None = None
    tls_verify: bool = True
    tls_server_name: str | None = None
    tls_server: ssl.SSLContext | None = None
    nameservers: tuple[str, ...] | None = None
    dns_port: int = 53
    stop_timeout: float = 5.0


def _source_ip_toward(ip: str) -> str:
    """The local address the OS routes from toward `ip` (a connected UDP socket sends nothing)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((ip, 9))
        return str(probe.getsockname()[0])


class SipAgent:
    """Runs one `UserAgent` on the running loop (construct it inside the loop). Events go to
    `events` and to `on_event`, which must not block."""

    def __init__(self, config: AgentConfig, *, on_event: Callable[[Event], None] | None = None) -> None:
        self.config = config
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self._on_event = on_event
        self._loop = asyncio.get_running_loop()
        self._ua: UserAgent | None = None
        self._transport: Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._idle = asyncio.Event()

    @property
    def ua(self) -> UserAgent:
        if self._ua is None:
            raise RuntimeError("agent not started")
        return self._ua

    @property
    def local_addr(self) -> Addr:
        return self.ua.local_addr

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve the servers, open the transport and register every account."""
        cfg = self.config
        targets = await self._resolve()
        transport = await self._open_transport()
        try:
            host = cfg.advertised_host or transport.local_addr[0]
            if is_ip_literal(host) and ipaddress.ip_address(host).is_unspecified:
                first = next((addrs[0] for addrs in targets.values()), None) or self._literal_server()
                host = _source_ip_toward(first[0]) if first else "127.0.0.1"
            port = transport.local_addr[1] or cfg.local_port or _DEFAULT_PORT[cfg.ua.transport]
            self._ua = UserAgent(cfg.ua, (host, port), targets=targets)
        except BaseException:
            await transport.close()
            raise
        self._transport = transport
        self._step(lambda ua, now: ua.start(now))

    async def stop(self) -> None:
        """Hang up, unregister (waiting at most `stop_timeout` for the answers), close the socket."""
        if self._ua is None:
            return
        self._step(lambda ua, now: ua.stop(now))
        try:
            await asyncio.wait_for(self._wait_idle(), self.config.stop_timeout)
        except TimeoutError:
            _log.warning("SIP shutdown: no answer to our last requests within %s s", self.config.stop_timeout)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
        self._ua = None

    async def _wait_idle(self) -> None:
        while not self.ua.idle:
            self._idle.clear()
            await self._idle.wait()

    async def _resolve(self) -> dict[ServerKey, list[Addr]]:
        """RFC 3263 for every configured server named by host: all its addresses in order, for the
        UA to fail over through (§4.3); failures leave it out (requests to it then fail like a
        transport error and registration backs off or fails over)."""
        ua = self.config.ua
        servers = [ua.registrar, ua.secondary_registrar, ua.outbound_proxy]
        if ua.registrar is None:
            servers.append(SipUri("sip", None, ua.domain))
        names = [s for s in servers if s is not None and not is_ip_literal(s.host)]
        if not names:
            return {}
        resolver = DnsResolver(self.config.nameservers, port=self.config.dns_port)
        targets: dict[ServerKey, list[Addr]] = {}
        for uri in names:
            try:
                found = await resolver.resolve(uri, (ua.transport,))
            except ResolveError as exc:
                _log.warning("cannot resolve %s: %s", uri, exc)
                continue
            targets[(uri.host.lower(), uri.port)] = [(t.host, t.port) for t in found]
        return targets

    def _literal_server(self) -> Addr | None:
        ua = self.config.ua
        for uri in (ua.outbound_proxy, ua.registrar, SipUri("sip", None, ua.domain)):
            if uri is not None and is_ip_literal(uri.host):
                return (uri.host.strip("[]"), uri.port or _DEFAULT_PORT[ua.transport])
        return None

    async def _open_transport(self) -> Transport:
        cfg = self.config
        local = (cfg.local_host, cfg.local_port)
        kind = cfg.ua.transport
        if kind == "udp":
            return await open_udp(local, self._on_message, self._on_error)
        if kind == "tcp":
            return await open_tcp(local, self._on_message, self._on_error)
        context = client_tls_context(cfg.tls_ca_file, cfg.tls_verify)
        # RFC 5922 §7.3: the certificate must name the SIP domain we asked for, not the address DNS gave.
        named = cfg.ua.outbound_proxy or cfg.ua.registrar or SipUri("sip", None, cfg.ua.domain)
        server_name = cfg.tls_server_name or (None if is_ip_literal(named.host) else named.host)
        return await open_tls(
            local,
            self._on_message,
            self._on_error,
            ssl_client=context,
            ssl_server=cfg.tls_server,
            server_name=server_name,
        )

    # -- the three steps ----------------------------------------------------------------------------

    def _step(self, action: Callable[[UserAgent, float], object]) -> None:
        """Feed the core, then dispatch its events, transmit, and re-arm the timer."""
        ua = self.ua
        action(ua, self._loop.time())
        self._flush()

    def _flush(self) -> None:
        ua = self._ua
        if ua is None:
            return
        while (event := ua.next_event()) is not None:
            self.events.put_nowait(event)
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception:
                    _log.exception("SIP event callback failed for %r", event)
        transport = self._transport
        if transport is not None:
            for data, addr, _kind in ua.datagrams_to_send(self._loop.time()):
                transport.send(data, addr)
        deadline = ua.get_timer()
        if deadline != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None if deadline is None else self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
        if ua.idle:
            self._idle.set()

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        if self._ua is not None:
            self._step(lambda ua, now: ua.handle_timer(now))

    def _on_message(self, data: bytes, addr: Addr, transport: Transport) -> None:
        if self._ua is not None:
            self._step(lambda ua, now: ua.receive(data, addr, transport.kind, now))

    def _on_error(self, addr: Addr, exc: Exception) -> None:
        _log.info("SIP transport error toward %s:%d: %s", addr[0], addr[1], exc)
        if self._ua is not None:
            self._step(lambda ua, now: ua.transport_error(addr, now, str(exc) or type(exc).__name__))

    # -- application API ------------------------------------------------------------------------------

    def registration_state(self, account: str) -> tuple[RegState, str | None]:
        return self.ua.registration_state(account)

    def add_account(self, account: AccountConfig) -> None:
        self._step(lambda ua, now: ua.add_account(account, now))

    def remove_account(self, name: str, *, unregister: bool = True) -> None:
        self._step(lambda ua, now: ua.remove_account(name, now, unregister=unregister))

    def place_call(self, account: str, target: str, media: Addr, *, anonymous: bool = False,
                   replaces: Replaces | None = None) -> str:
        result: list[str] = []
        self._step(lambda ua, now: result.append(ua.place_call(account, target, now, media,
                                                               anonymous=anonymous, replaces=replaces)))
        return result[0]

    def set_presence(self, account: str, dialog: PortDialog | None) -> None:
        self._step(lambda ua, now: ua.set_presence(account, dialog, now))

    def redirect(self, call: str, target: str) -> None:
        self._step(lambda ua, now: ua.redirect(call, target, now))

    def ringing(self, call: str) -> None:
        self._step(lambda ua, now: ua.ringing(call, now))

    def answer(self, call: str, media: Addr) -> None:
        self._step(lambda ua, now: ua.answer(call, now, media))

    def reject(self, call: str, status: int = 486) -> None:
        self._step(lambda ua, now: ua.reject(call, status, now))

    def hangup(self, call: str) -> None:
        self._step(lambda ua, now: ua.hangup(call, now))

    def send_info(self, call: str, content_type: str, body: bytes) -> None:
        self._step(lambda ua, now: ua.send_info(call, content_type, body, now))

    def hold(self, call: str) -> None:
        self._step(lambda ua, now: ua.hold(call, now))

    def resume(self, call: str) -> None:
        self._step(lambda ua, now: ua.resume(call, now))

    def refer(self, call: str, target: str, *, replacing: str | None = None) -> None:
        self._step(lambda ua, now: ua.refer(call, target, now, replacing=replacing))

    def transfer_progress(self, call: str, status: int, reason: str) -> None:
        self._step(lambda ua, now: ua.transfer_progress(call, status, reason, now))

    async def next_event(self, *types: type, timeout: float = 10.0) -> Event:
        """The next event of one of `types` (others are discarded), for tests and simple callers."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if not types or isinstance(event, types):
                    return event
