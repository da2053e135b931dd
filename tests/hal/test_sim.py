"""The line simulator: virtual phones that make real signals and decode what the line really sent."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
import pytest
from scipy.signal import firwin, lfilter

from dsp.callerid import generate_alert, generate_callerid, generate_dtmf_callerid, generate_vmwi
from dsp.dtmf import detect_dtmf
from dsp.level import power_dbm0
from dsp.synth import to_int16, tone
from dsp.tones import country
from hal.events import Feed, HookEvent, HookKind
from hal.line import AlertMode
from hal.sim import HybridEcho, SimBoard

FRAME = 160


def run(board: SimBoard, seconds: float, play: np.ndarray | None = None
        ) -> tuple[list[HookEvent], np.ndarray]:
    """Tick the board like the media clock does; returns hook events and what it read (per port)."""
    events: list[HookEvent] = []
    heard = []
    for k in range(round(seconds / 0.02)):
        events += board.poll()
        _, frames = board.read()
        heard.append(frames)
        out = np.zeros_like(frames) if play is None else play[:, k * FRAME:(k + 1) * FRAME]
        board.write(out)
    events += board.poll()
    return events, np.concatenate(heard, axis=1)


def test_lift_and_hang_up() -> None:
    board = SimBoard(2, echo=None)
    board.phones[1].lift(at=0.1)
    board.phones[1].hang_up(at=1.0)
    events, _ = run(board, 2.0)
    assert [(e.port, e.kind) for e in events] == [(1, HookKind.OFF_HOOK), (1, HookKind.ON_HOOK)]
    assert events[0].time == pytest.approx(0.1) and events[1].time == pytest.approx(1.0)


@pytest.mark.parametrize(("pps", "ratio"), [(8, 0.55), (10, 0.6), (12, 0.7)])
def test_rotary_dial_full_sequence(pps: float, ratio: float) -> None:
    board = SimBoard(1, echo=None, bounce=True)
    phone = board.phones[0]
    phone.lift(at=0.1)
    end = phone.dial_pulse("1234567890", at=0.8, pps=pps, break_ratio=ratio, pause_s=0.5)
    events, _ = run(board, end + 0.5)
    assert events[0].kind is HookKind.OFF_HOOK
    assert "".join(e.digit or "" for e in events if e.kind is HookKind.DIGIT) == "1234567890"
    assert all(e.kind is not HookKind.ON_HOOK for e in events)


def test_keypad_puts_real_tones_into_the_line() -> None:
    board = SimBoard(2, echo=None)
    phone = board.phones[1]
    phone.lift(at=0.0)
    end = phone.dial_dtmf("5551212*#", at=0.2)
    _, heard = run(board, end + 0.2)
    assert [d for d, _, _ in detect_dtmf(heard[1])] == list("5551212*#")
    assert not heard[0].any()


def test_mouthpiece_is_silent_on_hook_and_without_loop_current() -> None:
    board = SimBoard(1, echo=None)
    phone = board.phones[0]
    phone.speak(to_int16(tone([1000.0], -10.0, 8000)), at=0.0)
    _, heard = run(board, 0.5)
    assert not heard.any()
    phone.lift(at=0.5)
    board.lines[0].set_feed(Feed.OPEN)
    _, heard = run(board, 0.3)
    assert not heard.any()


def test_ringer_follows_the_cadence_and_counts_rings() -> None:
    board = SimBoard(1, echo=None)
    board.lines[0].ring(country("UK").ring, now=board.now())  # 0.4 on 0.2 off 0.4 on 2.0 off
    run(board, 6.1)
    phone = board.phones[0]
    starts = [round(a, 2) for a, _ in phone.ring_bursts]
    assert starts == [0.0, 0.6, 3.0, 3.6, 6.0]
    assert phone.rings == 5 and phone.ringing


def test_answer_trips_the_ring() -> None:
    board = SimBoard(1, echo=None)
    board.lines[0].ring(country("US").ring, now=0.0)
    board.phones[0].lift(at=0.9)
    events, _ = run(board, 3.0)
    assert [e.kind for e in events] == [HookKind.OFF_HOOK]
    phone = board.phones[0]
    assert not phone.ringing
    assert phone.ring_bursts[-1][1] == pytest.approx(0.92, abs=0.021)  # 10 ms confirm, 20 ms ticks
    assert phone.rings == 0


@pytest.mark.parametrize(("standard", "mode", "code"), [
    ("bell202", AlertMode.AFTER_FIRST_RING, "US"),
    ("v23", AlertMode.DT_AS, "UK"),
    ("v23", AlertMode.RP_AS, "DE"),
])
def test_caller_id_display_decodes_what_the_line_sent(standard: str, mode: AlertMode, code: str) -> None:
    board = SimBoard(1)  # with hybrid echo: the display must still read the burst
    burst = generate_callerid("01632960123", "ALICE", datetime(2026, 11, 25, 9, 5), standard=standard)
    board.lines[0].ring(country(code).ring, now=0.0, callerid=burst, mode=mode)
    run(board, 8.0)
    shown = board.phones[0].callerid
    assert shown is not None and shown.valid
    assert (shown.number, shown.name) == ("01632960123", "ALICE")
    assert shown.when is not None and (shown.when.hour, shown.when.minute) == (9, 5)


def test_caller_id_display_reads_dtmf_caller_id_too() -> None:
    """DTMF CLIP (ETSI ES 200 778-1 annex B): line reversal, digits, then the first ring."""
    board = SimBoard(1)
    burst = generate_dtmf_callerid("5550199")
    board.lines[0].ring(country("US").ring, now=0.0, callerid=burst, mode=AlertMode.LINE_REVERSAL)
    run(board, 3.0)
    shown = board.phones[0].callerid
    assert shown is not None and shown.valid and shown.number == "5550199"


def test_message_waiting_lamp() -> None:
    board = SimBoard(1)
    phone = board.phones[0]
    board.lines[0].send_onhook_data(generate_vmwi(True), now=0.0)
    run(board, 2.0)
    assert phone.mwi_lamp
    board.lines[0].send_onhook_data(generate_vmwi(False), now=board.now())
    run(board, 2.0)
    assert not phone.mwi_lamp
    assert phone.callerid is None


def test_type_ii_caller_id_after_cas_and_acknowledgement() -> None:
    board = SimBoard(1, echo=None)
    phone = board.phones[0]
    phone.lift(at=0.0)
    cas = generate_alert("cas")
    play = np.zeros((1, 8000 * 3), np.int16)
    play[0, 4000:4000 + len(cas)] = cas
    _, heard = run(board, 1.0, play[:, :8000])
    assert [d for d, _, _ in detect_dtmf(heard[0])] == ["D"]  # the phone acknowledged the CAS
    ack_end = detect_dtmf(heard[0])[0][2]
    burst = generate_callerid("5551234", "BOB", None, offhook=True)
    start = round((ack_end + 0.1) * 8000) - 8000
    later = np.zeros((1, 8000 * 2), np.int16)
    later[0, max(start, 0):max(start, 0) + len(burst)] = burst
    run(board, 2.0, later)
    assert phone.callerid is not None and phone.callerid.number == "5551234"


def test_earpiece_records_the_last_60_seconds() -> None:
    board = SimBoard(1, echo=None)
    phone = board.phones[0]
    phone.lift(at=0.0)
    sig = to_int16(tone([440.0], -10.0, 8000 * 2))
    run(board, 2.0, sig[None, :])
    heard = phone.earpiece(1.0)
    assert len(heard) == 8000
    np.testing.assert_array_equal(heard, sig[8000:])
    run(board, 61.0)
    assert len(phone.earpiece()) == 60 * 8000 and not phone.earpiece().any()


@pytest.mark.parametrize("erl_db", [6.0, 12.0, 20.0])
def test_hybrid_echo_return_loss(erl_db: float) -> None:
    board = SimBoard(1, echo=HybridEcho(erl_db=erl_db))
    board.phones[0].lift(at=0.0)
    rng = np.random.default_rng(1)
    band = lfilter(firwin(101, [300, 3400], fs=8000, pass_zero=False), [1.0], rng.standard_normal(16000))
    far = to_int16(band / np.std(band) * 3000)
    _, heard = run(board, 2.0, far[None, :])
    erl = power_dbm0(far[4000:-400]) - power_dbm0(heard[0, 4000:-400])
    assert erl == pytest.approx(erl_db, abs=1.0)


def test_realtime_board_paces_reads_by_the_wall_clock() -> None:
    board = SimBoard(1, realtime=True, echo=None)
    t0 = time.monotonic()
    for _ in range(5):
        board.read()
        board.write(np.zeros((1, 160), np.int16))
    assert time.monotonic() - t0 >= 0.09


def test_rotary_dial_refuses_letters() -> None:
    with pytest.raises(ValueError, match="0-9"):
        SimBoard(1).phones[0].dial_pulse("12#", at=0.0)


def test_a_live_stream_plays_on_the_line_clock_after_a_prebuffer() -> None:
    """`stream` (a browser microphone): starts after 60 ms queued, plays in order without gaps,
    re-buffers after running dry, and drops the oldest audio beyond 200 ms."""
    board = SimBoard(1, echo=None)
    phone = board.phones[0]
    phone.lift(0.0)
    run(board, 0.1)
    ramp = np.arange(1, 2 * FRAME + 1, dtype=np.int16)
    phone.stream(ramp)  # 40 ms: below the prebuffer
    _, heard = run(board, 0.04)
    assert not heard.any()
    phone.stream(ramp + 1000)  # 80 ms queued: starts
    _, heard = run(board, 0.1)
    assert np.array_equal(heard[0, :4 * FRAME], np.concatenate([ramp, ramp + 1000]))
    assert not heard[0, 4 * FRAME:].any(), "dry: silence, not a repeat"
    for k in range(20):  # 400 ms pushed at once: only the newest 200 ms are kept
        phone.stream(np.full(FRAME, k + 1, np.int16))
    _, heard = run(board, 0.2)
    assert heard[0, ::FRAME].tolist() == list(range(11, 21))


def test_earpiece_taps_get_every_frame_heard() -> None:
    board = SimBoard(1, echo=None)
    frames: list[np.ndarray] = []
    board.phones[0].add_earpiece_tap(frames.append)
    board.phones[0].lift(0.0)
    play = np.tile(np.arange(FRAME, dtype=np.int16), (1, 10))
    run(board, 0.2, play)
    assert len(frames) == 10 and np.array_equal(frames[-1], np.arange(FRAME))
    board.phones[0].remove_earpiece_tap(frames.append)
    run(board, 0.1, play[:, :5 * FRAME])
    assert len(frames) == 10
