"""RFC 4733 telephone-events, in-band suppression, tone playout and SIP INFO bodies."""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt
import pytest

from dsp.dtmf import DtmfDetector, DtmfEvent, detect_dtmf, dtmf_frequencies, generate_dtmf
from dsp.level import dbm0_to_peak, power_dbm0
from dsp.synth import tone
from firmware.media.dtmf_relay import (
    EDGE_MS,
    END_TIMEOUT_S,
    MAX_DURATION,
    MIN_GAP_MS,
    DtmfMode,
    DtmfReceiver,
    DtmfSender,
    EventPacket,
    InbandSuppressor,
    RelayedDigit,
    TelephoneEvent,
    ToneOut,
    build_info_body,
    digit_to_event,
    event_to_digit,
    parse_info_body,
    volume_from_dbm0,
)

FRAME = 160
ORIGIN = 0xFFFF_F000
"""RTP timestamp of the detector's sample 0: close to 2**32 so every test crosses the wrap."""


def ts(samples: int) -> int:
    return (ORIGIN + samples) & 0xFFFFFFFF


def unpack(packet: EventPacket) -> TelephoneEvent:
    return TelephoneEvent.unpack(packet.payload)


# --- payload ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "raw"), [
    # RFC 4733 §2.3 figure 1: event(8) | E(1) R(1) volume(6) | duration(16), network order.
    (TelephoneEvent(5, True, 10, 800), b"\x05\x8a\x03\x20"),
    (TelephoneEvent(11, False, 63, MAX_DURATION), b"\x0b\x3f\xff\xff"),
    (TelephoneEvent(0, False, 0, 0), b"\x00\x00\x00\x00"),
    (TelephoneEvent(15, True, 7, 0x0140), b"\x0f\x87\x01\x40"),
])
def test_payload_matches_rfc_layout(event: TelephoneEvent, raw: bytes) -> None:
    assert event.pack() == raw
    assert TelephoneEvent.unpack(raw) == event


def test_reserved_bit_is_ignored_and_extra_blocks_tolerated() -> None:
    assert TelephoneEvent.unpack(b"\x05\x4a\x03\x20") == TelephoneEvent(5, False, 10, 800)
    assert TelephoneEvent.unpack(b"\x05\x8a\x03\x20\x06\x0a\x00\x00") == TelephoneEvent(5, True, 10, 800)


@pytest.mark.parametrize("raw", [b"", b"\x05\x8a\x03", b"\x05\x8a\x03\x20\x00"])
def test_bad_payload_length(raw: bytes) -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        TelephoneEvent.unpack(raw)


@pytest.mark.parametrize("kwargs", [{"event": 256}, {"volume": 64}, {"volume": -1},
                                    {"duration": 0x10000}, {"duration": -1}])
def test_out_of_range_fields(kwargs: dict[str, int]) -> None:
    fields = {"event": 1, "end": False, "volume": 10, "duration": 0} | kwargs
    with pytest.raises(ValueError):
        TelephoneEvent(**fields)  # type: ignore[arg-type]


def test_digit_event_mapping() -> None:
    # RFC 4733 §3.2 table 3.
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("d") == 15
    assert "".join(event_to_digit(c) for c in range(16)) == "0123456789*#ABCD"
    for bad in ("E", "", "12"):
        with pytest.raises(ValueError, match="not a DTMF digit"):
            digit_to_event(bad)
    for code in (16, -1):
        with pytest.raises(ValueError):
            event_to_digit(code)


@pytest.mark.parametrize(("level", "volume"), [(-10.0, 10), (-10.4, 10), (-9.6, 10), (0.0, 0), (3.1, 0),
                                               (-63.0, 63), (-90.0, 63), (-120.0, 63)])
def test_volume_clamp(level: float, volume: int) -> None:
    assert volume_from_dbm0(level) == volume


def test_volume_rejects_nan() -> None:
    with pytest.raises(ValueError):
        volume_from_dbm0(float("nan"))


# --- sender -------------------------------------------------------------------------------------------------


def run_sender(sender: DtmfSender, events: dict[int, list[DtmfEvent]], ticks: int,
               level: float = -7.0) -> list[list[EventPacket]]:
    """Tick `sender` over frames 0..ticks-1, handing it `events[k]` before frame k's tick."""
    out = []
    for k in range(ticks):
        for ev in events.get(k, []):
            sender.handle(ev, level)
        out.append(sender.tick(ts(k * FRAME)))
    return out


