"""Jitter buffer: cost of one packet in and one frame out, and the delay it settles at under jitter."""

from __future__ import annotations

import random

from bench.common import Row, median_seconds
from firmware.media.jitter import JitterBuffer

US = 1e6
TICK = 0.02
SPEECH = bytes([0x10]) * 160


def _cost_row() -> Row:
    jb = JitterBuffer()
    state = {"n": 0}

    def tick() -> None:
        n = state["n"]
        jb.push(SPEECH, seq=n % 65536, timestamp=(n * 160) % (1 << 32), ssrc=1, now=n * TICK)
        jb.pop(n * TICK + 0.011)
        state["n"] = n + 1

    t = median_seconds(tick)
    return Row("jitter buffer", "push + pop, per port-frame", t * US, "µs", "", None, "< 50 µs", t * US < 50)


def _quality_rows() -> list[Row]:
    """60 s of speech through uniform 0-30 ms network jitter with a far end 500 ppm fast."""
    rng = random.Random(1)
    jb = JitterBuffer()
    arrivals = sorted((n * TICK / 1.0005 + rng.uniform(0, 0.030), n) for n in range(3000))
    delays, concealed, i = [], 0, 0
    for k in range(3000):
        now = k * TICK + 0.007
        while i < len(arrivals) and arrivals[i][0] <= now:
            a, n = arrivals[i]
            jb.push(SPEECH, seq=n, timestamp=n * 160, ssrc=1, now=a)
            i += 1
        payload, lost = jb.pop(now)
        if k >= 500 and (payload is not None or lost):
            delays.append(jb.delay_ms)
            concealed += lost
    mean = sum(delays) / len(delays)
    case = "30 ms uniform jitter, +500 ppm, after 10 s"
    return [Row("jitter buffer delay", case, mean, "ms", "", None, "< 80 ms", mean < 80),
            Row("jitter buffer losses", case, 100.0 * concealed / len(delays), "%", "", None, "< 0.5 %",
                100.0 * concealed / len(delays) < 0.5)]


def run() -> list[Row]:
    return [_cost_row(), *_quality_rows()]
