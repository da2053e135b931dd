"""Dial plans in the Cisco/Sipura/Linksys digit-map syntax, sans-IO with explicit time.

ATA users already know this syntax from SPA/PAP2 devices, so a plan copied from one works here. The
plan compiles to one step list per alternative; a `DigitCollector` keeps the set of positions every
alternative could be at (a small NFA), so `.` and substitutions need no backtracking.

Supported syntax (anything else raises `DialPlanError` naming the 1-based position):

- `L:s,` and `S:s,` before the plan: override the interdigit long / short timer (seconds, decimals
  allowed) for the whole plan, e.g. `L:15,S:4,(...)`. They win over the `parse()` keyword defaults.
- `( alt | alt | ... )`: alternatives; the outer parentheses are optional; whitespace is ignored.
- `0`-`9`, `*`, `#`: a literal key.  `x` (or `X`): any digit 0-9.
- `[...]`: one key out of a set of digits, `*`, `#` and ranges `a-b` (`[2-9]`, `[3469]`, `[1-5*]`).
- `.`: the previous key (literal, `x` or set) zero or more times (`xx.` = one or more digits).
- `<old:new>`: dialed literal keys `old` are replaced by `new` in the number sent; either side may be
  empty (`<:1>` inserts, `<9:>` strips, `<8:1650>` replaces); `new` may also hold `+` (`<011:+>`).
- `Sn` at the end of an alternative: its own short timer in seconds (`S0` = dial as soon as it matches).
- `!` at the end of an alternative: barred, the number is refused locally.

Not supported (refused): nested parentheses, `,` (second dial tone), `P` pauses, per-alternative `Ln`,
`x` or sets inside `<...>`, `?` and gateway/`vm` routing suffixes.

Matching: after each key every alternative is classified. If nothing can match, `NoMatch` at once. If
an alternative is complete and no alternative can grow, the number is decided at once; if a longer match
is still possible the short timer is armed (its `Sn` if any, so `S0` decides now); if nothing is
complete yet the long timer is armed. Before the first key the first-digit timer runs. When several
alternatives are complete, a barred one wins (so plan order can never open a hole in a bar), then the
one with the shortest short timer, then plan order.

With `hash_sends`, `#` that no alternative can take at that point ends dialing: the keys so far are sent
if they match, or are a prefix of a match (refused if that prefix could still become a barred number).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

DIGITS = "0123456789"
KEYS = DIGITS + "*#"
DTMF_KEYS = KEYS + "ABCD"  # A-D exist on DTMF pads; no plan can contain them, so they never match


class DialPlanError(ValueError):
    """A malformed dial plan; `position` is 1-based in the text as given (for a config UI to point at)."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"dial plan error at position {position}: {reason}")
        self.position = position
        self.reason = reason


@dataclass(frozen=True)
class Dial:
    """Place a call to `number` (substitutions applied)."""

    number: str


@dataclass(frozen=True)
class Barred:
    """The number matches a barred alternative: refuse locally (reorder / SIT)."""

    number: str


@dataclass(frozen=True)
class NoMatch:
    """The keys dialed can never match any alternative: reorder at once."""

    digits: str


@dataclass(frozen=True)
class Timeout:
    """No key before the first-digit timer, or the interdigit timer ran out without a match."""

    digits: str


Decision = Dial | Barred | NoMatch | Timeout


@dataclass(frozen=True)
class _Step:
    """One key to consume (`keys` non-empty) or an insertion of `emit` (`keys` empty).

    `emit` None sends the dialed key itself; a string sends that instead (`""` for substituted keys).
    """

    keys: frozenset[str]
    repeat: bool = False
    emit: str | None = None


@dataclass(frozen=True)
class _Pattern:
    """One alternative, compiled."""

    steps: tuple[_Step, ...]
    barred: bool
    short_s: float | None  # the alternative's own `Sn`, else the plan's short timer applies


