"""End-to-end tests of the SIP user agent against real Kamailio and baresip on loopback.

The tests are synchronous (the harness is), each running one `asyncio.run` with a hard timeout;
blocking harness calls (baresip waits, Kamailio restarts) go through `asyncio.to_thread` so our
agent's loop keeps answering while they wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from firmware.sip.agent import AgentConfig, SipAgent
from firmware.sip.registration import RegState
from firmware.sip.ua import AccountConfig, Kind, RegistrationChanged, UaConfig
from firmware.sip.uri import SipUri
from tests.sip_peers.kamailio import Kamailio

T = TypeVar("T")
MEDIA = ("127.0.0.1", 40000)
"""Our SDP's RTP endpoint; nothing listens there (media is a later issue)."""


def server_uri(k: Kamailio, transport: Kind) -> SipUri:
    assert k.ports is not None
    port = {"udp": k.ports.udp, "tcp": k.ports.tcp, "tls": k.ports.tls}[transport]
    params: tuple[tuple[str, str | None], ...] = () if transport == "udp" else (("transport", transport),)
    return SipUri("sip", None, "127.0.0.1", port, None, params)


def agent_config(
    k: Kamailio,
    transport: Kind = "udp",
    users: tuple[str, ...] = ("alice",),
    *,
    passwords: dict[str, str] | None = None,
    secondary: Kamailio | None = None,
    expires: int = 300,
) -> AgentConfig:
    """Accounts "1", "2"... for `users` at Kamailio `k` (and `secondary` for failover)."""
    pw = {**k.users, **(passwords or {})}
    accounts = tuple(AccountConfig(str(i + 1), user, pw[user]) for i, user in enumerate(users))
    ua = UaConfig(
        domain="127.0.0.1",
        accounts=accounts,
        registrar=server_uri(k, transport),
        secondary_registrar=server_uri(secondary, transport) if secondary is not None else None,
        transport=transport,
        expires=expires,
        keepalive_interval=0,
    )
    ca = str(k.ca.ca_cert) if k.ca is not None else None
    return AgentConfig(ua=ua, local_host="127.0.0.1", local_port=0, tls_ca_file=ca, stop_timeout=3.0)


@contextlib.asynccontextmanager
async def running(config: AgentConfig) -> AsyncIterator[SipAgent]:
    agent = SipAgent(config)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


async def registered(agent: SipAgent, account: str = "1", timeout: float = 10.0) -> None:
    """Wait for REGISTERED (events before it are discarded); fail fast on FAILED."""
    async with asyncio.timeout(timeout):
        while agent.registration_state(account)[0] is not RegState.REGISTERED:
            event = await agent.next_event(RegistrationChanged, timeout=timeout)
            assert isinstance(event, RegistrationChanged)
            assert event.state is not RegState.FAILED, event


def run(scenario: Callable[[], Coroutine[Any, Any, T]], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(bounded())


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking harness call, off the loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)
