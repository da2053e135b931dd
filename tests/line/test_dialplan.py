"""Dial plan: every syntax element, the timers with explicit time, errors, and a few properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.line.dialplan import (
    Barred,
    Decision,
    Dial,
    DialPlan,
    DialPlanError,
    NoMatch,
    Timeout,
)

EXAMPLE = "(*xx|[3469]11|0|00|[2-9]xxxxxx|1xxx[2-9]xxxxxxS0|xxxxxxxxxxxx.)"


def keys(digits: str, start: float = 1.0, gap: float = 1.0) -> list[tuple[float, str]]:
    """`digits` pressed at start, start+gap, ... (the usual script for a case)."""
    return [(start + i * gap, d) for i, d in enumerate(digits)]


def drive(plan: DialPlan, script: list[tuple[float, str]]) -> tuple[Decision, float]:
    """Run a collector started at t=0 like the asyncio adapter would: fire due timers before each key,
    then the last armed timer. Returns the decision and the time it was made."""
    c = plan.collector(0.0)
    for t, d in script:
        while (due := c.get_timer()) is not None and due <= t:
            decision = c.handle_timer(due)
            if decision is not None:
                return decision, due
        decision = c.digit(d, t)
        if decision is not None:
            assert c.get_timer() is None
            return decision, t
    due = c.get_timer()
    assert due is not None, "no decision and no timer: the collector would hang"
    assert c.handle_timer(due - 0.001) is None
    decision = c.handle_timer(due)
    assert decision is not None
    return decision, due


# (plan, parse options, script, expected decision, expected time of the decision)
CASES: list[tuple[str, dict[str, Any], list[tuple[float, str]], Decision, float]] = [
    # literals and x: complete with nothing longer possible -> at once
    ("911", {}, keys("911"), Dial("911"), 3.0),
    ("xxx", {}, keys("407"), Dial("407"), 3.0),
    ("*xx", {}, keys("*72"), Dial("*72"), 3.0),
    ("911", {}, keys("91"), Timeout("91"), 2.0 + 10.0),
    ("911", {}, keys("8"), NoMatch("8"), 1.0),
    ("911", {}, keys("912"), NoMatch("912"), 3.0),
    # ranges and sets
    ("[2-9]11", {}, keys("411"), Dial("411"), 3.0),
    ("[2-9]11", {}, keys("111"), NoMatch("1"), 1.0),
    ("[3469]11", {}, keys("611"), Dial("611"), 3.0),
    ("[3469]11", {}, keys("511"), NoMatch("5"), 1.0),
    ("[1-5*]x", {}, keys("*0"), Dial("*0"), 2.0),
    ("[1-5*]x", {}, keys("6"), NoMatch("6"), 1.0),
    ("[#1]x", {"hash_sends": False}, keys("#5"), Dial("#5"), 2.0),
    # `.` repeats the previous element zero or more times -> short timer once complete
    ("9x.", {}, keys("9"), Dial("9"), 1.0 + 3.0),
    ("9x.", {}, keys("912345"), Dial("912345"), 6.0 + 3.0),
    ("9x.", {}, keys("9123*"), NoMatch("9123*"), 5.0),
    ("01[2-9].1", {}, keys("013451"), Dial("013451"), 6.0),  # "1" cannot repeat [2-9]: at once
    ("01[2-9].1", {}, keys("011"), Dial("011"), 3.0),
    ("01[2-9].1", {}, keys("0134"), Timeout("0134"), 4.0 + 10.0),
    # substitutions
    ("<:1>[2-9]xxxxxxxxx", {}, keys("6505551234"), Dial("16505551234"), 10.0),
    ("<9:>xxxx", {}, keys("91234"), Dial("1234"), 5.0),
    ("<9:>xxxx", {}, keys("81234"), NoMatch("8"), 1.0),
    ("<8:1650>xxxxxxx", {}, keys("85551234"), Dial("16505551234"), 8.0),
    ("<011:+>x.", {}, keys("01144"), Dial("+44"), 5.0 + 3.0),
    ("*xx<:#>", {}, keys("*67"), Dial("*67#"), 3.0),
    # barred
    ("1900xxxxxxx!|1xxxxxxxxxx", {}, keys("19005551234"), Barred("19005551234"), 11.0),
    ("1900xxxxxxx!|1xxxxxxxxxx", {}, keys("18005551234"), Dial("18005551234"), 11.0),
    ("1xxxxxxxxxx|1900xxxxxxx!", {}, keys("19005551234"), Barred("19005551234"), 11.0),
    ("<:00>1900xxxxxxx!", {}, keys("19005551234"), Barred("0019005551234"), 11.0),
    ("976!|xxxxxxx", {}, keys("976"), Barred("976"), 3.0 + 3.0),
    ("976!|xxxxxxx", {}, keys("9761234"), Dial("9761234"), 7.0),
    # per-alternative short timer
    ("xxxS0|xxxxx", {}, keys("123"), Dial("123"), 3.0),
    ("xxxS5|xxxxx", {}, keys("123"), Dial("123"), 3.0 + 5.0),
    ("xxxS12|xxxxx", {}, keys("123"), Dial("123"), 3.0 + 12.0),
    ("xxxS0!|xxxxx", {}, keys("123"), Barred("123"), 3.0),
    ("xxx!S0|xxxxx", {}, keys("123"), Barred("123"), 3.0),
    ("xxxS5|xxxS1|xxxxx", {}, keys("123"), Dial("123"), 3.0 + 1.0),
    # long vs short timer
    ("xxx|xxxxx", {}, keys("12"), Timeout("12"), 2.0 + 10.0),
    ("xxx|xxxxx", {}, keys("123"), Dial("123"), 3.0 + 3.0),
    ("xxx|xxxxx", {}, keys("1234"), Timeout("1234"), 4.0 + 10.0),
    ("xxx|xxxxx", {}, keys("12345"), Dial("12345"), 5.0),
    ("xxx|xxxxx", {}, keys("1234", gap=2.9), Timeout("1234"), 1.0 + 3 * 2.9 + 10.0),
    ("xxx|xxxxx", {}, [*keys("123", gap=9.9), (25.0, "4")], Dial("123"), 1.0 + 2 * 9.9 + 3.0),
    ("xxx|xxxxx", {"long_s": 4.0, "short_s": 1.5}, keys("12"), Timeout("12"), 2.0 + 4.0),
    ("xxx|xxxxx", {"long_s": 4.0, "short_s": 1.5}, keys("123"), Dial("123"), 3.0 + 1.5),
    ("L:5,S:1.5,(xxx|xxxxx)", {}, keys("12"), Timeout("12"), 2.0 + 5.0),
    ("L:5,S:1.5,(xxx|xxxxx)", {}, keys("123"), Dial("123"), 3.0 + 1.5),
    ("S:0.5, L:20, xxx|xxxxx", {"long_s": 4.0}, keys("1234", gap=0.4), Timeout("1234"), 2.2 + 20.0),
    ("S:0.5, L:20, xxx|xxxxx", {"long_s": 4.0}, keys("1234", gap=0.6), Dial("123"), 2.2 + 0.5),
    # first-digit timeout
    ("xxx", {}, [], Timeout(""), 16.0),
    ("xxx", {"first_digit_s": 5.0}, [], Timeout(""), 5.0),
    ("xxx", {}, keys("1", start=15.9), Timeout("1"), 15.9 + 10.0),
    # `#` as the send key
    ("xxxxxxx", {}, keys("555#"), Dial("555"), 4.0),
    ("xxx|xxxxx", {}, keys("123#"), Dial("123"), 4.0),
    ("<:1>xxxxxxxxxx", {}, keys("650#"), Dial("1650"), 4.0),
    ("xxxxxxx", {}, keys("#"), NoMatch("#"), 1.0),
    ("xxxxxxx", {"hash_sends": False}, keys("555#"), NoMatch("555#"), 4.0),
    ("*xx#|xxxx", {}, keys("*12#"), Dial("*12#"), 4.0),
    ("1900xxxxxxx!|1xxxxxxxxxx", {}, keys("1900#"), Barred("1900"), 5.0),
    ("1900xxxxxxx!|1xxxxxxxxxx", {}, keys("1800#"), Dial("1800"), 5.0),
    # the SPA example plan with real numbers
    (EXAMPLE, {}, keys("*72"), Dial("*72"), 3.0),
    (EXAMPLE, {}, keys("911"), Dial("911"), 3.0 + 3.0),  # 911 is also a prefix of [2-9]xxxxxx
    ("(*xx|[3469]11S0|0|00|[2-9]xxxxxx|1xxx[2-9]xxxxxxS0|xxxxxxxxxxxx.)", {}, keys("911"), Dial("911"), 3.0),
    (EXAMPLE, {}, keys("0"), Dial("0"), 1.0 + 3.0),
    (EXAMPLE, {}, keys("00"), Dial("00"), 2.0 + 3.0),
    (EXAMPLE, {}, keys("5551234"), Dial("5551234"), 7.0 + 3.0),
    (EXAMPLE, {}, keys("16505551234"), Dial("16505551234"), 11.0),
    (EXAMPLE, {}, keys("011441632960"), Dial("011441632960"), 12.0 + 3.0),
    (EXAMPLE, {}, keys("01144163296001"), Dial("01144163296001"), 14.0 + 3.0),
    (EXAMPLE, {}, keys("1650555"), Timeout("1650555"), 7.0 + 10.0),
    # not a valid 1+10 ([2-9] fails), so the catch-all: 11 x's then `.` = 11 or more digits, short timer
    (EXAMPLE, {}, keys("16501234567"), Dial("16501234567"), 11.0 + 3.0),
    (EXAMPLE, {}, keys("0114416329"), Timeout("0114416329"), 10.0 + 10.0),
    (EXAMPLE, {}, keys("*7*"), NoMatch("*7*"), 3.0),
    (EXAMPLE, {}, keys("555#"), Dial("555"), 4.0),
]


@pytest.mark.parametrize(("text", "options", "script", "expected", "at"), CASES)
def test_decision_and_its_time(
    text: str, options: dict[str, Any], script: list[tuple[float, str]], expected: Decision, at: float
) -> None:
    decision, when = drive(DialPlan.parse(text, **options), script)
    assert decision == expected
    assert when == pytest.approx(at)


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("(911|0", 1, "unbalanced '(': missing ')'"),
        ("911|0)", 6, "unbalanced ')'"),
        ("(911|(0))", 6, "nested '(' is not supported"),
        ("(911)x", 6, "text after the closing ')'"),
        ("[2-9xx", 1, "unbalanced '[': missing ']'"),
        ("(x|[2-9xx)", 4, "unbalanced '[': missing ']'"),
        ("2-9]xx", 2, "unsupported character '-'"),
        ("x]", 2, "unbalanced ']'"),
        ("[9-2]xx", 3, "bad range 9-2: needs two digits, low first"),
        ("[2-]xx", 3, "bad range 2-]: needs two digits, low first"),
        ("[*-9]", 3, "bad range *-9: needs two digits, low first"),
        ("[]x", 1, "empty set []"),
        ("[2x]", 3, "'x' is not allowed in [...]: only digits, '*', '#' and ranges a-b"),
        ("(911||0)", 6, "empty alternative"),
        ("(|911)", 2, "empty alternative"),
        ("911|", 5, "empty alternative"),
        ("()", 2, "empty alternative"),
        ("", 1, "empty alternative"),
        ("<9xx", 1, "unbalanced '<': missing ':'"),
        ("<9:1xx", 1, "unbalanced '<': missing '>'"),
        ("<x:1>xx", 2, "'x' is not allowed in <old:new>: only literal digits, '*', '#' (and '+' in new)"),
        ("<+:1>xx", 2, "'+' is not allowed in <old:new>: only literal digits, '*', '#' (and '+' in new)"),
        ("<:>xx", 1, "empty substitution <:>"),
        ("9>xx", 2, "unbalanced '>'"),
        (".9", 1, "'.' must follow a key, 'x' or [...] (it repeats that one key)"),
        ("9x..", 4, "'.' must follow a key, 'x' or [...] (it repeats that one key)"),
        ("<9:>.x", 5, "'.' must follow a key, 'x' or [...] (it repeats that one key)"),
        ("x!x", 3, "'x' after the end of the pattern: '!' and 'Sn' must come last"),
        ("xS0x", 4, "'x' after the end of the pattern: '!' and 'Sn' must come last"),
        ("xS0S1", 4, "'S' after the end of the pattern: '!' and 'Sn' must come last"),
        ("xS", 3, "'S' needs whole seconds, e.g. S0 to dial on match"),
        ("9,xxx", 2, "unsupported character ','"),
        ("xxxL4", 4, "unsupported character 'L'"),
        ("x.", 1, "pattern 'x.' matches an empty number"),
        ("911|<:1>", 5, "pattern '<:1>' matches an empty number"),
        ("L:,(xx)", 3, "L: needs a number of seconds"),
        ("L:5(xx)", 4, "expected ',' after the L: timer"),
        ("( 911 | 0 ", 1, "unbalanced '(': missing ')'"),
        ("( 911 || 0 )", 8, "empty alternative"),
    ],
)
def test_malformed_plans_name_the_position(text: str, position: int, reason: str) -> None:
    with pytest.raises(DialPlanError) as info:
        DialPlan.parse(text)
    assert (info.value.position, info.value.reason) == (position, reason)
    assert str(info.value) == f"dial plan error at position {position}: {reason}"


def test_whitespace_and_outer_parentheses_are_optional() -> None:
    spaced = DialPlan.parse(" ( *xx | [3469] 11 | 0 ) ")
    bare = DialPlan.parse("*xx|[3469]11|0")
    assert spaced.patterns == bare.patterns


def test_after_the_decision_keys_are_ignored_and_no_timer_runs() -> None:
    c = DialPlan.parse("911").collector(0.0)
    assert [c.digit(d, 1.0) for d in "911"] == [None, None, Dial("911")]
    assert c.digit("1", 2.0) is None
    assert c.get_timer() is None
    assert c.handle_timer(100.0) is None
    assert c.decision == Dial("911")
    assert c.digits == "911"


@pytest.mark.parametrize(("text", "number"), [("xxxS0|xxxxx", "123"), (EXAMPLE, "16505551234")])
def test_s0_decides_on_the_key_itself_not_through_a_zero_timer(text: str, number: str) -> None:
    c = DialPlan.parse(text).collector(0.0)
    assert [c.digit(d, 1.0) for d in number][-1] == Dial(number)


def test_early_timer_call_does_nothing() -> None:
    c = DialPlan.parse("xxx|xxxxx").collector(0.0)
    assert c.digit("1", 1.0) is None
    assert c.get_timer() == 11.0
    assert c.handle_timer(10.0) is None
    assert c.handle_timer(11.0) == Timeout("1")


def test_dtmf_a_to_d_never_match_and_other_text_is_a_bug() -> None:
    c = DialPlan.parse("xxx").collector(0.0)
    assert c.digit("A", 1.0) == NoMatch("A")
    with pytest.raises(ValueError, match="not a DTMF key"):
        DialPlan.parse("xxx").collector(0.0).digit("12", 1.0)


def test_one_plan_serves_independent_collectors() -> None:
    plan = DialPlan.parse(EXAMPLE)
    a, b = plan.collector(0.0), plan.collector(5.0)
    assert a.digit("9", 1.0) is None
    assert b.get_timer() == 21.0
    assert [b.digit(d, 6.0) for d in "*72"][-1] == Dial("*72")
    assert a.digits == "9"


numbers = st.text(alphabet="0123456789", min_size=4, max_size=20)
PROPERTY = settings(max_examples=200, derandomize=True, deadline=None)


@PROPERTY
@given(numbers)
def test_any_number_of_four_or_more_digits_dials_after_the_short_timer(number: str) -> None:
    assert drive(DialPlan.parse("xxxx."), keys(number)) == (Dial(number), len(number) + 3.0)


@PROPERTY
@given(numbers, st.sampled_from(["1", "00", "*82", "+"]))
def test_insertion_prepends_exactly(number: str, prefix: str) -> None:
    decision, _ = drive(DialPlan.parse(f"<:{prefix}>xxxx."), keys(number))
    assert decision == Dial(prefix + number)


@PROPERTY
@given(numbers)
def test_replacement_swaps_the_access_code_and_plan_order_breaks_the_tie(number: str) -> None:
    plan_first, catch_all_first = DialPlan.parse("<011:+>xxxx.|xxxx."), DialPlan.parse("xxxx.|<011:+>xxxx.")
    assert drive(plan_first, keys("011" + number))[0] == Dial("+" + number)
    assert drive(catch_all_first, keys("011" + number))[0] == Dial("011" + number)


@PROPERTY
@given(st.text(alphabet="0123456789*#", max_size=14))
def test_example_plan_always_decides_once_and_never_hangs(digits: str) -> None:
    plan = DialPlan.parse(EXAMPLE)
    decision, at = drive(plan, keys(digits, gap=0.5))
    assert isinstance(decision, Dial | Barred | NoMatch | Timeout)
    assert at <= 0.5 * len(digits) + 16.0


@PROPERTY
@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_barring_wins_over_any_order(number: str) -> None:
    for text in ("1900xxxxxxx!|xxxxxxxxxxx", "xxxxxxxxxxx|1900xxxxxxx!"):
        decision, _ = drive(DialPlan.parse(text), keys(number))
        assert isinstance(decision, Barred) == number.startswith("1900")
