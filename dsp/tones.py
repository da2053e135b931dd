"""Call-progress tones and ring cadences by country, and a multi-port streaming tone generator.

The data lives in `dsp.tone_table` (one declarative entry per country, each citing its source); this
module looks it up and renders it. The waveform is `dsp.synth.tone`'s (sum of sines, phase 0 at the first
sample, levels through `dsp.level`; the tests hold the two within 1 LSB), but computed for all ports at
once by angle addition over fixed 20 ms blocks: one sin/cos per voice per block instead of one per
sample, which is what makes 32 ports cheap on a Pi. Because the blocks are fixed to the play position,
a tone streamed in frames of any size is sample-for-sample the tone generated in one call. Cadence
edges get a short raised-cosine ramp (`EDGE_MS`, inside the on-time) so gating does not click.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dsp.level import dbm0_to_peak
from dsp.synth import to_int16
from dsp.tone_table import (
    ALIASES,
    BELLCORE_RINGS,
    COUNTRIES,
    REQUIRED_TONES,
    CallerIdStandard,
    Component,
    Country,
    RingCadence,
    Segment,
    Tone,
)

__all__ = [
    "EDGE_MS",
    "REQUIRED_TONES",
    "CallerIdStandard",
    "Component",
    "Country",
    "RingCadence",
    "Segment",
    "Tone",
    "ToneGenerator",
    "countries",
    "country",
    "generate_tone",
    "parse_tone_spec",
    "ring_cadence",
    "tone",
]

EDGE_MS = 3.0
"""Raised-cosine rise/fall inside every on-period: short enough for ±1 ms cadence accuracy at the
half-power points, long enough that a burst starting mid-cycle does not click."""

TONE_ALIASES = {"reorder": "congestion", "stutter": "stutter_dial", "message_waiting": "stutter_dial",
                "off_hook_warning": "howler", "roh": "howler", "receiver_off_hook": "howler",
                "ring": "ringback", "callwaiting": "call_waiting", "info": "sit",
                "intercept": "sit_intercept"}
"""Other names call control may use for a tone (Asterisk's indications names among them)."""

FloatArray = npt.NDArray[np.float64]


def countries() -> list[str]:
    """Codes of every country in the table, sorted (aliases such as GB not included)."""
    return sorted(COUNTRIES)


def country(code: str) -> Country:
    """The country for an ISO 3166 alpha-2 `code` (case-insensitive; GB = UK)."""
    key = code.strip().upper()
    key = ALIASES.get(key, key)
    try:
        return COUNTRIES[key]
    except KeyError:
        raise KeyError(f"unknown country {code!r}; available: {', '.join(countries())}") from None


def tone(code: str, name: str) -> Tone:
    """Tone `name` (e.g. 'dial', 'busy', 'reorder') of country `code`."""
    c = country(code)
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = TONE_ALIASES.get(key, key)
    try:
        return c.tones[key]
    except KeyError:
        raise KeyError(f"country {c.code} has no tone {name!r}; available: {', '.join(sorted(c.tones))}"
                       ) from None


def parse_tone_spec(spec: str) -> Tone:
    """Tone from a CLI spec 'COUNTRY:TONE', e.g. 'US:dial' or 'de:busy'."""
    code, sep, name = spec.partition(":")
    if not sep or not code or not name:
        raise ValueError(f"tone spec must be COUNTRY:TONE (e.g. US:dial), got {spec!r}")
    return tone(code, name)


def ring_cadence(name: str, code: str | None = None) -> RingCadence:
    """Ring cadence by name: 'normal' (the country's), a country's distinctive ring, or 'Bellcore-dr1'..5.

    Names are case-insensitive. Without `code` only the Bellcore (GR-506) names are known.
    """
    key = name.strip().lower()
    if code is not None:
        c = country(code)
        if key == "normal":
            return c.ring
        if key in c.distinctive_rings:
            return c.distinctive_rings[key]
    if key in BELLCORE_RINGS:
        return BELLCORE_RINGS[key]
    known = sorted({"normal", *BELLCORE_RINGS} | (set(country(code).distinctive_rings) if code else set()))
    raise KeyError(f"unknown ring cadence {name!r}; available: {', '.join(known)}")


def generate_tone(country_code: str, tone_name: str, seconds: float, sample_rate: int = 8000
                  ) -> npt.NDArray[np.int16]:
    """`seconds` of a country's tone as int16 (what `hookflash dsp tone US:dial -o f.wav` writes)."""
    gen = ToneGenerator(1, sample_rate)
    gen.play(0, tone(country_code, tone_name))
    return to_int16(gen.next_frame(round(seconds * sample_rate))[0])


# ---- compilation of a tone into gate tables --------------------------------------------------------

@dataclass(frozen=True)
class _Program:
    """A tone ready to render: voices (distinct components) and their gain over time.

    `gates[i, k]` is voice k's gain at play position i for i < prefix (intro plus first cadence cycle);
    the `loop` rows after it then repeat: the steady cycle, or a single silent row for a one-shot tone.
    """

    freqs: FloatArray
    peaks: FloatArray
    gates: FloatArray
    prefix: int
    loop: int
    repeat: bool


def _ramp(n: int, edge: int) -> FloatArray:
    """Gain of an on-run of n samples with raised-cosine edges of `edge` samples (shorter if n is small)."""
    e = min(edge, n // 2)
    g = np.ones(n)
    if e:
        up = 0.5 - 0.5 * np.cos(np.pi * (np.arange(e) + 0.5) / e)
        g[:e] = up
        g[n - e:] = up[::-1]
    return g


def _timeline(segs: Sequence[Segment], tone_: Tone, voices: list[Component], sr: int
              ) -> npt.NDArray[np.bool_]:
    """Which voice sounds at each sample of `segs`; boundaries from cumulative ms so rates do not drift."""
    ms = np.cumsum([0] + [x for s in segs for x in (s.on_ms, s.off_ms)])
    edges = np.rint(ms * sr / 1000).astype(np.int64)
    on = np.zeros((int(edges[-1]), len(voices)), dtype=bool)
    for i, s in enumerate(segs):
        for comp in tone_.segment_components(s):
            on[edges[2 * i]:edges[2 * i + 1], voices.index(comp)] = True
    return on


@functools.lru_cache(maxsize=256)
def _compile(tone_: Tone, sr: int) -> _Program:
    segs = (*tone_.intro, *tone_.cadence)
    voices = list(dict.fromkeys((*tone_.components, *(c for s in segs for c in tone_.segment_components(s)))))
    loop_segs: Sequence[Segment] = tone_.cadence or (Segment(20, 0),)  # continuous: any short steady loop
    intro = _timeline(tone_.intro, tone_, voices, sr)
    loop = _timeline(loop_segs, tone_, voices, sr)
    after = loop if tone_.repeat else np.zeros_like(loop)
    # Ramps are placed on intro + three cycles so every edge sees its true neighbours; the prefix keeps
    # the first cycle (entered from the intro), the loop the middle one (entered from a cycle).
    on = np.concatenate([intro, loop, after, after])
    gates = np.zeros(on.shape)
    edge = round(EDGE_MS * sr / 1000)
    for k in range(len(voices)):
        col = np.concatenate([[False], on[:, k], [False]])
        starts = np.flatnonzero(col[1:] & ~col[:-1])
        ends = np.flatnonzero(~col[1:] & col[:-1])
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            if b < len(on):
                gates[a:b, k] = _ramp(b - a, edge)
            else:  # reaches the end of the timeline, i.e. continues: rise only
                gates[a:b, k] = _ramp(2 * (b - a), edge)[: b - a]
    prefix = len(intro) + len(loop)
    tail = gates[prefix:prefix + len(loop)] if tone_.repeat else np.zeros((1, len(voices)))
    return _Program(np.array([v.freq_hz for v in voices]), dbm0_to_peak([v.level_dbm0 for v in voices]),
                    np.concatenate([gates[:prefix], tail]), prefix, len(tail), tone_.repeat)


# ---- the streaming generator -----------------------------------------------------------------------

class ToneGenerator:
    """Renders call-progress tones for many ports at once, one frame per media tick.

    Each port plays at most one tone; `next_frame` returns every port's samples as float64 [ports, n]
    in int16 scale (idle ports are zero), ready to be mixed and passed through `dsp.synth.to_int16`.
    The work is numpy over a [voices, ports, samples] block: no per-sample Python. A port whose
    one-shot tone has ended, or that was stopped, is released and costs nothing.
    """

    def __init__(self, ports: int, sample_rate: int = 8000) -> None:
        self.ports = ports
        self.sample_rate = sample_rate
        self._programs: list[_Program | None] = [None] * ports
        self._pos = np.zeros(ports, dtype=np.int64)
        self._stopping = np.zeros(ports, dtype=bool)
        self._edge = round(EDGE_MS * sample_rate / 1000)
        self._block = sample_rate // 50  # 20 ms: the unit of the angle-addition synthesis
        self._rebuild()

    def play(self, port: int, tone_: Tone) -> None:
        """Start `tone_` on `port` from the beginning of its cadence (replacing whatever was playing)."""
        self._programs[port] = _compile(tone_, self.sample_rate)
        self._pos[port] = 0
        self._stopping[port] = False
        self._rebuild()

    def stop(self, port: int) -> None:
        """Fade `port` out over the first `EDGE_MS` of the next frame, then silence it."""
        if self._programs[port] is not None:
            self._stopping[port] = True

    @property
    def idle(self) -> bool:
        """No port plays a tone: `next_frame` would return zeros (the media tick then skips it)."""
        return not len(self._active)

    def is_playing(self, port: int) -> bool:
        """False once a stopped port has faded out, or its one-shot tone (e.g. a SIT) has ended."""
        return self._programs[port] is not None

    def _rebuild(self) -> None:
        """Stack the active ports' programs into [voice, port, ...] arrays (on play/stop, never per frame)."""
        self._active = np.array([i for i, p in enumerate(self._programs) if p is not None], dtype=np.int64)
        progs = [p for p in self._programs if p is not None]
        k, a, b = max((len(p.freqs) for p in progs), default=0), len(progs), self._block
        self._prefix = np.array([p.prefix for p in progs], dtype=np.int64)[:, None]
        self._loop = np.array([p.loop for p in progs], dtype=np.int64)[:, None]
        self._one_shot = np.array([not p.repeat for p in progs], dtype=bool)
        lengths = [len(p.gates) for p in progs]
        self._base = np.cumsum([0, *lengths], dtype=np.int64)[:-1, None]
        self._table = np.zeros((k, sum(lengths)))
        omega = np.zeros((k, a, 1))
        peaks = np.zeros((k, a, 1))
        for i, p in enumerate(progs):
            nv = len(p.freqs)
            omega[:nv, i, 0] = 2.0 * np.pi * p.freqs / self.sample_rate
            peaks[:nv, i, 0] = p.peaks
            self._table[:nv, self._base[i, 0]:self._base[i, 0] + lengths[i]] = p.gates.T
        self._omega_block = omega * b
        r = np.arange(b)
        self._cos_r = peaks * np.cos(omega * r)
        self._sin_r = peaks * np.sin(omega * r)

    def next_frame(self, n: int = 160) -> FloatArray:
        """The next `n` samples of every port, float64 [ports, n]."""
        out = np.zeros((self.ports, n))
        if not len(self._active):
            return out
        b = self._block
        q0 = self._pos[self._active]
        q = q0[:, None] + np.arange(n, dtype=np.int64)  # play position [port, sample]
        # sin(w(Bj + r)) = sin(wBj) cos(wr) + cos(wBj) sin(wr): one sin/cos per voice per block.
        if n == b and not np.any(q0 % b):  # the media tick: one whole block per port
            ang = self._omega_block * (q0 // b)[:, None]
            wave = np.sin(ang) * self._cos_r + np.cos(ang) * self._sin_r
        else:
            j0 = q0 // b
            ang = self._omega_block * (j0[:, None] + np.arange(int(((q0 + n - 1) // b - j0).max()) + 1))
            shape = (ang.shape[0], len(q0), n)
            jrel = np.broadcast_to(q // b - j0[:, None], shape)
            r = np.broadcast_to(q % b, shape)
            sin_j = np.take_along_axis(np.sin(ang), jrel, axis=2)
            cos_j = np.take_along_axis(np.cos(ang), jrel, axis=2)
            wave = (sin_j * np.take_along_axis(self._cos_r, r, axis=2)
                    + cos_j * np.take_along_axis(self._sin_r, r, axis=2))
        over = np.maximum(q - self._prefix, 0)
        row = self._base + q - (over // self._loop) * self._loop
        y = np.sum(wave * np.take(self._table, row, axis=1), axis=0)
        stopping = self._stopping[self._active]
        if stopping.any():
            fade = np.zeros(n)
            e = min(self._edge, n)
            fade[:e] = _ramp(2 * self._edge, self._edge)[self._edge:][:e]
            y[stopping] *= fade
        out[self._active] = y
        self._pos[self._active] += n
        done = stopping | (self._one_shot & (self._pos[self._active] >= self._prefix[:, 0]))
        if done.any():
            for port in self._active[done].tolist():
                self._programs[port] = None
                self._stopping[port] = False
            self._rebuild()
        return out
