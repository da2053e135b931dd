"""End-to-end tests of the media path: virtual phone -> pipeline -> RTP -> Kamailio-routed call -> baresip.

Call control does not exist yet, so `media_call` is the glue a line state machine will one day be: a
realtime `SimBoard`, a `Pipeline` and a `MediaClock` on the test's loop, a `SipAgent` registered as
alice, and `start_session` on `CallAnswered`. Audio is checked by frequency (FFT), never by waveform.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from firmware.media.clock import MediaClock
from firmware.media.pipeline import Pipeline
from firmware.media.rtcp import CallStats
from firmware.media.rtp import Address
from firmware.sip.agent import SipAgent
from firmware.sip.sdp import MediaConfig
from firmware.sip.ua import CallAnswered, CallEnded, IncomingCall
from hal.sim import DEFAULT_ECHO, HybridEcho, SimBoard, VirtualPhone
from tests.sip_e2e import agent_config, registered, running
from tests.sip_peers.kamailio import Kamailio

RATE = 8000
HOST = "127.0.0.1"


def dominant(x: npt.ArrayLike) -> float:
    """Frequency (Hz) of the strongest FFT bin (Hann window, DC removed)."""
    a = np.asarray(x, dtype=np.float64)
    assert a.size >= RATE // 10, f"only {a.size} samples of audio"
    a = a - a.mean()
    spectrum = np.abs(np.fft.rfft(a * np.hanning(a.size)))
    return float(np.fft.rfftfreq(a.size, 1 / RATE)[int(np.argmax(spectrum))])


def tone(freq_hz: float, seconds: float, amplitude: int = 8000) -> npt.NDArray[np.int16]:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def silent_windows(x: npt.ArrayLike, threshold: float, window: int = 160) -> npt.NDArray[np.bool_]:
    """Per 20 ms window (one media frame when `x` is frame-aligned): is its RMS under `threshold`?"""
    a = np.asarray(x, dtype=np.float64)
    n = a.size // window
    return np.asarray(np.sqrt(np.mean(a[: n * window].reshape(n, window) ** 2, axis=1)) < threshold)


def longest_silence_ms(x: npt.ArrayLike, threshold: float, window: int = 160) -> float:
    """Longest run of 20 ms windows whose RMS is under `threshold`, in ms."""
    run = longest = 0
    for quiet in silent_windows(x, threshold, window):
        run = run + 1 if quiet else 0
        longest = max(longest, run)
    return longest * window / RATE * 1000


@dataclass
class Rig:
    """One gateway: the board (its phones), the media clock and the SIP agent, all running."""

    board: SimBoard
    clock: MediaClock
    agent: SipAgent

    @property
    def phone(self) -> VirtualPhone:
        return self.board.phones[0]

    def now(self) -> float:
        return self.board.now()

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Bounded polling (every 20 ms, one media frame) until `predicate()` holds."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"not within {timeout} s: {what}") from None

    async def play_for(self, seconds: float) -> None:
        """Let `seconds` of board time pass (the board's clock, not the loop's)."""
        end = self.now() + seconds
        await self.until(lambda: self.now() >= end, seconds + 5, "board time")

    async def call(self, target: str = "bob", media: Address | None = None) -> tuple[str, CallAnswered]:
        """Lift port 0 and call `target` with our RTP endpoint (or `media`, e.g. a relay in front of it);
        the session starts on CallAnswered."""
        self.phone.lift(self.now())
        if media is None:
            media = await self.clock.bind(0, HOST)
        call = self.agent.place_call("1", target, media)
        event = await self.agent.next_event(CallAnswered, CallEnded, timeout=10)
        assert isinstance(event, CallAnswered) and event.call == call, event
        self.clock.start_session(0, event.negotiated)
        return call, event

    async def answer(self, timeout: float = 10.0) -> tuple[str, CallAnswered]:
        """Take the next IncomingCall: lift port 0, answer with our RTP endpoint, start the session."""
        incoming = await self.agent.next_event(IncomingCall, timeout=timeout)
        assert isinstance(incoming, IncomingCall), incoming
        self.phone.lift(self.now())
        self.agent.answer(incoming.call, await self.clock.bind(0, HOST))
        event = await self.agent.next_event(CallAnswered, CallEnded, timeout=timeout)
        assert isinstance(event, CallAnswered) and event.call == incoming.call, event
        self.clock.start_session(0, event.negotiated)
        return incoming.call, event

    async def hang_up(self, call: str) -> CallStats:
        """We hang up: BYE, then the session's final RTCP and its statistics."""
        self.agent.hangup(call)
        ended = await self.agent.next_event(CallEnded, timeout=10)
        assert isinstance(ended, CallEnded) and ended.call == call, ended
        stats = self.clock.end_session(0)
        assert stats is not None
        self.phone.hang_up(self.now())
        return stats


