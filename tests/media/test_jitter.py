"""Jitter buffer against simulated networks: a seeded far end, our 20 ms tick, events in time order."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import pytest

from firmware.media.jitter import _SILENT_POWER, IDLE_FRAMES, JitterBuffer, _SilenceTest

F = 160
TICK = 0.02


def frame(index: int, speech: bool) -> bytes:
    """A unique, decodable mu-law frame: the index in the low bit of the first 32 codes.

    0xFF/0xFE decode to 0/-8 (silence); 0x10/0x11 are loud (speech).
    """
    base = 0x10 if speech else 0xFE
    head = bytes(base | ((index >> b) & 1) for b in range(32))
    return head + bytes([base]) * (F - 32)


def index_of(payload: bytes) -> int:
    return sum((payload[b] & 1) << b for b in range(32))


@dataclass
class Net:
    """Far end: frame n leaves at n * 20 ms of *its* clock (drift in ppm, + = it runs fast)."""

    seconds: float
    jitter_s: float = 0.0
    drift_ppm: float = 0.0
    delay_s: float = 0.05
    loss: set[int] = field(default_factory=set)
    swap_every: int = 0
    talk: tuple[float, float] | None = None  # mean talkspurt and pause lengths, seconds
    seed: int = 1
    ssrc_change_at: int | None = None
    ts0: int = 4_294_960_000  # wraps after a few frames
    seq0: int = 65_530

    def packets(self) -> list[tuple[float, int, int, int, bytes]]:
        """(arrival, seq, timestamp, ssrc, payload), sorted by arrival."""
        rng = random.Random(self.seed)
        n_frames = int(self.seconds / TICK * (1 + self.drift_ppm * 1e-6))
        speech = [True] * n_frames
        if self.talk:
            i, on = 0, True
            while i < n_frames:
                run = max(1, int(rng.expovariate(1 / self.talk[0 if on else 1]) / TICK))
                speech[i:i + run] = [on] * len(speech[i:i + run])
                i, on = i + run, not on
        out = []
        for n in range(n_frames):
            if n in self.loss:
                continue
            send = n * TICK / (1 + self.drift_ppm * 1e-6)
            arrival = send + self.delay_s + rng.uniform(0, self.jitter_s)
            if self.swap_every and n % self.swap_every == 0:
                arrival += TICK * 1.5  # overtaken by the next packet
            ssrc = 0x1234 if self.ssrc_change_at is None or n < self.ssrc_change_at else 0x5678
            out.append((arrival, (self.seq0 + n) % 65536, (self.ts0 + n * F) % (1 << 32), ssrc,
                        frame(n, speech[n])))
        out.sort(key=lambda p: p[0])
        return out


@dataclass
class Run:
    out: list[tuple[int | None, bool]]  # per tick: frame index played (or None), lost flag
    delays: list[float]  # delay_ms per tick once playing
    jb: JitterBuffer


def run(net: Net, jb: JitterBuffer | None = None, phase: float = 0.0073) -> Run:
    jb = jb or JitterBuffer()
    packets = net.packets()
    out: list[tuple[int | None, bool]] = []
    delays: list[float] = []
    i = 0
    for k in range(int(net.seconds / TICK) + 25):
        now = k * TICK + phase
        while i < len(packets) and packets[i][0] <= now:
            arrival, seq, ts, ssrc, data = packets[i]
            jb.push(data, seq=seq, timestamp=ts, ssrc=ssrc, now=arrival)
            i += 1
        payload, lost = jb.pop(now)
        out.append((None if payload is None else index_of(payload), lost))
        if payload is not None or lost:
            delays.append(jb.delay_ms)
    return Run(out, delays, jb)


def played(r: Run) -> list[int]:
    return [i for i, _ in r.out if i is not None]


def lost_ticks(r: Run) -> list[int]:
    """Ticks flagged lost before the stream's end (which is concealed until the buffer goes idle)."""
    last = max(k for k, (i, _) in enumerate(r.out) if i is not None)
    return [k for k, (_, lost) in enumerate(r.out) if lost and k < last]