_State = tuple[int, int, str]  # (alternative index, step index, number built so far)


class _Reader:
    """Walks the text with whitespace removed while keeping original positions for error messages."""

    def __init__(self, text: str, chars: list[tuple[str, int]]) -> None:
        self.text = text
        self.chars = chars
        self.i = 0

    def peek(self, ahead: int = 0) -> str:
        j = self.i + ahead
        return self.chars[j][0] if j < len(self.chars) else ""

    def pos(self, ahead: int = 0) -> int:
        j = self.i + ahead
        return self.chars[j][1] + 1 if j < len(self.chars) else len(self.text) + 1

    def take(self) -> str:
        c = self.peek()
        self.i += 1
        return c

    def error(self, reason: str, ahead: int = 0) -> DialPlanError:
        return DialPlanError(self.pos(ahead), reason)


def _parse_seconds(r: _Reader, what: str) -> float:
    start = r.pos()
    number = ""
    while r.peek() and (r.peek() in DIGITS or r.peek() == "."):
        number += r.take()
    try:
        return float(number)
    except ValueError:
        raise DialPlanError(start, f"{what} needs a number of seconds") from None


def _closes(r: _Reader, close: str) -> bool:
    """Whether `close` comes before the alternative ends, so an unclosed bracket is reported as such."""
    for c, _ in r.chars[r.i :]:
        if c == close:
            return True
        if c in "|)":
            return False
    return False


def _parse_set(r: _Reader) -> frozenset[str]:
    open_pos = r.pos()
    if not _closes(r, "]"):
        raise DialPlanError(open_pos, "unbalanced '[': missing ']'")
    r.take()  # "["
    keys: set[str] = set()
    while r.peek() != "]":
        c = r.peek()
        if c not in KEYS:
            raise r.error(f"{c!r} is not allowed in [...]: only digits, '*', '#' and ranges a-b")
        if r.peek(1) == "-":
            hi = r.peek(2)
            if c not in DIGITS or hi not in DIGITS or hi < c:
                raise r.error(f"bad range {c}-{hi or '?'}: needs two digits, low first", 1)
            keys.update(DIGITS[int(c) : int(hi) + 1])
            r.i += 3
        else:
            keys.add(r.take())
    if not keys:
        raise DialPlanError(open_pos, "empty set []")
    r.take()  # "]"
    return frozenset(keys)


def _parse_substitution(r: _Reader) -> list[_Step]:
    open_pos = r.pos()
    for end in ":>":
        if not _closes(r, end):
            raise DialPlanError(open_pos, f"unbalanced '<': missing '{end}'")
    r.take()  # "<"
    sides = ["", ""]
    for side, end, allowed in ((0, ":", KEYS), (1, ">", KEYS + "+")):
        while r.peek() != end:
            c = r.peek()
            if c not in allowed:
                raise r.error(
                    f"{c!r} is not allowed in <old:new>: only literal digits, '*', '#' (and '+' in new)"
                )
            sides[side] += r.take()
        r.take()
    old, new = sides
    if not old and not new:
        raise DialPlanError(open_pos, "empty substitution <:>")
    return [_Step(frozenset(c), emit="") for c in old] + [_Step(frozenset(), emit=new)]


