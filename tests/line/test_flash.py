"""Hook-flash features of the port state machine, driven with invented times (docs/call-features.md).

Flows follow the Bellcore/Telcordia custom calling features: call waiting (SAS + CAS with type II caller
ID, GR-30-CORE / SR-TSV-002476, flash answers and swaps), three-way calling (flash, recall dial tone,
dial, flash joins, flash drops the last party) and transfer on hang-up during the consultation (blind
before answer: RFC 3515 REFER; attended after: REFER with Replaces, RFC 3891).
"""

from __future__ import annotations

from firmware.line.dialplan import DialPlan
from firmware.line.port import (
    Action,
    Answer,
    CallOver,
    CallWaitingAlert,
    ConnectMedia,
    DisconnectMedia,
    FlashFeatures,
    Hangup,
    Hold,
    PlaceCall,
    PlayTone,
    PortLine,
    Reject,
    Resume,
    Ring,
    SendCallerId,
    State,
    StopRing,
    Transfer,
)
from hal.events import HookEvent, HookKind

PLAN = "(1xx|[2-9]xxxxxx)"
TONES = frozenset({"dial", "stutter_dial", "ringback", "busy", "congestion", "call_waiting"})
ALL = FlashFeatures(call_waiting=True, three_way=True, transfer=True)


def port(features: FlashFeatures = ALL) -> PortLine:
    return PortLine(0, DialPlan.parse(PLAN, first_digit_s=16.0, long_s=10.0, short_s=3.0), TONES,
                    flash=features)


def hook(p: PortLine, kind: HookKind, t: float) -> list[Action]:
    return list(p.hook(HookEvent(0, kind, t), t))


def flash(p: PortLine, t: float) -> list[Action]:
    return hook(p, HookKind.FLASH, t)


def dial(p: PortLine, digits: str, t: float) -> list[Action]:
    out: list[Action] = []
    for d in digits:
        out += p.dtmf(d, True, t)
        out += p.dtmf(d, False, t + 0.1)
        t += 0.2
    return out


def calls(actions: list[Action]) -> list[tuple[str, str]]:
    """(action name, call key) of the actions that concern one call, in order."""
    return [(type(a).__name__, a.call) for a in actions
            if isinstance(a, Hold | Resume | Answer | Hangup | ConnectMedia | DisconnectMedia)]


def in_call(p: PortLine, key: str = "A") -> None:
    """An answered incoming call 'A' from 5551000."""
    assert p.incoming(key, "5551000", "Alice", 0.0)[0] == Ring("5551000", "Alice")
    hook(p, HookKind.OFF_HOOK, 1.0)
    assert p.state is State.CONNECTED


# -- call waiting -----------------------------------------------------------------------------------
def test_second_call_without_call_waiting_is_busy() -> None:
    p = port(FlashFeatures())
    in_call(p)
    assert p.incoming("B", "5552000", "Bob", 5.0) == [Reject("B", 486)]


def test_call_waiting_alert_then_type_ii_caller_id_on_the_cas_acknowledgement() -> None:
    p = port()
    in_call(p)
    assert p.incoming("B", "5552000", "Bob", 5.0) == [CallWaitingAlert("B")]
    assert p.dtmf("D", True, 5.45) == [SendCallerId("5552000", "Bob")]
    assert p.dtmf("D", True, 5.5) == []  # only once; a 'D' in the call is no digit to collect
    assert p.incoming("C", "5553000", None, 6.0) == [Reject("C", 486)]  # no third call


def test_late_cas_acknowledgement_gets_no_caller_id() -> None:
    """SR-TSV-002476: the phone must acknowledge within 160 ms of the CAS; later 'D's are speech keys."""
    p = port()
    in_call(p)
    p.incoming("B", "5552000", "Bob", 5.0)
    assert p.dtmf("D", True, 5.0 + p.timing.cas_ack + 0.01) == []


def test_flash_answers_the_waiting_call_and_holds_the_first_then_swaps() -> None:
    p = port()
    in_call(p)
    p.incoming("B", "5552000", "Bob", 5.0)
    assert calls(flash(p, 8.0)) == [("Hold", "A"), ("DisconnectMedia", "A"), ("Answer", "B"),
                                    ("ConnectMedia", "B")]
    assert p.state is State.CONNECTED
    assert calls(flash(p, 12.0)) == [("Hold", "B"), ("DisconnectMedia", "B"), ("Resume", "A"),
                                     ("ConnectMedia", "A")]
    assert calls(flash(p, 14.0)) == [("Hold", "A"), ("DisconnectMedia", "A"), ("Resume", "B"),
                                     ("ConnectMedia", "B")]


