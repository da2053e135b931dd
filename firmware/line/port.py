"""One port's call state machine, sans-IO (DESIGN.md "How a sans-IO core meets asyncio").

Inputs carry the board's clock `now` (seconds): hook events, DTMF digit edges from the media
detector, and what the SIP side (or the local intercom) reports about the port's one call. Each
input returns a list of actions (dataclasses below) that the app executes; `get_timer()` /
`handle_timer(now)` run the timeouts. A port holds at most two calls: the active one (`_call`) and
another (`_other`) that is on hold or waiting; the hook-flash features (call waiting, hold with
consultation, three-way conference, blind and attended transfer, each switchable) move calls between
the two slots, following the Bellcore/Telcordia flows that docs/call-features.md tabulates. Actions
that concern one call name it by `call`, the key the port gave it (the Call-ID of an incoming call,
`<port>:<n>` for one we place). Dial-side features (star codes, forwarding, do not disturb,
anonymous calls, warm line, speed dial, redial, call return, restriction classes) are decided by
`firmware.line.features`; this machine only asks it at a few hooks.

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

from dsp.callerid import CAS_ACK_DIGITS
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
    HELD = "held"
    """Off hook with no active call while another is held or waiting: flash takes it, on-hook rings it."""
    CONFERENCE = "conference"
    """Three-way: both calls active and mixed locally."""


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
    call: str = field(default="", compare=False)


@dataclass(frozen=True)
class StopRing:
    pass


@dataclass(frozen=True)
class CallWaitingAlert:
    """A second call arrived during a call: subscriber alerting signal and CAS, then, once the phone
    acknowledges the CAS, `SendCallerId` (off-hook type II caller ID, GR-30-CORE / SR-TSV-002476)."""

    call: str


@dataclass(frozen=True)
class SendCallerId:
    """Off-hook (type II) caller ID of the waiting call, sent after the phone's CAS acknowledgement."""

    caller_number: str
    caller_name: str | None
    private: bool = False


@dataclass(frozen=True)
class PlaceCall:
    number: str
    anonymous: bool = False
    """Withhold our identity for this call (RFC 3323 privacy, *67 or the port's setting)."""
    account: int = 0
    """The port's extra account chosen by its star code (1 = the first); 0: the app picks by prefix."""
    call: str = field(default="", compare=False)
    """The key the port gives this call (its actions and inputs name it)."""


@dataclass(frozen=True)
class Answer:
    call: str = field(default="", compare=False)


@dataclass(frozen=True)
class Hangup:
    """End the port's call (BYE, or CANCEL while it is still ringing at the far end)."""

    call: str = field(default="", compare=False)


@dataclass(frozen=True)
class Hold:
    """Put a call on hold (re-INVITE a=sendonly, RFC 3264 §8.4; a local call just stops its media)."""

    call: str


@dataclass(frozen=True)
class Resume:
    """Take a held call off hold (re-INVITE a=sendrecv)."""

    call: str


@dataclass(frozen=True)
class Transfer:
    """Hand the held call `held` over to the party of `target`: blind (REFER with Refer-To the dialled
    number, RFC 3515) while `target` is still ringing, which is then cancelled; attended (REFER with
    Refer-To carrying Replaces of `target`'s dialog, RFC 3891) once it answered. The port has already
    let go of both calls; the gateway ends them once the transfer reports its outcome."""

    held: str
    target: str
    number: str
    attended: bool


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
    """Connect this call's audio to the phone; two connected calls are a conference (mixed)."""

    call: str = field(default="", compare=False)


@dataclass(frozen=True)
class DisconnectMedia:
    call: str = field(default="", compare=False)


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
    call: str = field(default="", compare=False)


Action = (PlayTone | StopTone | Ring | StopRing | PlaceCall | Answer | Hangup | Reject | Forward
          | SaveFeatures | ConnectMedia | DisconnectMedia | SetFeed | SetPolarity | SendVmwi | CallOver
          | CallWaitingAlert | SendCallerId | Hold | Resume | Transfer)


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
    cas_ack: float = 1.0
    """How long after the call-waiting alert a 'D' still counts as the CAS acknowledgement: SAS
    300 ms + CAS 80 ms + the phone's 160 ms (SR-TSV-002476), plus the audio path's and the DTMF
    detector's latency (measured 0.45-0.5 s in all on the simulator)."""


