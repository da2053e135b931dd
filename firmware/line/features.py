"""Dial-side call features of one port, sans-IO: star codes, forwarding, do not disturb, anonymous
calls, warm line, speed dial, redial, call return and restriction classes.

`PortLine` asks this module three questions and executes the answers: what a dialled star code
means (`star_code`), what to do with an offered call (`incoming`), and whether a number may be
called (`barred`). The state a user programs from the phone (`FeatureState`) is kept here and handed
out whole after each change so the app can persist it; nothing here does I/O.

Default star codes are the North American vertical service codes assigned by the NANPA ("Vertical
Service Code Assignments", nationalnanpa.com): *72/*73 call forwarding (variable) on/off, *90/*91
call forwarding busy line on/off, *92/*93 call forwarding don't answer on/off, *78/*79 do not
disturb on/off, *67 calling number delivery blocking (one call), *82 calling number delivery
(one call), *69 automatic callback (call return), *66 automatic recall (redial), *74 speed calling
8 programming.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from firmware.line.dialplan import Barred, Dial, DialPlan

FeatureName = Literal["forward_always", "forward_busy", "forward_no_answer", "dnd", "anonymous",
                      "call_return", "redial", "speed_dial"]
FEATURES: tuple[FeatureName, ...] = ("forward_always", "forward_busy", "forward_no_answer", "dnd",
                                     "anonymous", "call_return", "redial", "speed_dial")
"""Feature names a port can switch off (`PortFeatures.disabled`)."""

DEFAULT_STAR_CODES: Mapping[str, str] = {
    "forward_always_on": "*72", "forward_always_off": "*73",
    "forward_busy_on": "*90", "forward_busy_off": "*91",
    "forward_no_answer_on": "*92", "forward_no_answer_off": "*93",
    "dnd_on": "*78", "dnd_off": "*79",
    "anonymous_call": "*67", "show_id_call": "*82",
    "call_return": "*69", "redial": "*66", "speed_dial_program": "*74",
}
"""Star-code name -> keys (NANPA vertical service codes, see the module docstring)."""

Purpose = Literal["forward_always", "forward_busy", "forward_no_answer", "anonymous", "show_id", "speed_dial",
                  "account"]
"""What the number collected after a star code is for."""
COLLECTS: Mapping[str, Purpose] = {
    "forward_always_on": "forward_always", "forward_busy_on": "forward_busy",
    "forward_no_answer_on": "forward_no_answer", "anonymous_call": "anonymous", "show_id_call": "show_id",
    "speed_dial_program": "speed_dial",
}
"""Star codes followed by a number (a second dial tone, then the number)."""

FEATURE_OF_CODE: Mapping[str, FeatureName] = {
    "forward_always_on": "forward_always", "forward_always_off": "forward_always",
    "forward_busy_on": "forward_busy", "forward_busy_off": "forward_busy",
    "forward_no_answer_on": "forward_no_answer", "forward_no_answer_off": "forward_no_answer",
    "dnd_on": "dnd", "dnd_off": "dnd", "anonymous_call": "anonymous", "show_id_call": "anonymous",
    "call_return": "call_return", "redial": "redial", "speed_dial_program": "speed_dial",
}

SPEED_DIAL_SLOTS = "23456789"
"""Speed Calling 8: one-digit codes 2-9 (NANP; 0 and 1 would collide with operator and toll)."""
SPEED_DIAL_PLAN = DialPlan.parse("([2-9]xx.)", long_s=10.0, short_s=4.0, first_digit_s=10.0)
"""What follows *74: the slot digit, then the number; `#` or a 4 s pause ends it."""

DND_STATUS = 480
"""RFC 3261 §21.4.18: 480 Temporarily Unavailable names "do not disturb" as its example; 486 would
tell the caller the line is in use, which it is not."""
REDIRECT_STATUS = 302
"""RFC 3261 §21.3.3 Moved Temporarily, the Contact naming the forward-to target (what ATAs send)."""


@dataclass
class FeatureState:
    """What the user programs from the phone (or the config sets first); persisted by the app."""

    forward_always: str = ""
    forward_busy: str = ""
    forward_no_answer: str = ""
    dnd: bool = False
    speed_dial: dict[str, str] = field(default_factory=dict)
    """Slot digit ('2'..'9') -> number."""

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> FeatureState:
        """Tolerant of a store written by another version: unknown or ill-typed values are dropped."""
        state = cls()
        for name in ("forward_always", "forward_busy", "forward_no_answer"):
            if isinstance(value := data.get(name), str):
                setattr(state, name, value)
        if isinstance(dnd := data.get("dnd"), bool):
            state.dnd = dnd
        speed = data.get("speed_dial")
        if isinstance(speed, dict):
            state.speed_dial = {k: v for k, v in speed.items()
                                if isinstance(k, str) and k in SPEED_DIAL_SLOTS and isinstance(v, str) and v}
        return state


# -- answers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Collect:
    """The star code needs a number: give dial tone again and collect it for `purpose`."""

    purpose: Purpose
    account: int = 0
    """For an account's star code: that account (1 = the port's first ``[[ports.accounts]]``)."""


@dataclass(frozen=True)
class Confirm:
    """The feature's state changed: confirmation tone, then nothing (GR-506 confirmation tone)."""


@dataclass(frozen=True)
class CallNumber:
    number: str
    anonymous: bool
    account: int = 0
    """The port's account chosen by star code (k = its k-th extra account); 0: its own, or the one
    whose dial prefix the number starts with (the app decides)."""


@dataclass(frozen=True)
class Refuse:
    """Not possible (feature off, nothing to call back, number barred): reorder."""

    reason: str


