"""The WebRTC virtual handset against a real aiortc peer on loopback (host candidates on 127.0.0.1,
no STUN): the client's microphone tone reaches the other phone of an intercom call, the other
phone's voice reaches the client, and on real hardware the handset only listens."""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from firmware.line.port import State
from hal.sim import SimBoard
from tests.web.support import HardwareBoard, dominant_hz, gateway_for, serving, sine, until, wav_bytes
from web.handset import HandsetService
from web.sim import sim_routes

CLIENT_RATE = 48000
SAMPLES = CLIENT_RATE // 50


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """ICE host candidates on 127.0.0.1 only (aioice leaves loopback out by default)."""
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


class Microphone(MediaStreamTrack):
    """A browser microphone: 48 kHz mono, real-time paced; silent until `hz` is set."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.hz: float | None = None
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._n / CLIENT_RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (self._n + np.arange(SAMPLES)) / CLIENT_RATE
        x = np.zeros(SAMPLES) if self.hz is None else 8000 * np.sin(2 * np.pi * self.hz * t)
        frame = av.AudioFrame.from_ndarray(x.astype(np.int16)[None, :], format="s16", layout="mono")
        frame.sample_rate = CLIENT_RATE
        frame.pts = self._n
        frame.time_base = fractions.Fraction(1, CLIENT_RATE)
        self._n += SAMPLES
        return frame


class Speaker:
    """Collects what the gateway sends, as mono float at the decoded rate."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.rate = 0
        self.task: asyncio.Task[None] | None = None

    def play(self, track: MediaStreamTrack) -> None:
        self.task = asyncio.ensure_future(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.AudioFrame)
            channels = len(frame.layout.channels)
            self.rate = frame.sample_rate
            self.chunks.append(frame.to_ndarray().reshape(-1, channels).mean(axis=1))

    def last(self, seconds: float) -> np.ndarray:
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0)
        return audio[-round(seconds * self.rate):]


async def connect(client: Any, port: int, mic: MediaStreamTrack | None, codec: str | None = None
                  ) -> tuple[RTCPeerConnection, Speaker, dict[str, Any]]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    speaker = Speaker()
    pc.on("track", speaker.play)
    if mic is not None:
        pc.addTrack(mic)
    else:
        pc.addTransceiver("audio", direction="recvonly")
    if codec is not None:  # as a browser without Opus would offer
        capabilities = RTCRtpSender.getCapabilities("audio").codecs
        pc.getTransceivers()[0].setCodecPreferences([c for c in capabilities if c.mimeType == codec])
    await pc.setLocalDescription(await pc.createOffer())
    resp = await client.post(f"/api/v1/ports/{port}/handset",
                             json={"sdp": pc.localDescription.sdp, "type": "offer"})
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    return pc, speaker, answer


