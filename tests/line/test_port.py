"""The port state machine driven directly with invented times (sans-IO: no board, no loop)."""

from __future__ import annotations

import pytest

from firmware.line.dialplan import DialPlan
from firmware.line.port import (
    Answer,
    CallOver,
    ConnectMedia,
    DisconnectMedia,
    Hangup,
    PlaceCall,
    PlayTone,
    PortLine,
    PortTiming,
    Reject,
    Ring,
    SendVmwi,
    SetFeed,
    SetPolarity,
    State,
    StopRing,
    StopTone,
)
from hal.events import Feed, HookEvent, HookKind

PLAN = "(1xx|*99!|[2-9]xxxxxx)"
US_TONES = frozenset({"dial", "ringback", "busy", "congestion", "howler", "sit", "sit_vacant_code",
                      "sit_intercept", "sit_ineffective_other"})


def port(timing: PortTiming | None = None, tones: frozenset[str] = US_TONES, *,
         polarity_reversal: bool = False) -> PortLine:
    return PortLine(0, DialPlan.parse(PLAN, first_digit_s=16.0, long_s=10.0, short_s=3.0), tones,
                    timing or PortTiming(), polarity_reversal=polarity_reversal)


def off(p: PortLine, t: float) -> list[object]:
    return list(p.hook(HookEvent(0, HookKind.OFF_HOOK, t), t))


def on(p: PortLine, t: float) -> list[object]:
    return list(p.hook(HookEvent(0, HookKind.ON_HOOK, t), t))


def dial(p: PortLine, digits: str, t: float) -> list[object]:
    actions: list[object] = []
    for d in digits:
        actions += p.dtmf(d, True, t)
        actions += p.dtmf(d, False, t + 0.1)
        t += 0.2
    return actions


def run_timers(p: PortLine, until: float) -> list[tuple[float, object]]:
    """Fire every timer up to `until`; (time, action) pairs in order."""
    fired = []
    while (t := p.get_timer()) is not None and t <= until:
        fired += [(t, a) for a in p.handle_timer(t)]
    return fired


def calling(p: PortLine, number: str = "102") -> None:
    off(p, 0.0)
    assert dial(p, number, 1.0)[-1] == PlaceCall(number)


def test_off_hook_gives_dial_tone_at_once() -> None:
    p = port()
    assert off(p, 5.0) == [PlayTone("dial")]  # on the same input: well inside 100 ms
    assert p.state is State.DIALTONE


def test_dtmf_digits_place_the_call_the_plan_decides() -> None:
    p = port()
    off(p, 0.0)
    assert dial(p, "1", 1.0) == [StopTone()]  # the first key silences dial tone
    assert dial(p, "02", 1.2) == [PlaceCall("102")]
    assert p.state is State.CALLING


def test_pulse_digits_count_too() -> None:
    p = port()
    off(p, 0.0)
    actions = []
    for i, d in enumerate("103"):
        actions += p.hook(HookEvent(0, HookKind.DIGIT, 1.0 + i, digit=d), 1.0 + i)
    assert actions == [StopTone(), PlaceCall("103")]


def test_short_timer_decides_a_complete_number_that_could_grow() -> None:
    p = PortLine(0, DialPlan.parse("(1xx|1xxxx)", short_s=3.0), US_TONES)
    off(p, 0.0)
    assert dial(p, "123", 1.0) == [StopTone()]
    assert p.get_timer() == pytest.approx(1.4 + 3.0)
    assert run_timers(p, 10.0) == [(pytest.approx(4.4), PlaceCall("123"))]


def test_hotline_dials_at_once_without_dial_tone() -> None:
    p = PortLine(0, DialPlan.parse(PLAN), US_TONES, hotline="911")
    assert off(p, 0.0) == [PlaceCall("911")]
    assert p.state is State.CALLING


def test_ringback_on_180_and_busy_on_486() -> None:
    p = port()
    calling(p)
    assert p.progress(180, False, 2.0) == [PlayTone("ringback")]
    actions = p.ended("Busy Here", 486, 3.0)
    # busy replaces ringback (a new tone replaces the one playing)
    assert actions == [CallOver("out", "102", 1.4, None, 3.0, "Busy Here"), PlayTone("busy")]
    assert p.state is State.TONE


