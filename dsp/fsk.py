"""1200 baud FSK modem for caller ID: Bell 202 and ITU-T V.23 (forward channel), asynchronous framing.

Transmit is continuous-phase FSK (the phase never jumps at a bit edge, as both standards require, so
the burst has no clicks and a narrow spectrum). Receive is non-coherent: the signal is correlated with
the mark and the space frequency over one bit (a two-filter bank, as in most caller-ID receivers), and
the normalised energy difference gives a soft bit per sample, whatever the level. Bytes are then read
UART-style, re-synchronising on every start-bit edge, so a +-1 % baud error never accumulates over more
than one 10-bit character. Everything per sample is vectorised; only the per-byte framing is Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np
import numpy.typing as npt
from scipy import signal

from dsp.level import dbm0_to_peak

FloatArray = npt.NDArray[np.float64]
BitArray = npt.NDArray[np.uint8]

DEMOD_RATE = 8000
"""The receiver works at the telephone rate; other rates are resampled to it first."""


@dataclass(frozen=True)
class FskStandard:
    """Tone plan of one 1200 baud FSK modem."""

    name: str
    mark_hz: float
    space_hz: float
    baud: float = 1200.0


BELL202 = FskStandard("bell202", mark_hz=1200.0, space_hz=2200.0)
"""Telcordia GR-30-CORE §3.1 (Bell 202 tone plan): mark (1) 1200 Hz, space (0) 2200 Hz, 1200 baud."""

V23 = FskStandard("v23", mark_hz=1300.0, space_hz=2100.0)
"""ITU-T V.23 forward channel, as ETSI EN 300 659-1 §6.2 uses it: mark 1300 Hz, space 2100 Hz, 1200 baud."""

STANDARDS = {s.name: s for s in (BELL202, V23)}

START_BIT = 0
STOP_BIT = 1
"""Asynchronous framing (GR-30-CORE §3.1, EN 300 659-1 §6.2): one space start bit, 8 data bits least
significant first, one mark stop bit."""

MAX_IDLE_BITS = 16
"""Longest mark run accepted between two characters before the receiver gives the message up; both
standards send characters back to back, so anything near this is a lost carrier."""


def standard_named(name: str) -> FskStandard:
    """The modem called `name` ('bell202' or 'v23'), with a clear error for anything else."""
    try:
        return STANDARDS[name]
    except KeyError:
        raise ValueError(f"unknown FSK standard {name!r}; expected one of {sorted(STANDARDS)}") from None


def uart_bits(data: bytes) -> BitArray:
    """Bits on the line for `data`: start bit, 8 data bits LSB first, stop bit, per byte."""
    octets = np.frombuffer(bytes(data), dtype=np.uint8)
    body = (octets[:, None] >> np.arange(8, dtype=np.uint8)) & 1
    frames = np.concatenate(
        [np.full((len(octets), 1), START_BIT, np.uint8), body, np.full((len(octets), 1), STOP_BIT, np.uint8)],
        axis=1,
    )
    return np.asarray(frames.reshape(-1), dtype=np.uint8)


def modulate(bits: npt.ArrayLike, std: FskStandard, sample_rate: int = 8000,
             level_dbm0: float = -13.5) -> FloatArray:
    """Continuous-phase FSK of `bits` (1 = mark), each bit lasting exactly 1/baud on average.

    Bit k covers samples [k * rate / baud, (k+1) * rate / baud), so a non-integer samples-per-bit
    (6.67 at 8 kHz) is spread evenly instead of drifting.
    """
    b = np.asarray(bits, dtype=np.uint8)
    if len(b) == 0:
        return np.zeros(0)
    n = int(np.ceil(len(b) * sample_rate / std.baud))
    index = np.minimum((np.arange(n) * std.baud / sample_rate).astype(np.int64), len(b) - 1)
    freq = np.where(b[index] == 1, std.mark_hz, std.space_hz)
    phase = 2.0 * np.pi * np.cumsum(freq) / sample_rate
    # Start at phase 0 so the burst begins at a zero crossing.
    phase -= phase[0]
    return np.asarray(float(dbm0_to_peak(level_dbm0)) * np.sin(phase))


def to_demod_rate(samples: npt.ArrayLike, sample_rate: int) -> FloatArray:
    """`samples` as float at DEMOD_RATE (polyphase resampling when the rate differs)."""
    x = np.asarray(samples, dtype=np.float64)
    if sample_rate == DEMOD_RATE:
        return x
    g = gcd(int(sample_rate), DEMOD_RATE)
    return np.asarray(signal.resample_poly(x, DEMOD_RATE // g, int(sample_rate) // g))


def discriminate(x: FloatArray, std: FskStandard) -> FloatArray:
    """Soft bit per sample in [-1, 1] (+1 = mark) from audio at DEMOD_RATE.

    Band-pass to the modem band (removes out-of-band noise and hum), then correlate with each tone over
    one bit with a centred window, so the zero crossing of the output sits on the bit edge itself.
    """
    lo = min(std.mark_hz, std.space_hz) - 500.0
    hi = min(max(std.mark_hz, std.space_hz) + 500.0, 0.45 * DEMOD_RATE)
    sos = signal.butter(4, (lo, hi), btype="bandpass", fs=DEMOD_RATE, output="sos")
    y = signal.sosfiltfilt(sos, x) if len(x) > 30 else x
    n = np.arange(len(y))
    window = np.ones(round(DEMOD_RATE / std.baud))
    energies = []
    for f in (std.mark_hz, std.space_hz):
        mixed = y * np.exp(-2j * np.pi * f * n / DEMOD_RATE)
        corr = np.convolve(mixed, window, mode="same")
        energies.append(np.abs(corr) ** 2)
    mark, space = energies
    total = mark + space
    return np.asarray(np.where(total > 0.0, (mark - space) / np.maximum(total, 1e-300), 0.0))


def message_starts(soft: FloatArray, min_mark_bits: int, baud: float = 1200.0) -> npt.NDArray[np.int64]:
    """Candidate start-bit edges: mark-to-space transitions preceded by >= `min_mark_bits` of mark.

    A few noise-flipped samples inside the mark run are tolerated (90 % of the run must be mark).
    """
    spb = DEMOD_RATE / baud
    h = soft > 0.0
    edges = np.flatnonzero(h[:-1] & ~h[1:]) + 1
    run = int(min_mark_bits * spb)
    edges = edges[edges >= run]
    if len(edges) == 0:
        return edges
    csum = np.concatenate([[0], np.cumsum(h, dtype=np.int64)])
    end = edges - int(spb / 2)
    fraction = (csum[end] - csum[edges - run]) / (end - (edges - run))
    return np.asarray(edges[fraction >= 0.9], dtype=np.int64)


class FramingError(Exception):
    """A character had no stop bit, or no start bit came within MAX_IDLE_BITS."""


class UartReader:
    """Reads asynchronous characters from a soft-bit stream, re-timing on every start-bit edge."""

    def __init__(self, soft: FloatArray, baud: float = 1200.0) -> None:
        self._soft = soft
        self._spb = DEMOD_RATE / baud
        self._half = round(self._spb / 2)
        self._width = round(self._spb)

    def next_edge(self, pos: float) -> float:
        """Position (fractional sample) of the next valid start-bit edge at or after `pos`."""
        soft = self._soft
        pos = max(int(np.ceil(pos)), 1)
        limit = min(len(soft) - int(10 * self._spb), pos + int(MAX_IDLE_BITS * self._spb))
        while pos < limit:
            space = np.flatnonzero(soft[pos:limit] <= 0.0)
            if len(space) == 0:
                break
            i = pos + int(space[0])
            if soft[i + self._half] < 0.0 and soft[i:i + self._width].mean() < 0.0:  # a whole space bit
                before = soft[i - 1]
                return float(i - 1 + before / (before - soft[i])) if before > 0.0 else float(i)
            pos = i + 1
        raise FramingError("no start bit")

    def read(self, edge: float, count: int) -> tuple[bytes, float]:
        """`count` characters, the first starting at `edge`; also where to seek the next start bit."""
        weights = 1 << np.arange(8)
        out = bytearray()
        for k in range(count):
            if k:
                edge = self.next_edge(edge)
            centres = np.rint(edge + (np.arange(10) + 0.5) * self._spb).astype(np.int64)
            if centres[-1] + 1 >= len(self._soft):
                raise FramingError("signal ends inside a character")
            values = self._soft[centres - 1] + self._soft[centres] + self._soft[centres + 1]
            if values[9] <= 0.0:
                raise FramingError("missing stop bit")
            out.append(int(np.dot(values[1:9] > 0.0, weights)))
            edge = edge + 9.5 * self._spb
        return bytes(out), edge
