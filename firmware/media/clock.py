"""The media clock: the asyncio adapter that runs the pipeline on the audio device's clock.

`board.read()` blocks until the next 20 ms of audio (the ALSA period, or the simulator's timer), so it
runs in a one-thread executor and the loop stays free for SIP and the web. Each tick: read, process,
write, send the datagrams, poll the hook switches. Received datagrams reach the sessions as they arrive,
between ticks (asyncio `DatagramProtocol`, one RTP and one RTCP socket per call, RFC 3550 §11).

A deadline miss is a tick whose processing took longer than a frame, or a frame read more than a
frame after its end (the reader fell behind the audio clock: the device buffered or dropped audio).
`TickAccount` counts them and tells the two causes apart: a tick's own cost shows as CPU time over
a frame (`cpu_overruns`); scheduling (another process on the core, the event loop busy with SIP or
the web, a collector pause) shows as late reads and as wall time well above CPU time. After a stall
the loop catches up by itself: the board's reads are due on its audio clock (frame k at k x 20 ms
from its start, never "20 ms after the last read"), so a late loop gets the frames it owes at once,
processes them back to back and is on time again without drifting; one stall is counted once in
`stalls` and once per late frame in `late_reads`.

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
    """Ticks that missed their deadline (processing over FRAME_S, or the frame read more than FRAME_S
    late), each tick counted once."""
    late_reads: int = 0
    """Frames read more than FRAME_S after their end: the loop was not running (scheduling)."""
    overruns: int = 0
    """Ticks whose processing took longer than FRAME_S of wall time."""
    cpu_overruns: int = 0
    """Ticks whose processing alone used more than FRAME_S of CPU: the tick's own cost."""
    stalls: int = 0
    """Runs of consecutive late reads: one stall, however many frames it took to catch up."""
    max_late_us: float = 0.0
    """The longest a frame waited after its end before the tick took it."""


class TickAccount:
    """Deadline bookkeeping of a media loop, sans-IO: the caller times each tick and reports it."""

    def __init__(self, frame_s: float = FRAME_S, history: int = TICK_HISTORY) -> None:
        self.frame_s = frame_s
        self._durations: deque[float] = deque(maxlen=history)
        self._ticks = self._misses = self._late = self._overruns = self._cpu_overruns = self._stalls = 0
        self._max = self._max_late = 0.0
        self._was_late = False

    def record(self, frame_t: float, read_at: float, wall_s: float, cpu_s: float) -> bool:
        """One tick: the frame covering [frame_t, frame_t + frame) was taken at `read_at` (board
        clock) and processed in `wall_s` seconds of wall time, `cpu_s` of this thread's CPU time.
        Returns whether it missed its deadline."""
        late_by = read_at - (frame_t + self.frame_s)
        late = late_by > self.frame_s
        overrun = wall_s > self.frame_s
        self._durations.append(wall_s)
        self._ticks += 1
        self._max = max(self._max, wall_s)
        self._max_late = max(self._max_late, late_by)
        self._late += late
        self._stalls += late and not self._was_late
        self._was_late = late
        self._overruns += overrun
        self._cpu_overruns += cpu_s > self.frame_s
        self._misses += late or overrun
        return late or overrun

    @property
    def metrics(self) -> ClockMetrics:
        median = statistics.median(self._durations) if self._durations else 0.0
        return ClockMetrics(self._ticks, median * 1e6, self._max * 1e6, self._misses, self._late,
                            self._overruns, self._cpu_overruns, self._stalls, max(0.0, self._max_late) * 1e6)


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
        self.account = TickAccount()
        self._stopping = False
        """Set by `stop()`, even before `run()` has started (a gateway stopped as it starts)."""

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
        gc.freeze()
        try:
            while not self._stopping:
                t, frames = await loop.run_in_executor(self._executor, self.board.read)
                start, cpu = time.perf_counter(), time.thread_time()
                read_at = self.board.now()
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
                self.account.record(t, read_at, time.perf_counter() - start, time.thread_time() - cpu)
        finally:
            for owner in list(self._sockets):
                self.unbind(owner)
            self._executor.shutdown(wait=False)

    def stop(self) -> None:
        """End `run` after the tick in progress (at most one frame away), or as soon as it starts."""
        self._stopping = True

    @property
    def metrics(self) -> ClockMetrics:
        return self.account.metrics