def test_hang_up_with_a_held_call_rings_the_phone_again_and_lifting_resumes_it() -> None:
    p = port()
    in_call(p)
    p.incoming("B", "5552000", "Bob", 5.0)
    flash(p, 8.0)  # talking to B, A held
    out = hook(p, HookKind.ON_HOOK, 20.0)
    assert calls(out) == [("Hangup", "B"), ("DisconnectMedia", "B")]
    assert out[-1] == Ring("5551000", "Alice") and out[-1].call == "A"
    assert [o.cause for o in out if isinstance(o, CallOver)] == ["local hangup"]
    assert p.state is State.RINGING
    assert calls(hook(p, HookKind.OFF_HOOK, 24.0)) == [("Resume", "A"), ("ConnectMedia", "A")]
    assert p.state is State.CONNECTED


def test_hang_up_with_a_waiting_call_rings_for_it() -> None:
    p = port()
    in_call(p)
    p.incoming("B", "5552000", "Bob", 5.0)
    out = hook(p, HookKind.ON_HOOK, 6.0)
    assert calls(out) == [("Hangup", "A"), ("DisconnectMedia", "A")]
    assert isinstance(out[-1], Ring) and out[-1].call == "B"
    assert calls(hook(p, HookKind.OFF_HOOK, 9.0)) == [("Answer", "B"), ("ConnectMedia", "B")]


def test_waiting_caller_giving_up_leaves_the_first_call_alone() -> None:
    p = port()
    in_call(p)
    p.incoming("B", "5552000", "Bob", 5.0)
    out = p.ended("cancelled", 487, 9.0, call="B")
    assert [type(a) for a in out] == [CallOver] and p.state is State.CONNECTED
    assert flash(p, 10.0) != [] and p.state is State.DIALTONE  # flash is three-way again


def test_active_party_hanging_up_leaves_the_held_one_for_a_flash() -> None:
    p = port()
    in_call(p)
    p.incoming("B", "5552000", "Bob", 5.0)
    flash(p, 8.0)
    out = p.ended("remote hangup", None, 10.0, call="B")
    assert calls(out) == [("DisconnectMedia", "B")] and p.state is State.HELD
    assert calls(flash(p, 11.0)) == [("Resume", "A"), ("ConnectMedia", "A")]
    assert p.state is State.CONNECTED


def test_held_party_hanging_up_while_the_phone_waits_gives_reorder() -> None:
    p = port()
    in_call(p)
    p.incoming("B", "5552000", "Bob", 5.0)
    flash(p, 8.0)
    p.ended("remote hangup", None, 10.0, call="B")
    out = p.ended("remote hangup", None, 11.0, call="A")
    assert out[-1] == PlayTone("congestion") and p.state is State.TONE


# -- hold, consultation, three-way --------------------------------------------------------------------
def consult(p: PortLine, number: str = "5554000") -> str:
    """Talking to A; flash, recall dial tone, dial `number`: returns the consultation's key."""
    in_call(p)
    out = flash(p, 5.0)
    assert calls(out) == [("Hold", "A"), ("DisconnectMedia", "A")]
    assert out[-1] == PlayTone("stutter_dial") and p.state is State.DIALTONE  # recall dial tone
    placed = dial(p, number, 6.0)
    assert placed[-1] == PlaceCall(number)
    key = placed[-1].call
    assert key and key != "A"
    return str(key)


def test_flash_without_three_way_does_nothing() -> None:
    p = port(FlashFeatures(call_waiting=True))
    in_call(p)
    assert flash(p, 5.0) == [] and p.state is State.CONNECTED


def test_flash_from_recall_dial_tone_returns_to_the_held_call() -> None:
    p = port()
    in_call(p)
    flash(p, 5.0)
    dial(p, "55", 6.0)
    out = flash(p, 7.0)
    assert calls(out) == [("Resume", "A"), ("ConnectMedia", "A")] and p.state is State.CONNECTED
    assert p.get_timer() is None  # the abandoned digits' timers are gone


