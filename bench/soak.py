"""Soak: every port in a call on a real-time SimBoard, pinned to one core, counting deadline misses.

`make bench` runs it for a minute; the long run is opt-in: `python -m bench.soak --minutes 10`.
Misses are counted by `firmware.media.clock.TickAccount`, as `MediaClock` counts them: a tick whose
processing took over a frame, or a frame read more than a frame after its end (the loop fell behind
the audio clock). The result separates the causes: `cpu_overruns` are ticks whose own CPU time
exceeded a frame; late reads with no overrun before them are scheduling (the core was given to
another process: the bench machine is shared), which `preempted_ms` (wall minus CPU time over the
whole run, simulator included) and the load average beside it make visible.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import dataclass

from bench.bench_pipeline import LoopbackRig
from firmware.media.clock import TickAccount

WARMUP_TICKS = 25
"""Ticks run before counting: the real-time board's clock starts when it is built, before the rig's
32 calls are, so the first reads come late and the loop catches up; that is set-up, not a miss."""


@dataclass(frozen=True)
class SoakResult:
    ports: int
    seconds: float
    ticks: int
    misses: int
    late_reads: int
    stalls: int
    overruns: int
    cpu_overruns: int
    """Ticks whose own CPU time exceeded a frame: the only misses the tick's cost explains."""
    median_us: float
    max_us: float
    max_cpu_us: float
    """The longest tick in CPU time (our code only)."""
    max_late_us: float
    preempted_ms: float
    """Wall time minus this thread's CPU time over the whole run, outside board.read() (which sleeps)."""
    load: tuple[float, float]
    """1-minute load average at the start and the end (2 cores on the bench machine)."""
    cpu: int | None
    """The core the process was pinned to (None where affinity is not available)."""


def soak(seconds: float, ports: int = 32) -> SoakResult:
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        before = os.sched_getaffinity(0)
        cpu = min(before)
        os.sched_setaffinity(0, {cpu})
    load0 = os.getloadavg()[0]
    try:
        rig = LoopbackRig(ports, realtime=True)
        for _ in range(WARMUP_TICKS):  # the board's clock started while the calls were being set up
            rig.step()
        gc.freeze()  # as MediaClock.run does: no full collection over the imports mid-call
        account = TickAccount()
        cpus = []
        busy_wall = busy_cpu = 0.0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            w0, c0 = time.perf_counter(), time.thread_time()
            spent, t, _ = rig.step()
            # Wall time of the step outside the board's read (where it sleeps until the frame is
            # due) less its CPU time: what other processes took from us.
            busy_wall += time.perf_counter() - w0 - rig.read_wall
            busy_cpu += time.thread_time() - c0 - rig.read_cpu
            # The simulated phones and far ends run on the same core: they count only through
            # late reads, as the sound card's own work would not.
            account.record(t, rig.read_at, spent, rig.cpu)
            cpus.append(rig.cpu)
    finally:
        if cpu is not None:
            os.sched_setaffinity(0, before)
    m = account.metrics
    return SoakResult(ports, seconds, m.ticks, m.misses, m.late_reads, m.stalls, m.overruns,
                      m.cpu_overruns, m.median_us, m.max_us, max(cpus) * 1e6, m.max_late_us,
                      max(0.0, busy_wall - busy_cpu) * 1e3, (load0, os.getloadavg()[0]), cpu)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--ports", type=int, default=32)
    args = parser.parse_args(argv)
    result = soak(args.minutes * 60, args.ports)
    print(result)
    print(f"median tick {result.median_us:.0f} us; misses {result.misses} "
          f"({result.cpu_overruns} from the tick's own CPU cost, {result.late_reads} late reads in "
          f"{result.stalls} stalls); {result.preempted_ms:.0f} ms preempted; load {result.load}")
    return 0 if result.misses == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
