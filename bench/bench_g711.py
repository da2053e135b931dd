"""G.711 coders against CPython's C `audioop` (the reference measured in the same run)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from bench.common import FRAME, PORT_COUNTS, Row, median_seconds
from dsp import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # CPython <= 3.12; the audioop-lts package on 3.13+

US = 1e6
CODERS: tuple[tuple[str, Callable[[np.ndarray], np.ndarray], Callable[[bytes], bytes], bool], ...] = (
    ("ulaw_encode", g711.ulaw_encode, lambda b: audioop.lin2ulaw(b, 2), True),
    ("ulaw_decode", g711.ulaw_decode, lambda b: audioop.ulaw2lin(b, 2), False),
    ("alaw_encode", g711.alaw_encode, lambda b: audioop.lin2alaw(b, 2), True),
    ("alaw_decode", g711.alaw_decode, lambda b: audioop.alaw2lin(b, 2), False),
)


def _coder_rows(name: str, ours: Callable[[np.ndarray], np.ndarray], ref: Callable[[bytes], bytes],
                encodes: bool, rng: np.random.Generator) -> list[Row]:
    def block(shape: tuple[int, ...]) -> np.ndarray:
        pcm = rng.normal(0, 3000, shape).clip(-32768, 32767).astype(np.int16)
        return pcm if encodes else g711.ulaw_encode(pcm)

    second = block((8000,))
    second_bytes = second.tobytes()
    t_ours = median_seconds(lambda: ours(second))
    t_ref = median_seconds(lambda: ref(second_bytes))
    rows = [Row(f"g711 {name}", "1 s buffer", t_ours * US, "µs", "audioop", t_ref * US,
                "ratio >= 2", t_ref / t_ours >= 2)]
    for ports in PORT_COUNTS:
        frames = block((ports, FRAME))
        per_port = [frames[p].tobytes() for p in range(ports)]
        t_ours = median_seconds(lambda frames=frames: ours(frames)) / ports
        t_ref = median_seconds(lambda per_port=per_port: [ref(b) for b in per_port]) / ports
        goal = "ratio >= 1" if ports == 8 else ""
        rows.append(Row(f"g711 {name}", f"{ports} ports, per port-frame", t_ours * US, "µs",
                        "audioop", t_ref * US, goal, t_ref / t_ours >= 1 if goal else None))
    return rows


def run() -> list[Row]:
    rng = np.random.default_rng(1)
    return [row for coder in CODERS for row in _coder_rows(*coder, rng=rng)]
