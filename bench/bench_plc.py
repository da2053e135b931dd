"""Packet loss concealment (G.711 Appendix I) against silence substitution, and its cost per tick.

Quality: recorded speech (codec2-examples) with 1, 2 or 3 consecutive 20 ms packets lost, one loss
position per port, positions every 140 ms where the speech is active. The figure is the mean
log-spectral distance (dB, lower is better) over the lost span + 10 ms after, so `ratio` =
silence / ours (> 1: we are closer to the original). The "repeat last frame" baseline is printed too.

Cost: per port and 20 ms frame, for good frames (record + delay) and for lost frames (mean of a
loss start with its pitch search, a continued loss, and the recovery frame). Goals: good frames
< 20 µs, lost < 500 µs (2.5 % of the tick) on the bench machine.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.common import FRAME, PORT_COUNTS, Row, median_seconds
from dsp.plc import Concealer, Plc, RepeatPlc, SilencePlc, simulate, spectral_distance

SPEECH = Path("/usr/share/codec2/raw")
FILES = ("hts1a", "hts2a", "kristoff", "mmt1", "cq_ref", "morig", "forig")
"""8 kHz int16 raw speech from the Debian package codec2-examples (male and female talkers)."""
ACTIVE_RMS = 300.0
"""A loss is placed only where every frame it touches (and the next one) is at least this loud."""
US = 1e6


def loss_trials(speech: npt.NDArray[np.int16], lost_frames: int, spacing: int = 7
                ) -> tuple[list[int], npt.NDArray[np.bool_]]:
    """First lost frame of each trial and the [trials, frames] loss pattern, in active speech only."""
    frames = speech.size // FRAME
    rms = np.sqrt(np.mean(speech[: frames * FRAME].astype(np.float64).reshape(frames, FRAME) ** 2, axis=1))
    starts = [f for f in range(3, frames - lost_frames - 2, spacing)
              if rms[f : f + lost_frames + 1].min() >= ACTIVE_RMS]
    lost = np.zeros((len(starts), frames), dtype=np.bool_)
    for trial, f in enumerate(starts):
        lost[trial, f : f + lost_frames] = True
    return starts, lost


def distance(concealer: type[Concealer], lost_frames: int, files: tuple[str, ...] = FILES) -> float:
    """Mean spectral distance (dB) over every trial of every file (see `dsp.plc.spectral_distance`)."""
    scores = []
    for name in files:
        speech = np.fromfile(SPEECH / f"{name}.raw", dtype=np.int16)
        starts, lost = loss_trials(speech, lost_frames)
        out = simulate(concealer, speech, lost)
        scores += [spectral_distance(speech, out[t], f * FRAME, (f + lost_frames) * FRAME + FRAME // 2)
                   for t, f in enumerate(starts)]
    return float(np.mean(scores))


def _quality_rows() -> list[Row]:
    rows = []
    for n in (1, 2, 3):
        ours = distance(Plc, n)
        silence = distance(SilencePlc, n)
        repeat = distance(RepeatPlc, n)
        case = f"{n} x 20 ms lost, speech"
        rows.append(Row("plc quality", case, ours, "dB LSD", "silence", silence,
                        "ratio >= 1.3", silence / ours >= 1.3))
        rows.append(Row("plc quality", case, ours, "dB LSD", "repeat frame", repeat))
    return rows


def _cost_rows() -> list[Row]:
    rng = np.random.default_rng(1)
    rows = []
    for ports in PORT_COUNTS:
        frames = rng.normal(0, 3000, (ports, FRAME)).clip(-32768, 32767).astype(np.int16)
        good = np.zeros(ports, dtype=np.bool_)
        lost = np.ones(ports, dtype=np.bool_)
        plc, silence = Plc(ports), SilencePlc(ports)
        plc.process(frames, good)
        t_good = median_seconds(partial(plc.process, frames, good)) / ports
        t_silence = median_seconds(partial(silence.process, frames, good)) / ports

        def erasure(f: npt.NDArray[np.int16] = frames, g: npt.NDArray[np.bool_] = good,
                    x: npt.NDArray[np.bool_] = lost, p: Plc = plc) -> None:
            """One lost tick of each kind (start, continuation) and the recovery tick."""
            p.process(f, x)
            p.process(f, x)
            p.process(f, g)

        t_lost = median_seconds(erasure) / ports / 3
        case = f"{ports} ports, per port-frame"
        rows.append(Row("plc good frame", case, t_good * US, "µs", "silence", t_silence * US,
                        "< 20 µs", t_good * US < 20))
        rows.append(Row("plc lost frame", case + " (mean of loss, loss, recovery)", t_lost * US, "µs",
                        "", None, "< 500 µs", t_lost * US < 500))
    return rows


def run() -> list[Row]:
    return _quality_rows() + _cost_rows()
