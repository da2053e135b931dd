"""The browser's virtual handset: WebRTC (aiortc) between the page and one port's line.

`POST /api/v1/ports/{n}/handset` takes the page's SDP offer and answers it. On the simulator the
peer connection *is* the phone on port n: the browser's microphone is streamed into the virtual
phone's mouthpiece (`VirtualPhone.stream`, resampled to 8 kHz by `dsp.resample`), and what the
phone's earpiece plays goes back to the browser, one 20 ms frame per media tick, so the page hears
exactly what the phone hears (dial tone, ringback, the far end). Hook, flash and keypad go through
the simulator routes (web/sim.py): keys are real DTMF tones or pulse trains in the line.

On real hardware there is no phone to be: the same endpoint is listen-only, sending the port's line
audio (mouthpiece after echo cancellation plus earpiece, from a `Pipeline` tap) and ignoring the
browser's microphone. The answer says which (`"mode": "talk"` or `"listen"`).

ICE uses host candidates only (no STUN server: the device serves its own LAN and never calls out).
One handset per port: a new offer for a port replaces the previous connection (a reloaded page).
"""

from __future__ import annotations

import asyncio
import fractions
import logging

import av
import numpy as np
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from dsp.resample import Decimator
from dsp.synth import to_int16
from firmware.app import Gateway
from firmware.media.pipeline import TickResult
from hal.board import FRAME, RATE, Int16Array
from hal.sim import SimBoard, VirtualPhone
from web.jsonapi import check_fields, fail, port_index, read_json

_log = logging.getLogger("hookflash.web")

MAX_SDP = 32 * 1024
QUEUE_FRAMES = 10
"""Earpiece frames buffered for the encoder (200 ms); older ones are dropped if it falls behind."""
CONNECT_TIMEOUT_S = 30.0
"""A peer connection that has not connected by then is closed (the page went away mid-offer)."""


