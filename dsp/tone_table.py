"""The declarative country table behind `dsp.tones`: call-progress tones, ring cadences, caller-ID flavour.

Sources, and how far each figure can be trusted:

* **US/CA** — Telcordia GR-506-CORE (LSSGR signalling: precise tone plan, distinctive ringing, SIT
  cause codes) and ANSI T1.401 (levels per component). Canada uses the same North American plan.
* **The other countries** — ITU-T E.180 Supplement 2, "Various tones used in national networks",
  as compiled in the Annex to ITU Operational Bulletin No. 781 (1.II.2003). The figures were taken
  from the Asterisk `indications.conf.sample` transcription of that compilation (and of the national
  documents it names: BT SIN 350 for UK, ACIF S002:2001 for AU, Telepermit TNA 102 for NZ), not
  re-read from the ITU PDF. Entries Asterisk marks "not specified" keep its conventional stand-ins and
  say so in `Tone.note`.
* **SIT** — ITU-T Q.35 / E.180 §7: 950, 1400, 1800 Hz, 330 ms each, then 1 s of silence, -24 dBm0.
* **Ring frequency, caller-ID flavour** outside North America (GR-506: 20 Hz, Bell 202) are not in
  Supplement 2: they are engineering knowledge (25 Hz in most of the world, 50 Hz FR/AT, 16 Hz JP) and
  should be checked against each operator's interface specification before shipping.
* **Levels** — Supplement 2 gives no levels; outside North America each tone is set to a total power of
  `DEFAULT_TOTAL_DBM0` (-10 dBm0, a Hookflash choice), split evenly between its components.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from dsp.level import DBM0_PEAK, FULL_SCALE

CallerIdStandard = Literal["bell202", "v23", "dtmf"]

DEFAULT_TOTAL_DBM0 = -10.0
"""Total power of a tone whose source gives no level (Hookflash choice, see module docstring)."""

REQUIRED_TONES = ("dial", "ringback", "busy", "congestion", "stutter_dial", "call_waiting", "sit")
"""Tones every country in the table defines; `howler` and the US SIT cause codes only where defined."""


@dataclass(frozen=True)
class Component:
    """One spectral line of a tone: a sine at `freq_hz` with power `level_dbm0`."""

    freq_hz: float
    level_dbm0: float


@dataclass(frozen=True)
class Segment:
    """`on_ms` of sound then `off_ms` of silence; `components` overrides the tone's (SIT, alternation)."""

    on_ms: int
    off_ms: int
    components: tuple[Component, ...] = ()


