"""Dial-side features through the port state machine, sans-IO with invented times: star codes,
forwarding, do not disturb, anonymous calls, warm line, speed dial, redial, call return, restriction
classes."""

from __future__ import annotations

import pytest

from firmware.line.dialplan import DialPlan
from firmware.line.features import (
    DEFAULT_STAR_CODES,
    FeatureConfig,
    Features,
    FeatureState,
    RestrictionClass,
)
from firmware.line.port import (
    CallOver,
    Forward,
    PlaceCall,
    PlayTone,
    PortLine,
    Reject,
    Ring,
    SaveFeatures,
    State,
    StopRing,
    StopTone,
)
from hal.events import HookEvent, HookKind
from tests.line.test_port import US_TONES, dial, off, on, run_timers

PLAN = "(*xx|[2-9]11|[1-9]xx|[2-9]xx[2-9]xxxxxx|1[2-9]xx[2-9]xxxxxx|011x.)"
INTERNATIONAL = RestrictionClass("international", DialPlan.parse("(011x.)"))
PREMIUM = RestrictionClass("premium", DialPlan.parse("(1900xxxxxxx|1976xxxxxxx)"))


def line(config: FeatureConfig | None = None, state: FeatureState | None = None) -> PortLine:
    return PortLine(0, DialPlan.parse(PLAN, short_s=3.0), US_TONES,
                    features=Features(config or FeatureConfig(), state or FeatureState()))


def feats(p: PortLine) -> Features:
    assert p.features is not None
    return p.features


def star(p: PortLine, code: str, then: str = "", t: float = 0.0) -> list[object]:
    """Off hook, the star code, then (after the second dial tone) `then` and # to send."""
    off(p, t)
    actions = dial(p, code, t + 1.0)
    if then:
        actions += dial(p, then + "#", t + 3.0)
    return actions


def saved(p: PortLine) -> SaveFeatures:
    return SaveFeatures(FeatureState.from_json(feats(p).state.to_json()))


def test_default_codes_are_the_nanp_vertical_service_codes() -> None:
    assert DEFAULT_STAR_CODES["forward_always_on"] == "*72" and DEFAULT_STAR_CODES["dnd_on"] == "*78"
    assert DEFAULT_STAR_CODES["anonymous_call"] == "*67" and DEFAULT_STAR_CODES["call_return"] == "*69"


def test_forward_always_by_star_code_then_302_and_stutter_reminder() -> None:
    p = line()
    actions = star(p, "*72")
    assert actions[-1] == PlayTone("dial"), "a second dial tone asks for the target"
    assert p.state is State.DIALTONE
    actions = dial(p, "2125551234#", 3.0)
    assert actions[-2:] == [saved(p), PlayTone("confirmation")]
    assert feats(p).state.forward_always == "2125551234"
    on(p, 5.0)
    assert p.incoming("c1", "2125550000", None, 6.0) == [Forward("c1", "2125551234")]
    assert p.state is State.IDLE, "a forwarded call does not ring"
    assert off(p, 7.0) == [PlayTone("stutter_dial")], "special dial tone while forwarding is on"
    on(p, 8.0)
    assert star(p, "*73", t=9.0)[-1] == PlayTone("confirmation")
    assert feats(p).state.forward_always == ""
    on(p, 11.0)
    assert p.incoming("c2", "2125550000", None, 12.0) == [Ring("2125550000", None, False, None)]


def test_forward_busy_only_while_the_port_is_in_use() -> None:
    p = line(state=FeatureState(forward_busy="200"))
    assert p.incoming("c1", "300", None, 0.0)[0] == Ring("300", None, False, None)
    assert p.incoming("c2", "301", None, 1.0) == [Forward("c2", "200")]


def test_busy_without_forwarding_is_still_486() -> None:
    p = line()
    p.incoming("c1", "300", None, 0.0)
    assert p.incoming("c2", "301", None, 1.0) == [Reject("c2", 486)]


