"""One port's call state machine, sans-IO (DESIGN.md "How a sans-IO core meets asyncio").

Inputs carry the board's clock `now` (seconds): hook events, DTMF digit edges from the media
detector, and what the SIP side (or the local intercom) reports about the port's one call. Each
input returns a list of actions (dataclasses below) that the app executes; `get_timer()` /
`handle_timer(now)` run the timeouts. No call features here (waiting, transfer, ...): a port has at
most one call, and a second one is refused busy (486). Dial-side features (star codes, forwarding,
do not disturb, anonymous calls, warm line, speed dial, redial, call return, restriction classes) are
decided by `firmware.line.features`; this machine only asks it at a few hooks.

Tones follow the country's table (dsp.tone_table, ITU-T E.180 / Telcordia GR-506 for NANP): dial
tone on off-hook, ringback on 180 without early media, busy on 486/600 (the SIP side of ISUP cause 17
"user busy", RFC 3398), SIT for 404/410/484 where the country has one (ANSI T1.209), reorder
(congestion) for other failures, a dialling timeout or a barred/unknown number, and after the
permanent-signal timeouts the receiver-off-hook howler (GR-506 ROH tone), then silence until on-hook.
While the mailbox has messages (`mwi`) dial tone is stutter dial tone, and the phone's lamp is set by
on-hook VMWI data whenever the port is idle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from firmware.line import features as feat
from firmware.line.dialplan import Decision, Dial, DialPlan, DigitCollector, NoMatch, Timeout
from hal.events import Feed, HookEvent, HookKind


class State(StrEnum):
    IDLE = "idle"
    DIALTONE = "dialtone"
    COLLECTING = "collecting"
    CALLING = "calling"
    RINGING = "ringing"
    CONNECTED = "connected"
    DISCONNECT = "disconnect"
    """Far end hung up; loop current is open for `disconnect_s` (the phone or modem releases)."""
    TONE = "tone"
    """A failure or disconnect tone (busy, reorder, SIT) plays until the phone is hung up."""
    HOWLER = "howler"
    LOCKOUT = "lockout"
    """Permanent signal: silence until on-hook (the line is parked after the ROH tone)."""


# -- actions ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlayTone:
    name: str
    """A tone name of dsp.tones (dial, ringback, busy, congestion, sit_..., howler)."""


@dataclass(frozen=True)
class StopTone:
    pass


@dataclass(frozen=True)
class Ring:
    caller_number: str
    caller_name: str | None
    private: bool = False
    """The caller withheld their identity: caller ID sends absence 'P' (GR-30-CORE), not 'O'."""
    cadence: str | None = None
    """A dsp.tones.ring_cadence name for this call (distinctive ring); None: the port's own."""


@dataclass(frozen=True)
class StopRing:
    pass


@dataclass(frozen=True)
class PlaceCall:
    number: str
    anonymous: bool = False
    """Withhold our identity for this call (RFC 3323 privacy, *67 or the port's setting)."""


@dataclass(frozen=True)
class Answer:
    pass


@dataclass(frozen=True)
class Hangup:
    """End the port's call (BYE, or CANCEL while it is still ringing at the far end)."""


@dataclass(frozen=True)
class Reject:
    call_id: str
    status: int


@dataclass(frozen=True)
class Forward:
    """Redirect an offered call to `target` (302 Moved Temporarily, RFC 3261 §21.3.3)."""

    call_id: str
    target: str


@dataclass(frozen=True)
class SaveFeatures:
    """The user changed the port's programmed features from the phone: persist this state."""

    state: feat.FeatureState


@dataclass(frozen=True)
class ConnectMedia:
    pass


@dataclass(frozen=True)
class DisconnectMedia:
    pass


@dataclass(frozen=True)
class SetFeed:
    feed: Feed


@dataclass(frozen=True)
class SetPolarity:
    """Loop polarity: reversed while a call is answered (answer supervision), normal after it."""

    reversed: bool


@dataclass(frozen=True)
class SendVmwi:
    """Send the on-hook message-waiting data that turns the phone's lamp on or off (GR-1401)."""

    active: bool


@dataclass(frozen=True)
class CallOver:
    """A call of this port ended: what the call history needs (times on the port's clock)."""

    direction: Literal["in", "out"]
    remote: str
    start: float
    answer: float | None
    end: float
    cause: str


