"""IPv6 end to end: two agents bound to [::1] register at Kamailio's [::1] UDP listener (RFC 5118 address
literals in Via, Contact and Request-URI) and call each other through it."""

from __future__ import annotations

import dataclasses

import pytest

from firmware.sip.agent import AgentConfig
from firmware.sip.ua import CallAnswered, CallEnded, IncomingCall
from firmware.sip.uri import SipUri
from tests.sip_e2e import MEDIA, agent_config, blocking, registered, run, running
from tests.sip_peers.kamailio import Kamailio
from tests.sip_peers.ports import ipv6_loopback_available

pytestmark = [
    pytest.mark.peers,
    pytest.mark.skipif(not ipv6_loopback_available(), reason="this machine cannot bind [::1]"),
]
MEDIA6 = ("::1", MEDIA[1])


def ipv6_config(k: Kamailio, user: str) -> AgentConfig:
    """`user` as account "1", bound to [::1], registering at Kamailio's [::1] UDP port."""
    assert k.ipv6 and k.ports is not None
    config = agent_config(k, users=(user,))
    ua = dataclasses.replace(config.ua, registrar=SipUri("sip", None, "::1", k.ports.udp))
    return dataclasses.replace(config, ua=ua, local_host="::1")


def test_registers_over_ipv6(kamailio: Kamailio) -> None:
    async def scenario() -> None:
        async with running(ipv6_config(kamailio, "alice")) as agent:
            assert agent.local_addr[0] == "::1"
            await registered(agent)
            assert await blocking(kamailio.is_registered, "alice")

    run(scenario)
    assert kamailio.ports is not None
    assert f"REQ REGISTER sip:[::1]:{kamailio.ports.udp} from ::1:" in kamailio.log()


def test_call_between_two_agents_over_ipv6(kamailio: Kamailio) -> None:
    async def scenario() -> None:
        async with (
            running(ipv6_config(kamailio, "alice")) as alice,
            running(ipv6_config(kamailio, "bob")) as bob,
        ):
            await registered(alice)
            await registered(bob)
            call = alice.place_call("1", "bob", MEDIA6)
            incoming = await bob.next_event(IncomingCall)
            assert isinstance(incoming, IncomingCall) and incoming.from_uri.startswith("sip:alice@")
            assert b"IN IP6 ::1" in incoming.remote_sdp
            bob.answer(incoming.call, MEDIA6)
            answered = await alice.next_event(CallAnswered, CallEnded)
            assert isinstance(answered, CallAnswered) and answered.call == call, answered
            alice.hangup(call)
            assert await alice.next_event(CallEnded) == CallEnded(call, "hangup", None, False)
            assert await bob.next_event(CallEnded) == CallEnded(incoming.call, "remote hangup", None, True)

    run(scenario)
