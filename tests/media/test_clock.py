"""MediaClock on a real-time SimBoard: tick pacing, misses, sockets, hook events, clean stop."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiortc.rtp import RtcpByePacket, RtcpPacket, RtpPacket

from dsp.g711 import ulaw_encode
from dsp.synth import tone
from firmware.media.clock import MediaClock, TickAccount
from firmware.media.pipeline import Pipeline, TickResult
from firmware.sip.sdp import Negotiated
from hal.events import HookEvent
from hal.sim import SimBoard


class Peer(asyncio.DatagramProtocol):
    """A plain UDP far end: records RTP it gets and echoes nothing."""

    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(RtpPacket.parse(data))


async def _call_for_one_second() -> tuple[MediaClock, Peer, list[HookEvent], int, float]:
    loop = asyncio.get_running_loop()
    board = SimBoard(2, realtime=True)
    clock = MediaClock(board, Pipeline(2))
    hooks: list[HookEvent] = []
    clock.on_hook = hooks.extend
    ticks: list[TickResult] = []
    clock.on_tick = ticks.append
    peer_transport, peer = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    peer_port = peer_transport.get_extra_info("sockname")[1]
    host, rtp_port = await clock.bind(0, "127.0.0.1")
    assert rtp_port % 2 == 0
    session = clock.start_session(0, Negotiated("PCMU", 0, 8000, 101, 20, "127.0.0.1", peer_port,
                                                ("127.0.0.1", peer_port + 1), "sendrecv", None))
    board.phones[0].lift(board.now())
    task = asyncio.create_task(clock.run())
    start = time.monotonic()
    # The peer sends 50 packets of 440 Hz to our RTP socket while the clock runs.
    audio = ulaw_encode(tone([440.0], -10.0, 8000)).tobytes()
    for k in range(50):
        packet = RtpPacket(payload_type=0, sequence_number=k, timestamp=160 * k, ssrc=7,
                           payload=audio[160 * k:160 * (k + 1)])
        peer_transport.sendto(packet.serialize(), (host, rtp_port))
        await asyncio.sleep(0.02)
    clock.stop()
    await asyncio.wait_for(task, timeout=2.0)
    elapsed = time.monotonic() - start
    received = session.stats().packets_received
    peer_transport.close()
    assert len(ticks) == clock.metrics.ticks
    return clock, peer, hooks, received, elapsed


def test_ticks_every_20_ms_and_stops_cleanly() -> None:
    """Real time on a shared machine: deadline misses are counted by `TickAccount` (tested with
    invented times below) and measured by the bench's soak, not asserted here."""
    clock, peer, hooks, received, elapsed = asyncio.run(asyncio.wait_for(_call_for_one_second(), 10.0))
    m = clock.metrics
    assert m.ticks / elapsed == pytest.approx(50.0, rel=0.1)
    assert 0 < m.median_us <= m.max_us
    assert [e.port for e in hooks] == [0]  # the lift, dispatched from the tick
    assert received == 50  # the peer's packets reached the session through our socket
    assert len(peer.packets) == pytest.approx(m.ticks, abs=2)
    assert {p.payload_type for p in peer.packets} == {0}
    assert clock._sockets == {}  # run() closed every socket on the way out


def test_end_session_sends_bye_and_closes_the_sockets() -> None:
    async def scenario() -> tuple[list[bytes], bool]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []

        class Rtcp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                got.append(data)

        rtcp_t, _ = await loop.create_datagram_endpoint(Rtcp, local_addr=("127.0.0.1", 0))
        rtcp_port = rtcp_t.get_extra_info("sockname")[1]
        clock = MediaClock(SimBoard(1, realtime=True), Pipeline(1))
        await clock.bind(0, "127.0.0.1")
        clock.start_session(0, Negotiated("PCMU", 0, 8000, None, 20, "127.0.0.1", 9,
                                          ("127.0.0.1", rtcp_port), "sendrecv", None))
        stats = clock.end_session(0)
        await asyncio.sleep(0.05)
        rtcp_t.close()
        return got, stats is not None and clock.pipeline.sessions[0] is None and not clock._sockets

    got, detached = asyncio.run(asyncio.wait_for(scenario(), 5.0))
    assert detached and len(got) == 1
    assert any(isinstance(p, RtcpByePacket) for p in RtcpPacket.parse(got[0]))


def test_tick_account_tells_own_cost_from_scheduling() -> None:
    """Invented times, no sleeps: a tick that burns CPU over a frame is an overrun of its own; a
    preempted tick (wall time over a frame, little CPU) is an overrun but not a CPU overrun."""
    acc = TickAccount(frame_s=0.02)
    assert not acc.record(0.00, 0.021, 0.003, 0.003)  # on time
    assert acc.record(0.02, 0.041, 0.025, 0.024)  # its own cost
    assert acc.record(0.04, 0.065, 0.030, 0.002)  # preempted while processing
    m = acc.metrics
    assert (m.ticks, m.misses, m.overruns, m.cpu_overruns, m.late_reads, m.stalls) == (3, 2, 2, 1, 0, 0)
    assert m.max_us == pytest.approx(30_000)


def test_tick_account_counts_a_stall_once_and_each_late_frame() -> None:
    """The loop stops for 75 ms: the board's clock keeps going, so the next reads return frames that
    ended long ago; the loop processes them back to back and is on time again. Frame times stay on
    the 20 ms grid (no drift), the late frames are each a miss, the stall is one event."""
    acc = TickAccount(frame_s=0.02)
    for k in range(5):
        acc.record(0.02 * k, 0.02 * (k + 1) + 0.001, 0.002, 0.002)
    read_at = 0.02 * 5 + 0.075  # frame 4 ended at 0.10; the loop comes back at 0.175
    late = []
    for k in range(5, 12):
        late.append(acc.record(0.02 * k, read_at, 0.002, 0.002))
        read_at = max(read_at + 0.002, 0.02 * (k + 2) + 0.001)  # next read: at once if already due
    m = acc.metrics
    assert late == [True, True, False, False, False, False, False]
    assert (m.misses, m.late_reads, m.stalls, m.overruns) == (2, 2, 1, 0)
    assert m.max_late_us == pytest.approx(55_000)
    acc.record(0.02 * 12, 0.02 * 13 + 0.045, 0.002, 0.002)  # a second, separate stall
    assert acc.metrics.stalls == 2


def test_stop_before_run_starts_is_not_lost() -> None:
    """A gateway stopped in the loop turn it started in: `run()` must still end (it once hung)."""
    async def scenario() -> bool:
        clock = MediaClock(SimBoard(1, realtime=True), Pipeline(1))
        await clock.bind(0, "127.0.0.1")
        task = asyncio.create_task(clock.run())
        clock.stop()  # before the task has run at all
        await asyncio.wait_for(task, 2.0)
        return not clock._sockets

    assert asyncio.run(scenario())