class LineTrack(MediaStreamTrack):
    """Audio for the browser: 8 kHz mono 20 ms frames pushed by the media clock (`push`)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[Int16Array | None] = asyncio.Queue()
        self._pts = 0

    def push(self, frame: Int16Array) -> None:
        """One tick of audio (called on the loop by a tap); the oldest is dropped when the encoder lags."""
        if self._queue.qsize() >= QUEUE_FRAMES:
            self._queue.get_nowait()
        self._queue.put_nowait(frame.copy())

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        samples = await self._queue.get()
        if samples is None:
            raise MediaStreamError
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(samples.astype("<i2").tobytes())
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame

    def stop(self) -> None:
        super().stop()
        self._queue.put_nowait(None)


def to_8khz(frame: av.AudioFrame, decimator: Decimator | None) -> tuple[Int16Array, Decimator | None]:
    """A decoded browser frame (Opus: 48 kHz stereo; PCMU: 8 kHz mono) as 8 kHz mono int16. The
    decimator carries the anti-alias filter's state between frames (created on the first frame)."""
    pcm = frame.to_ndarray().astype(np.float64)
    channels = len(frame.layout.channels)
    mono = pcm.mean(axis=0) if frame.format.is_planar else pcm.reshape(-1, channels).mean(axis=1)
    rate = int(frame.sample_rate)
    if rate == RATE:
        return to_int16(mono), decimator
    if rate % RATE:
        raise ValueError(f"browser audio at {rate} Hz is no multiple of 8 kHz")
    if decimator is None or decimator.factor != rate // RATE:
        decimator = Decimator(rate // RATE)
    usable = len(mono) - len(mono) % decimator.factor
    return to_int16(decimator.process(mono[None, :usable])[0]), decimator


class _Handset:
    """One port's peer connection and the taps that feed it."""

    def __init__(self, gateway: Gateway, port: int, pc: RTCPeerConnection) -> None:
        self.gateway, self.port, self.pc = gateway, port, pc
        self.track = LineTrack()
        board = gateway.board
        self.phone: VirtualPhone | None = board.phones[port] if isinstance(board, SimBoard) else None
        self.tasks: set[asyncio.Task[None]] = set()
        if self.phone is not None:
            self.phone.add_earpiece_tap(self.track.push)
        else:
            gateway.pipeline.add_tap(self._line_tap)

    @property
    def mode(self) -> str:
        return "talk" if self.phone is not None else "listen"

    def _line_tap(self, near: Int16Array, result: TickResult) -> None:
        """Listen-only: what is on the line, both directions mixed."""
        mixed = near[self.port].astype(np.int32) + result.frames[self.port]
        self.track.push(to_int16(mixed))

    async def microphone(self, track: MediaStreamTrack) -> None:
        """Stream the browser's microphone into the phone's mouthpiece until the track ends."""
        decimator: Decimator | None = None
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if self.phone is None or not isinstance(frame, av.AudioFrame):
                continue  # listen-only: the line gets nothing from the browser
            try:
                audio, decimator = to_8khz(frame, decimator)
            except ValueError as exc:
                _log.warning("port %d handset: %s; microphone ignored", self.port + 1, exc)
                return
            self.phone.stream(audio)

    async def close(self) -> None:
        if self.phone is not None:
            self.phone.remove_earpiece_tap(self.track.push)
        else:
            self.gateway.pipeline.remove_tap(self._line_tap)
        self.track.stop()
        for task in list(self.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self.pc.close()


class HandsetService:
    """The handset route and every open peer connection; `await close()` on app cleanup/gateway stop."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._handsets: dict[int, _Handset] = {}
        self.routes = web.RouteTableDef()
        self.routes.post("/api/v1/ports/{n}/handset")(self._offer)

    @property
    def connections(self) -> dict[int, str]:
        """Open handsets: port index -> aiortc connection state (for status and tests)."""
        return {port: h.pc.connectionState for port, h in self._handsets.items()}

    async def _offer(self, request: web.Request) -> web.Response:
        port = port_index(request, self.gateway)
        body = await read_json(request)
        check_fields(body, {"sdp", "type"})
        sdp, kind = body.get("sdp"), body.get("type")
        if kind != "offer":
            fail(400, 'type must be "offer" (the page offers, the gateway answers)')
        if not isinstance(sdp, str) or not sdp.strip() or len(sdp) > MAX_SDP:
            fail(400, f"sdp must be the offer's session description (at most {MAX_SDP} characters)")
        if "\nm=audio " not in sdp.replace("\r\n", "\n"):
            fail(400, "the offer has no audio: add an audio transceiver or microphone track")
        old = self._handsets.pop(port, None)
        if old is not None:
            await old.close()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        handset = _Handset(self.gateway, port, pc)
        try:
            answer = await self._negotiate(handset, sdp)
        except ValueError as exc:
            await handset.close()
            fail(400, f"unusable offer: {exc}")
        self._handsets[port] = handset
        self._watch(handset)
        _log.info("port %d: browser handset connected (%s)", port + 1, handset.mode)
        return web.json_response({"sdp": answer.sdp, "type": answer.type, "mode": handset.mode})

    async def _negotiate(self, handset: _Handset, sdp: str) -> RTCSessionDescription:
        pc = handset.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                task = asyncio.ensure_future(handset.microphone(track))
                handset.tasks.add(task)
                task.add_done_callback(handset.tasks.discard)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if not any(t.kind == "audio" for t in pc.getTransceivers()):
            raise ValueError("no audio media section")
        pc.addTrack(handset.track)  # onto the offer's audio transceiver
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        local = pc.localDescription
        return RTCSessionDescription(sdp=local.sdp, type=local.type)

    def _watch(self, handset: _Handset) -> None:
        pc = handset.pc

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._drop(handset)

        async def deadline() -> None:
            await asyncio.sleep(CONNECT_TIMEOUT_S)
            if pc.connectionState != "connected":
                await self._drop(handset)
        task = asyncio.ensure_future(deadline())
        handset.tasks.add(task)
        task.add_done_callback(handset.tasks.discard)

    async def _drop(self, handset: _Handset) -> None:
        if self._handsets.get(handset.port) is handset:
            del self._handsets[handset.port]
        await handset.close()

    async def close(self) -> None:
        """Close every peer connection (before the gateway stops, or on the app's cleanup)."""
        handsets, self._handsets = list(self._handsets.values()), {}
        for handset in handsets:
            await handset.close()
