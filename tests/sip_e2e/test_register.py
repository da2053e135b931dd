"""Registration against a real Kamailio: digest MD5 and SHA-256, refresh, wrong password, registrar
restart, failover to a secondary, over UDP, TCP and TLS."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from firmware.sip.registration import RegState
from firmware.sip.ua import Kind, RegistrationChanged
from tests.sip_e2e import agent_config, blocking, registered, run, running
from tests.sip_peers.certs import make_ca
from tests.sip_peers.fixtures import KamailioFactory
from tests.sip_peers.kamailio import Kamailio

pytestmark = pytest.mark.peers


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_two_ports_register_and_unregister(kamailio: Kamailio, transport: Kind) -> None:
    async def scenario() -> None:
        async with running(agent_config(kamailio, transport, ("alice", "bob"))) as agent:
            await registered(agent, "1")
            await registered(agent, "2")
            assert await blocking(kamailio.is_registered, "alice")
            assert await blocking(kamailio.is_registered, "bob")
            assert not await blocking(kamailio.is_registered, "carol")
        # stop() removed both bindings (Expires: 0) before closing the transport.
        assert not await blocking(kamailio.is_registered, "alice")
        assert not await blocking(kamailio.is_registered, "bob")

    run(scenario)
    assert f"({transport})" in kamailio.log()


def test_sha256_digest(kamailio_factory: KamailioFactory) -> None:
    k = kamailio_factory(algorithm="SHA-256")

    async def scenario() -> None:
        async with running(agent_config(k)) as agent:
            await registered(agent)
            assert await blocking(k.is_registered, "alice")

    run(scenario)  # Kamailio checks only SHA-256 digests here: an MD5 answer would have failed


def test_short_expiry_is_refreshed(kamailio: Kamailio) -> None:
    async def scenario() -> None:
        async with running(agent_config(kamailio, expires=2)) as agent:
            await registered(agent)
            before = kamailio.log().count("REQ REGISTER")
            await asyncio.sleep(3.5)  # refreshes at half the 2 s grant
            assert kamailio.log().count("REQ REGISTER") >= before + 2
            assert agent.registration_state("1") == (RegState.REGISTERED, None)
            assert await blocking(kamailio.is_registered, "alice")

    run(scenario)


def test_wrong_password_fails_without_a_loop(kamailio: Kamailio) -> None:
    async def scenario() -> None:
        config = agent_config(kamailio, passwords={"alice": "not-the-password"})
        async with running(config) as agent:
            event = await agent.next_event(RegistrationChanged, timeout=10)
            while isinstance(event, RegistrationChanged) and event.state is not RegState.FAILED:
                event = await agent.next_event(RegistrationChanged, timeout=10)
            assert isinstance(event, RegistrationChanged)
            assert event.error is not None and "wrong password" in event.error
            await asyncio.sleep(2.0)
            state, error = agent.registration_state("1")
            assert state is RegState.FAILED and error == event.error
        assert kamailio.log().count("REQ REGISTER") == 2  # challenged once, answered once, no retry storm

    run(scenario)


def test_reregisters_after_registrar_restart(kamailio: Kamailio) -> None:
    async def scenario() -> None:
        async with running(agent_config(kamailio, expires=8)) as agent:
            await registered(agent)
            await blocking(kamailio.restart)  # db_mode 0: the binding is gone
            assert not await blocking(kamailio.is_registered, "alice")
            async with asyncio.timeout(10):
                while not await blocking(kamailio.is_registered, "alice", 1.0):
                    await asyncio.sleep(0.3)
            assert agent.registration_state("1")[0] is RegState.REGISTERED

    run(scenario)


def test_fails_over_to_secondary_registrar(kamailio_factory: KamailioFactory) -> None:
    primary = kamailio_factory(start=False)  # down: ICMP port unreachable
    secondary = kamailio_factory()

    async def scenario() -> None:
        async with running(agent_config(primary, secondary=secondary)) as agent:
            await registered(agent)
            assert await blocking(secondary.is_registered, "alice")
            assert agent.registration_state("1")[0] is RegState.REGISTERED
            assert not primary.running

    run(scenario)


def test_tls_refuses_a_registrar_whose_certificate_our_ca_did_not_sign(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    other = make_ca(tmp_path / "other-ca")
    config = dataclasses.replace(agent_config(kamailio, "tls"), tls_ca_file=str(other.ca_cert))

    async def scenario() -> None:
        async with running(config) as agent:
            event = await agent.next_event(RegistrationChanged, timeout=10)
            while isinstance(event, RegistrationChanged) and event.state is not RegState.FAILED:
                event = await agent.next_event(RegistrationChanged, timeout=10)
            state, error = agent.registration_state("1")
            assert state is RegState.FAILED and error is not None, error
            assert "cannot reach 127.0.0.1" in error and "CERTIFICATE_VERIFY_FAILED" in error, error
        assert not await blocking(kamailio.is_registered, "alice")

    run(scenario)
    assert "REQ REGISTER" not in kamailio.log()
