"""SIP: message parsing speed against aiosipua (another pure-Python parser, from PyPI), and the time
from our INVITE to the 180 on loopback through Kamailio against baresip calling the same callee.

The call-setup figures start and stop their own Kamailio and baresip processes (tests/sip_peers);
both sides are digest-challenged (407) by Kamailio, so each figure holds two round trips through it.
baresip's figure is its dial command to its CALL_RINGING event: the command alone returns only after
~40 ms (baresip sets up its media and answers the control socket late; the callee's CALL_INCOMING shows
up at the same moment), so it is a whole-client figure, not a SIP round trip; the OPTIONS row is that.
Our parser validates the whole header section up front (RFC 4475 torture cases), aiosipua does not.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from aiosipua.message import SipMessage as AiosipuaMessage

from bench.common import Row, median_seconds
from firmware.sip.agent import AgentConfig, SipAgent
from firmware.sip.message import parse_message
from firmware.sip.ua import AccountConfig, CallEnded, CallProgress, Event, UaConfig
from firmware.sip.uri import SipUri
from tests.sip_peers.audio import write_tone
from tests.sip_peers.baresip import Account, Baresip
from tests.sip_peers.kamailio import Kamailio, options_ping

USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
CALLS = 10
US, MS = 1e6, 1e3

INVITE = (
    b"INVITE sip:bob@192.0.2.4 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKnashds8;received=192.0.2.10\r\n"
    b"Max-Forwards: 69\r\n"
    b"Record-Route: <sip:192.0.2.1;lr;ftag=1928301774>\r\n"
    b'From: "Alice" <sip:alice@pbx.example.com>;tag=1928301774\r\n'
    b"To: <sip:bob@pbx.example.com>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.10:5062>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO\r\n"
    b"Supported: timer\r\n"
    b"User-Agent: Hookflash\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 183\r\n\r\n"
    b"v=0\r\no=hookflash 1 0 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKnashds8;received=192.0.2.10;rport=5062\r\n"
    b'From: "Alice" <sip:alice@pbx.example.com>;tag=1928301774\r\n'
    b"To: <sip:bob@pbx.example.com>;tag=a6c85cf\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314160 BYE\r\n"
    b"Server: hookflash-test-kamailio\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _ours(data: bytes) -> object:
    """Parse and read what the transaction/dialog layers key on."""
    message = parse_message(data)
    return (message.call_id, message.cseq.number, message.top_via.branch, message.from_tag)


def _aiosipua(data: bytes) -> object:
    message = AiosipuaMessage.parse(data)
    cseq, from_addr = message.cseq, message.from_addr
    return (
        message.call_id,
        cseq.seq if cseq else None,
        message.via[0].branch,
        from_addr.tag if from_addr else None,
    )


def _parse_rows() -> list[Row]:
    rows = []
    for name, data in (("INVITE with SDP", INVITE), ("200 OK", OK)):
        ours, ref = median_seconds(lambda d=data: _ours(d)), median_seconds(lambda d=data: _aiosipua(d))
        rows.append(
            Row("sip parse", f"{name}, messages/s", 1 / ours, "msg/s", "aiosipua", 1 / ref,
                higher_is_better=True)
        )  # fmt: skip
    return rows


async def _our_invite_to_180(kamailio: Kamailio, callee: Baresip) -> list[float]:
    assert kamailio.ports is not None
    ua = UaConfig(
        domain="127.0.0.1",
        accounts=(AccountConfig("1", "alice", USERS["alice"]),),
        registrar=SipUri(host="127.0.0.1", port=kamailio.ports.udp),
        keepalive_interval=0,
    )
    stamps: dict[type, float] = {}

    def stamp(event: Event) -> None:
        stamps.setdefault(type(event), time.perf_counter())

    agent = SipAgent(AgentConfig(ua=ua, local_host="127.0.0.1", local_port=0), on_event=stamp)
    await agent.start()
    samples = []
    try:
        while agent.registration_state("1")[0].value != "registered":
            await agent.next_event()
        for _ in range(CALLS):
            stamps.clear()
            t0 = time.perf_counter()
            call = agent.place_call("1", "bob", ("127.0.0.1", 40000))
            event = await agent.next_event(CallProgress, CallEnded)
            assert isinstance(event, CallProgress) and event.status == 180, event
            samples.append(stamps[CallProgress] - t0)
            agent.hangup(call)
            await agent.next_event(CallEnded)
            await asyncio.to_thread(callee.wait_event, "CALL_CLOSED", timeout=10)
    finally:
        await agent.stop()
    return samples


def _baresip_invite_to_180(kamailio: Kamailio, caller: Baresip, callee: Baresip) -> list[float]:
    samples = []
    for _ in range(CALLS):
        t0 = time.perf_counter()
        caller.dial(kamailio.uri("bob"))
        caller.wait_event("CALL_RINGING", timeout=10)
        samples.append(time.perf_counter() - t0)
        caller.hangup()
        caller.wait_event("CALL_CLOSED", timeout=10)
        callee.wait_event("CALL_CLOSED", timeout=10)
    return samples


def _options_rtt(kamailio: Kamailio) -> float:
    assert kamailio.ports is not None
    samples = []
    for _ in range(CALLS):
        t0 = time.perf_counter()
        assert options_ping("127.0.0.1", kamailio.ports.udp) is not None
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _call_rows() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as tmp:
        root = Path(tmp)
        kamailio = Kamailio(root / "kamailio", users=dict(USERS), tls=False)
        phones: list[Baresip] = []
        try:
            kamailio.start()
            for user, answermode in (("bob", "manual"), ("carol", "manual")):
                workdir = root / user
                workdir.mkdir()
                tone = write_tone(workdir / "tone.wav", 440.0, seconds=2.0)
                account = Account(kamailio.uri(user), USERS[user], answermode=answermode)
                phone = Baresip(workdir, tone, accounts=[account])
                phones.append(phone)
                phone.start()
                phone.wait_event("REGISTER_OK", timeout=10)
            bob, carol = phones
            ours = statistics.median(asyncio.run(_our_invite_to_180(kamailio, bob)))
            theirs = statistics.median(_baresip_invite_to_180(kamailio, carol, bob))
            rtt = _options_rtt(kamailio)
        finally:
            for phone in phones:
                phone.stop()
            kamailio.stop()
    return [
        Row("sip call setup", "INVITE -> 180 via Kamailio (407 + retry)", ours * MS, "ms",
            "baresip -> baresip", theirs * MS),
        Row("sip call setup", "Kamailio OPTIONS round trip (reference)", rtt * MS, "ms"),
    ]  # fmt: skip


def run() -> list[Row]:
    return _parse_rows() + _call_rows()