def test_sender_sequence_for_a_200ms_digit() -> None:
    """Start at 0.1 s, detected two frames later; end at 0.3 s, detected two frames later."""
    sender = DtmfSender(ORIGIN)
    start, end = DtmfEvent(0, "#", True, 0.100), DtmfEvent(0, "#", False, 0.300)
    ticks = run_sender(sender, {7: [start], 17: [end]}, 25, level=-7.2)
    assert all(t == [] for t in ticks[:7] + ticks[20:])
    assert all(len(t) == 1 for t in ticks[7:20])
    packets = [t[0] for t in ticks[7:20]]
    assert {p.timestamp for p in packets} == {ts(800)}
    assert [p.marker for p in packets] == [True] + [False] * 12
    fields = [unpack(p) for p in packets]
    assert {f.event for f in fields} == {11} and {f.volume for f in fields} == {7}
    # Updates every tick, the duration running to the end of the frame just captured.
    assert [f.duration for f in fields[:10]] == [(k + 1) * FRAME - 800 for k in range(7, 17)]
    assert [f.end for f in fields] == [False] * 10 + [True] * 3
    # Three identical end packets (§2.5.1.4) with the measured duration, on consecutive ticks.
    assert packets[10] == packets[11] == packets[12]
    assert fields[10].duration == 1600


def test_suppress_flag_follows_the_digit() -> None:
    sender = DtmfSender(ORIGIN)
    assert not sender.suppress
    sender.handle(DtmfEvent(0, "1", True, 0.0), -10.0)
    assert sender.suppress
    sender.tick(ts(0))
    sender.handle(DtmfEvent(0, "2", False, 0.1), -10.0)  # not this digit's end
    assert sender.suppress
    sender.handle(DtmfEvent(0, "1", False, 0.1), -10.0)
    assert not sender.suppress


def test_short_digit_ended_before_its_first_tick_gets_marker_and_three_end_packets() -> None:
    sender = DtmfSender(ORIGIN)
    ticks = run_sender(sender, {3: [DtmfEvent(0, "7", True, 0.0), DtmfEvent(0, "7", False, 0.05)]}, 8)
    sent = [p for t in ticks for p in t]
    assert [p.marker for p in sent] == [True, False, False]
    assert {unpack(p) for p in sent} == {TelephoneEvent(7, True, 7, 400)}


def test_end_and_next_start_in_one_frame_keep_both_digits() -> None:
    sender = DtmfSender(ORIGIN)
    ticks = run_sender(sender, {2: [DtmfEvent(0, "1", True, 0.0)],
                                10: [DtmfEvent(0, "1", False, 0.1), DtmfEvent(0, "2", True, 0.15)]}, 16)
    sent = [p for t in ticks for p in t]
    ends_of_1 = [p for p in sent if unpack(p) == TelephoneEvent(1, True, 7, 800)]
    assert len(ends_of_1) == 3
    first_of_2 = next(p for p in sent if unpack(p).event == 2)
    assert first_of_2.marker and first_of_2.timestamp == ts(1200)
    assert sent.index(ends_of_1[0]) < sent.index(first_of_2)


def test_long_event_is_split_into_segments() -> None:
    """9 s of one digit: 65535-sample segments (§2.5.1.3), each closed three times without E."""
    sender = DtmfSender(ORIGIN)
    ticks = run_sender(sender, {1: [DtmfEvent(0, "0", True, 0.0)], 455: [DtmfEvent(0, "0", False, 9.0)]},
                       460)
    sent = [p for t in ticks for p in t]
    assert max(len(t) for t in ticks) == 2  # a segment's retransmissions overlap the next one's updates
    segments = sorted({p.timestamp for p in sent}, key=lambda t: (t - ORIGIN) & 0xFFFFFFFF)
    assert segments == [ts(0), ts(MAX_DURATION)]
    seg1 = [unpack(p) for p in sent if p.timestamp == ts(0)]
    seg2 = [unpack(p) for p in sent if p.timestamp == ts(MAX_DURATION)]
    assert [f for f in seg1 if f.duration == MAX_DURATION] == [TelephoneEvent(0, False, 7, MAX_DURATION)] * 3
    assert not any(f.end for f in seg1) and all(f.duration <= MAX_DURATION for f in seg1)
    assert [p.marker for p in sent].count(True) == 1 and sent[0].marker
    assert [f for f in seg2 if f.end] == [TelephoneEvent(0, True, 7, 72000 - MAX_DURATION)] * 3
    durations = [f.duration for f in seg2 if not f.end]
    assert durations == sorted(durations) and durations[0] > 0


