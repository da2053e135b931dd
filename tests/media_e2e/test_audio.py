"""Audio and DTMF through the whole media path: the simulator's phone, our pipeline and RTP, a real
Kamailio-routed call, and baresip as the far end. Tones are told apart by FFT (1 kHz from us, 440 Hz
from baresip), so a path that carries nothing, or carries the wrong direction, fails."""

from __future__ import annotations

import pytest

from dsp.dtmf import detect_dtmf
from tests.media_e2e import Rig, dominant, media_rig, tone
from tests.sip_e2e import blocking, run
from tests.sip_peers.audio import dominant_frequency
from tests.sip_peers.baresip import Account, Baresip
from tests.sip_peers.fixtures import BaresipFactory, RegisterPhone
from tests.sip_peers.kamailio import Kamailio

pytestmark = pytest.mark.peers
OUR_HZ, THEIR_HZ = 1000.0, 440.0
TOLERANCE_HZ = 15.0
TALK_S = 2.5


async def talk_and_check(rig: Rig, call: str, far: Baresip) -> None:
    """The phone speaks 1 kHz while baresip plays 440 Hz; each side must hear the other's tone."""
    rig.phone.speak(tone(OUR_HZ, TALK_S + 1.0), rig.now())
    await rig.play_for(TALK_S)
    heard = rig.phone.earpiece(1.5)
    assert abs(dominant(heard) - THEIR_HZ) < TOLERANCE_HZ, dominant(heard)
    stats = await rig.hang_up(call)
    assert stats.packets_received > 0.8 * TALK_S * 50, stats
    await blocking(far.wait_event, "CALL_CLOSED", timeout=10)
    got = dominant_frequency(far.received_wav(), skip_s=0.5)
    print(f"earpiece {dominant(heard):.1f} Hz, far end heard {got:.1f} Hz; {stats}")
    assert abs(got - OUR_HZ) < TOLERANCE_HZ, got


def test_outbound_call_audio_both_ways(kamailio: Kamailio, register_phone: RegisterPhone) -> None:
    """Phone -> baresip gets 1 kHz, baresip -> phone earpiece gets 440 Hz (G.711, RFC 3551)."""
    bob = register_phone(kamailio, "bob", tone_hz=THEIR_HZ, answermode="auto")

    async def scenario() -> None:
        async with media_rig(kamailio) as rig:
            call, _ = await rig.call("bob")
            await blocking(bob.phone.wait_event, "CALL_ESTABLISHED", timeout=10)
            await talk_and_check(rig, call, bob.phone)

    run(scenario, timeout=40)


def test_inbound_call_audio_both_ways(kamailio: Kamailio, register_phone: RegisterPhone) -> None:
    """Same as outbound, with baresip calling alice and our agent answering (our SDP is the answer)."""
    bob = register_phone(kamailio, "bob", tone_hz=THEIR_HZ)

    async def scenario() -> None:
        async with media_rig(kamailio) as rig:
            assert (await blocking(bob.phone.dial, kamailio.uri("alice")))["ok"]
            call, _ = await rig.answer()
            await blocking(bob.phone.wait_event, "CALL_ESTABLISHED", timeout=10)
            await talk_and_check(rig, call, bob.phone)

    run(scenario, timeout=40)


def test_dtmf_relayed_both_ways(kamailio: Kamailio, register_phone: RegisterPhone) -> None:
    """Keypad tones become RFC 4733 telephone-events toward baresip (in order, one per key), and
    baresip's telephone-events become tones in the earpiece that a DTMF receiver decodes."""
    bob = register_phone(kamailio, "bob", tone_hz=THEIR_HZ, answermode="auto")

    async def scenario() -> None:
        async with media_rig(kamailio) as rig:
            call, answered = await rig.call("bob")
            assert answered.negotiated.telephone_event_pt is not None, answered.negotiated
            await blocking(bob.phone.wait_event, "CALL_ESTABLISHED", timeout=10)
            await rig.play_for(0.3)
            rig.phone.dial_dtmf("159#", rig.now())
            got = [(await blocking(bob.phone.wait_event, "CALL_DTMF_START", timeout=5))["param"]
                   for _ in range(4)]
            assert got == ["1", "5", "9", "#"]

            start = rig.now()
            await blocking(bob.phone.send_dtmf, "2468")
            await rig.play_for(1.0)
            heard = rig.phone.earpiece(rig.now() - start + 0.1)
            digits = "".join(d for d, _, _ in detect_dtmf(heard))
            assert digits == "2468", detect_dtmf(heard)
            starts = [e for e in bob.phone.history if e.get("type") == "CALL_DTMF_START"]
            assert len(starts) == 4, starts  # one event per key press: no duplicates, no echoes
            await rig.hang_up(call)

    run(scenario, timeout=40)


def test_srtp_call_audio_both_ways(kamailio: Kamailio, baresip_factory: BaresipFactory) -> None:
    """SRTP (RFC 3711) keyed by SDES (RFC 4568) with baresip's srtp module, mandatory on both sides:
    RTP/SAVP offered and answered, and audio still flows both ways (so the keys match each way)."""
    account = Account(kamailio.uri("bob"), kamailio.users["bob"], answermode="auto", mediaenc="srtp-mand")
    bob = baresip_factory("bob-srtp", THEIR_HZ, [account], kamailio=kamailio)
    assert bob.wait_event("REGISTER_OK", "REGISTER_FAIL", timeout=10)["type"] == "REGISTER_OK"

    async def scenario() -> None:
        async with media_rig(kamailio, srtp="require") as rig:
            call, answered = await rig.call("bob")
            assert answered.negotiated.srtp is not None, answered.negotiated
            await blocking(bob.wait_event, "CALL_ESTABLISHED", timeout=10)
            session = rig.clock.pipeline.sessions[0]
            assert session is not None
            await talk_and_check(rig, call, bob)
            assert session.srtp_failures == 0

    run(scenario, timeout=40)
