"""Calls through the pipeline: a SimBoard phone on port 0, a far-end MediaSession, real loopback UDP.

Virtual time: the board advances 20 ms per read. Datagrams go through real sockets on 127.0.0.1;
what arrives is delayed, dropped and thereby reordered in-process (seeded), then handed to the
receiving session stamped with its simulated arrival time.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
import pytest
from aiortc.rtp import RtpPacket

from dsp.dtmf import DtmfEvent, detect_dtmf, generate_dtmf
from dsp.g711 import alaw_decode, ulaw_decode, ulaw_encode
from dsp.synth import to_int16, tone
from firmware.media.dtmf_relay import DtmfReceiver, RelayedDigit
from firmware.media.pipeline import FaxEvent, FaxTone, Pipeline
from firmware.media.session import FAX_JITTER_MS, Datagram, MediaSession
from firmware.sip.sdp import Direction, Negotiated, SrtpParams
from hal.sim import HybridEcho, SimBoard

RATE = 8000
FRAME = 160
TE_PT = 101
SUITE = "AES_CM_128_HMAC_SHA1_80"
KEY_A, KEY_B, KEY_WRONG = bytes(range(30)), bytes(range(30, 60)), bytes(range(60, 90))
Frames = npt.NDArray[np.int16]


def negotiated(remote: int, direction: Direction = "sendrecv",
               srtp: SrtpParams | None = None) -> Negotiated:
    return Negotiated("PCMU", 0, 8000, TE_PT, 20, "127.0.0.1", remote, ("127.0.0.1", remote + 1),
                      direction, srtp)


def peak_hz(x: npt.ArrayLike) -> float:
    x = np.asarray(x, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / RATE)[np.argmax(spectrum)])


def power_db(x: npt.ArrayLike) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(10 * np.log10(np.mean(x * x) + 1e-3))


Sockets = tuple[socket.socket, socket.socket, int]


def _pair() -> Sockets:
    """An RTP socket and its RTCP neighbour on loopback (an even port and the next)."""
    for _ in range(50):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtcp.bind(("127.0.0.1", port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        rtp.setblocking(False)
        rtcp.setblocking(False)
        return rtp, rtcp, port
    raise OSError("no free port pair")


class Call:
    """Port 0 of a one-port pipeline in a call with `far`, a bare MediaSession (the far end's phone is
    `far_source`: a function of the tick index giving its 160 samples)."""

    def __init__(self, *, echo: HybridEcho | None = None, srtp: bool = False, far_key: bytes = KEY_A,
                 loss: float = 0.0, jitter_ms: float = 0.0, seed: int = 1) -> None:
        self.board = SimBoard(1, echo=echo)
        self.phone = self.board.phones[0]
        self.phone.lift(0.0)
        self.pipe = Pipeline(1)
        self.rng = random.Random(seed)
        self.loss, self.jitter_s = loss, jitter_ms / 1000
        self._a = _pair()
        self._b = _pair()
        pa, pb = self._a[2], self._b[2]
        near_keys = SrtpParams(SUITE, KEY_A, KEY_B) if srtp else None
        far_keys = SrtpParams(SUITE, KEY_B, far_key) if srtp else None
        self.near = MediaSession(negotiated(pb, srtp=near_keys), pa, 0.0, rng=random.Random(seed + 1))
        self.far = MediaSession(negotiated(pa, srtp=far_keys), pb, 0.0, rng=random.Random(seed + 2))
        self.pipe.attach(0, self.near)
        self.far_source: Callable[[int], Frames] = lambda k: np.zeros(FRAME, np.int16)
        self.far_rx: list[Frames] = []
        """What the far end decodes, tick by tick (zeros while nothing plays)."""
        self.near_in: list[Frames] = []
        """What the board read on port 0 (mouthpiece plus hybrid echo)."""
        self.sent_to_far: list[Datagram] = []
        self.fax: list[FaxEvent] = []
        self.sniffed: list[RelayedDigit] = []
        self._sniffer = DtmfReceiver()
        self._in_flight: list[tuple[float, int, bool, bytes, tuple[str, int]]] = []
        """(arrival time, receiving side 0 near / 1 far, is RTCP, data, source)."""
        self.k = 0

    def close(self) -> None:
        for s in (*self._a[:2], *self._b[:2]):
            s.close()

    def _send(self, sockets: Sockets, datagrams: list[Datagram]) -> None:
        for dg in datagrams:
            (sockets[1] if dg.rtcp else sockets[0]).sendto(dg.data, dg.addr)

    def _drain(self, now: float) -> None:
        """Collect what the sockets hold (loopback delivers at once) into the impaired network."""
        for side, sockets in ((0, self._a), (1, self._b)):
            for rtcp, sock in ((False, sockets[0]), (True, sockets[1])):
                while True:
                    try:
                        data, addr = sock.recvfrom(2048)
                    except BlockingIOError:
                        break
                    if not rtcp and self.rng.random() < self.loss:
                        continue
                    due = now + self.rng.uniform(0, self.jitter_s)
                    self._in_flight.append((due, side, rtcp, data, addr))

    def _deliver(self, now: float) -> None:
        due = sorted((p for p in self._in_flight if p[0] <= now), key=lambda p: p[0])
        self._in_flight = [p for p in self._in_flight if p[0] > now]
        for at, side, rtcp, data, addr in due:
            session = self.near if side == 0 else self.far
            if rtcp:
                session.receive_rtcp(data, addr, at)
            else:
                session.receive_rtp(data, addr, at)
                if side == 1 and self.far.negotiated.srtp is None:
                    packet = RtpPacket.parse(data)
                    if packet.payload_type == TE_PT:
                        self.sniffed += self._sniffer.receive(packet.payload, packet.timestamp, at)

    def step(self) -> None:
        t, frames = self.board.read()
        now = t
        self._deliver(now)
        self.near_in.append(frames[0].copy())
        result = self.pipe.tick(frames, now)
        self.board.write(result.frames)
        self.board.poll()
        self.fax += result.fax
        sent = [dg for _, dg in result.datagrams]
        self.sent_to_far += sent
        self._send(self._a, sent)
        far_payload = ulaw_encode(self.far_source(self.k)).tobytes()
        self._send(self._b, self.far.next_uplink(far_payload, now))
        payload, _lost = self.far.next_downlink(now)
        self.far_rx.append(ulaw_decode(payload) if payload is not None else np.zeros(FRAME, np.int16))
        self._drain(now)
        self.k += 1

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds * RATE / FRAME)):
            self.step()

    def far_heard(self, seconds: float) -> Frames:
        return np.concatenate(self.far_rx)[-round(seconds * RATE):]


@pytest.fixture
def call() -> Iterator[Call]:
    c = Call()
    yield c
    c.close()


def source(signal: npt.ArrayLike) -> Callable[[int], Frames]:
    x = to_int16(signal)

    def frame(k: int) -> Frames:
        chunk = x[k * FRAME:(k + 1) * FRAME]
        return np.pad(chunk, (0, FRAME - chunk.size))
    return frame


def test_audio_both_ways(call: Call) -> None:
    call.phone.speak(tone([1000.0], -10.0, 3 * RATE), 0.0)
    call.far_source = source(tone([440.0], -10.0, 3 * RATE))
    call.run(2.0)
    assert peak_hz(call.far_heard(1.0)) == pytest.approx(1000.0, abs=2)
    assert peak_hz(call.phone.earpiece(1.0)) == pytest.approx(440.0, abs=2)
    assert power_db(call.phone.earpiece(1.0)) > power_db(tone([440.0], -10.0, RATE)) - 1.0
    stats = call.near.stats()
    assert stats.packets_lost == 0 and stats.packets_received > 90


def test_phone_dtmf_goes_out_as_rfc4733_without_inband_tone(call: Call) -> None:
    call.phone.speak(tone([1000.0], -20.0, 4 * RATE), 0.0)  # talking, then keys over it
    end = call.phone.dial_dtmf("159#", 0.5, on_ms=100, off_ms=100)
    call.run(end + 0.5)
    starts = [d.digit for d in call.sniffed if d.start]
    ends = [d for d in call.sniffed if not d.start]
    assert starts == list("159#") and [d.digit for d in ends] == list("159#")
    for d in ends:
        assert 60 * 8 <= d.duration <= 140 * 8  # the tone's measured length, in samples
    assert detect_dtmf(call.far_heard(end + 0.5)) == []  # at most a 20 ms leak, which no receiver takes
    assert peak_hz(call.far_heard(end + 0.5)) == pytest.approx(1000.0, abs=2)  # speech still flows


def test_far_rfc4733_digits_play_in_the_earpiece(call: Call) -> None:
    for i, digit in enumerate("*07"):
        start = 0.5 + 0.3 * i
        call.run(start - call.k * FRAME / RATE)
        call.far.handle_dtmf([DtmfEvent(0, digit, True, call.k * FRAME / RATE)], -8.0)
        call.run(0.12)
        call.far.handle_dtmf([DtmfEvent(0, digit, False, call.k * FRAME / RATE)], -8.0)
    call.run(0.5)
    assert [d for d, _, _ in detect_dtmf(call.phone.earpiece(3.0))] == list("*07")


def test_loss_jitter_and_reordering_are_concealed_and_counted() -> None:
    c = Call(loss=0.05, jitter_ms=30.0, seed=7)
    try:
        c.far_source = source(tone([440.0], -10.0, 12 * RATE))
        c.run(10.0)
        ear = c.phone.earpiece(8.0).astype(np.float64).reshape(-1, FRAME)
        frame_db = 10 * np.log10(np.mean(ear * ear, axis=1) + 1e-3)
        assert frame_db.min() > power_db(tone([440.0], -10.0, RATE)) - 10  # no gap: PLC filled every loss
        assert peak_hz(c.phone.earpiece(8.0)) == pytest.approx(440.0, abs=2)
        stats = c.near.stats()
        assert 3.0 <= stats.loss_pct <= 7.5
        # Uniform 0..30 ms transit: E|D| = 10 ms, which RFC 3550's estimator tracks.
        assert 6.0 <= stats.jitter_mean_ms <= 14.0
        assert c.near.jitter.counters.concealed > 0
    finally:
        c.close()


def test_srtp_call_and_wrong_key() -> None:
    good = Call(srtp=True)
    bad = Call(srtp=True, far_key=KEY_WRONG)
    try:
        for c in (good, bad):
            c.phone.speak(tone([1000.0], -10.0, 3 * RATE), 0.0)
            c.run(1.5)
        assert peak_hz(good.far_heard(1.0)) == pytest.approx(1000.0, abs=2)
        assert good.far.srtp_failures == 0 and good.near.srtp_failures == 0
        assert not np.any(bad.far_heard(1.5))
        assert bad.far.srtp_failures >= 70
    finally:
        good.close()
        bad.close()


def test_echo_does_not_return_to_the_far_end() -> None:
    c = Call(echo=HybridEcho(erl_db=6.0))
    try:
        rng = np.random.default_rng(3)
        c.far_source = source(rng.normal(0.0, 2000.0, 5 * RATE))
        c.run(4.0)
        echo_in = np.concatenate(c.near_in)[2 * RATE:]  # the phone is silent: Sin is pure echo
        returned = np.concatenate(c.far_rx)[2 * RATE:]
        erle = power_db(echo_in) - power_db(returned)
        assert power_db(echo_in) > 55.0  # the hybrid really leaks (about -16 dBm0)
        assert erle >= 25.0, erle
    finally:
        c.close()


def test_ced_with_reversals_switches_the_port_to_pass_through(call: Call) -> None:
    n = np.arange(4 * RATE)
    ans = tone([2100.0], -12.0, n.size) * np.where((n // 3600) % 2, -1.0, 1.0)  # V.25 reversals
    call.run(0.5)
    assert not call.near.fax and not call.pipe.echo.bypassed[0]
    call.far_source = source(ans)
    call.run(1.0)
    assert FaxEvent(0, FaxTone.CED) in call.fax
    assert call.near.fax and call.pipe.echo.bypassed[0]
    assert call.near.jitter.fixed_s == FAX_JITTER_MS / 1000


def test_cng_from_the_phone_is_detected(call: Call) -> None:
    call.phone.speak(tone([1100.0], -12.0, RATE // 2), 0.2)
    call.run(1.0)
    assert call.fax == [FaxEvent(0, FaxTone.CNG)]
    assert call.near.fax and call.pipe.echo.bypassed[0]


def test_cng_on_an_idle_port_is_reported_without_a_session() -> None:
    board = SimBoard(2, echo=None)
    board.phones[1].lift(0.0)
    board.phones[1].speak(tone([1100.0], -12.0, RATE // 2), 0.1)
    pipe = Pipeline(2)
    events = []
    for _ in range(50):
        t, frames = board.read()
        result = pipe.tick(frames, t)
        board.write(result.frames)
        board.poll()
        events += result.fax
    assert events == [FaxEvent(1, FaxTone.CNG)]


@pytest.mark.parametrize("direction", ["recvonly", "inactive"])
def test_hold_stops_sending_audio(call: Call, direction: Direction) -> None:
    call.phone.speak(generate_dtmf("5", RATE), 1.0)  # a digit on hold is not relayed either
    call.phone.speak(tone([1000.0], -10.0, 4 * RATE), 0.0)
    call.run(0.5)
    call.near.update(negotiated(call.near.remote[1], direction))
    before = len(call.sent_to_far)
    call.run(1.5)
    assert all(dg.rtcp for dg in call.sent_to_far[before:])
    call.near.update(negotiated(call.near.remote[1], "sendrecv"))
    call.run(0.5)
    audio = [RtpPacket.parse(dg.data) for dg in call.sent_to_far[before:] if not dg.rtcp]
    assert len(audio) == 25 and audio[0].marker  # resumed with a new talkspurt
    assert audio[1].timestamp - audio[0].timestamp == FRAME


def test_tones_play_on_ports_without_a_call() -> None:
    from dsp.tones import tone as country_tone

    board = SimBoard(2, echo=None)
    for phone in board.phones:
        phone.lift(0.0)
    pipe = Pipeline(2)
    pipe.play_tone(1, country_tone("us", "dial"))
    for _ in range(50):
        t, frames = board.read()
        board.write(pipe.tick(frames, t).frames)
        board.poll()
    assert not np.any(board.phones[0].earpiece(0.5))
    assert round(peak_hz(board.phones[1].earpiece(0.5))) in (350, 440)  # US dial tone: 350 + 440 Hz
    assert pipe.downlink_dbm0[1] > -25.0 and pipe.downlink_dbm0[0] < -80.0 and pipe.uplink_dbm0[1] < -80.0
    pipe.stop_tone(1)
    for _ in range(5):
        t, frames = board.read()
        board.write(pipe.tick(frames, t).frames)
        board.poll()
    assert not np.any(board.phones[1].earpiece(0.04))


def test_pcmu_and_pcma_ports_side_by_side_and_detach() -> None:
    """Ports are encoded and decoded per codec group; detaching one leaves the other in its call."""
    board = SimBoard(2, echo=None)
    pipe = Pipeline(2)
    fars, decoders = [], [ulaw_decode, alaw_decode]
    for port, codec in enumerate(("PCMU", "PCMA")):
        board.phones[port].lift(0.0)
        board.phones[port].speak(tone([700.0 + 600 * port], -10.0, 2 * RATE), 0.0)
        near = Negotiated(codec, 8 * port, 8000, TE_PT, 20, "127.0.0.1", 6000 + port, ("127.0.0.1", 1),
                          "sendrecv", None)
        far_sdp = Negotiated(codec, 8 * port, 8000, TE_PT, 20, "127.0.0.1", 5000 + port, ("127.0.0.1", 1),
                             "sendrecv", None)
        pipe.attach(port, MediaSession(near, 5000 + port, 0.0))
        fars.append(MediaSession(far_sdp, 6000 + port, 0.0))
    heard: list[list[Frames]] = [[], []]
    for k in range(75):
        t, frames = board.read()
        if k == 50:
            assert pipe.detach(1) is not None and pipe.sessions[1] is None
        result = pipe.tick(frames, t)
        board.write(result.frames)
        board.poll()
        for port, dg in result.datagrams:
            if not dg.rtcp:
                fars[port].receive_rtp(dg.data, ("127.0.0.1", 5000 + port), t)
        for port, far in enumerate(fars):
            payload, _ = far.next_downlink(t)
            heard[port].append(decoders[port](payload) if payload is not None else np.zeros(FRAME, np.int16))
    assert peak_hz(np.concatenate(heard[0][-25:])) == pytest.approx(700.0, abs=2)
    assert peak_hz(np.concatenate(heard[1][20:45])) == pytest.approx(1300.0, abs=2)
    assert not np.any(np.concatenate(heard[1][-15:]))  # detached: nothing sent any more


def test_datagrams_come_in_port_order_whatever_the_codecs() -> None:
    """The tick walks codec groups (A-law ports, then mu-law ports...) but hands out datagrams in
    port order, as one walk over the ports would."""
    pipe = Pipeline(3)
    for port, codec in enumerate(("PCMA", "PCMU", "PCMA")):
        pt = 8 if codec == "PCMA" else 0
        pipe.attach(port, MediaSession(Negotiated(codec, pt, 8000, TE_PT, 20, "127.0.0.1", 6000 + port,
                                                  ("127.0.0.1", 1), "sendrecv", None), 5000 + port, 0.0))
    for k in range(3):
        ports = [p for p, _ in pipe.tick(np.zeros((3, FRAME), np.int16), k * 0.02).datagrams]
        assert ports == sorted(ports) and set(ports) == {0, 1, 2}