def test_forward_no_answer_after_the_configured_seconds() -> None:
    p = line(FeatureConfig(forward_no_answer_s=12.0), FeatureState(forward_no_answer="200"))
    assert p.incoming("c1", "300", None, 10.0) == [Ring("300", None, False, None)]
    assert p.get_timer() == pytest.approx(22.0)
    fired = run_timers(p, 30.0)
    assert [a for _, a in fired] == [StopRing(), Forward("c1", "200"),
                                     CallOver("in", "300", 10.0, None, 22.0, "forwarded on no answer")]
    assert p.state is State.IDLE and p.get_timer() is None


def test_answering_in_time_stops_the_no_answer_timer() -> None:
    p = line(state=FeatureState(forward_no_answer="200"))
    p.incoming("c1", "300", None, 0.0)
    off(p, 5.0)
    assert p.state is State.CONNECTED and p.get_timer() is None


def test_dnd_declines_480_and_the_phone_does_not_ring() -> None:
    p = line()
    assert star(p, "*78")[-1] == PlayTone("confirmation")
    on(p, 2.0)
    assert p.incoming("c1", "300", None, 3.0) == [Reject("c1", 480)]
    assert p.state is State.IDLE
    star(p, "*79", t=4.0)
    on(p, 6.0)
    assert isinstance(p.incoming("c2", "300", None, 7.0)[0], Ring)


def test_forward_always_wins_over_dnd() -> None:
    p = line(state=FeatureState(dnd=True, forward_always="200"))
    assert p.incoming("c1", "300", None, 0.0) == [Forward("c1", "200")]


def test_a_disabled_feature_gives_reorder_and_its_config_state_is_ignored() -> None:
    p = line(FeatureConfig(disabled=frozenset({"dnd"})), FeatureState(dnd=True))
    assert isinstance(p.incoming("c1", "300", None, 0.0)[0], Ring)
    p.ended("cancel", None, 1.0)
    assert star(p, "*78", t=2.0)[-1] == PlayTone("congestion")
    assert p.state is State.TONE


def test_an_account_star_code_sends_the_next_call_out_on_that_account() -> None:
    """*81 then a number: the call goes out on the port's first extra account (dial tone again between,
    as after *67); the call after it is back on the port's own account; a barred number stays barred."""
    p = line(FeatureConfig(account_codes={"*81": 1, "*83": 2}, restrictions=(INTERNATIONAL,)))
    off(p, 0.0)
    assert dial(p, "*81", 1.0)[-1] == PlayTone("dial")
    assert p.state is State.DIALTONE
    assert dial(p, "2125551234", 2.0)[-1] == PlaceCall("2125551234", account=1)
    on(p, 10.0)
    assert star(p, "*83", "101", t=11.0)[-1] == PlaceCall("101", account=2)
    on(p, 20.0)
    off(p, 21.0)
    assert dial(p, "2125551234", 22.0)[-1] == PlaceCall("2125551234", account=0)
    on(p, 30.0)
    assert star(p, "*81", "011441234567", t=31.0)[-1] == PlayTone("congestion")
    assert feats(p).last_dialled == "2125551234"
    on(p, 40.0)
    assert star(p, "*66", t=41.0)[-1] == PlaceCall("2125551234", account=0), "redial: own account"


def test_star_67_makes_one_call_anonymous_and_82_shows_one() -> None:
    p = line()
    assert star(p, "*67", "2125551234")[-1] == PlaceCall("2125551234", anonymous=True)
    on(p, 10.0)
    assert off(p, 11.0) == [PlayTone("dial")]
    assert dial(p, "2125551234", 12.0)[-1] == PlaceCall("2125551234", anonymous=False)
    q = line(FeatureConfig(anonymous=True))
    off(q, 0.0)
    assert dial(q, "2125551234", 1.0)[-1] == PlaceCall("2125551234", anonymous=True), "port-wide"
    on(q, 5.0)
    assert star(q, "*82", "2125551234", t=6.0)[-1] == PlaceCall("2125551234", anonymous=False)


def test_redial_and_call_return() -> None:
    p = line()
    assert star(p, "*66")[-1] == PlayTone("congestion"), "nothing dialled yet"
    on(p, 2.0)
    off(p, 3.0)
    dial(p, "2125551234", 4.0)
    on(p, 8.0)
    assert star(p, "*66", t=9.0)[-1] == PlaceCall("2125551234")
    on(p, 12.0)
    p.incoming("c1", "3125550000", "Bob", 13.0)
    p.ended("cancel", None, 14.0)
    assert star(p, "*69", t=15.0)[-1] == PlaceCall("3125550000")