def test_early_media_connects_instead_of_local_ringback() -> None:
    p = port()
    calling(p)
    assert p.progress(183, True, 2.0) == [ConnectMedia()]
    assert p.progress(180, False, 2.1) == []  # the far end plays its own ringback
    assert p.answered(3.0) == []  # media already flows
    assert p.state is State.CONNECTED


@pytest.mark.parametrize(("status", "tone"), [(404, "sit_vacant_code"), (410, "sit_intercept"),
                                              (484, "sit_ineffective_other"), (600, "busy"),
                                              (503, "congestion"), (None, "congestion")])
def test_failure_tones(status: int | None, tone: str) -> None:
    p = port()
    calling(p)
    assert p.ended("failed", status, 2.0)[-1] == PlayTone(tone)


def test_sit_falls_back_where_the_country_has_none() -> None:
    p = port(tones=frozenset({"dial", "busy", "congestion"}))
    calling(p)
    assert p.ended("Not Found", 404, 2.0)[-1] == PlayTone("congestion")


@pytest.mark.parametrize("digits", ["0", "*99"])
def test_no_match_and_barred_numbers_get_reorder(digits: str) -> None:
    p = port()
    off(p, 0.0)
    actions = dial(p, digits, 1.0)
    assert actions[-1] == PlayTone("congestion")
    assert not any(isinstance(a, PlaceCall) for a in actions)
    assert p.state is State.TONE


def test_first_digit_timeout_reorder_then_howler_then_lockout() -> None:
    p = port(PortTiming(reorder=45.0, howler=60.0))
    off(p, 0.0)
    assert run_timers(p, 200.0) == [(16.0, StopTone()), (16.0, PlayTone("congestion")),
                                    (61.0, PlayTone("howler")), (121.0, StopTone())]
    assert p.state is State.LOCKOUT
    assert p.get_timer() is None
    assert dial(p, "102", 130.0) == []  # parked: keys do nothing until the phone is hung up
    assert on(p, 140.0) == []
    assert off(p, 141.0) == [PlayTone("dial")]


def test_interdigit_timeout_gives_reorder() -> None:
    p = port()
    off(p, 0.0)
    dial(p, "5", 1.0)
    assert run_timers(p, 30.0) == [(11.0, PlayTone("congestion"))]  # L timer from the key


def test_incoming_rings_and_off_hook_answers() -> None:
    p = port()
    assert p.incoming("c1", "5551234", "ALICE", 0.0) == [Ring("5551234", "ALICE")]
    assert p.state is State.RINGING
    assert off(p, 4.0) == [StopRing(), Answer(), ConnectMedia()]
    assert p.state is State.CONNECTED
    assert on(p, 10.0) == [Hangup(), DisconnectMedia(), CallOver("in", "5551234", 0.0, 4.0, 10.0,
                                                                  "local hangup")]
    assert p.state is State.IDLE


def test_a_private_caller_rings_with_private_caller_id() -> None:
    assert port().incoming("c1", "", None, 0.0, private=True) == [Ring("", None, private=True)]


def test_a_distinctive_ring_travels_with_the_call() -> None:
    assert port().incoming("c1", "5551234", None, 0.0, cadence="bellcore-dr2") == [
        Ring("5551234", None, cadence="bellcore-dr2")]


def test_caller_gives_up_while_ringing() -> None:
    p = port()
    p.incoming("c1", "5551234", None, 0.0)
    assert p.ended("cancelled", 487, 3.0) == [StopRing(), CallOver("in", "5551234", 0.0, None, 3.0,
                                                                     "cancelled")]
    assert p.state is State.IDLE


@pytest.mark.parametrize("setup", ["dialtone", "ringing", "connected"])
def test_a_port_in_use_refuses_a_second_call_busy(setup: str) -> None:
    p = port()
    if setup == "ringing":
        p.incoming("c1", "1", None, 0.0)
    else:
        off(p, 0.0)
        if setup == "connected":
            dial(p, "102", 1.0)
            p.answered(2.0)
    state = p.state
    assert p.incoming("c2", "5551234", None, 3.0) == [Reject("c2", 486)]
    assert p.state is state


def connected(p: PortLine) -> None:
    calling(p)
    assert p.answered(2.0) == [ConnectMedia()]