def _parse_pattern(r: _Reader, end: int) -> _Pattern:
    """Parse one alternative from r.i up to chars index `end` (exclusive)."""
    start = r.pos()
    source = "".join(c for c, _ in r.chars[r.i : end])
    steps: list[_Step] = []
    barred = False
    short_s: float | None = None
    while r.i < end:
        c = r.peek()
        if barred or short_s is not None:
            if c == "!" and not barred:
                barred = True
                r.take()
                continue
            if c != "S" or short_s is not None:
                raise r.error(f"{c!r} after the end of the pattern: '!' and 'Sn' must come last")
        if c in KEYS:
            steps.append(_Step(frozenset(r.take())))
        elif c in "xX":
            r.take()
            steps.append(_Step(frozenset(DIGITS)))
        elif c == "[":
            steps.append(_Step(_parse_set(r)))
        elif c == "]":
            raise r.error("unbalanced ']'")
        elif c == ".":
            prev = steps[-1] if steps else None
            if prev is None or prev.repeat or prev.emit is not None:
                raise r.error("'.' must follow a key, 'x' or [...] (it repeats that one key)")
            steps[-1] = dataclasses.replace(prev, repeat=True)
            r.take()
        elif c == "<":
            steps.extend(_parse_substitution(r))
        elif c == ">":
            raise r.error("unbalanced '>'")
        elif c == "!":
            barred = True
            r.take()
        elif c == "S":
            r.take()
            if r.peek() not in DIGITS or not r.peek():
                raise r.error("'S' needs whole seconds, e.g. S0 to dial on match")
            seconds = ""
            while r.i < end and r.peek() in DIGITS:
                seconds += r.take()
            short_s = float(seconds)
        else:
            raise r.error(f"unsupported character {c!r}")
    if all(s.repeat or not s.keys for s in steps):
        raise DialPlanError(start, f"pattern {source!r} matches an empty number")
    return _Pattern(tuple(steps), barred, short_s)


@dataclass(frozen=True)
class DialPlan:
    """A parsed dial plan; immutable, so one plan serves every port and every call."""

    patterns: tuple[_Pattern, ...]
    long_s: float
    short_s: float
    first_digit_s: float
    hash_sends: bool

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        long_s: float = 10.0,
        short_s: float = 3.0,
        first_digit_s: float = 16.0,
        hash_sends: bool = True,
    ) -> DialPlan:
        """Compile `text`; raise DialPlanError (position, reason) on anything outside the supported syntax."""
        r = _Reader(text, [(c, i) for i, c in enumerate(text) if not c.isspace()])
        while r.peek() in ("L", "S") and r.peek(1) == ":":
            which = r.take()
            r.take()
            seconds = _parse_seconds(r, f"{which}:")
            if which == "L":
                long_s = seconds
            else:
                short_s = seconds
            if r.peek() != ",":
                raise r.error(f"expected ',' after the {which}: timer")
            r.take()
        end = len(r.chars)
        if r.peek() == "(":
            open_pos = r.pos()
            r.take()
            close = next((j for j in reversed(range(r.i, end)) if r.chars[j][0] == ")"), None)
            if close is None:
                raise DialPlanError(open_pos, "unbalanced '(': missing ')'")
            if close != end - 1:
                raise DialPlanError(r.chars[close + 1][1] + 1, "text after the closing ')'")
            end = close
        patterns: list[_Pattern] = []
        while True:
            bar = next((j for j in range(r.i, end) if r.chars[j][0] == "|"), end)
            nested = next((j for j in range(r.i, bar) if r.chars[j][0] in "()"), None)
            if nested is not None:
                c = r.chars[nested][0]
                reason = "nested '(' is not supported" if c == "(" else "unbalanced ')'"
                raise DialPlanError(r.chars[nested][1] + 1, reason)
            if bar == r.i:
                raise r.error("empty alternative")
            patterns.append(_parse_pattern(r, bar))
            if bar == end:
                break
            r.take()  # "|"
        return cls(tuple(patterns), long_s, short_s, first_digit_s, hash_sends)

    def collector(self, now: float) -> DigitCollector:
        """Start collecting digits for one call attempt (dial tone just started at `now`)."""
        return DigitCollector(self, now)


