"""`make bench`: run every block's benchmark and print one table of medians with ratios.

Each bench module measures ours and its reference in the same run, so ratios hold on a noisy,
shared machine even when absolute figures move. Each module runs in a fresh process (as pyperf runs
its workers): what one leaves behind must not weigh on the next (after the DTMF talk-off run over
two hours of music, the media tick measured ~10 % dearer in the same process).
"""

from __future__ import annotations

import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Row

MODULES = ("bench.bench_g711", "bench.bench_dtmf", "bench.bench_tones", "bench.bench_callerid",
           "bench.bench_plc", "bench.bench_echo", "bench.bench_jitter", "bench.bench_pipeline",
           "bench.bench_sip")


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        model = ""
    return (f"{model or platform.processor()} ({platform.machine()}), Python {platform.python_version()}, "
            f"numpy {np.__version__}")


def print_table(rows: list[Row]) -> None:
    head = ("block", "case", "ours", "unit", "baseline", "base", "ratio", "goal", "met")
    table = [head] + [
        (r.block, r.case, _fmt(r.value), r.unit, r.baseline_name, _fmt(r.baseline), _fmt(r.ratio),
         r.goal, {True: "yes", False: "NO", None: ""}[r.met]) for r in rows]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(head))]
    for n, line in enumerate(table):
        print(" | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def _run(module: str) -> list[Row]:
    """`module.run()` in a child interpreter; its rows come back pickled through a file."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.pickle"
        code = (f"import importlib, pathlib, pickle; pathlib.Path({str(out)!r})"
                f".write_bytes(pickle.dumps(importlib.import_module({module!r}).run()))")
        subprocess.run([sys.executable, "-c", code], check=True)
        rows: list[Row] = pickle.loads(out.read_bytes())
        return rows


def main(selected: list[str]) -> int:
    print(f"machine: {machine()}")
    print("ratio = baseline / ours for costs (higher is better for us); medians of repeated batches\n")
    rows: list[Row] = []
    for name in MODULES:
        if selected and not any(s in name for s in selected):
            continue
        t0 = time.perf_counter()
        rows += _run(name)
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print_table(rows)
    missed = [f"{r.block} ({r.case})" for r in rows if r.met is False]
    print(f"\ngoals missed: {len(missed)}" + (f": {', '.join(missed)}" if missed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
