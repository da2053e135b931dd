"""The three-way mix and a held session's pause, sans-IO: the pipeline ticked with invented times, far
ends as RTP packets handed straight to the sessions."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from aiortc.rtp import RtpPacket

from dsp.g711 import ulaw_decode, ulaw_encode
from firmware.media.jitter import JitterBuffer
from firmware.media.pipeline import Pipeline
from firmware.media.session import MediaSession
from firmware.sip.sdp import Negotiated

RATE = 8000
FRAME = 160


def negotiated(remote: int) -> Negotiated:
    return Negotiated("PCMU", 0, 8000, None, 20, "127.0.0.1", remote, ("127.0.0.1", remote + 1),
                      "sendrecv", None)


def sine(hz: float, start: int, n: int = FRAME) -> npt.NDArray[np.int16]:
    t = (start + np.arange(n)) / RATE
    return (5000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def peaks(x: npt.ArrayLike, n: int) -> list[float]:
    """The `n` strongest FFT bins (Hz), lowest first."""
    x = np.asarray(x, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / RATE)
    return sorted(float(f) for f in freqs[np.argsort(spectrum)[-n:]])


def near(found: list[float], wanted: list[float], tol: float = 10.0) -> bool:
    return all(abs(f - w) <= tol for f, w in zip(found, wanted, strict=True))


def test_each_far_end_hears_the_phone_and_the_other_and_the_phone_hears_both() -> None:
    """GR-577 three-way bridge: A (700 Hz) on the port's first session, B (1300 Hz) on its conference
    leg, the phone says 1000 Hz."""
    pipe = Pipeline(1)
    first, second = MediaSession(negotiated(5000), 4000, 0.0), MediaSession(negotiated(5002), 4002, 0.0)
    pipe.attach(0, first)
    pipe.attach(0, second, second=True)
    assert pipe.session_of(0) is first and pipe.session_of(1) is second
    sent: dict[int, list[bytes]] = {0: [], 1: []}
    ear = []
    for k in range(60):
        now = k * 0.02
        for session, hz, port in ((first, 700, 5000), (second, 1300, 5002)):
            packet = RtpPacket(payload_type=0, sequence_number=k, timestamp=k * FRAME, ssrc=port,
                               payload=ulaw_encode(sine(hz, k * FRAME)).tobytes())
            session.receive_rtp(packet.serialize(), ("127.0.0.1", port), now)
        result = pipe.tick(sine(1000, k * FRAME)[None, :], now)
        ear.append(result.frames[0].copy())
        for channel, dg in result.datagrams:
            if not dg.rtcp:
                sent[channel].append(RtpPacket.parse(dg.data).payload)
    tail = slice(-20, None)
    to_first = ulaw_decode(np.frombuffer(b"".join(sent[0][tail]), np.uint8))
    to_second = ulaw_decode(np.frombuffer(b"".join(sent[1][tail]), np.uint8))
    assert near(peaks(to_first, 2), [1000, 1300]), "A hears the phone and B"
    assert near(peaks(to_second, 2), [700, 1000]), "B hears the phone and A"
    assert near(peaks(np.concatenate(ear[-20:]), 2), [700, 1300]), "the phone hears A and B"

    assert pipe.detach(0, first) is first  # A leaves: B becomes the port's only session
    assert pipe.sessions[0] is second and pipe.conference.sessions[0] is None
    assert not pipe.conference.active


def test_a_paused_stream_restarts_its_playout() -> None:
    """A held call's far end stops sending; when it sends again after the pause (timestamps that did not
    advance, as some phones do), playout restarts instead of concealing the gap."""
    jb = JitterBuffer()
    payload = bytes(FRAME)
    for k in range(10):
        jb.push(payload, seq=k, timestamp=k * FRAME, ssrc=1, now=k * 0.02)
        jb.pop(k * 0.02)
    jb.pause()
    assert jb.pop(5.0) == (None, False)  # nothing to play: idle, not a loss to conceal
    for k in range(10, 20):
        jb.push(payload, seq=k, timestamp=k * FRAME, ssrc=1, now=5.0 + (k - 10) * 0.02)
    got = [jb.pop(5.0 + i * 0.02) for i in range(20)]
    assert (payload, False) in got
