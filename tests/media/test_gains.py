"""Per-port rx/tx gains in the pipeline: levels both ways, saturation, a 0 dB path left bit-identical,
tones unscaled, and echo cancellation still referenced to what the line really carried."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from aiortc.rtp import RtpPacket

from dsp.g711 import ulaw_decode, ulaw_encode
from dsp.level import power_dbm0
from dsp.synth import to_int16, tone
from dsp.tones import country
from firmware.media.pipeline import Pipeline
from firmware.media.session import MediaSession
from firmware.sip.sdp import Negotiated
from hal.sim import HybridEcho
from tests.media.test_pipeline import Call, power_db, source

RATE = 8000
FRAME = 160
TEST_HZ = 1004.0
"""The standard test tone (ANSI/TIA-810, O.41 weighting-neutral): not a sub-multiple of 8 kHz."""
Frames = npt.NDArray[np.int16]


def session(port: int) -> MediaSession:
    far = Negotiated("PCMU", 0, 8000, 101, 20, "127.0.0.1", 6000 + port, ("127.0.0.1", 6001 + port),
                     "sendrecv", None)
    return MediaSession(far, 5000 + 2 * port, 0.0)


def run(pipe: Pipeline, mouth: list[Frames], far: list[Frames],
        ticks: int = 40, first: int = 0) -> tuple[Frames, list[list[bytes]]]:
    """`ticks` ticks from tick `first` on: port p's phone says `mouth[p]`, its far end sends `far[p]`.
    Returns the earpiece audio [ports, samples] and each port's sent RTP payloads."""
    ports = pipe.ports
    sessions = [pipe.sessions[p] for p in range(ports)]
    ear: list[Frames] = []
    sent: list[list[bytes]] = [[] for _ in range(ports)]
    for k in range(first, first + ticks):
        now, i = k * 0.02, k - first
        for p, s in enumerate(sessions):
            assert s is not None
            packet = RtpPacket(payload_type=0, sequence_number=k, timestamp=k * FRAME, ssrc=100 + p,
                               payload=ulaw_encode(far[p][i * FRAME:(i + 1) * FRAME]).tobytes())
            s.receive_rtp(packet.serialize(), ("127.0.0.1", 6000 + p), now)
        frames = np.stack([m[i * FRAME:(i + 1) * FRAME] for m in mouth])
        result = pipe.tick(frames, now)
        ear.append(result.frames.copy())
        for p, dg in result.datagrams:
            if not dg.rtcp:
                sent[p].append(RtpPacket.parse(dg.data).payload)
    return np.concatenate(ear, axis=1), sent


def sent_audio(payloads: list[bytes]) -> Frames:
    return ulaw_decode(np.frombuffer(b"".join(payloads), np.uint8))


def test_six_db_raises_a_minus_20_dbm0_tone_to_minus_14_both_ways() -> None:
    """Port 0 at +6 dB both ways, port 1 at 0 dB: one gain vector, each port its own."""
    pipe = Pipeline(2)
    for p in range(2):
        pipe.attach(p, session(p))
    pipe.set_gains(0, 6.0, 6.0)
    signal = to_int16(tone([TEST_HZ], -20.0, 40 * FRAME))
    ear, sent = run(pipe, [signal, signal], [signal, signal])
    settled = slice(-20 * FRAME, None)
    assert abs(float(power_dbm0(ear[0, settled])) - -14.0) <= 0.2
    assert abs(float(power_dbm0(sent_audio(sent[0])[settled])) - -14.0) <= 0.2
    assert abs(float(power_dbm0(ear[1, settled])) - -20.0) <= 0.2
    assert abs(float(power_dbm0(sent_audio(sent[1])[settled])) - -20.0) <= 0.2
    pipe.set_gains(0, -6.0, 0.0)
    ear, sent = run(pipe, [signal, signal], [signal, signal], first=40)
    assert abs(float(power_dbm0(ear[0, settled])) - -26.0) <= 0.2
    assert abs(float(power_dbm0(sent_audio(sent[0])[settled])) - -20.0) <= 0.2