def test_far_end_hangup_opens_the_loop_then_reorder() -> None:
    p = port(PortTiming(disconnect_feed=0.8))
    connected(p)
    assert p.ended("BYE", None, 5.0) == [DisconnectMedia(), CallOver("out", "102", 1.4, 2.0, 5.0, "BYE"),
                                         SetFeed(Feed.OPEN)]
    assert run_timers(p, 5.8) == [(5.8, SetFeed(Feed.ACTIVE)), (5.8, PlayTone("congestion"))]
    assert p.state is State.TONE


def test_far_end_hangup_without_loop_open() -> None:
    p = port(PortTiming(disconnect_feed=None))
    connected(p)
    assert p.ended("BYE", None, 5.0)[-1] == PlayTone("congestion")


def test_hanging_up_during_the_loop_open_restores_the_feed() -> None:
    p = port()
    connected(p)
    p.ended("BYE", None, 5.0)
    assert on(p, 5.3) == [SetFeed(Feed.ACTIVE)]
    assert p.get_timer() is None


def test_on_hook_while_calling_cancels_and_cleans_up() -> None:
    p = port()
    calling(p)
    p.progress(180, False, 2.0)
    assert on(p, 3.0) == [StopTone(), Hangup(), CallOver("out", "102", 1.4, None, 3.0, "local hangup")]
    assert p.state is State.IDLE and p.get_timer() is None
    assert p.ended("cancelled", 487, 3.1) == []  # the late final answer to our CANCEL changes nothing


def test_on_hook_during_a_tone_stops_it() -> None:
    p = port()
    calling(p)
    p.ended("Busy", 486, 2.0)
    assert on(p, 3.0) == [StopTone()]
    assert p.get_timer() is None


def test_flash_and_in_call_digits_do_nothing_without_features() -> None:
    p = port()
    connected(p)
    assert p.hook(HookEvent(0, HookKind.FLASH, 3.0, duration=0.3), 3.0) == []
    assert dial(p, "5", 3.5) == []
    assert p.state is State.CONNECTED


def test_polarity_reverses_on_answer_of_an_incoming_call_and_back_on_far_end_disconnect() -> None:
    p = port(polarity_reversal=True)
    p.incoming("c1", "5551234", None, 0.0)
    assert off(p, 4.0) == [StopRing(), Answer(), ConnectMedia(), SetPolarity(True)]
    assert p.ended("remote hangup", None, 9.0) == [
        DisconnectMedia(), SetPolarity(False), CallOver("in", "5551234", 0.0, 4.0, 9.0, "remote hangup"),
        SetFeed(Feed.OPEN)]
    assert [a for _, a in run_timers(p, 60.0) if isinstance(a, SetPolarity)] == []


def test_polarity_reverses_when_the_far_end_answers_and_back_on_our_hang_up() -> None:
    p = port(polarity_reversal=True)
    off(p, 0.0)
    dial(p, "102", 1.0)
    assert p.answered(3.0) == [ConnectMedia(), SetPolarity(True)]
    assert on(p, 8.0) == [Hangup(), DisconnectMedia(), SetPolarity(False),
                          CallOver("out", "102", 1.4, 3.0, 8.0, "local hangup")]


def test_polarity_stays_normal_for_an_unanswered_call() -> None:
    p = port(polarity_reversal=True)
    off(p, 0.0)
    dial(p, "102", 1.0)
    p.progress(180, False, 2.0)
    assert not [a for a in p.ended("busy", 486, 3.0) + on(p, 4.0) if isinstance(a, SetPolarity)]


def test_message_waiting_lights_the_lamp_at_once_when_idle_and_gives_stutter_dial_tone() -> None:
    p = port()
    assert p.mwi(True, 0.0) == [SendVmwi(True)]
    assert p.mwi(True, 1.0) == []  # the lamp is already on
    assert off(p, 2.0) == [PlayTone("stutter_dial")]
    on(p, 5.0)
    assert p.mwi(False, 6.0) == [SendVmwi(False)]
    assert off(p, 7.0) == [PlayTone("dial")]


def test_message_waiting_during_a_call_waits_for_on_hook() -> None:
    p = port()
    off(p, 0.0)
    assert p.mwi(True, 1.0) == []  # VMWI is on-hook data: not into the caller's ear
    assert on(p, 2.0) == [StopTone(), SendVmwi(True)]
    p.incoming("c1", "5551234", None, 3.0)
    assert p.mwi(False, 4.0) == []  # ringing: the caller-ID slot is the call's
    assert p.ended("cancelled", 487, 5.0)[-1] == SendVmwi(False)
