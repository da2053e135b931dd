"""The media clock: the asyncio adapter that runs the pipeline on the audio device's clock.

`board.read()` blocks until the next 20 ms of audio (the ALSA period, or the simulator's timer), so it
runs in a one-thread executor and the loop stays free for SIP and the web. Each tick: read, process,
write, send the datagrams, poll the hook switches. Received datagrams reach the sessions as they arrive,
between ticks (asyncio `DatagramProtocol`, one RTP and one RTCP socket per call, RFC 3550 §11).

A deadline miss is a tick whose processing took longer than a frame, or a frame read more than a
frame after its end (the reader fell behind the audio clock: the device buffered or dropped audio).

Sockets belong to an `owner`: the port by default, or any key (one call of a port that has two, so a
held call keeps its RTP address for the re-INVITE that resumes it). A port's second session is its
conference leg (`Pipeline.attach(..., second=True)`).

`run` freezes the garbage collector's view of everything alive when it starts (`gc.freeze`): imports
(numpy, scipy, aiortc) leave hundreds of thousands of tracked objects, and a full collection over them
stalled a tick by ~45 ms on the bench machine; frozen, they are never scanned again.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from firmware.media.pipeline import Pipeline, TickResult
from firmware.media.rtcp import CallStats
from firmware.media.rtp import Address
from firmware.media.session import Datagram, MediaSession
from firmware.sip.sdp import Negotiated
from hal.board import FRAME_S, Board
from hal.events import HookEvent

TICK_HISTORY = 3000
"""Tick durations kept for the median (one minute)."""
PORT_TRIES = 20
"""Attempts at finding a free even/odd port pair for RTP/RTCP."""


@dataclass(frozen=True)
class ClockMetrics:
    ticks: int
    median_us: float
    max_us: float
    misses: int
    """Ticks over FRAME_S of processing, plus frames read more than FRAME_S late."""


class _Socket(asyncio.DatagramProtocol):
    """Feeds one session's RTP or RTCP socket into it, stamped with the loop's clock."""

    def __init__(self, clock: MediaClock, owner: Hashable, rtcp: bool) -> None:
        self.clock, self.owner, self.rtcp = clock, owner, rtcp

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        session = self.clock._live.get(self.owner)
        if session is None:
            return  # bound for the offer, the call has no media yet
        now = asyncio.get_running_loop().time()
        source: Address = (str(addr[0]), int(addr[1]))
        if self.rtcp:
            session.receive_rtcp(data, source, now)
        else:
            session.receive_rtp(data, source, now)


class MediaClock:
    """Runs `pipeline` on `board`'s clock until `stop()`; owns the per-call sockets."""

    def __init__(self, board: Board, pipeline: Pipeline,
                 on_hook: Callable[[list[HookEvent]], None] | None = None,
                 on_tick: Callable[[TickResult], None] | None = None) -> None:
        self.board = board
        self.pipeline = pipeline
        self.on_hook = on_hook
        self.on_tick = on_tick
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="media-read")
        self._sockets: dict[Hashable, tuple[asyncio.DatagramTransport, asyncio.DatagramTransport]] = {}
        self._live: dict[Hashable, MediaSession] = {}
        """The session on each owner's sockets."""
        self._parked: dict[Hashable, tuple[MediaSession, float]] = {}
        """Sessions of held calls, with the loop time they were parked."""
        self._owners: dict[int, Hashable] = {}
        """Owner of each attached session, by the session's id()."""
        self._durations: deque[float] = deque(maxlen=TICK_HISTORY)
        self._ticks = 0
        self._max = 0.0
        self._misses = 0
        self._running = False

    # -- sockets and sessions -------------------------------------------------------------------
    async def bind(self, owner: Hashable, host: str = "0.0.0.0", rtp_port: int = 0) -> Address:
        """Open `owner`'s RTP socket and its RTCP neighbour (rtp_port + 1); returns the RTP address
        for the SDP. `rtp_port` 0 picks a free even port."""
        loop = asyncio.get_running_loop()
        for _ in range(PORT_TRIES if rtp_port == 0 else 1):
            rtp, _p = await loop.create_datagram_endpoint(lambda: _Socket(self, owner, False),
                                                          local_addr=(host, rtp_port))
            bound = rtp.get_extra_info("sockname")[1]
            if bound % 2 and rtp_port == 0:
                rtp.close()
                continue
            try:
                rtcp, _q = await loop.create_datagram_endpoint(lambda: _Socket(self, owner, True),
                                                               local_addr=(host, bound + 1))
            except OSError:
                rtp.close()
                if rtp_port:
                    raise
                continue
            self.unbind(owner)
            self._sockets[owner] = (rtp, rtcp)
            return (host, bound)
        raise OSError(f"no free RTP/RTCP port pair on {host}")

    def unbind(self, owner: Hashable) -> None:
        for transport in self._sockets.pop(owner, ()):
            transport.close()

    def session(self, owner: Hashable) -> MediaSession | None:
        """The session on `owner`'s sockets, if it has one now."""
        return self._live.get(owner)

    def start_session(self, port: int, negotiated: Negotiated, *, owner: Hashable | None = None,
                      second: bool = False, **options: Any) -> MediaSession:
        """The call on `port` has media: attach a session on the sockets `bind` opened for `owner`
        (default: the port); `second` makes it the port's conference leg."""
        owner = port if owner is None else owner
        local = self._sockets[owner][0].get_extra_info("sockname")[1]
        session = MediaSession(negotiated, local, asyncio.get_running_loop().time(), **options)
        self.pipeline.attach(port, session, second=second)
        self._live[owner] = session
        self._owners[id(session)] = owner
        return session

    def end_session(self, port: int, *, owner: Hashable | None = None) -> CallStats | None:
        """Send the final RTCP BYE, detach `owner`'s session (default: the port's; attached or
        parked) and close its sockets; the call's stats."""
        owner = port if owner is None else owner
        session = self._live.pop(owner, None)
        parked = self._parked.pop(owner, None)
        if session is not None:
            self.pipeline.detach(port, session)
        elif parked is not None:
            session = parked[0]
        if session is not None:
            self._owners.pop(id(session), None)
            if owner in self._sockets:
                self._send(owner, session.close(asyncio.get_running_loop().time()))
        self.unbind(owner)
        return None if session is None else session.stats()

    def park(self, port: int, owner: Hashable) -> None:
        """Take `owner`'s session out of the tick but keep it and its sockets (a call on hold): the
        same RTP stream (SSRC, sequence, timestamps) goes on when it is resumed."""
        session = self._live.pop(owner, None)
        if session is not None:
            self.pipeline.detach(port, session)
            self._parked[owner] = (session, asyncio.get_running_loop().time())

    def unpark(self, port: int, owner: Hashable, *, second: bool = False) -> MediaSession | None:
        """Put a parked session back into the tick, its timeline advanced over the pause."""
        parked = self._parked.pop(owner, None)
        if parked is None:
            return None
        session, since = parked
        session.skip(asyncio.get_running_loop().time() - since)
        self.pipeline.attach(port, session, second=second)
        self._live[owner] = session
        return session

    def _send(self, owner: Hashable, datagrams: list[Datagram]) -> None:
        sockets = self._sockets.get(owner)
        if sockets is None:
            return
        for dg in datagrams:
            sockets[dg.rtcp].sendto(dg.data, dg.addr)

    # -- the loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Tick until `stop()`; every socket is closed on the way out."""
        loop = asyncio.get_running_loop()
        self._running = True
        gc.freeze()
        try:
            while self._running:
                t, frames = await loop.run_in_executor(self._executor, self.board.read)
                start = time.perf_counter()
                behind = self.board.now() - (t + FRAME_S) > FRAME_S
                result = self.pipeline.tick(frames, loop.time())
                self.board.write(result.frames)
                for channel, dg in result.datagrams:
                    session = self.pipeline.session_of(channel)
                    if session is not None:
                        self._send(self._owners.get(id(session), channel), [dg])
                events = self.board.poll()
                if events and self.on_hook is not None:
                    self.on_hook(events)
                if self.on_tick is not None:
                    self.on_tick(result)
                self._account(time.perf_counter() - start, behind)
        finally:
            self._running = False
            for owner in list(self._sockets):
                self.unbind(owner)
            self._executor.shutdown(wait=False)

    def stop(self) -> None:
        """End `run` after the tick in progress (at most one frame away)."""
        self._running = False

    def _account(self, seconds: float, behind: bool) -> None:
        self._durations.append(seconds)
        self._ticks += 1
        self._max = max(self._max, seconds)
        self._misses += int(seconds > FRAME_S or behind)

    @property
    def metrics(self) -> ClockMetrics:
        median = statistics.median(self._durations) if self._durations else 0.0
        return ClockMetrics(self._ticks, median * 1e6, self._max * 1e6, self._misses)