def test_gain_saturates_at_full_scale_instead_of_wrapping() -> None:
    """0 dBm0 + 12 dB is far past the G.711 overload point (+3.14 dBm0): the output is the input times
    the gain clipped to int16, sample for sample, never wrapped around."""
    gain = 10 ** (12 / 20)
    loud = to_int16(tone([TEST_HZ], 0.0, 40 * FRAME))
    silence = np.zeros_like(loud)
    pipe = Pipeline(1)
    pipe.attach(0, session(0))
    pipe.set_gains(0, 12.0, 12.0)
    ear, _ = run(pipe, [silence], [loud])
    heard = ear[0, -20 * FRAME:]
    expected = to_int16(ulaw_decode(ulaw_encode(loud)) * gain)
    assert heard.max() == 32767 and heard.min() == -32768
    # the jitter buffer and the G.711 Appendix I concealment's history delay it by some samples
    delays = [d for d in range(20 * FRAME) if np.array_equal(heard, expected[20 * FRAME - d:][:20 * FRAME])]
    assert delays, "the earpiece is not the decoded far end times the gain, clipped"

    pipe = Pipeline(1)
    pipe.attach(0, session(0))
    pipe.set_gains(0, 12.0, 12.0)
    _, sent = run(pipe, [loud], [silence])
    up = sent_audio(sent[0])[-20 * FRAME:].astype(np.float64)
    assert up.max() == 32124 and up.min() == -32124  # mu-law's largest codes: clipped, then coded
    # the echo canceller's input filter changes the samples a little; a wrap would flip their sign
    ideal = to_int16(loud * gain).astype(np.float64)
    d = max(range(FRAME), key=lambda d: float(np.dot(up, ideal[20 * FRAME - d:][:20 * FRAME])))
    ideal = ideal[20 * FRAME - d:][:20 * FRAME]
    big = np.abs(ideal) > 8000
    assert np.all(np.sign(up[big]) == np.sign(ideal[big]))


def test_zero_db_is_bit_identical_to_no_gain() -> None:
    """A port back at 0 dB, beside one with a gain, gives exactly what a pipeline without gains gives."""
    rng = np.random.default_rng(7)
    mouth = [to_int16(rng.normal(0, 3000, 40 * FRAME)) for _ in range(2)]
    far = [to_int16(rng.normal(0, 3000, 40 * FRAME)) for _ in range(2)]
    plain, gained = Pipeline(2), Pipeline(2)
    for pipe in (plain, gained):
        for p in range(2):
            pipe.attach(p, session(p))
    gained.set_gains(0, 3.5, -2.0)
    gained.set_gains(0, 0.0, 0.0)
    gained.set_gains(1, -12.0, 12.0)
    ear_a, sent_a = run(plain, mouth, far)
    ear_b, sent_b = run(gained, mouth, far)
    assert np.array_equal(ear_a[0], ear_b[0])
    assert sent_a[0] == sent_b[0]
    assert not np.array_equal(ear_a[1], ear_b[1]) and sent_a[1] != sent_b[1]


def test_rx_gain_leaves_call_progress_tones_at_their_country_level() -> None:
    """Call waiting tone over a silent call: the same level at +12 dB rx as at 0 dB."""
    levels = []
    for rx in (0.0, 12.0):
        pipe = Pipeline(1)
        pipe.attach(0, session(0))
        pipe.set_gains(0, rx, 0.0)
        pipe.play_tone(0, country("US").tones["dial"])
        silence = np.zeros(20 * FRAME, np.int16)
        ear, _ = run(pipe, [silence], [silence], ticks=20)
        levels.append(float(power_dbm0(ear[0, -10 * FRAME:])))
    assert abs(levels[0] - levels[1]) < 0.01 and levels[0] > -20.0


def test_echo_is_still_cancelled_with_rx_gain() -> None:
    """+6 dB toward the earpiece makes the hybrid echo 6 dB louder; the canceller, whose reference is
    the frame actually written to the line, still removes it (G.168 ERLE as in test_pipeline)."""
    c = Call(echo=HybridEcho(erl_db=6.0))
    try:
        c.pipe.set_gains(0, 6.0, 0.0)
        rng = np.random.default_rng(3)
        c.far_source = source(rng.normal(0.0, 1000.0, 5 * RATE))
        c.run(4.0)
        echo_in = np.concatenate(c.near_in)[2 * RATE:]
        returned = np.concatenate(c.far_rx)[2 * RATE:]
        assert power_db(echo_in) > 55.0
        assert power_db(echo_in) - power_db(returned) >= 25.0
    finally:
        c.close()


def test_a_fax_call_passes_through_without_gain() -> None:
    """V.25 answer tone from the far end: the port switches to G.711 pass-through, and its +6 dB rx gain
    stops applying (a modem signal gained could clip); it applies again to the port's next call."""
    c = Call(echo=None)
    try:
        c.pipe.set_gains(0, 6.0, 6.0)
        n = np.arange(4 * RATE)
        c.far_source = source(tone([2100.0], -12.0, n.size) * np.where((n // 3600) % 2, -1.0, 1.0))
        c.run(2.0)
        assert c.near.fax
        assert abs(float(power_dbm0(c.phone.earpiece(0.5))) - -12.0) < 0.5
        assert c.pipe.detach(0) is c.near
        c.pipe.attach(0, session(0))
        voice = to_int16(tone([TEST_HZ], -20.0, 40 * FRAME))
        ear, _ = run(c.pipe, [np.zeros_like(voice)], [voice], first=1000)
        assert abs(float(power_dbm0(ear[0, -20 * FRAME:])) - -14.0) <= 0.2
    finally:
        c.close()