def test_long_event_ending_before_its_new_segment_stays_bounded() -> None:
    """The detector reports the end ~35 ms late: the segment opened meanwhile ends with duration 0."""
    sender = DtmfSender(ORIGIN)
    split_tick = MAX_DURATION // FRAME  # its frame ends past 0xFFFF
    ticks = run_sender(sender, {0: [DtmfEvent(0, "4", True, 0.0)],
                                split_tick + 2: [DtmfEvent(0, "4", False, 65500 / 8000)]}, split_tick + 6)
    sent = [p for t in ticks[split_tick + 2:] for p in t]
    assert len(sent) <= 6
    assert [unpack(p) for p in sent if p.timestamp == ts(MAX_DURATION) and unpack(p).end] == \
        [TelephoneEvent(4, True, 7, 0)] * 3


# --- the real detector driving sender and suppressor --------------------------------------------------------


def detect_and_send(audio: npt.NDArray[np.int16]) -> tuple[list[list[EventPacket]], npt.NDArray[np.int16],
                                                           list[bool]]:
    """The uplink of one port for `audio`: packets per tick, suppressed audio, suppress flag per tick."""
    det, sender, sup = DtmfDetector(1), DtmfSender(ORIGIN), InbandSuppressor(1)
    ticks, frames, flags = [], [], []
    for k in range(audio.size // FRAME):
        frame = audio[None, k * FRAME:(k + 1) * FRAME]
        for ev in det.process(frame):
            sender.handle(ev, float(power_dbm0(frame)[0]))
        ticks.append(sender.tick(ts(k * FRAME)))
        frames.append(sup.process(frame, [sender.suppress]))
        flags.append(sender.suppress)
    return ticks, np.concatenate(frames, axis=1)[0], flags


def test_detected_digit_is_relayed_with_its_measured_level_and_duration() -> None:
    audio = np.concatenate([np.zeros(400, np.int16), generate_dtmf("9", on_ms=200, off_ms=300,
                                                                   level_dbm0=-12.0)])
    ticks, _, _ = detect_and_send(audio)
    sent = [p for t in ticks for p in t]
    assert sent[0].marker and abs(((sent[0].timestamp - ORIGIN) & 0xFFFFFFFF) - 400) <= 40
    ends = [unpack(p) for p in sent if unpack(p).end]
    assert len(ends) == 3 and abs(ends[0].duration - 1600) <= 80
    assert ends[0].volume == 9  # two tones of -12 dBm0 carry -9 dBm0 together


@pytest.mark.parametrize("offset", [0, 37, 80, 121, 159])
def test_inband_suppression_leaks_at_most_one_frame(offset: int) -> None:
    lead = 800 + offset
    audio = np.concatenate([np.zeros(lead, np.int16), generate_dtmf("5", on_ms=300, off_ms=300)])
    audio[:lead] = 100  # something that is not the tone, to check the delay line passes it through
    _, out, flags = detect_and_send(audio)
    assert np.array_equal(out[FRAME:FRAME + 800], audio[:800])  # delayed by exactly one frame
    tone_out = out[FRAME + lead:FRAME + lead + 2400]
    leaked = np.flatnonzero(tone_out)
    assert leaked.size == 0 or leaked.max() < FRAME  # 0-20 ms of tone, never more (Q.24 rejects <= 23 ms)
    assert any(flags) and not flags[-1]
    assert detect_dtmf(out) == []


# --- receiver -----------------------------------------------------------------------------------------------


def sender_packets(events: dict[int, list[DtmfEvent]], ticks: int) -> list[list[EventPacket]]:
    return run_sender(DtmfSender(ORIGIN), events, ticks)


def feed(rx: DtmfReceiver, packets: list[tuple[float, EventPacket]]) -> list[RelayedDigit]:
    out: list[RelayedDigit] = []
    for now, p in packets:
        out += rx.handle_timer(now)
        out += rx.receive(p.payload, p.timestamp, now)
    return out


def timed(ticks: list[list[EventPacket]]) -> list[tuple[float, EventPacket]]:
    return [(k * 0.02, p) for k, t in enumerate(ticks) for p in t]


def test_receiver_reports_start_and_end_once() -> None:
    ticks = sender_packets({5: [DtmfEvent(0, "3", True, 0.06)], 20: [DtmfEvent(0, "3", False, 0.3)]}, 30)
    got = feed(DtmfReceiver(), timed(ticks))
    assert got == [RelayedDigit("3", True, ts(480), 0, 7), RelayedDigit("3", False, ts(480), 1920, 7)]


def test_receiver_ends_on_timeout_when_end_packets_are_lost() -> None:
    ticks = sender_packets({0: [DtmfEvent(0, "A", True, 0.0)], 10: [DtmfEvent(0, "A", False, 0.18)]}, 15)
    kept = [(t, p) for t, p in timed(ticks) if not unpack(p).end]
    rx = DtmfReceiver()
    assert feed(rx, kept) == [RelayedDigit("A", True, ts(0), 0, 7)]
    last_rx = kept[-1][0]
    assert rx.get_timer() == pytest.approx(last_rx + END_TIMEOUT_S)
    assert rx.handle_timer(last_rx + END_TIMEOUT_S - 0.001) == []
    assert rx.handle_timer(last_rx + END_TIMEOUT_S) == [RelayedDigit("A", False, ts(0), 10 * FRAME, 7)]
    assert rx.get_timer() is None
    # Its end packets arriving after all change nothing.
    assert feed(rx, [(t, p) for t, p in timed(ticks) if unpack(p).end]) == []


def test_receiver_tolerates_reordering_and_loss_of_the_first_packet() -> None:
    ticks = sender_packets({2: [DtmfEvent(0, "1", True, 0.0)], 12: [DtmfEvent(0, "1", False, 0.2)],
                            22: [DtmfEvent(0, "2", True, 0.3)], 32: [DtmfEvent(0, "2", False, 0.5)]}, 40)
    packets = [p for t in ticks for p in t]
    assert packets[0].marker
    packets = packets[1:]  # the marker packet of "1" is lost
    rng = random.Random(4733)
    for _ in range(20):
        shuffled = packets.copy()
        for i in range(len(shuffled) - 1):  # swap neighbours: typical network reordering
            if rng.random() < 0.3:
                shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
        got = feed(DtmfReceiver(), [(i * 0.02, p) for i, p in enumerate(shuffled)])
        assert [(d.digit, d.start) for d in got] == [("1", True), ("1", False), ("2", True), ("2", False)]
        assert [d.duration for d in got if not d.start] == [1600, 1600]


def test_newer_digit_ends_an_open_one_and_stale_packets_are_dropped() -> None:
    rx = DtmfReceiver()
    a = TelephoneEvent(4, False, 10, 320).pack()
    b = TelephoneEvent(6, False, 10, 160).pack()
    assert rx.receive(a, ts(0), 0.0) == [RelayedDigit("4", True, ts(0), 0, 10)]
    assert rx.receive(b, ts(2000), 0.1) == [RelayedDigit("4", False, ts(0), 320, 10),
                                            RelayedDigit("6", True, ts(2000), 0, 10)]
    # A late update of "4", and an unseen event older than "6", are stragglers.
    assert rx.receive(TelephoneEvent(4, False, 10, 480).pack(), ts(0), 0.11) == []
    assert rx.receive(TelephoneEvent(9, False, 10, 160).pack(), ts(1000), 0.12) == []
    # A timestamp far in the past is the peer's clock jumping: a new digit.
    jump = (ts(2000) - 20 * 8000) & 0xFFFFFFFF
    assert [d.start for d in rx.receive(TelephoneEvent(9, True, 10, 800).pack(), jump, 0.13)] == \
        [False, True, False]


def test_receiver_joins_long_event_segments() -> None:
    ticks = sender_packets({1: [DtmfEvent(0, "0", True, 0.0)], 455: [DtmfEvent(0, "0", False, 9.0)]}, 460)
    assert feed(DtmfReceiver(), timed(ticks)) == [RelayedDigit("0", True, ts(0), 0, 7),
                                                  RelayedDigit("0", False, ts(0), 72000, 7)]


def test_same_digit_twice_with_lost_ends_is_two_digits() -> None:
    rx = DtmfReceiver()
    got = rx.receive(TelephoneEvent(5, False, 10, 800).pack(), ts(0), 0.0)
    got += rx.receive(TelephoneEvent(5, False, 10, 160).pack(), ts(1600), 0.2)
    assert [(d.digit, d.start, d.timestamp) for d in got] == [("5", True, ts(0)), ("5", False, ts(0)),
                                                              ("5", True, ts(1600))]


def test_malformed_and_non_dtmf_events_are_dropped_and_counted() -> None:
    rx = DtmfReceiver()
    assert rx.receive(b"\x05\x8a", ts(0), 0.0) == []
    assert rx.receive(TelephoneEvent(16, False, 10, 160).pack(), ts(0), 0.0) == []  # flash
    assert rx.dropped == 2
    assert rx.get_timer() is None


# --- tone playout -------------------------------------------------------------------------------------------


def play(tone_out: ToneOut, frames: int) -> npt.NDArray[np.int16]:
    return np.concatenate([tone_out.frame(FRAME) for _ in range(frames)])


def test_tone_out_plays_the_right_frequencies_for_the_right_time() -> None:
    out = ToneOut()
    out.handle(RelayedDigit("8", True, 1234, 0, 10))
    audio = play(out, 5)
    out.handle(RelayedDigit("8", False, 1234, 1600, 10))
    audio = np.concatenate([audio, play(out, 10)])
    assert not out.active
    on = np.flatnonzero(audio)
    assert on[0] <= 2 and on[-1] in range(1590, 1600)
    spectrum = np.abs(np.fft.rfft(audio[:1600].astype(np.float64)))
    freqs = np.fft.rfftfreq(1600, 1 / 8000)
    peaks = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert peaks == pytest.approx(list(dtmf_frequencies("8")), abs=5.0)
    # Volume 10 is the pair's power: -10 dBm0 within a fraction of a dB (the ramps lose a little).
    assert float(power_dbm0(audio[100:1500])) == pytest.approx(-10.0, abs=0.1)
    [(digit, start, end)] = detect_dtmf(audio)
    assert digit == "8" and start == pytest.approx(0.0, abs=0.01) and end == pytest.approx(0.2, abs=0.01)


def test_tone_out_is_phase_continuous_and_ramps_at_both_ends() -> None:
    out = ToneOut()
    out.handle(RelayedDigit("D", True, 0, 0, 6))
    out.handle(RelayedDigit("D", False, 0, 800, 6))
    audio = play(out, 6)[:800].astype(np.float64)
    level = -6.0 - 10 * np.log10(2.0)
    ref = tone(dtmf_frequencies("D"), level, 800)
    edge = round(EDGE_MS * 8)
    assert np.max(np.abs(audio[edge:-edge] - ref[edge:-edge])) <= 1.0
    peak = float(dbm0_to_peak(level)) * 2
    assert abs(audio[0]) < 0.01 * peak and abs(audio[-1]) < 0.01 * peak


def test_late_end_fades_out_within_the_next_frame() -> None:
    out = ToneOut()
    out.handle(RelayedDigit("2", True, 0, 0, 10))
    audio = play(out, 10)  # 200 ms already played
    out.handle(RelayedDigit("2", False, 0, 800, 10))  # ... of a 100 ms digit
    tail = play(out, 2)
    assert np.count_nonzero(audio) > 1590 and np.count_nonzero(tail[:round(EDGE_MS * 8)]) > 0
    assert not np.any(tail[round(EDGE_MS * 8):])
    assert abs(int(tail[round(EDGE_MS * 8) - 1])) < 0.05 * float(dbm0_to_peak(-13.0))


def test_queued_digits_get_minimum_tone_and_gap() -> None:
    out = ToneOut()
    for k, d in enumerate("147"):  # 20 ms digits back to back: each stretched and separated
        out.handle(RelayedDigit(d, True, k * 160, 0, 10))
        out.handle(RelayedDigit(d, False, k * 160, 160, 10))
    audio = play(out, 25)
    assert not out.active
    assert [d for d, _, _ in detect_dtmf(audio)] == list("147")
    gaps = np.diff(np.flatnonzero(audio))
    assert gaps.max() >= MIN_GAP_MS * 8


@pytest.mark.parametrize(("volume", "level"), [(0, -3.0), (63, -25.0)])
def test_tone_out_keeps_levels_playable(volume: int, level: float) -> None:
    out = ToneOut()
    out.handle(RelayedDigit("6", True, 0, 0, volume))
    out.handle(RelayedDigit("6", False, 0, 1600, volume))
    audio = play(out, 10)
    assert float(power_dbm0(audio[100:1500])) == pytest.approx(level + 10 * np.log10(2.0), abs=0.1)


def test_end_to_end_keypad_to_earpiece() -> None:
    """Mouthpiece DTMF -> detector -> RFC 4733 sender -> receiver -> ToneOut -> the same digits."""
    digits = "159#*0D"
    audio = np.concatenate([np.zeros(320, np.int16), generate_dtmf(digits, on_ms=90, off_ms=70)])
    ticks, _, _ = detect_and_send(np.concatenate([audio, np.zeros(1600, np.int16)]))
    rx, out = DtmfReceiver(), ToneOut()
    played = []
    for k, packets in enumerate(ticks):
        for p in packets:
            for d in rx.receive(p.payload, p.timestamp, k * 0.02):
                out.handle(d)
        played.append(out.frame(FRAME))
    decoded = detect_dtmf(np.concatenate(played))
    assert "".join(d for d, _, _ in decoded) == digits
    # Played from the start's arrival to the end's: up to one detector end-latency (~40 ms) long.
    assert all(0.085 <= end - start <= 0.135 for _, start, end in decoded)


# --- SIP INFO and modes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "body", "expected"), [
    ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", ("5", 160)),
    ("application/dtmf-relay", "signal= 5\nduration = 160\n", ("5", 160)),
    ("Application/DTMF-Relay; charset=utf-8", "SIGNAL=#\r\nDURATION=250", ("#", 250)),
    ("application/dtmf-relay", b"Signal=*\r\n", ("*", 250)),
    ("application/dtmf-relay", "Signal=11\r\nDuration=100\r\n", ("#", 100)),
    ("application/dtmf-relay", "\r\nSignal = a\r\n\r\nDuration = 90\r\n", ("A", 90)),
    ("application/dtmf", "7\r\n", ("7", 250)),
    ("application/dtmf", "10", ("*", 250)),
])
def test_info_body_variants(content_type: str, body: str | bytes, expected: tuple[str, int]) -> None:
    assert parse_info_body(content_type, body) == expected


