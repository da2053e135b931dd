"""Call-progress tones: CPU per port per 20 ms frame of the vectorised ToneGenerator.

The baseline, measured in the same run, renders the same tones the obvious way: a Python loop over
ports, each calling `dsp.synth.tone` for its frame and gating it with its cadence. The ratio is the gain
from doing all ports in one numpy block.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from bench.common import FRAME, PORT_COUNTS, Row, median_seconds
from dsp.synth import tone as synth_tone
from dsp.tones import Component, Tone, ToneGenerator, tone

SR = 8000
MIX = (("US", "dial"), ("US", "ringback"), ("UK", "busy"), ("DE", "dial"), ("US", "sit_reorder"),
       ("AU", "dial"), ("IN", "dial"), ("US", "stutter_dial"))
"""What the ports play: steady, cadenced, multi-frequency, one-shot and amplitude-modulated tones."""
BUDGET_US = 100.0
"""Goal per port per frame: 32 ports then cost 3.2 ms of the 20 ms tick on this machine."""


class _NaiveTones:
    """Per-port loop: one `synth.tone` call per port and frame, gated by a cadence mask."""

    def __init__(self, tones: list[Tone]) -> None:
        self.parts: list[tuple[Tone, list[tuple[int, int, tuple[Component, ...]]], int]] = []
        for t in tones:
            segs = [(s.on_ms * SR // 1000, s.off_ms * SR // 1000, t.segment_components(s)) for s in t.cadence]
            self.parts.append((t, segs, sum(on + off for on, off, _ in segs)))
        self.pos = 0

    def next_frame(self) -> npt.NDArray[np.float64]:
        out = np.zeros((len(self.parts), FRAME))
        idx = self.pos + np.arange(FRAME)
        for p, (t, segs, period) in enumerate(self.parts):
            if not segs:
                out[p] = synth_tone([c.freq_hz for c in t.components], [c.level_dbm0 for c in t.components],
                                    FRAME, SR, self.pos)
                continue
            phase = idx % period
            start = 0
            for on, off, comps in segs:
                mask = (phase >= start) & (phase < start + on)
                if mask.any():
                    out[p] += mask * synth_tone([c.freq_hz for c in comps], [c.level_dbm0 for c in comps],
                                                FRAME, SR, self.pos)
                start += on + off
        self.pos += FRAME
        return out


def run() -> list[Row]:
    rows: list[Row] = []
    for ports in PORT_COUNTS:
        tones = [tone(*MIX[p % len(MIX)]) for p in range(ports)]
        gen = ToneGenerator(ports, SR)
        for p, t in enumerate(tones):
            gen.play(p, t)
        naive = _NaiveTones(tones)
        ours = 1e6 * median_seconds(functools.partial(gen.next_frame, FRAME)) / ports
        base = 1e6 * median_seconds(naive.next_frame) / ports
        rows.append(Row("tones", f"ToneGenerator, {ports} ports, per port per 20 ms frame", ours, "us",
                        baseline_name="per-port synth.tone loop", baseline=base,
                        goal=f"< {BUDGET_US:.0f} us", met=ours < BUDGET_US))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