def test_steady_stream_plays_everything_in_order_at_minimum_depth() -> None:
    r = run(Net(seconds=20))
    assert played(r) == list(range(len(played(r))))
    assert len(played(r)) >= 999
    c = r.jb.counters
    assert (c.concealed, c.late, c.dropped, c.inserted, c.duplicates) == (IDLE_FRAMES - 1, 0, 0, 0, 0)
    assert lost_ticks(r) == []
    assert r.jb.target_ms == pytest.approx(20.0)
    assert 20.0 <= max(r.delays) < 40.0


def test_uniform_30ms_jitter_adapts_up_then_never_underruns() -> None:
    r = run(Net(seconds=60, jitter_s=0.030, talk=(2.0, 1.0)))
    assert all(k < 500 for k in lost_ticks(r))
    assert 30.0 <= r.jb.target_ms <= 80.0
    assert max(r.delays[500:]) < 120.0
    seq = played(r)
    assert seq == sorted(seq)
    assert len(seq) - len(set(seq)) <= r.jb.counters.inserted  # silent frames repeated to stretch


def test_reordering_is_repaired() -> None:
    r = run(Net(seconds=20, swap_every=7))
    seq = played(r)
    assert seq == sorted(seq)
    assert all(k < 250 for k in lost_ticks(r))
    assert set(range(seq[0], seq[-1] + 1)) - set(seq) <= set(range(0, 250))


def test_duplicates_are_dropped() -> None:
    jb = JitterBuffer()
    for n in range(3):
        for _ in range(2):
            jb.push(frame(n, True), seq=n, timestamp=n * F, ssrc=1, now=n * TICK)
    assert jb.counters.duplicates == 3 and jb.counters.received == 3
    got = [jb.pop(0.05 + k * TICK) for k in range(4)]
    assert [index_of(p) for p, _ in got if p is not None] == [0, 1, 2]


def test_ten_percent_loss_reports_lost_exactly_at_those_ticks() -> None:
    rng = random.Random(7)
    loss = {n for n in range(1, 1000) if rng.random() < 0.10}
    r = run(Net(seconds=20, loss=loss))
    start = next(k for k, (i, lost) in enumerate(r.out) if i is not None or lost)
    flagged = {k - start for k in lost_ticks(r)}
    assert flagged == {n for n in loss if n < 999}
    assert r.jb.counters.concealed == len(flagged) + IDLE_FRAMES - 1
    assert r.jb.counters.late == 0 and r.jb.counters.dropped == 0


def test_late_packet_is_dropped_counted_and_raises_the_target() -> None:
    jb = JitterBuffer()
    jb.push(frame(0, True), seq=0, timestamp=0, ssrc=1, now=0.0)
    assert jb.pop(0.0) == (None, False)  # waiting the initial 20 ms
    assert index_of(jb.pop(0.02)[0] or b"") == 0
    assert jb.pop(0.04) == (None, True)  # frame 1 missing
    jb.push(frame(1, True), seq=1, timestamp=F, ssrc=1, now=0.065)
    assert jb.counters.late == 1
    assert jb.target_ms > 40.0


def test_ssrc_change_resets_the_stream() -> None:
    r = run(Net(seconds=10, ssrc_change_at=200))
    assert r.jb.counters.resets == 1
    seq = played(r)
    assert seq == sorted(seq) and seq[-1] >= 490
    assert r.jb.ssrc == 0x5678


def test_timestamp_jump_resyncs() -> None:
    jb = JitterBuffer()
    for n in range(10):
        jb.push(frame(n, True), seq=n, timestamp=n * F, ssrc=1, now=n * TICK)
        jb.pop(n * TICK + 0.01)
    got = []
    for n in range(10, 20):  # the far end's timestamp jumps by an hour: a new timeline
        jb.push(frame(n, True), seq=n, timestamp=n * F + 3600 * 8000, ssrc=1, now=n * TICK)
        got.append(jb.pop(n * TICK + 0.01))
    got += [jb.pop(k * TICK + 0.01) for k in range(20, 23)]
    assert jb.counters.resyncs == 1 and jb.counters.late == 0
    assert [index_of(p) for p, _ in got if p is not None] == list(range(10, 20))  # 9 was flushed