@dataclass(frozen=True)
class FlashFeatures:
    """The hook-flash features a port offers (config `[[ports]]` call_waiting, three_way, transfer);
    the dial-side ones (star codes, forwarding...) are `firmware.line.features.Features`."""

    call_waiting: bool = False
    three_way: bool = False
    """Flash holds the call and gives recall dial tone; a second flash after the consultation
    answered joins all three."""
    transfer: bool = False
    """Hanging up during a consultation transfers the held party (blind before answer, attended
    after); needs three_way for the consultation itself."""


BUSY_STATUSES = frozenset({486, 600})
SIT_BY_STATUS = {404: "sit_vacant_code", 410: "sit_intercept", 484: "sit_ineffective_other"}


@dataclass
class _Call:
    direction: Literal["in", "out"]
    remote: str
    start: float
    answer: float | None = None
    key: str = ""
    name: str | None = None
    private: bool = False
    held: bool = False


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
    flash: FlashFeatures = field(default_factory=FlashFeatures)
    """Hook-flash features (call waiting, three-way, transfer)."""
    features: feat.Features | None = None
    """Dial-side features; None: a plain line (dial plan only)."""
    state: State = State.IDLE
    _call: _Call | None = None
    """The active call (talking, being placed, or ringing the phone)."""
    _other: _Call | None = None
    """The second call: held, or waiting (call waiting, not yet answered)."""
    _pair: Literal["waiting", "consult"] | None = None
    """How the two calls came about: a waiting call (flash swaps) or a consultation (flash joins)."""
    _seq: int = 0
    _cas_until: float | None = None
    _purpose: feat.Purpose | None = None
    """A star code asked for a number: what the digits being collected are for."""
    _account: int = 0
    """With the purpose "account": the extra account the number goes out on (set with `_purpose`)."""
    _warm: float | None = None
    """Warm line: when the configured number is dialled if no key comes first."""
    _collector: DigitCollector | None = None
    _deadline: float | None = None
    _tone: str | None = None
    _media: set[str] = field(default_factory=set)
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
        if event.kind is HookKind.FLASH:
            return self._flash(now)
        return []

    def dtmf(self, digit: str, start: bool, now: float) -> list[Action]:
        """A DTMF key edge from the detector; digits count on their leading edge. A 'D' (or 'A')
        right after the call-waiting CAS is the phone asking for the type II caller ID."""
        if not start:
            return []
        if digit in CAS_ACK_DIGITS and self._cas_until is not None and now <= self._cas_until:
            self._cas_until = None
            waiting = self._other
            if waiting is not None and waiting.answer is None:
                return [SendCallerId(waiting.remote, waiting.name, waiting.private)]
        return self._digit(digit, now)

    # -- inputs: the network side ----------------------------------------------------------------
    def incoming(self, call_id: str, caller_number: str, caller_name: str | None,
                 now: float, *, private: bool = False, cadence: str | None = None) -> list[Action]:
        """A call for this port: forwarded or declined if the features say so, else ring when idle (a
        forward-on-no-answer timer runs while it rings); during a call, alert it as a waiting call when
        call waiting is on and no other call is there yet; else refuse it busy (486). Forward on busy
        applies to a call that would get 486: call waiting goes first, as on a switch."""
        can_wait = self.flash.call_waiting and self.state is State.CONNECTED and self._other is None
        f = self.features
        in_use = self.state is not State.IDLE and not can_wait
        offer = f.incoming(caller_number, private, in_use) if f else None
        if isinstance(offer, feat.Redirect):
            return [Forward(call_id, offer.target)]
        if isinstance(offer, feat.Decline):
            return [Reject(call_id, offer.status)]
        call = _Call("in", caller_number, now, key=call_id, name=caller_name, private=private)
        if self.state is State.IDLE:
            self._call = call
            self.state = State.RINGING
            if f is not None and f.no_answer_target() is not None:
                self._deadline = now + f.config.forward_no_answer_s
            return [Ring(caller_number, caller_name, private, cadence, call=call_id)]
        if can_wait:
            self._other, self._pair = call, "waiting"
            self._cas_until = now + self.timing.cas_ack
            return [CallWaitingAlert(call_id)]
        return [Reject(call_id, 486)]

    def progress(self, status: int, early_media: bool, now: float, call: str = "") -> list[Action]:
        """A provisional answer to our call: 183 with media plays the far end's audio, 180 ringback."""
        active = self._call
        if self.state is not State.CALLING or active is None or call not in ("", active.key):
            return []
        if early_media:
            return self._stop_tone() + self._connect(active.key)
        if status == 180 and not self._media:
            return self._play("ringback")
        return []

    def answered(self, now: float, call: str = "") -> list[Action]:
        active = self._call
        if self.state is not State.CALLING or active is None or call not in ("", active.key):
            return []
        active.answer = now
        self.state = State.CONNECTED
        return self._stop_tone() + self._connect(active.key) + self._reverse(True)

    def ended(self, reason: str, status: int | None, now: float, call: str = "") -> list[Action]:
        """A call ended from the network side (BYE, CANCEL, a final failure); `call` names it ('' is
        the active call)."""
        active, other = self._call, self._other
        if other is not None and call == other.key:
            return self._other_ended(other, reason, now)
        if active is None or call not in ("", active.key):
            return []
        if other is not None:
            return self._active_ended_beside(active, other, reason, status, now)
        state = self.state
        self._call = None
        if state is State.RINGING:
            self.state = State.IDLE
            self._deadline = None
            return [StopRing(), self._over(active, reason, now), *self._update_lamp()]
        acts: list[Action] = [*self._disconnect(active.key), *self._reverse(False),
                              self._over(active, reason, now)]
        if state is State.CONNECTED and self.timing.disconnect_feed is not None:
            self.state = State.DISCONNECT
            self._deadline = now + self.timing.disconnect_feed
            return acts + self._stop_tone() + [SetFeed(Feed.OPEN)]
        if state is State.CONNECTED:
            return acts + self._fail("congestion", now)
        return acts + self._fail(self._failure_tone(status), now)

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
        if self._collector is not None and (t := self._collector.get_timer()) is not None and t <= now:
            return self._outcome(self._collector.handle_timer(now), now)
        if self._warm is not None and self._warm <= now and self.features is not None:
            self._warm = None  # no key in time: the warm line's number, like a hotline
            self._collector = None
            return self._stop_tone() + self._star(self.features.call(self.features.config.warm_line), now)
        if self._deadline is None or now < self._deadline:
            return []
        self._deadline = None
        ringing = self._call
        if (self.state is State.RINGING and ringing is not None and ringing.answer is None
                and self.features is not None):
            target = self.features.no_answer_target()
            if target is None:  # switched off while it rang: the caller gives up in their own time
                return []
            self._call = None
            self.state = State.IDLE
            return [StopRing(), Forward(ringing.key, target),
                    self._over(ringing, "forwarded on no answer", now), *self._update_lamp()]
        if self.state is State.DISCONNECT:
            return [SetFeed(Feed.ACTIVE), *self._fail("congestion", now)]
        if self.state is State.TONE:
            self.state = State.HOWLER
            self._deadline = now + self.timing.howler
            return self._play("howler")
        if self.state is State.HOWLER:
            self.state = State.LOCKOUT
            return self._stop_tone()
        return []

    # -- transitions -----------------------------------------------------------------------------
    def _off_hook(self, now: float) -> list[Action]:
        active = self._call
        if self.state is State.RINGING and active is not None:
            self.state = State.CONNECTED
            self._deadline = None
            if active.held:  # the recall of a call left on hold: take it off hold
                active.held = False
                take: list[Action] = [Resume(active.key)]
            else:
                active.answer = now
                take = [Answer(call=active.key)]
            return [StopRing(), *take, *self._connect(active.key), *self._reverse(True)]
        if self.state is not State.IDLE:
            return []
        if self.hotline:
            return self._place(self.hotline, now)
        self.state = State.DIALTONE
        self._collector = self.plan.collector(now)  # its first-digit timer runs from now
        f = self.features
        if f is not None and f.config.warm_line:
            self._warm = now + f.config.warm_line_s
        # special (stutter) dial tone: messages wait, or calls are being forwarded (a reminder)
        special = self.message_waiting or (f is not None and f.forwarding)
        return self._play("stutter_dial" if special else "dial")

    def _on_hook(self, now: float) -> list[Action]:
        if self._other is not None:
            return self._on_hook_beside(self._other, now)
        acts: list[Action] = self._stop_tone()
        call, state = self._call, self.state
        if call is not None and state in (State.CALLING, State.CONNECTED):
            acts += [Hangup(call=call.key), *self._disconnect(call.key), *self._reverse(False),
                     self._over(call, "local hangup", now)]
        if state is State.DISCONNECT:
            acts.append(SetFeed(Feed.ACTIVE))
        if state is State.RINGING:
            return acts  # on-hook while ringing is where it already was
        self._reset()
        return acts + self._update_lamp()

    def _on_hook_beside(self, other: _Call, now: float) -> list[Action]:
        """Hang-up with two calls: a conference ends; a consultation transfers when transfer is on;
        otherwise the active call ends and the phone rings again for the other one (the held-call
        recall real lines give)."""
        acts: list[Action] = self._stop_tone()
        call, state = self._call, self.state
        live = call is not None and state in (State.CALLING, State.CONNECTED, State.CONFERENCE)
        if (call is not None and live and self._pair == "consult" and self.flash.transfer
                and state is not State.CONFERENCE):
            acts += [*self._disconnect(call.key), *self._disconnect(other.key),
                     Transfer(other.key, call.key, call.remote, attended=state is State.CONNECTED),
                     self._over(call, "transferred", now), self._over(other, "transferred", now),
                     *self._reverse(False)]
            self._reset()
            return acts + self._update_lamp()
        if call is not None and live:
            acts += self._drop(call, "local hangup", now)
        if state is State.CONFERENCE:
            acts += [Hangup(call=other.key), *self._disconnect(other.key), *self._reverse(False),
                     self._over(other, "local hangup", now)]
            self._reset()
            return acts + self._update_lamp()
        self._reset()
        self._call, self.state = other, State.RINGING
        acts += self._disconnect(other.key)
        return [*acts, *self._reverse(False), Ring(other.remote, other.name, other.private, call=other.key)]

    def _flash(self, now: float) -> list[Action]:
        """Hook flash (docs/call-features.md has the table)."""
        call, other, state = self._call, self._other, self.state
        if other is None:
            if state is State.CONNECTED and call is not None and self.flash.three_way:
                return self._hold_for_consultation(call, now)
            return []
        if state is State.CONNECTED and call is not None:
            if self._pair == "waiting":
                return self._swap(call, other, now)
            if self.flash.three_way:  # consultation answered: join all three
                other.held = False
                self.state = State.CONFERENCE
                return [Resume(other.key), *self._connect(other.key)]
            return self._drop(call, "local hangup", now) + self._take_other(other, now)
        if state is State.CONFERENCE and call is not None:  # drop the last party added
            self._call, self._other, self._pair = other, None, None
            self.state = State.CONNECTED
            return self._drop(call, "dropped from conference", now)
        acts: list[Action] = self._stop_tone()
        if state is State.CALLING and call is not None:  # give up the consultation before answer
            acts += self._drop(call, "cancelled", now)
        return acts + self._take_other(other, now)

    def _hold_for_consultation(self, call: _Call, now: float) -> list[Action]:
        """Hold the call and give recall dial tone (stutter where the country has it) for a second call."""
        call.held = True
        self._other, self._call, self._pair = call, None, "consult"
        self.state = State.DIALTONE
        self._collector = self.plan.collector(now)
        recall = "stutter_dial" if "stutter_dial" in self.tones else "dial"
        return [Hold(call.key), *self._disconnect(call.key), *self._play(recall)]

    def _swap(self, call: _Call, other: _Call, now: float) -> list[Action]:
        """Hold the active call and take the other: answer it if it is still waiting, else resume it."""
        self._cas_until = None
        call.held = True
        acts: list[Action] = [*self._stop_tone(), Hold(call.key), *self._disconnect(call.key)]
        self._call, self._other = other, call
        if other.answer is None:
            other.answer = now
            acts.append(Answer(call=other.key))
        else:
            other.held = False
            acts.append(Resume(other.key))
        return acts + self._connect(other.key)

    def _take_other(self, other: _Call, now: float) -> list[Action]:
        """The other call becomes the only one, active again (answered if it was waiting)."""
        self._collector, self._deadline, self._cas_until, self._purpose = None, None, None, None
        self._call, self._other, self._pair = other, None, None
        self.state = State.CONNECTED
        if other.answer is None:
            other.answer = now
            take: list[Action] = [Answer(call=other.key)]
        else:
            other.held = False
            take = [Resume(other.key)]
        return [*self._stop_tone(), *take, *self._connect(other.key)]

    def _drop(self, call: _Call, cause: str, now: float) -> list[Action]:
        return [Hangup(call=call.key), *self._disconnect(call.key), self._over(call, cause, now)]

    def _other_ended(self, other: _Call, reason: str, now: float) -> list[Action]:
        """The held or waiting party hung up: the port goes on with the active call alone."""
        self._other, self._pair, self._cas_until = None, None, None
        acts: list[Action] = [*self._disconnect(other.key), self._over(other, reason, now)]
        if self.state is State.CONFERENCE:
            self.state = State.CONNECTED
        elif self.state is State.HELD:
            return acts + self._fail("congestion", now)
        return acts

    def _active_ended_beside(self, call: _Call, other: _Call, reason: str, status: int | None,
                             now: float) -> list[Action]:
        """The active call ended while another is held or waiting: a conference goes on with the other
        party; a failed consultation plays its tone; otherwise the phone waits in HELD for a flash."""
        state = self.state
        acts: list[Action] = [*self._disconnect(call.key), self._over(call, reason, now)]
        self._call = None
        if state is State.CONFERENCE:
            self._call, self._other, self._pair = other, None, None
            self.state = State.CONNECTED
            return acts
        if state is State.CALLING:
            return acts + self._stop_tone() + self._fail(self._failure_tone(status), now)
        self.state = State.HELD
        return acts + self._stop_tone()

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
                return self._star(f.collected(purpose, number, self._account) if purpose else f.call(number),
                                  now)
            keys = result.digits if isinstance(result, Timeout | NoMatch) else ""
            speed = f.speed_number(keys) if purpose is None and len(keys) == 1 else None
            if speed:
                return self._star(f.call(speed), now)
        if isinstance(result, Dial):
            return self._place(result.number, now)
        return self._stop_tone() + self._fail("congestion", now)  # barred, no match, timeout: reorder

    def _star(self, result: feat.StarResult, now: float) -> list[Action]:
        """Carry out what a star code, a collected number or a feature-checked number came to."""
        assert self.features is not None
        if isinstance(result, feat.Collect):  # a second dial tone for the number
            self._purpose, self._account = result.purpose, result.account
            plan = feat.SPEED_DIAL_PLAN if result.purpose == "speed_dial" else self.plan
            self._collector = plan.collector(now)
            self.state = State.DIALTONE
            return self._play("dial")
        if isinstance(result, feat.CallNumber):
            return self._place(result.number, now, anonymous=result.anonymous, account=result.account)
        if isinstance(result, feat.Confirm):
            saved = feat.FeatureState.from_json(self.features.state.to_json())
            return [SaveFeatures(saved), *self._fail("confirmation", now)]
        return self._stop_tone() + self._fail("congestion", now)  # refused: reorder

    def _place(self, number: str, now: float, *, anonymous: bool = False, account: int = 0) -> list[Action]:
        self._seq += 1
        key = f"{self.port}:{self._seq}"
        self.state = State.CALLING
        self._call = _Call("out", number, now, key=key)
        return [PlaceCall(number, anonymous, account, call=key)]

    def _failure_tone(self, status: int | None) -> str:
        if status in BUSY_STATUSES:
            return "busy"
        sit = SIT_BY_STATUS.get(status or 0)
        if sit is not None:
            return sit if sit in self.tones else "sit" if "sit" in self.tones else "congestion"
        return "congestion"

    def _fail(self, tone: str, now: float) -> list[Action]:
        self.state = State.TONE
        self._deadline = now + self.timing.reorder
        return self._play(tone)

    def _reset(self) -> None:
        self.state = State.IDLE
        self._call = self._other = self._collector = None
        self._pair = self._purpose = None
        self._deadline = self._cas_until = self._warm = None

    def _play(self, name: str) -> list[Action]:
        self._tone = name
        return [PlayTone(name)]

    def _stop_tone(self) -> list[Action]:
        if self._tone is None:
            return []
        self._tone = None
        return [StopTone()]

    def _connect(self, key: str) -> list[Action]:
        if key in self._media:
            return []
        self._media.add(key)
        return [ConnectMedia(call=key)]

    def _disconnect(self, key: str) -> list[Action]:
        if key not in self._media:
            return []
        self._media.discard(key)
        return [DisconnectMedia(call=key)]

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
        return CallOver(call.direction, call.remote, call.start, call.answer, now, cause, call=call.key)
