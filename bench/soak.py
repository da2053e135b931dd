"""Soak: every port in a call on a real-time SimBoard, pinned to one core, counting deadline misses.

`make bench` runs it for a minute; the long run is opt-in: `python -m bench.soak --minutes 10`.
A miss is what `MediaClock` counts: a tick whose processing took over a frame, or a frame read more
than a frame after its end (the loop fell behind the audio clock).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from dataclasses import dataclass

from bench.bench_pipeline import LoopbackRig
from hal.board import FRAME_S

WARMUP_TICKS = 25
"""Ticks run before counting: the real-time board's clock starts when it is built, before the rig's
32 calls are, so the first reads come late and the loop catches up; that is set-up, not a miss."""


@dataclass(frozen=True)
class SoakResult:
    ports: int
    seconds: float
    ticks: int
    misses: int
    median_us: float
    max_us: float
    cpu: int | None
    """The core the process was pinned to (None where affinity is not available)."""


def soak(seconds: float, ports: int = 32) -> SoakResult:
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        before = os.sched_getaffinity(0)
        cpu = min(before)
        os.sched_setaffinity(0, {cpu})
    try:
        rig = LoopbackRig(ports, realtime=True)
        for _ in range(WARMUP_TICKS):  # the board's clock started while the calls were being set up
            rig.step()
        gc.freeze()  # as MediaClock.run does: no full collection over the imports mid-call
        durations, misses = [], 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            spent, t, _ = rig.step()
            # The simulated phones and far ends run on the same core: they count only through `behind`.
            behind = rig.board.now() - (t + FRAME_S) > FRAME_S
            durations.append(spent)
            misses += int(spent > FRAME_S or behind)
    finally:
        if cpu is not None:
            os.sched_setaffinity(0, before)
    return SoakResult(ports, seconds, len(durations), misses, statistics.median(durations) * 1e6,
                      max(durations) * 1e6, cpu)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--ports", type=int, default=32)
    args = parser.parse_args(argv)
    result = soak(args.minutes * 60, args.ports)
    print(result)
    return 0 if result.misses == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