def test_idle_after_silence_suppression_then_restarts() -> None:
    jb = JitterBuffer()
    for n in range(10):
        jb.push(frame(n, True), seq=n, timestamp=n * F, ssrc=1, now=n * TICK)
        jb.pop(n * TICK + 0.01)
    outs = [jb.pop(t * TICK + 0.01) for t in range(10, 30)]  # the sender stopped (DTX)
    assert outs[0][1] is False  # frame 9 played at tick 10
    assert sum(lost for _, lost in outs) == IDLE_FRAMES - 1
    assert outs[-1] == (None, False)
    # It resumes 2 s later on the same timeline (seq contiguous, timestamps jumped by the silence).
    jb.push(frame(99, True), seq=10, timestamp=110 * F, ssrc=1, now=110 * TICK)
    assert jb.pop(110 * TICK + 0.01) == (None, False)
    assert index_of(jb.pop(111 * TICK + 0.01)[0] or b"") == 99


@pytest.mark.parametrize("ppm", [100, -100, 500, -500, 10_000, -10_000])
def test_clock_drift_over_ten_minutes_keeps_latency_bounded(ppm: int) -> None:
    r = run(Net(seconds=600, jitter_s=0.010, drift_ppm=ppm, talk=(1.5, 1.0), seed=ppm & 0xFFFF))
    c = r.jb.counters
    expected = abs(ppm) * 1e-6 * 600 / TICK  # frames the two clocks disagree by
    slips = c.dropped if ppm > 0 else c.inserted
    assert slips >= expected * 0.8
    # Bounded by the urgent-drop threshold: target (~30 ms here) + frame + hysteresis + 2 frames.
    assert max(r.delays[500:]) < 110.0
    assert c.concealed + c.late <= 0.002 * len(r.out)


def test_fixed_mode_keeps_depth_constant() -> None:
    r = run(Net(seconds=30, jitter_s=0.030), JitterBuffer(fixed_ms=80))
    assert r.jb.target_ms == 80.0
    steady = r.delays[100:]
    assert min(steady) >= 75.0 and max(steady) <= 80.0 + 20.0 + 10.0 + 2  # target + frame + hysteresis
    assert lost_ticks(r) == [] and r.jb.counters.dropped == 0
    seq = played(r)
    assert seq == list(range(seq[0], seq[0] + len(seq)))


def test_malformed_payload_is_counted() -> None:
    jb = JitterBuffer()
    jb.push(b"\xff" * 100, seq=1, timestamp=0, ssrc=1, now=0.0)
    jb.push(b"", seq=2, timestamp=0, ssrc=1, now=0.0)
    assert jb.counters.malformed == 2 and jb.counters.received == 0


def test_multi_frame_packets_are_split() -> None:
    jb = JitterBuffer(codec="PCMA")
    jb.push(frame(0, True) + frame(1, True) + frame(2, True), seq=5, timestamp=0, ssrc=1, now=0.0)
    got = [jb.pop(0.02 + k * TICK)[0] for k in range(3)]
    assert [index_of(p or b"") for p in got] == [0, 1, 2]


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_silence_shortcut_decides_as_the_full_energy_sum(codec: str) -> None:
    """The bytes-level bounds must agree with the summed energy on every frame, including those a
    single code pushes across the threshold: every pair of codes, split 1/159, 80/80, 159/1."""
    test = _SilenceTest(codec)
    limit = _SILENT_POWER * F
    decided = set()
    for a in range(256):
        for b in range(256):
            for k in (1, 80, 159):
                payload = bytes([a]) * k + bytes([b]) * (F - k)
                exact = bool(test.energy.take(np.frombuffer(payload, dtype=np.uint8)).sum() <= limit)
                assert test(payload) is exact
                decided.add(exact)
    assert decided == {True, False}