class DigitCollector:
    """Per-call digit collection: feed keys with their times, arm one timer, get one Decision.

    After the Decision it ignores further keys (a DTMF detector may still report the tail of the last
    tone) and has no timer.
    """

    def __init__(self, plan: DialPlan, now: float) -> None:
        self._plan = plan
        self._digits = ""
        self._states: list[_State] = []
        for index in range(len(plan.patterns)):
            self._states.extend(self._closure((index, 0, "")))
        self._deadline: float | None = now + plan.first_digit_s
        self._pending: Decision | None = None
        self.decision: Decision | None = None

    @property
    def digits(self) -> str:
        """The keys dialed so far, as dialed."""
        return self._digits

    def get_timer(self) -> float | None:
        """The time handle_timer() must be called at, or None."""
        return None if self.decision is not None else self._deadline

    def digit(self, d: str, now: float) -> Decision | None:
        """One key pressed at `now`; returns the Decision once dialing is over."""
        if len(d) != 1 or d not in DTMF_KEYS:
            raise ValueError(f"not a DTMF key: {d!r}")
        if self.decision is not None:
            return None
        if d == "#" and self._plan.hash_sends and not any(self._accepts(s, "#") for s in self._states):
            return self._send()
        self._digits += d
        self._states = self._advance(d)
        if not self._states:
            return self._finish(NoMatch(self._digits))
        complete = self._complete()
        if complete is None:
            self._pending = None
            self._deadline = now + self._plan.long_s
            return None
        decision, timer = complete
        if timer == 0 or all(self._at_end(s) for s in self._states):
            return self._finish(decision)
        self._pending = decision
        self._deadline = now + timer
        return None

    def handle_timer(self, now: float) -> Decision | None:
        """The timer fired: decide the complete match, or time out (first-digit or interdigit)."""
        if self.decision is not None or self._deadline is None or now < self._deadline:
            return None
        return self._finish(self._pending or Timeout(self._digits))

    def _send(self) -> Decision:
        if not self._digits:
            return self._finish(NoMatch("#"))
        complete = self._complete()
        if complete is not None:
            return self._finish(complete[0])
        # Only prefixes are left: none is at its end, so every state names a live alternative.
        first = self._states[0]
        if any(self._plan.patterns[s[0]].barred for s in self._states):
            return self._finish(Barred(first[2]))
        return self._finish(Dial(first[2]))

    def _finish(self, decision: Decision) -> Decision:
        self.decision = decision
        self._deadline = None
        return decision

    def _complete(self) -> tuple[Decision, float] | None:
        """The best complete match with its short timer: barred first, then shortest timer, then order."""
        best: tuple[bool, float, int, str] | None = None
        for index, _, number in filter(self._at_end, self._states):
            pattern = self._plan.patterns[index]
            timer = self._plan.short_s if pattern.short_s is None else pattern.short_s
            key = (not pattern.barred, timer, index, number)
            if best is None or key < best:
                best = key
        if best is None:
            return None
        not_barred, timer, _, number = best
        return (Dial(number) if not_barred else Barred(number)), timer

    def _at_end(self, state: _State) -> bool:
        return state[1] == len(self._plan.patterns[state[0]].steps)

    def _accepts(self, state: _State, d: str) -> bool:
        return not self._at_end(state) and d in self._plan.patterns[state[0]].steps[state[1]].keys

    def _advance(self, d: str) -> list[_State]:
        out: dict[_State, None] = {}
        for state in self._states:
            if not self._accepts(state, d):
                continue
            index, pos, number = state
            step = self._plan.patterns[index].steps[pos]
            number += d if step.emit is None else step.emit
            for s in self._closure((index, pos if step.repeat else pos + 1, number)):
                out[s] = None
        return list(out)

    def _closure(self, state: _State) -> list[_State]:
        """Every state reachable without a key: past insertions, and past a repeat (zero times)."""
        index, pos, number = state
        steps = self._plan.patterns[index].steps
        result: list[_State] = []
        while pos < len(steps):
            step = steps[pos]
            if not step.keys:
                number += step.emit or ""
            else:
                result.append((index, pos, number))
                if not step.repeat:
                    return result
            pos += 1
        result.append((index, pos, number))
        return result


Collector = DigitCollector  # the name firmware.line.port imports
