"""Shared pieces of `make bench`: timing by medians, and the rows of the printed table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

PORT_COUNTS = (1, 8, 32)
FRAME = 160
"""Samples in one 20 ms frame at 8 kHz."""


@dataclass
class Row:
    """One line of the benchmark table.

    `value` is ours, `baseline` the reference measured in the same run (None where there is none);
    `ratio` is baseline / value for costs (bigger = we are faster) unless `higher_is_better`.
    """

    block: str
    case: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    goal: str = ""
    met: bool | None = None
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.value == 0 or self.baseline == 0:
            return None
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value


def median_seconds(fn: Callable[[], object], repeat: int = 15, min_time: float = 0.02,
                   clock: Callable[[], float] = time.perf_counter) -> float:
    """Median time of one call of `fn` on `clock` (wall time by default; `time.thread_time` for CPU
    time), over `repeat` batches each lasting >= `min_time`."""
    fn()  # warm caches and lazy imports
    number = 1
    while True:
        t0 = clock()
        for _ in range(number):
            fn()
        if clock() - t0 >= min_time:
            break
        number *= 2
    samples = []
    for _ in range(repeat):
        t0 = clock()
        for _ in range(number):
            fn()
        samples.append((clock() - t0) / number)
    return statistics.median(samples)
