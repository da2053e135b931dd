"""Streaming DtmfDetector: same answers as detect_dtmf for any framing, ports isolated in one call."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from dsp.dtmf import (
    DIGITS,
    END_WINDOWS,
    START_WINDOWS,
    SUB,
    WIN_SUBS,
    DtmfDetector,
    DtmfEvent,
    detect_dtmf,
    generate_dtmf,
)
from dsp.level import dbm0_to_rms
from dsp.synth import to_int16


def pairs(events: list[DtmfEvent], port: int) -> list[tuple[str, float, float]]:
    """(digit, start, end) of one port's events, in the shape detect_dtmf returns."""
    out = []
    start: DtmfEvent | None = None
    for ev in events:
        if ev.port != port:
            continue
        if ev.start:
            assert start is None, "two starts without an end"
            start = ev
        else:
            assert start is not None and start.digit == ev.digit
            out.append((ev.digit, start.time_s, ev.time_s))
            start = None
    assert start is None
    return out


def run(det: DtmfDetector, audio: npt.NDArray[np.int16], frame: int) -> list[DtmfEvent]:
    events = []
    for i in range(0, audio.shape[1], frame):
        events += det.process(audio[:, i:i + frame])
    return events + det.flush()


def signals() -> npt.NDArray[np.int16]:
    """Four ports with different content of the same length (seeded)."""
    rng = np.random.default_rng(7)
    n = 16000
    a = generate_dtmf("1234567890", on_ms=45, off_ms=55)
    b = np.concatenate([np.zeros(1234), generate_dtmf("*#ABCD", on_ms=70, off_ms=45, level_dbm0=-30.0)])
    c = to_int16(rng.standard_normal(n) * dbm0_to_rms(-20.0))
    d = np.concatenate([np.zeros(5000), generate_dtmf("0", on_ms=300, off_ms=0, twist_db=5.0)])
    out = np.zeros((4, n), dtype=np.int16)
    for i, x in enumerate((a, b, c, d)):
        out[i, :x.size] = x[:n]
    return out


@pytest.mark.parametrize("frame", [160, 40, 80, 320, 7, 1000])
def test_framing_and_ports_match_detect_dtmf(frame: int) -> None:
    audio = signals()
    events = run(DtmfDetector(audio.shape[0]), audio, frame)
    for port in range(audio.shape[0]):
        assert pairs(events, port) == detect_dtmf(audio[port]), port
    assert "".join(d for d, _, _ in pairs(events, 0)) == "1234567890"
    assert "".join(d for d, _, _ in pairs(events, 1)) == "*#ABCD"
    assert pairs(events, 2) == []
    assert [d for d, _, _ in pairs(events, 3)] == ["0"]


def test_present_tracks_digit_per_port() -> None:
    det = DtmfDetector(3)
    tone_ = generate_dtmf("5", on_ms=200, off_ms=0)
    frame = np.zeros((3, 160), dtype=np.int16)
    seen = []
    for i in range(0, tone_.size, 160):
        frame[1] = tone_[i:i + 160]
        det.process(frame)
        seen.append(det.present.copy())
    assert not any(s[0] or s[2] for s in seen)
    assert seen[-1][1] and not seen[0][1]
    frame[1] = 0
    for _ in range(3):
        det.process(frame)
    assert not det.present.any()


def test_start_event_reported_within_50ms() -> None:
    """The start event comes 40 ms after tone onset at most (5 windows of 5 ms + the 15 ms window)."""
    det = DtmfDetector(1)
    x = generate_dtmf(DIGITS[:1], on_ms=100, off_ms=0)[None, :]
    for i in range(0, x.shape[1], 40):
        if det.process(x[:, i:i + 40]):
            assert (i + 40) / 8000 <= 0.040
            return
    pytest.fail("no start event")


def test_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="frame"):
        DtmfDetector(2).process(np.zeros((3, 160), dtype=np.int16))


def reference_events(d: list[int], first_sub: int = -2) -> list[tuple[str, bool, float]]:
    """The start/end rules written out one window at a time for one port: the plain reading of the
    state machine that DtmfDetector runs as array operations over ports and windows."""
    out = []
    run_digit, run_len, run_start, cur, miss, last_hit = -1, 0, 0, -1, 0, 0
    for j, x in enumerate(d):
        k = first_sub + j
        if x >= 0 and x == run_digit:
            run_len += 1
        else:
            run_len, run_start = (1 if x >= 0 else 0), k
        run_digit = x
        if cur >= 0:
            if x == cur:
                miss, last_hit = 0, k
            else:
                miss += 1
            if miss >= END_WINDOWS:
                out.append((DIGITS[cur], False, (last_hit + WIN_SUBS) * SUB / 8000))
                cur = -1
        if cur < 0 and run_len >= START_WINDOWS:
            out.append((DIGITS[x], True, run_start * SUB / 8000))
            cur, miss, last_hit = x, 0, k
    return out


def test_state_machine_matches_reference_on_random_decisions() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        ports, n = int(rng.integers(1, 5)), int(rng.integers(1, 120))
        sticky = rng.integers(0, 3, size=(ports, 1))
        d = np.where(rng.random((ports, n)) < rng.random(), sticky, -1)
        d = np.where(rng.random((ports, n)) < 0.05, rng.integers(0, 16, size=(ports, n)), d).astype(np.int64)
        det = DtmfDetector(ports)
        events = []
        for j in range(0, n, 4):
            events += det._track(d[:, j:j + 4], d[:, j:j + 4].shape[1])
            det._subs += d[:, j:j + 4].shape[1]
        for p in range(ports):
            got = [(e.digit, e.start, e.time_s) for e in events if e.port == p]
            assert got == reference_events(d[p].tolist()), p
