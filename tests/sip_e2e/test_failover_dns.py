"""RFC 3263 against real Kamailios: a registrar named by DNS whose SRV records list two of them; the
agent registers at the preferred one, and fails over to the other when it is down (§4.3)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import pytest

from firmware.sip.agent import AgentConfig
from firmware.sip.registration import RegState
from firmware.sip.uri import SipUri
from tests.dnsserver import dns_server
from tests.sip_e2e import agent_config, blocking, registered, run, running
from tests.sip_peers.fixtures import KamailioFactory
from tests.sip_peers.kamailio import Kamailio

pytestmark = pytest.mark.peers


@pytest.fixture
def srv_config() -> Iterator[Callable[[Kamailio, Kamailio], AgentConfig]]:
    """Make an AgentConfig whose registrar is `sip.test`, served by a loopback DNS server as
    SRV _sip._udp.sip.test -> (priority 10) `preferred`, (priority 20) `backup`, both at 127.0.0.1."""
    with contextlib.ExitStack() as servers:

        def make(preferred: Kamailio, backup: Kamailio) -> AgentConfig:
            assert preferred.ports is not None and backup.ports is not None
            zone = {
                ("_sip._udp.sip.test.", "SRV"): [
                    f"10 0 {preferred.ports.udp} a.sip.test.",
                    f"20 0 {backup.ports.udp} b.sip.test.",
                ],
                ("a.sip.test.", "A"): ["127.0.0.1"],
                ("b.sip.test.", "A"): ["127.0.0.1"],
            }
            port = servers.enter_context(dns_server(zone))
            config = agent_config(preferred)
            ua = dataclasses.replace(config.ua, registrar=SipUri("sip", None, "sip.test"))
            return dataclasses.replace(config, ua=ua, nameservers=("127.0.0.1",), dns_port=port)

        yield make


def test_registers_at_the_preferred_srv_target(
    kamailio_factory: KamailioFactory, srv_config: Callable[[Kamailio, Kamailio], AgentConfig]
) -> None:
    first, second = kamailio_factory(), kamailio_factory()

    async def scenario() -> None:
        async with running(srv_config(first, second)) as agent:
            await registered(agent)
            assert await blocking(first.is_registered, "alice")
            assert not await blocking(second.is_registered, "alice")

    run(scenario)
    assert "REQ REGISTER" not in second.log()


def test_fails_over_to_the_next_srv_target_when_the_first_is_down(
    kamailio_factory: KamailioFactory, srv_config: Callable[[Kamailio, Kamailio], AgentConfig]
) -> None:
    first = kamailio_factory(start=False)  # down: ICMP port unreachable
    second = kamailio_factory()

    async def scenario() -> None:
        async with running(srv_config(first, second)) as agent:
            await registered(agent)
            assert agent.registration_state("1") == (RegState.REGISTERED, None)
            assert await blocking(second.is_registered, "alice")
            assert not first.running

    run(scenario)