@contextlib.asynccontextmanager
async def media_rig(k: Kamailio, *, ports: int = 1,
                    srtp: Literal["off", "accept", "require"] = "accept",
                    echo: HybridEcho | None = DEFAULT_ECHO) -> AsyncIterator[Rig]:
    """A running gateway registered as alice at `k` (the lines' hybrid `echo` as the simulator's
    default); everything stopped on the way out."""
    board = SimBoard(ports, realtime=True, echo=echo)
    clock = MediaClock(board, Pipeline(ports))
    task = asyncio.create_task(clock.run())
    config = agent_config(k)
    config = replace(config, ua=replace(config.ua, media=MediaConfig(srtp=srtp)))
    try:
        async with running(config) as agent:
            await registered(agent)
            yield Rig(board, clock, agent)
    finally:
        clock.stop()
        await asyncio.wait_for(task, 2)


@dataclass
class Impairment:
    """What the relay does to packets toward us: drop `loss`, delay uniform 0..`jitter_s` (packets
    overtake each other when the delays differ by more than the 20 ms spacing), seeded."""

    loss: float = 0.05
    jitter_s: float = 0.040
    seed: int = 4733
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class _RelayProtocol(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.relay.received(data, (str(addr[0]), int(addr[1])))


class UdpRelay:
    """A loopback UDP relay between a peer and our media socket `inner`.

    It listens on the address we advertise in the SDP. Datagrams from `inner` go to the peer (the last
    source that was not `inner`, which is what symmetric RTP, RFC 4961, makes of it); everything else
    goes to `inner`, impaired when `impair` is set. Our session latches onto the relay's address."""

    def __init__(self, inner: Address, impair: Impairment | None = None) -> None:
        self.inner = inner
        self.impair = impair
        self.peer: Address | None = None
        self.forwarded = self.dropped = self.reordered = 0
        self._last_due = 0.0
        self._transport: asyncio.DatagramTransport | None = None
        self._loop = asyncio.get_running_loop()

    async def open(self, port: int = 0) -> Address:
        transport, _ = await self._loop.create_datagram_endpoint(lambda: _RelayProtocol(self),
                                                                 local_addr=(HOST, port))
        self._transport = transport
        return (HOST, int(transport.get_extra_info("sockname")[1]))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def received(self, data: bytes, source: Address) -> None:
        assert self._transport is not None
        if source == self.inner:
            if self.peer is not None:
                self._transport.sendto(data, self.peer)
            return
        self.peer = source
        if self.impair is None:
            self._transport.sendto(data, self.inner)
            return
        if self.impair.rng.random() < self.impair.loss:
            self.dropped += 1
            return
        self.forwarded += 1
        due = self._loop.time() + self.impair.rng.uniform(0.0, self.impair.jitter_s)
        self.reordered += due < self._last_due
        self._last_due = max(self._last_due, due)
        self._loop.call_at(due, self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, self.inner)


async def open_relay_pair(rtp: Address, impair: Impairment) -> tuple[UdpRelay, UdpRelay, Address]:
    """An impaired RTP relay on an even port and a clean RTCP relay on the next (RFC 3550 §11)."""
    for _ in range(20):
        relay = UdpRelay(rtp, impair)
        addr = await relay.open()
        if addr[1] % 2:
            relay.close()
            continue
        rtcp = UdpRelay((rtp[0], rtp[1] + 1))
        try:
            await rtcp.open(addr[1] + 1)
        except OSError:
            relay.close()
            continue
        return relay, rtcp, addr
    raise OSError("no free even/odd port pair for the relay")