def test_call_return_does_not_reveal_a_private_caller() -> None:
    p = line()
    p.incoming("c1", "", None, 0.0, private=True)
    p.ended("cancel", None, 1.0)
    assert star(p, "*69", t=2.0)[-1] == PlayTone("congestion")
    assert feats(p).last_caller == ""


def test_speed_dial_programmed_by_star_74_then_digit_hash() -> None:
    p = line()
    actions = star(p, "*74", "35551234")
    assert actions[-2:] == [saved(p), PlayTone("confirmation")]
    assert feats(p).state.speed_dial == {"3": "5551234"}
    on(p, 8.0)
    off(p, 9.0)
    assert dial(p, "3#", 10.0)[-1] == PlaceCall("5551234")


def test_speed_dial_slot_alone_dials_after_the_timeout() -> None:
    p = PortLine(0, DialPlan.parse("(5xx)", long_s=4.0), US_TONES,
                 features=Features(state=FeatureState(speed_dial={"5": "2125550000"})))
    off(p, 0.0)
    assert dial(p, "5", 1.0) == [StopTone()]
    assert [a for _, a in run_timers(p, 20.0)] == [PlaceCall("2125550000")]


def test_restriction_class_refuses_locally_with_reorder() -> None:
    p = line(FeatureConfig(restrictions=(INTERNATIONAL, PREMIUM)))
    off(p, 0.0)
    actions = dial(p, "011441234567", 1.0) + [a for _, a in run_timers(p, 30.0)]
    assert not any(isinstance(a, PlaceCall) for a in actions)
    assert p.state is State.TONE
    on(p, 40.0)
    off(p, 41.0)
    assert dial(p, "19005551234", 42.0)[-1] == PlayTone("congestion"), "premium barred at once"
    on(p, 50.0)
    off(p, 51.0)
    assert dial(p, "2125551234", 52.0)[-1] == PlaceCall("2125551234"), "ordinary numbers pass"


def test_restrictions_cover_speed_dial_redial_and_forward_targets() -> None:
    p = line(FeatureConfig(restrictions=(PREMIUM,)), FeatureState(speed_dial={"2": "19005551234"}))
    off(p, 0.0)
    assert dial(p, "2#", 1.0)[-1] == PlayTone("congestion")
    on(p, 3.0)
    assert star(p, "*72", "19005551234", t=4.0)[-1] == PlayTone("congestion")
    assert feats(p).state.forward_always == "", "no forwarding around a restriction"


def test_warm_line_dials_when_no_key_comes_in_time() -> None:
    p = line(FeatureConfig(warm_line="911", warm_line_s=5.0))
    assert off(p, 0.0) == [PlayTone("dial")]
    assert p.get_timer() == pytest.approx(5.0)
    assert [a for _, a in run_timers(p, 6.0)] == [StopTone(), PlaceCall("911")]
    on(p, 7.0)
    off(p, 8.0)
    assert dial(p, "411", 9.0) == [StopTone()], "a key in time stops the warm line"
    assert [a for _, a in run_timers(p, 20.0)] == [PlaceCall("411")], "and dials as usual"


def test_feature_state_from_a_foreign_store_keeps_only_valid_values() -> None:
    state = FeatureState.from_json({"forward_always": 12, "dnd": True, "speed_dial": {"2": "55", "0": "1"},
                                    "extra": "x"})
    assert state == FeatureState(dnd=True, speed_dial={"2": "55"})


def test_pulse_dialled_star_codes_are_impossible_but_hook_digits_still_work() -> None:
    """Rotary phones have no * key: they still dial ordinary numbers through the features hooks."""
    p = line()
    off(p, 0.0)
    acts = []
    for i, d in enumerate("411"):
        acts += p.hook(HookEvent(0, HookKind.DIGIT, 1.0 + i, digit=d), 1.0 + i)
    assert [a for _, a in run_timers(p, 20.0)] == [PlaceCall("411")]