def test_three_way_conference_and_flash_drops_the_last_party() -> None:
    p = port()
    c = consult(p)
    assert calls(p.answered(20.0, call=c)) == [("ConnectMedia", c)] and p.state is State.CONNECTED
    out = flash(p, 25.0)
    assert calls(out) == [("Resume", "A"), ("ConnectMedia", "A")] and p.state is State.CONFERENCE
    out = flash(p, 40.0)
    assert calls(out) == [("Hangup", c), ("DisconnectMedia", c)]
    assert [o.cause for o in out if isinstance(o, CallOver)] == ["dropped from conference"]
    assert p.state is State.CONNECTED
    assert calls(hook(p, HookKind.ON_HOOK, 50.0)) == [("Hangup", "A"), ("DisconnectMedia", "A")]
    assert p.state is State.IDLE


def test_conference_goes_on_as_a_two_party_call_when_one_leaves() -> None:
    p = port()
    c = consult(p)
    p.answered(20.0, call=c)
    flash(p, 25.0)
    assert calls(p.ended("remote hangup", None, 30.0, call="A")) == [("DisconnectMedia", "A")]
    assert p.state is State.CONNECTED
    assert calls(hook(p, HookKind.ON_HOOK, 31.0)) == [("Hangup", c), ("DisconnectMedia", c)]


def test_hang_up_in_conference_ends_both_calls() -> None:
    p = port(FlashFeatures(three_way=True, transfer=True))
    c = consult(p)
    p.answered(20.0, call=c)
    flash(p, 25.0)
    out = hook(p, HookKind.ON_HOOK, 30.0)
    assert sorted(calls(out)) == sorted([("Hangup", c), ("DisconnectMedia", c), ("Hangup", "A"),
                                         ("DisconnectMedia", "A")])
    assert p.state is State.IDLE


def test_busy_consultation_plays_busy_and_flash_returns_to_the_held_call() -> None:
    p = port()
    c = consult(p)
    out = p.ended("486 Busy Here", 486, 9.0, call=c)
    assert out[-1] == PlayTone("busy") and p.state is State.TONE
    assert calls(flash(p, 11.0)) == [("Resume", "A"), ("ConnectMedia", "A")]


def test_flash_while_the_consultation_rings_cancels_it() -> None:
    p = port()
    c = consult(p)
    out = flash(p, 9.0)
    assert calls(out) == [("Hangup", c), ("Resume", "A"), ("ConnectMedia", "A")]


# -- transfer -----------------------------------------------------------------------------------------
def test_hang_up_before_the_consultation_answers_is_a_blind_transfer() -> None:
    p = port()
    c = consult(p, "5554000")
    out = hook(p, HookKind.ON_HOOK, 9.0)
    assert Transfer("A", c, "5554000", attended=False) in out
    assert not any(isinstance(a, Hangup) for a in out)  # the gateway ends both calls after the REFER
    assert sorted(o.cause for o in out if isinstance(o, CallOver)) == ["transferred", "transferred"]
    assert p.state is State.IDLE


def test_hang_up_after_the_consultation_answered_is_an_attended_transfer() -> None:
    p = port()
    c = consult(p)
    p.answered(15.0, call=c)
    out = hook(p, HookKind.ON_HOOK, 20.0)
    assert Transfer("A", c, "5554000", attended=True) in out
    assert calls(out) == [("DisconnectMedia", c)]


def test_without_transfer_hang_up_in_consultation_re_rings_the_held_party() -> None:
    p = port(FlashFeatures(three_way=True))
    c = consult(p)
    p.answered(15.0, call=c)
    out = hook(p, HookKind.ON_HOOK, 20.0)
    assert calls(out) == [("Hangup", c), ("DisconnectMedia", c)]
    assert isinstance(out[-1], Ring) and out[-1].call == "A"
    assert not any(isinstance(a, Transfer) for a in out)


def test_transfer_without_three_way_flash_stays_a_plain_call() -> None:
    p = port(FlashFeatures(transfer=True))
    in_call(p)
    assert flash(p, 5.0) == []


def test_far_end_hangup_of_a_ringing_recall_stops_the_ringer() -> None:
    p = port()
    in_call(p)
    p.incoming("B", "5552000", "Bob", 5.0)
    flash(p, 8.0)
    hook(p, HookKind.ON_HOOK, 20.0)
    out = p.ended("remote hangup", None, 21.0, call="A")
    assert out[0] == StopRing() and p.state is State.IDLE
