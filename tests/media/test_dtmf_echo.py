"""Regression for a relay loop found end to end: a digit received as RFC 4733 events is played to the
phone, leaks back through the 2-to-4-wire hybrid (the simulator's default 12 dB ERL), and the uplink
detector took the echo for a key press and relayed it back to the far end (RFC 4733 §2.5.1 events
must come from the phone, not from what we played). Sans-IO and off the network, so it is exact."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from dsp.dtmf import detect_dtmf
from firmware.media.dtmf_relay import TelephoneEvent
from firmware.media.pipeline import Pipeline
from firmware.media.session import MediaSession
from firmware.sip.sdp import Negotiated
from hal.sim import SimBoard

TE_PT = 101
FAR = ("127.0.0.1", 40000)


def _event(seq: int, duration: int, end: bool) -> bytes:
    payload = TelephoneEvent(event=5, end=end, volume=10, duration=duration).pack()
    return RtpPacket(payload_type=TE_PT, marker=int(seq == 0), sequence_number=seq, timestamp=8000,
                     ssrc=0x4733, payload=payload).serialize()


def test_relayed_digit_is_not_echoed_back_as_an_event() -> None:
    board = SimBoard(1)  # default hybrid echo, board time (no sleeping)
    pipeline = Pipeline(1)
    negotiated = Negotiated("PCMU", 0, 8000, TE_PT, 20, FAR[0], FAR[1], (FAR[0], FAR[1] + 1), "sendrecv",
                            None)
    pipeline.attach(0, MediaSession(negotiated, 30000, 0.0))
    session = pipeline.sessions[0]
    assert session is not None
    board.phones[0].lift(0.0)
    # A 200 ms "5" from the far end: updates every 20 ms from t = 0.5 s, then the end sent three times.
    packets = {25 + i: [_event(i, 160 * (i + 1), False)] for i in range(10)}
    packets[35] = [_event(10 + k, 1600, True) for k in range(3)]
    events_out = []
    for tick in range(100):
        t, frames = board.read()
        board.poll()
        for data in packets.get(tick, []):
            session.receive_rtp(data, FAR, t)
        result = pipeline.tick(frames, t)
        board.write(result.frames)
        events_out += [dg for _, dg in result.datagrams
                       if not dg.rtcp and RtpPacket.parse(dg.data).payload_type == TE_PT]
    assert [d for d, _, _ in detect_dtmf(board.phones[0].earpiece(2.0))] == ["5"]  # it was played
    assert events_out == [], f"{len(events_out)} telephone-event packets echoed back to the far end"