async def talk(tmp_path: Path, codec: str | None) -> None:
    gateway = gateway_for(tmp_path)
    handsets = HandsetService(gateway)
    board = gateway.board
    assert isinstance(board, SimBoard)
    async with serving(gateway, sim_routes(gateway), handsets.routes) as client:
        mic = Microphone()
        pc, speaker, answer = await connect(client, 1, mic, codec)
        try:
            assert answer["mode"] == "talk"
            assert (codec or "audio/opus").split("/")[1].lower() in answer["sdp"].lower()

            async def connected() -> bool:
                return handsets.connections.get(0) == "connected" and pc.connectionState == "connected"
            await until(connected, 10, "ICE+DTLS up on loopback")

            assert (await client.post("/api/v1/sim/ports/1/hook", json={"offhook": True})).status == 200
            await asyncio.sleep(1.0)
            dial_tone = speaker.last(0.5)
            assert abs(dominant_hz(dial_tone, speaker.rate) - 350) < 10 or \
                abs(dominant_hz(dial_tone, speaker.rate) - 440) < 10, "the handset hears dial tone"
            assert (await client.post("/api/v1/sim/ports/1/dial", json={"digits": "102"})).status == 200

            async def ringing() -> bool:
                return board.phones[1].ringing
            await until(ringing, 10, "phone 2 rings")
            assert (await client.post("/api/v1/sim/ports/2/hook", json={"offhook": True})).status == 200

            async def in_call() -> bool:
                return gateway.lines[0].state is State.CONNECTED
            await until(in_call, 3, "call connected")
            await asyncio.sleep(0.5)

            mic.hz = 1000.0  # the browser speaks
            await asyncio.sleep(1.5)
            heard = board.phones[1].earpiece(0.5)
            assert abs(dominant_hz(heard) - 1000) < 4, "the browser's 1 kHz in phone 2's earpiece"
            assert np.sqrt(np.mean(heard.astype(float) ** 2)) > 500
            mic.hz = None

            resp = await client.put("/api/v1/sim/ports/2/mouthpiece", data=wav_bytes(sine(440, 2.0)))
            assert resp.status == 200
            await asyncio.sleep(1.6)
            back = speaker.last(0.5)
            assert abs(dominant_hz(back, speaker.rate) - 440) < 4, "phone 2's 440 Hz at the browser"
        finally:
            await handsets.close()
            await pc.close()
        assert handsets.connections == {}
        assert not board.phones[0]._taps, "the earpiece tap is gone with the connection"


@pytest.mark.parametrize("codec", [None, "audio/PCMU"], ids=["opus-48k", "pcmu-8k"])
def test_browser_handset_talks_both_ways_on_the_simulator(tmp_path: Path, codec: str | None) -> None:
    asyncio.run(talk(tmp_path, codec))


async def bad_offers(tmp_path: Path) -> None:
    gateway = gateway_for(tmp_path)
    handsets = HandsetService(gateway)
    async with serving(gateway, handsets.routes, start=False) as client:
        for body, words in (({"sdp": "v=0", "type": "answer"}, 'type must be "offer"'),
                            ({"sdp": "", "type": "offer"}, "sdp must be"),
                            ({"sdp": "v=0\r\ns=-\r\n", "type": "offer"}, "no audio"),
                            ({"sdp": "v=0\r\nm=audio 9 RTP/AVP 0\r\nbogus\r\n", "type": "offer"},
                             "unusable offer"),
                            ({"type": "offer", "sdp": "x", "ice": 1}, "unknown field(s) ice")):
            resp = await client.post("/api/v1/ports/1/handset", json=body)
            assert resp.status == 400, await resp.text()
            assert words in (await resp.json())["error"]
        resp = await client.post("/api/v1/ports/9/handset", json={"sdp": "x", "type": "offer"})
        assert resp.status == 404
        assert handsets.connections == {}
        await handsets.close()


def test_bad_offers_are_refused(tmp_path: Path) -> None:
    asyncio.run(bad_offers(tmp_path))


async def listen_only(tmp_path: Path) -> None:
    gateway = gateway_for(tmp_path, board=HardwareBoard())
    handsets = HandsetService(gateway)
    async with serving(gateway, handsets.routes, start=False) as client:
        pc, speaker, answer = await connect(client, 2, None)
        try:
            assert answer["mode"] == "listen"

            async def connected() -> bool:
                return pc.connectionState == "connected"
            await until(connected, 10, "connected")
            # The media clock's work, by hand (this board cannot run): port 2's phone says 700 Hz.
            tone = sine(700, 2.0).astype(np.int16)
            loop = asyncio.get_running_loop()
            for k in range(100):
                frames = np.zeros((2, 160), np.int16)
                frames[1] = tone[k * 160:(k + 1) * 160]
                gateway.pipeline.tick(frames, loop.time())
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            assert abs(dominant_hz(speaker.last(0.5), speaker.rate) - 700) < 5
        finally:
            await handsets.close()
            await pc.close()
        assert not gateway.pipeline._taps


def test_on_hardware_the_handset_listens_to_the_line(tmp_path: Path) -> None:
    asyncio.run(listen_only(tmp_path))