@dataclass(frozen=True)
class Tone:
    """A call-progress tone.

    Playback: the `intro` segments once, then the `cadence` (repeated while `repeat`, else once and
    silence). An empty cadence means the components sound continuously after the intro.
    """

    name: str
    components: tuple[Component, ...]
    cadence: tuple[Segment, ...] = ()
    repeat: bool = True
    intro: tuple[Segment, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        for seg in (*self.intro, *self.cadence):
            if seg.on_ms < 0 or seg.off_ms < 0 or seg.on_ms + seg.off_ms == 0:
                raise ValueError(f"tone {self.name!r}: bad segment {seg}")
        peak = max(sum(DBM0_PEAK * 10.0 ** (c.level_dbm0 / 20.0) for c in comps)
                   for comps in (self.components, *(s.components for s in (*self.intro, *self.cadence))))
        if peak >= FULL_SCALE:
            raise ValueError(f"tone {self.name!r} would clip: summed peak {peak:.0f}")

    def segment_components(self, seg: Segment) -> tuple[Component, ...]:
        """The components sounding during `seg`."""
        return seg.components or self.components


@dataclass(frozen=True)
class RingCadence:
    """A ringing pattern: (on_ms, off_ms) pairs, repeated unless `repeat` is False (ring splash)."""

    name: str
    segments: tuple[tuple[int, int], ...]
    repeat: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        if not self.segments or any(on < 0 or off < 0 for on, off in self.segments) or self.period_ms <= 0:
            raise ValueError(f"ring cadence {self.name!r}: bad segments {self.segments}")

    @property
    def period_ms(self) -> int:
        return sum(on + off for on, off in self.segments)

    def ringing_at(self, elapsed_ms: float) -> bool:
        """Whether the bell rings `elapsed_ms` after the cadence started (for the HAL ring engine)."""
        if elapsed_ms < 0 or (not self.repeat and elapsed_ms >= self.period_ms):
            return False
        t = elapsed_ms % self.period_ms
        for on, off in self.segments:
            if t < on:
                return True
            t -= on + off
            if t < 0:
                return False
        return False


@dataclass(frozen=True)
class Country:
    """Everything country-specific about the line side of the ATA."""

    code: str
    name: str
    tones: Mapping[str, Tone]
    ring: RingCadence
    ring_frequency_hz: float
    callerid_standard: CallerIdStandard
    source: str
    distinctive_rings: Mapping[str, RingCadence] = field(default_factory=lambda: MappingProxyType({}))


# ---- helpers that keep the table one line per tone ------------------------------------------------

def comps(*freqs: float, total: float = DEFAULT_TOTAL_DBM0) -> tuple[Component, ...]:
    """Equal-level components whose summed power is `total` dBm0."""
    each = total - 10.0 * math.log10(len(freqs))
    return tuple(Component(f, each) for f in freqs)


def levels(*pairs: tuple[float, float]) -> tuple[Component, ...]:
    """Components with explicit (freq_hz, level_dbm0), as ANSI T1.401 states them."""
    return tuple(Component(f, lv) for f, lv in pairs)


def am(carrier_hz: float, mod_hz: float, depth: float = 0.9, carrier_dbm0: float = DEFAULT_TOTAL_DBM0
       ) -> tuple[Component, ...]:
    """Amplitude modulation `carrier*mod` (E.180 notation, e.g. 400x25) as its three spectral lines.

    sin(c)(1 + m cos(w)) = sin(c) + m/2 sin(c - w) + m/2 sin(c + w), so the sum-of-sines synthesiser
    produces it exactly. Depth 0.9 is Asterisk's convention where the source gives none.
    """
    side = carrier_dbm0 + 20.0 * math.log10(depth / 2.0)
    return (Component(carrier_hz - mod_hz, side), Component(carrier_hz, carrier_dbm0),
            Component(carrier_hz + mod_hz, side))


def cad(*ms: int) -> tuple[Segment, ...]:
    """Segments from a flat on, off, on, off ... list in ms."""
    if len(ms) % 2:
        raise ValueError("cadence needs on/off pairs")
    return tuple(Segment(ms[i], ms[i + 1]) for i in range(0, len(ms), 2))


def ring(name: str, *ms: int, repeat: bool = True, note: str = "") -> RingCadence:
    """Ring cadence from a flat on, off, on, off ... list in ms."""
    return RingCadence(name, tuple((ms[i], ms[i + 1]) for i in range(0, len(ms), 2)), repeat, note)


def sit(f1: float = 950.0, f2: float = 1400.0, f3: float = 1800.0, on: tuple[int, int, int] = (330, 330, 330),
        gap: int = 0, pause: int = 1000, level: float = -24.0, note: str = "ITU-T Q.35 / E.180 §7") -> Tone:
    """Special information tone: three rising frequencies, then a pause (Q.35)."""
    return Tone("sit", (), (Segment(on[0], gap, levels((f1, level))),
                            Segment(on[1], gap, levels((f2, level))),
                            Segment(on[2], pause, levels((f3, level)))), note=note)


def stutter(dial: Tone, bursts: int = 6, on: int = 100, off: int = 100, note: str = "") -> Tone:
    """Message-waiting (stutter) dial tone: `bursts` interruptions, then the ordinary dial tone."""
    return Tone("stutter_dial", dial.components, dial.cadence, True, cad(*(on, off) * bursts),
                note or "not in E.180 Supp.2: 0.1/0.1 s bursts then dial tone (Asterisk convention)")


def tones(*items: Tone) -> Mapping[str, Tone]:
    """Read-only name -> tone map."""
    return MappingProxyType({t.name: t for t in items})


# ---- North America: Telcordia GR-506-CORE, ANSI T1.401 -------------------------------------------

_SHORT, _LONG = 276, 380
"""SIT segment durations of the cause-coded North American SIT (GR-506, T1.401)."""
_LO1, _HI1, _LO2, _HI2, _F3 = 913.8, 985.2, 1370.6, 1428.5, 1776.7


def _us_sit(name: str, a: tuple[float, int], b: tuple[float, int], note: str) -> Tone:
    return Tone(name, (), (Segment(a[1], 0, levels((a[0], -24.0))), Segment(b[1], 0, levels((b[0], -24.0))),
                           Segment(_LONG, 0, levels((_F3, -24.0)))), repeat=False,
                note=f"GR-506 / T1.401 SIT cause code {note}; followed by the announcement")


_US_DIAL = Tone("dial", levels((350, -13), (440, -13)), note="GR-506 precise tone plan; T1.401 -13 dBm0/tone")
_US_TONES = tones(
    _US_DIAL,
    Tone("ringback", levels((440, -19), (480, -19)), cad(2000, 4000), note="audible ringing, -19 dBm0/tone"),
    Tone("busy", levels((480, -24), (620, -24)), cad(500, 500), note="line busy, 60 IPM, -24 dBm0/tone"),
    Tone("congestion", levels((480, -24), (620, -24)), cad(250, 250), note="reorder, 120 IPM"),
    stutter(_US_DIAL, bursts=10, note="GR-506 message-waiting / stutter dial: 10 x 0.1/0.1 s then steady"),
    Tone("call_waiting", levels((440, -13)), cad(300, 9700),
         note="GR-506 CW tone: 0.3 s burst, again after 10 s"),
    _us_sit("sit", (_LO1, _SHORT), (_LO2, _SHORT), "IC (operator intercept)"),
    _us_sit("sit_intercept", (_LO1, _SHORT), (_LO2, _SHORT), "IC (operator intercept)"),
    _us_sit("sit_vacant_code", (_HI1, _LONG), (_LO2, _SHORT), "VC (vacant code)"),
    _us_sit("sit_no_circuit", (_HI1, _LONG), (_HI2, _LONG), "NC (no circuit, intra-LATA)"),
    _us_sit("sit_reorder", (_LO1, _SHORT), (_HI2, _LONG), "RO (reorder, intra-LATA)"),
    _us_sit("sit_ineffective_other", (_LO1, _LONG), (_HI2, _SHORT), "IO (ineffective other)"),
    Tone("howler", levels((1400, -9), (2060, -9), (2450, -9), (2600, -9)), cad(100, 100),
         note="receiver off-hook (ROH) tone; T1.401's +3 dBm0/tone is an analogue-side level that four "
              "tones cannot reach in PCM, so it is capped at -9 dBm0/tone (sum just below full scale)"),
)

_BELLCORE = {
    "bellcore-dr1": ring("Bellcore-dr1", 2000, 4000, note="GR-506 distinctive ringing pattern 1 (normal)"),
    "bellcore-dr2": ring("Bellcore-dr2", 800, 400, 800, 4000, note="GR-506 pattern 2 (long-long)"),
    "bellcore-dr3": ring("Bellcore-dr3", 400, 200, 400, 200, 800, 4000,
                         note="GR-506 pattern 3 (short-short-long)"),
    "bellcore-dr4": ring("Bellcore-dr4", 300, 200, 1000, 200, 300, 4000,
                         note="GR-506 pattern 4 (short-long-short)"),
    "bellcore-dr5": ring("Bellcore-dr5", 500, 0, repeat=False,
                         note="GR-506 pattern 5 (ring splash, one burst)"),
}
BELLCORE_RINGS: Mapping[str, RingCadence] = MappingProxyType(_BELLCORE)
"""Distinctive ringing by the Alert-Info names Asterisk, Cisco and Polycom use (keys lower-case)."""

_E180_SOURCE = "ITU-T E.180 Supp.2 (Op. Bull. 781, 2003), as transcribed by Asterisk"
_NANP_SOURCE = "Telcordia GR-506-CORE (tones, distinctive ringing, SIT); ANSI T1.401 (levels)"


def _e180(code: str, name: str, ring_cad: RingCadence, ring_hz: float, cid: CallerIdStandard,
          items: tuple[Tone, ...], source: str = _E180_SOURCE,
          distinctive: Mapping[str, RingCadence] | None = None) -> Country:
    return Country(code, name, tones(*items), ring_cad, ring_hz, cid, source,
                   MappingProxyType(dict(distinctive or {})))


def _std(code: str, name: str, f: float, rb: tuple[int, ...], busy: tuple[int, ...], cong: tuple[int, ...],
         cw: tuple[int, ...], ring_hz: float, cid: CallerIdStandard, stutter_tone: Tone | None = None,
         dial: Tone | None = None, sit_tone: Tone | None = None, cw_freq: float | None = None,
         cw_note: str = "", cong_note: str = "", ringback: Tone | None = None,
         cw_tone: Tone | None = None) -> Country:
    """A country whose tones are all one frequency `f` (the common European 425 Hz plan)."""
    d = dial or Tone("dial", comps(f))
    return _e180(code, name, ring("normal", *rb), ring_hz, cid, (
        d,
        ringback or Tone("ringback", comps(f), cad(*rb)),
        Tone("busy", comps(f), cad(*busy)),
        Tone("congestion", comps(f), cad(*cong), note=cong_note),
        stutter_tone or stutter(d),
        cw_tone or Tone("call_waiting", comps(cw_freq or f), cad(*cw), note=cw_note),
        sit_tone or sit(),
    ))


def _alt(first: float, second: float, ms: int) -> Tone:
    """Special dial tone alternating two frequencies with no gap (IT, NO: 470/425 Hz 0.4 s each)."""
    return Tone("stutter_dial", comps(second), (Segment(ms, 0, comps(first)), Segment(ms, 0, comps(second))),
                note="E.180 Supp.2 special dial tone")


_AU_DIAL = Tone("dial", comps(413, 438), note="ACIF S002:2001 (425 Hz modulated 25 Hz, as two lines)")
_UK_DIAL = Tone("dial", comps(350, 440), note="BT SIN 350")
_IN_DIAL = Tone("dial", am(400, 25), note="E.180 Supp.2: 400x25 Hz; modulation depth not given (0.9 assumed)")
_ZA_DIAL = Tone("dial", am(400, 33), note="Siemens exchanges 400x33 Hz (Alcatel: 383+417); depth 0.9 assumed")
_UK_RING = ring("normal", 400, 200, 400, 2000)

_AU_DISTINCTIVE = {  # ACIF S002:2001, via Asterisk
    "dr1": ring("DR1", 400, 400, 200, 200, 400, 1400, note="forwarded calls"),
    "dr2": ring("DR2", 400, 400, 200, 2000, note="selective ring 2, operator, recall"),
    "dr3": ring("DR3", 200, 200, 400, 2200, note="multiple subscriber number 1"),
    "dr4": ring("DR4", 400, 2600, note="selective ring 1, Centrex"),
    "dr5": ring("DR5", 400, 400, 200, 400, 200, 1400, note="selective ring 3"),
    "dr6": ring("DR6", 200, 400, 200, 200, 400, 1600, note="multiple subscriber number 2"),
    "dr7": ring("DR7", 200, 400, 200, 400, 200, 1600, note="multiple subscriber number 3, data privacy"),
}

_COUNTRY_LIST: tuple[Country, ...] = (
    _std("AT", "Austria", 420, (1000, 5000), (400, 400), (200, 200), (40, 1960), 50, "v23",
         stutter_tone=Tone("stutter_dial", comps(380, 420), note="E.180 Supp.2 special dial tone"),
         sit_tone=sit(950, 1450, 1850, note="E.180 Supp.2 (Austrian SIT frequencies)")),
    _e180("AU", "Australia", _UK_RING, 25, "v23", (
        _AU_DIAL,
        Tone("ringback", comps(413, 438), cad(400, 200, 400, 2000)),
        Tone("busy", comps(425), cad(375, 375)),
        Tone("congestion", comps(425), (Segment(375, 375), Segment(375, 375, comps(425, total=-20.0))),
             note="every other burst 10 dB lower (ACIF S002)"),
        Tone("stutter_dial", comps(413, 438), cad(100, 40), note="ACIF S002 message-waiting dial tone"),
        Tone("call_waiting", comps(425), cad(200, 200, 200, 4400)),
        sit(),
    ), source="ACIF S002:2001; ITU-T E.180 Supp.2", distinctive=_AU_DISTINCTIVE),
    _std("BE", "Belgium", 425, (1000, 3000), (500, 500), (167, 167), (175, 175, 175, 3500), 25, "dtmf",
         stutter_tone=Tone("stutter_dial", comps(425), cad(1000, 250), note="E.180 Supp.2 special dial tone"),
         cw_freq=1400, cw_note="E.180 Supp.2: 1400 Hz"),
    _std("BR", "Brazil", 425, (1000, 4000), (250, 250), (250, 250, 750, 250), (50, 1000), 25, "dtmf"),
    _std("CH", "Switzerland", 425, (1000, 4000), (500, 500), (200, 200), (200, 200, 200, 4000), 25, "v23",
         stutter_tone=Tone("stutter_dial", comps(425, 340), cad(1100, 1100),
                           note="E.180 Supp.2 special dial tone")),
    _std("CN", "China", 450, (1000, 4000), (350, 350), (700, 700), (400, 4000), 25, "bell202",
         stutter_tone=Tone("stutter_dial", comps(450, 425), note="not in E.180 Supp.2; Asterisk's 450+425")),
    _std("DE", "Germany", 425, (1000, 4000), (480, 480), (240, 240), (200, 200, 200, 5000), 25, "v23",
         stutter_tone=Tone("stutter_dial", comps(425, 400), note="E.180 Supp.2 Sonderwählton 425+400 Hz")),
    _std("DK", "Denmark", 425, (1000, 4000), (500, 500), (200, 200), (200, 600, 200, 3000), 25, "dtmf",
         stutter_tone=Tone("stutter_dial", comps(425), cad(450, 50), note="not in E.180 Supp.2; Asterisk")),
    _std("ES", "Spain", 425, (1500, 3000), (200, 200), (200, 200, 200, 200, 200, 600),
         (175, 175, 175, 3500), 25, "v23"),
    _std("FI", "Finland", 425, (1000, 4000), (300, 300), (200, 200), (150, 150, 150, 8000), 25, "dtmf",
         stutter_tone=Tone("stutter_dial", comps(425), cad(650, 25), note="E.180 Supp.2 special dial tone")),
    _std("FR", "France", 440, (1500, 3500), (500, 500), (250, 250), (300, 10000), 50, "v23",
         cong_note="not in E.180 Supp.2; Asterisk's 0.25/0.25"),
    _e180("IE", "Ireland", _UK_RING, 25, "v23", (
        Tone("dial", comps(425)),
        Tone("ringback", comps(400, 450), cad(400, 200, 400, 2000)),
        Tone("busy", comps(425), cad(500, 500)),
        Tone("congestion", comps(425), cad(250, 250)),
        stutter(Tone("dial", comps(425))),
        Tone("call_waiting", comps(425), cad(180, 200, 200, 4500)),
        sit(),
    ), source="ITU-T E.180 Supp.2 (from memory, NOT verified against the document)"),
    _std("IN", "India", 400, (400, 200, 400, 2000), (750, 750), (250, 250), (200, 100, 200, 7500), 25, "dtmf",
         dial=_IN_DIAL, ringback=Tone("ringback", am(400, 25), cad(400, 200, 400, 2000))),
    _std("IT", "Italy", 425, (1000, 4000), (500, 500), (200, 200), (400, 100, 250, 100, 150, 14000), 25,
         "v23", dial=Tone("dial", comps(425), cad(200, 200, 600, 1000),
                          note="E.180 Supp.2 cadenced dial tone"),
         stutter_tone=_alt(470, 425, 400)),
    _std("JP", "Japan", 400, (1000, 2000), (500, 500), (500, 500), (500, 8000), 16, "v23",
         ringback=Tone("ringback", am(400, 16), cad(1000, 2000),
                       note="400 Hz modulated 16 Hz; depth assumed"),
         cw_tone=Tone("call_waiting", am(400, 16), cad(500, 8000))),
    _std("MX", "Mexico", 425, (1000, 4000), (250, 250), (250, 250), (200, 600, 200, 10000), 25, "bell202",
         sit_tone=sit(gap=30)),
    _std("NL", "Netherlands", 425, (1000, 4000), (500, 500), (250, 250), (500, 9500), 25, "dtmf",
         stutter_tone=Tone("stutter_dial", comps(425), cad(500, 50), note="not in E.180 Supp.2; Asterisk")),
    _std("NO", "Norway", 425, (1000, 4000), (500, 500), (200, 200), (200, 600, 200, 10000), 25, "v23",
         stutter_tone=_alt(470, 425, 400)),
    _e180("NZ", "New Zealand", _UK_RING, 25, "dtmf", (
        Tone("dial", comps(400)),
        Tone("ringback", comps(400, 450), cad(400, 200, 400, 2000)),
        Tone("busy", comps(400), cad(500, 500)),
        Tone("congestion", comps(400), cad(250, 250)),
        stutter(Tone("dial", comps(400))),
        Tone("call_waiting", comps(400), cad(200, 3000)),
        sit(),
    ), source="Telepermit PTC/TNA 102; ITU-T E.180 Supp.2"),
    _std("PL", "Poland", 425, (1000, 4000), (500, 500), (500, 500), (150, 150, 150, 4000), 25, "dtmf"),
    _std("PT", "Portugal", 425, (1000, 5000), (500, 500), (200, 200), (300, 10000), 25, "v23", cw_freq=440),
    _std("SE", "Sweden", 425, (1000, 5000), (250, 250), (250, 750), (200, 500, 200, 9100), 25, "dtmf",
         stutter_tone=Tone("stutter_dial", comps(425), cad(320, 20), note="Swedish special dial tone"),
         sit_tone=sit(on=(332, 332, 332), gap=24, pause=2024, note="E.180 Supp.2 (Swedish SIT timing)")),
    _e180("UK", "United Kingdom", _UK_RING, 25, "v23", (
        _UK_DIAL,
        Tone("ringback", comps(400, 450), cad(400, 200, 400, 2000)),
        Tone("busy", comps(400), cad(375, 375)),
        Tone("congestion", comps(400), cad(400, 350, 225, 525), note="BT equipment engaged tone"),
        Tone("stutter_dial", comps(440), (Segment(750, 0, comps(350, 440)), Segment(750, 0, comps(440))),
             note="BT special dial tone (350+440 / 440 Hz, 0.75 s each)"),
        Tone("call_waiting", comps(400), cad(100, 4000)),
        sit(gap=15, note="BT SIN 350 (15 ms gaps)"),
    ), source="BT SIN 350; ITU-T E.180 Supp.2"),
    _std("ZA", "South Africa", 400, (400, 200, 400, 2000), (500, 500), (250, 250), (250, 250), 25, "dtmf",
         dial=_ZA_DIAL, ringback=Tone("ringback", am(400, 33), cad(400, 200, 400, 2000)),
         cw_tone=Tone("call_waiting", am(400, 33), cad(250, 250))),
)


def _nanp(code: str, name: str) -> Country:
    return Country(code, name, _US_TONES, _BELLCORE["bellcore-dr1"], 20.0, "bell202", _NANP_SOURCE,
                   BELLCORE_RINGS)


COUNTRIES: Mapping[str, Country] = MappingProxyType(
    {c.code: c for c in sorted((_nanp("US", "United States"), _nanp("CA", "Canada"), *_COUNTRY_LIST),
                               key=lambda c: c.code)})
"""Country table by upper-case ISO 3166 alpha-2 code."""

ALIASES: Mapping[str, str] = MappingProxyType({"GB": "UK"})
"""Other codes accepted for a country (GB is the ISO code of the United Kingdom)."""