Action = (PlayTone | StopTone | Ring | StopRing | PlaceCall | Answer | Hangup | Reject | Forward
          | SaveFeatures | ConnectMedia | DisconnectMedia | SetFeed | SetPolarity | SendVmwi | CallOver)


@dataclass(frozen=True)
class PortTiming:
    """Permanent-signal timeouts in seconds (LSSGR permanent-signal treatment); the first-digit and
    interdigit timers are the dial plan's."""

    reorder: float = 45.0
    """A failure tone this long -> howler."""
    howler: float = 60.0
    """Howler this long -> lockout (silence)."""
    disconnect_feed: float | None = 0.8
    """After a far-end hang-up, open the loop this long (None: keep the feed, just play reorder)."""


BUSY_STATUSES = frozenset({486, 600})
SIT_BY_STATUS = {404: "sit_vacant_code", 410: "sit_intercept", 484: "sit_ineffective_other"}


@dataclass
class _Call:
    direction: Literal["in", "out"]
    remote: str
    start: float
    answer: float | None = None
    id: str = ""
    """The network's handle of an incoming call (for a redirect on no answer)."""


@dataclass
class PortLine:
    """The call state machine of port `port` (see the module docstring)."""

    port: int
    plan: DialPlan
    tones: frozenset[str]
    """Tone names the country has: SIT is used only where it exists."""
    timing: PortTiming = field(default_factory=PortTiming)
    hotline: str = ""
    """Number dialled the moment the phone goes off hook (no dial tone); empty: dial tone as usual."""
    polarity_reversal: bool = False
    """Reverse the loop on answer and restore it when the call ends, either way (the battery reversal
    answer/disconnect supervision of payphones and call meters)."""
    message_waiting: bool = False
    """The mailbox has new messages: stutter dial tone (GR-506) and the phone's lamp on."""
    features: feat.Features | None = None
    """Dial-side features; None: a plain line (dial plan only)."""
    state: State = State.IDLE
    _call: _Call | None = None
    _purpose: feat.Purpose | None = None
    """A star code asked for a number: what the digits being collected are for."""
    _warm: float | None = None
    """Warm line: when the configured number is dialled if no key comes first."""
    _collector: DigitCollector | None = None
    _deadline: float | None = None
    _tone: str | None = None
    _media: bool = False
    _reversed: bool = False
    _lamp: bool = False
    """What the phone's message-waiting lamp was last told."""

    @property
    def tone(self) -> str | None:
        """The call-progress tone call control is playing, if any (a diagnostic test tone that
        borrows the line restores it)."""
        return self._tone

    # -- inputs: the phone ----------------------------------------------------------------------
    def hook(self, event: HookEvent, now: float) -> list[Action]:
        if event.kind is HookKind.ON_HOOK:
            return self._on_hook(now)
        if event.kind is HookKind.OFF_HOOK:
            return self._off_hook(now)
        if event.kind is HookKind.DIGIT and event.digit is not None:
            return self._digit(event.digit, now)
        return []  # a flash has no meaning without call features

    def dtmf(self, digit: str, start: bool, now: float) -> list[Action]:
        """A DTMF key edge from the detector; digits count on their leading edge."""
        return self._digit(digit, now) if start else []

    # -- inputs: the network side ----------------------------------------------------------------
    def incoming(self, call_id: str, caller_number: str, caller_name: str | None,
                 now: float, *, private: bool = False, cadence: str | None = None) -> list[Action]:
        """A call for this port: forwarded or declined if the features say so, else ring when idle,
        else refuse it busy (no call waiting); a forward-on-no-answer timer runs while it rings."""
        f = self.features
        offer = f.incoming(caller_number, private, self.state is not State.IDLE) if f else None
        if isinstance(offer, feat.Redirect):
            return [Forward(call_id, offer.target)]
        if isinstance(offer, feat.Decline):
            return [Reject(call_id, offer.status)]
        if self.state is not State.IDLE:
            return [Reject(call_id, 486)]
        self._call = _Call("in", caller_number, now, id=call_id)
        self.state = State.RINGING
        if f is not None and f.no_answer_target() is not None:
            self._deadline = now + f.config.forward_no_answer_s
        return [Ring(caller_number, caller_name, private, cadence)]

    def progress(self, status: int, early_media: bool, now: float) -> list[Action]:
        """A provisional answer to our call: 183 with media plays the far end's audio, 180 ringback."""
        if self.state is not State.CALLING:
            return []
        if early_media:
            return self._stop_tone() + self._connect()
        if status == 180 and not self._media:
            return self._play("ringback")
        return []

    def answered(self, now: float) -> list[Action]:
        if self.state is not State.CALLING or self._call is None:
            return []
        self._call.answer = now
        self.state = State.CONNECTED
        return self._stop_tone() + self._connect() + self._reverse(True)

    def ended(self, reason: str, status: int | None, now: float) -> list[Action]:
        """The call ended from the network side (BYE, CANCEL, a final failure)."""
        call, state = self._call, self.state
        if call is None:
            return []
        self._call = None
        if state is State.RINGING:
            self.state = State.IDLE
            self._deadline = None
            return [StopRing(), self._over(call, reason, now), *self._update_lamp()]
        acts: list[Action] = [*self._disconnect(), *self._reverse(False), self._over(call, reason, now)]
        if state is State.CONNECTED and self.timing.disconnect_feed is not None:
            self.state = State.DISCONNECT
            self._deadline = now + self.timing.disconnect_feed
            return acts + self._stop_tone() + [SetFeed(Feed.OPEN)]
        if state is State.CONNECTED:
            return acts + self._fail("congestion", now)
        if status in BUSY_STATUSES:
            return acts + self._fail("busy", now)
        sit = SIT_BY_STATUS.get(status or 0)
        if sit is not None:
            name = sit if sit in self.tones else "sit" if "sit" in self.tones else "congestion"
            return acts + self._fail(name, now)
        return acts + self._fail("congestion", now)

    def mwi(self, waiting: bool, now: float) -> list[Action]:
        """The mailbox's state (RFC 3842 message-summary): the lamp follows at once if the phone is
        idle on-hook, else when it next is (VMWI data is on-hook data, GR-30-CORE)."""
        self.message_waiting = waiting
        return self._update_lamp()

    # -- timers ----------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        timers = [t for t in (self._deadline, self._warm,
                              self._collector.get_timer() if self._collector else None) if t is not None]
        return min(timers) if timers else None

    def handle_timer(self, now: float) -> list[Action]:
        if self._warm is not None and self._warm <= now and self.features is not None:
            self._warm = None  # no key in time: the warm line's number, like a hotline
            self._collector = None
            return self._stop_tone() + self._star(self.features.call(self.features.config.warm_line), now)
        if self._collector is not None and (t := self._collector.get_timer()) is not None and t <= now:
            return self._outcome(self._collector.handle_timer(now), now)
        if self._deadline is None or now < self._deadline:
            return []
        self._deadline = None
        if self.state is State.DISCONNECT:
            return [SetFeed(Feed.ACTIVE), *self._fail("congestion", now)]
        if self.state is State.TONE:
            self.state = State.HOWLER
            self._deadline = now + self.timing.howler
            return self._play("howler")
        if self.state is State.HOWLER:
            self.state = State.LOCKOUT
            return self._stop_tone()
        if self.state is State.RINGING and self._call is not None and self.features is not None:
            target = self.features.no_answer_target()
            if target is None:  # switched off while it rang: the caller gives up in their own time
                return []
            call, self._call = self._call, None
            self.state = State.IDLE
            return [StopRing(), Forward(call.id, target), self._over(call, "forwarded on no answer", now),
                    *self._update_lamp()]
        return []

    # -- transitions -----------------------------------------------------------------------------
    def _off_hook(self, now: float) -> list[Action]:
        if self.state is State.RINGING and self._call is not None:
            self._call.answer = now
            self._deadline = None
            self.state = State.CONNECTED
            return [StopRing(), Answer(), *self._connect(), *self._reverse(True)]
        if self.state is not State.IDLE:
            return []
        if self.hotline:
            self.state = State.CALLING
            self._call = _Call("out", self.hotline, now)
            return [PlaceCall(self.hotline)]
        self.state = State.DIALTONE
        self._collector = self.plan.collector(now)  # its first-digit timer runs from now
        f = self.features
        if f is not None and f.config.warm_line:
            self._warm = now + f.config.warm_line_s
        # special (stutter) dial tone: messages wait, or calls are being forwarded (a reminder)
        special = self.message_waiting or (f is not None and f.forwarding)
        return self._play("stutter_dial" if special else "dial")

    def _on_hook(self, now: float) -> list[Action]:
        acts: list[Action] = self._stop_tone()
        call, state = self._call, self.state
        if call is not None and state in (State.CALLING, State.CONNECTED):
            acts += [Hangup(), *self._disconnect(), *self._reverse(False),
                     self._over(call, "local hangup", now)]
        if state is State.DISCONNECT:
            acts.append(SetFeed(Feed.ACTIVE))
        if state is State.RINGING:
            return acts  # on-hook while ringing is where it already was
        self.state = State.IDLE
        self._call = self._collector = None
        self._deadline = self._warm = self._purpose = None
        return acts + self._update_lamp()

    def _digit(self, digit: str, now: float) -> list[Action]:
        if self._collector is None or self.state not in (State.DIALTONE, State.COLLECTING):
            return []  # in a call, digits travel as RFC 4733 events; elsewhere they mean nothing
        acts = self._stop_tone() if self.state is State.DIALTONE else []
        self.state = State.COLLECTING
        self._warm = None
        if self.features is not None and self._purpose is None:
            f, before = self.features, self._collector.digits
            speed = f.speed_number(before) if digit == "#" and len(before) == 1 else None
            result = f.call(speed) if speed else f.star_code(before + digit)
            if result is not None:
                self._collector = None
                return acts + self._star(result, now)
        return acts + self._outcome(self._collector.digit(digit, now), now)

    def _outcome(self, result: Decision | None, now: float) -> list[Action]:
        if result is None:
            return []
        self._collector = None
        purpose, self._purpose = self._purpose, None
        f = self.features
        if f is not None:
            if isinstance(result, Dial):
                number = result.number
                return self._star(f.collected(purpose, number) if purpose else f.call(number), now)
            keys = result.digits if isinstance(result, Timeout | NoMatch) else ""
            speed = f.speed_number(keys) if purpose is None and len(keys) == 1 else None
            if speed:
                return self._star(f.call(speed), now)
        if isinstance(result, Dial):
            self.state = State.CALLING
            self._call = _Call("out", result.number, now)
            return [PlaceCall(result.number)]
        return self._stop_tone() + self._fail("congestion", now)  # barred, no match, timeout: reorder

    def _star(self, result: feat.StarResult, now: float) -> list[Action]:
        """Carry out what a star code, a collected number or a feature-checked number came to."""
        assert self.features is not None
        if isinstance(result, feat.Collect):  # a second dial tone for the number
            self._purpose = result.purpose
            plan = feat.SPEED_DIAL_PLAN if result.purpose == "speed_dial" else self.plan
            self._collector = plan.collector(now)
            self.state = State.DIALTONE
            return self._play("dial")
        if isinstance(result, feat.CallNumber):
            self.state = State.CALLING
            self._call = _Call("out", result.number, now)
            return [PlaceCall(result.number, result.anonymous)]
        if isinstance(result, feat.Confirm):
            saved = feat.FeatureState.from_json(self.features.state.to_json())
            return [SaveFeatures(saved), *self._fail("confirmation", now)]
        return self._stop_tone() + self._fail("congestion", now)  # refused: reorder

    def _fail(self, tone: str, now: float) -> list[Action]:
        self.state = State.TONE
        self._deadline = now + self.timing.reorder
        return self._play(tone)

    def _play(self, name: str) -> list[Action]:
        self._tone = name
        return [PlayTone(name)]

    def _stop_tone(self) -> list[Action]:
        if self._tone is None:
            return []
        self._tone = None
        return [StopTone()]

    def _connect(self) -> list[Action]:
        if self._media:
            return []
        self._media = True
        return [ConnectMedia()]

    def _disconnect(self) -> list[Action]:
        if not self._media:
            return []
        self._media = False
        return [DisconnectMedia()]

    def _update_lamp(self) -> list[Action]:
        if self.state is not State.IDLE or self._lamp == self.message_waiting:
            return []
        self._lamp = self.message_waiting
        return [SendVmwi(self._lamp)]

    def _reverse(self, reversed_: bool) -> list[Action]:
        if not self.polarity_reversal or self._reversed == reversed_:
            return []
        self._reversed = reversed_
        return [SetPolarity(reversed_)]

    def _over(self, call: _Call, cause: str, now: float) -> CallOver:
        return CallOver(call.direction, call.remote, call.start, call.answer, now, cause)