StarResult = Collect | Confirm | CallNumber | Refuse


@dataclass(frozen=True)
class Redirect:
    """Answer the offered call with 302 and this target as Contact."""

    target: str


@dataclass(frozen=True)
class Decline:
    status: int


Offer = Redirect | Decline | None
"""What to do with an offered call; None: ring (or busy, if the port is in use)."""


@dataclass(frozen=True)
class RestrictionClass:
    """A named set of number patterns a port may be barred from (digit-map syntax, `x`, `.`, sets)."""

    name: str
    plan: DialPlan

    def matches(self, number: str) -> bool:
        """True if `number` (as it would be sent) is one of this class's patterns or extends one."""
        collector = self.plan.collector(0.0)
        decision = None
        for key in number:
            if key not in "0123456789*#":
                return False
            decision = collector.digit(key, 0.0)
            if decision is not None:
                break
        if decision is None:
            decision = collector.handle_timer(math.inf)
        return isinstance(decision, Dial | Barred)


@dataclass(frozen=True)
class FeatureConfig:
    """A port's static feature settings (from the config file)."""

    codes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_STAR_CODES))
    disabled: frozenset[FeatureName] = frozenset()
    forward_no_answer_s: float = 20.0
    """Seconds of ringing before a call is forwarded on no answer (about four NANP 6 s ring cycles
    would be 24 s; 20 s is the common ATA default)."""
    anonymous: bool = False
    """Every outgoing call anonymous (RFC 3323); *82 shows the identity for one call."""
    warm_line: str = ""
    warm_line_s: float = 5.0
    restrictions: tuple[RestrictionClass, ...] = ()
    account_codes: Mapping[str, int] = field(default_factory=dict)
    """Star code -> extra account (1-based): the number dialled after it goes out on that account."""


@dataclass
class Features:
    """One port's features: static config, programmed state, and what call return/redial remember."""

    config: FeatureConfig = field(default_factory=FeatureConfig)
    state: FeatureState = field(default_factory=FeatureState)
    last_dialled: str = ""
    last_caller: str = ""
    """The number of the last offered call that showed one (a private caller is not remembered)."""

    def enabled(self, feature: FeatureName) -> bool:
        return feature not in self.config.disabled

    @property
    def forwarding(self) -> bool:
        """Some forwarding is on: dial tone is the special (stutter) dial tone as a reminder."""
        forwards: tuple[FeatureName, ...] = ("forward_always", "forward_busy", "forward_no_answer")
        return any(getattr(self.state, f) and self.enabled(f) for f in forwards)

    def star_code(self, keys: str) -> StarResult | None:
        """The meaning of `keys` if they are exactly one of the port's star codes, else None."""
        if (account := self.config.account_codes.get(keys)) is not None:
            return Collect("account", account)
        name = next((n for n, code in self.config.codes.items() if code == keys), None)
        if name is None:
            return None
        feature = FEATURE_OF_CODE[name]
        if not self.enabled(feature):
            return Refuse(f"{feature} is switched off on this port")
        if name in COLLECTS:
            return Collect(COLLECTS[name])
        if name.endswith("_off"):
            if feature == "dnd":
                self.state.dnd = False
            else:
                setattr(self.state, feature, "")
            return Confirm()
        if name == "dnd_on":
            self.state.dnd = True
            return Confirm()
        if name == "call_return":
            return self.call(self.last_caller) if self.last_caller else Refuse("no caller to return")
        return self.call(self.last_dialled) if self.last_dialled else Refuse("nothing to redial")

    def collected(self, purpose: Purpose, number: str, account: int = 0) -> StarResult:
        """The number dialled after a star code that asked for one (`Collect`, with its `account`)."""
        if purpose == "account":
            return self.call(number, account=account)
        if purpose in ("anonymous", "show_id"):
            return self.call(number, anonymous=purpose == "anonymous")
        target = number[1:] if purpose == "speed_dial" else number
        if (bar := self.barred(target)) is not None:
            return Refuse(f"{target} is barred ({bar})")  # no forwarding around a restriction
        if purpose == "speed_dial":
            self.state.speed_dial[number[0]] = target
            return Confirm()
        setattr(self.state, purpose, number)
        return Confirm()

    def call(self, number: str, *, anonymous: bool | None = None, account: int = 0) -> StarResult:
        """Call `number` (on `account`, see CallNumber) unless barred; remembers it for redial."""
        if (bar := self.barred(number)) is not None:
            return Refuse(f"{number} is barred ({bar})")
        self.last_dialled = number
        return CallNumber(number, self.config.anonymous if anonymous is None else anonymous, account)

    def speed_number(self, slot: str) -> str | None:
        if not self.enabled("speed_dial"):
            return None
        return self.state.speed_dial.get(slot)

    def barred(self, number: str) -> str | None:
        """The name of the first restriction class `number` falls in, or None."""
        return next((r.name for r in self.config.restrictions if r.matches(number)), None)

    def incoming(self, caller: str, private: bool, in_use: bool) -> Offer:
        """An offered call: forward always, then do not disturb, then forward on busy; else ring."""
        if caller and not private:
            self.last_caller = caller
        s = self.state
        if s.forward_always and self.enabled("forward_always"):
            return Redirect(s.forward_always)
        if s.dnd and self.enabled("dnd"):
            return Decline(DND_STATUS)
        if in_use and s.forward_busy and self.enabled("forward_busy"):
            return Redirect(s.forward_busy)
        return None

    def no_answer_target(self) -> str | None:
        """Where a ringing call goes after `forward_no_answer_s`, or None (it rings on)."""
        target = self.state.forward_no_answer
        return target if target and self.enabled("forward_no_answer") else None