@pytest.mark.parametrize(("content_type", "body", "message"), [
    ("application/dtmf-relay", "Duration=160\r\n", "no Signal"),
    ("application/dtmf-relay", "Signal=X\r\n", "not a DTMF digit"),
    ("application/dtmf-relay", "Signal=16\r\n", "not a DTMF digit"),
    ("application/dtmf-relay", "Signal=5\r\nDuration=abc\r\n", "Duration"),
    ("application/dtmf-relay", "Signal=5\r\nDuration=0\r\n", "Duration"),
    ("application/dtmf-relay", "Signal 5\r\n", "Name=value"),
    ("application/dtmf", "  \r\n", "empty"),
    ("text/plain", "Signal=5", "not a DTMF INFO body"),
])
def test_info_body_errors(content_type: str, body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_info_body(content_type, body)


def test_info_body_round_trip() -> None:
    assert build_info_body("#", 160) == ("application/dtmf-relay", "Signal=#\r\nDuration=160\r\n")
    for digit in "0123456789*#ABCD":
        assert parse_info_body(*build_info_body(digit.lower(), 120)) == (digit, 120)
    with pytest.raises(ValueError):
        build_info_body("5", 0)


def test_modes() -> None:
    assert [DtmfMode(m) for m in ("rfc4733", "inband", "info")] == list(DtmfMode)
    with pytest.raises(ValueError):
        DtmfMode("sip")
