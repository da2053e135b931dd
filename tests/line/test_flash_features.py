"""Hook-flash features (call waiting, hold/consultation) and dial-side features (forwarding, DND, star
codes) on one port, sans-IO with invented times: where the two meet, which one decides."""

from __future__ import annotations

from firmware.line.dialplan import DialPlan
from firmware.line.features import FeatureConfig, Features, FeatureState
from firmware.line.port import (
    CallWaitingAlert,
    FlashFeatures,
    Forward,
    Hold,
    PlaceCall,
    PortLine,
    Reject,
    Ring,
    State,
)
from hal.events import HookEvent, HookKind
from tests.line.test_port import US_TONES, dial, off, on

PLAN = "(*xx|[2-9]11|[1-9]xx|[2-9]xx[2-9]xxxxxx|1[2-9]xx[2-9]xxxxxx|011x.)"


def line(state: FeatureState | None = None, flash: FlashFeatures | None = None) -> PortLine:
    return PortLine(0, DialPlan.parse(PLAN, short_s=3.0), US_TONES,
                    flash=flash or FlashFeatures(call_waiting=True, three_way=True, transfer=True),
                    features=Features(FeatureConfig(), state or FeatureState()))


def talking(p: PortLine) -> None:
    """An incoming call "c1", answered."""
    assert isinstance(p.incoming("c1", "300", None, 0.0)[0], Ring)
    off(p, 1.0)
    assert p.state is State.CONNECTED


def test_call_waiting_goes_before_forward_on_busy() -> None:
    """A second call waits (the port is not busy to it); a third, which would get 486, is forwarded."""
    p = line(FeatureState(forward_busy="200"))
    talking(p)
    assert p.incoming("c2", "301", None, 2.0) == [CallWaitingAlert("c2")]
    assert p.incoming("c3", "302", None, 3.0) == [Forward("c3", "200")]


def test_forward_on_busy_without_call_waiting() -> None:
    p = line(FeatureState(forward_busy="200"), FlashFeatures())
    talking(p)
    assert p.incoming("c2", "301", None, 2.0) == [Forward("c2", "200")]
    q = line(flash=FlashFeatures())
    talking(q)
    assert q.incoming("c2", "301", None, 2.0) == [Reject("c2", 486)]


def test_do_not_disturb_refuses_a_would_be_waiting_call() -> None:
    p = line()
    talking(p)
    assert p.features is not None
    p.features.state = FeatureState(dnd=True)
    assert p.incoming("c2", "301", None, 2.0) == [Reject("c2", 480)]


def test_star_67_works_on_the_consultation_dial_tone() -> None:
    """Flash holds the call; *67 and a number on the recall dial tone place an anonymous second call
    under a key of its own."""
    p = line()
    talking(p)
    acts = list(p.hook(HookEvent(0, HookKind.FLASH, 5.0), 5.0))
    assert Hold("c1") in acts and p.state is State.DIALTONE
    dial(p, "*67", 6.0)
    placed = dial(p, "2125551234#", 8.0)[-1]
    assert placed == PlaceCall("2125551234", anonymous=True)
    assert isinstance(placed, PlaceCall) and placed.call == "0:1"
    assert p.state is State.CALLING


def test_the_recall_ring_of_a_held_call_is_not_forwarded_on_no_answer() -> None:
    """Hanging up with a call on hold rings the phone again for it: that call was answered already,
    so forwarding on no answer (for offered calls) does not take it away."""
    p = line(FeatureState(forward_no_answer="200"))
    talking(p)
    p.hook(HookEvent(0, HookKind.FLASH, 5.0), 5.0)
    acts = on(p, 6.0)
    assert any(isinstance(a, Ring) for a in acts) and p.state is State.RINGING
    assert p.get_timer() is None
