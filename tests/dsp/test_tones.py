"""Tests of dsp.tones: every tone of every country is measured on the generated audio.

Figures are checked against the table (ITU-T E.180 Supp.2; Telcordia GR-506 / ANSI T1.401 for North
America; BT SIN 350 for the UK) with the limits of docs/dsp.md: frequency ±0.5 %, level ±0.5 dB per
component, on/off times ±1 ms. Frequencies and levels come from a least-squares sine fit (IEEE Std 1057
style, frequencies free) over each cadence segment; cadence times from the envelope of the int16 output.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy.optimize import least_squares

from dsp.level import DBM0_PEAK, rms_to_dbm0
from dsp.synth import to_int16
from dsp.synth import tone as synth_tone
from dsp.tones import (
    EDGE_MS,
    REQUIRED_TONES,
    Component,
    RingCadence,
    Segment,
    Tone,
    ToneGenerator,
    countries,
    country,
    generate_tone,
    parse_tone_spec,
    ring_cadence,
    tone,
)

SR = 8000
MS = SR // 1000
EDGE = round(EDGE_MS * MS)
REQUIRED_COUNTRIES = ("US", "CA", "UK", "IE", "FR", "DE", "AT", "CH", "IT", "ES", "PT", "NL", "BE", "SE",
                      "NO", "DK", "FI", "PL", "AU", "NZ", "JP", "CN", "IN", "BR", "MX", "ZA")
ALL_TONES = [(c, name) for c in countries() for name in sorted(country(c).tones)]
FREQ_TOL = 0.005
LEVEL_TOL_DB = 0.5
TIME_TOL = 1 * MS


def _segments(t: Tone) -> list[tuple[int, Segment]]:
    """(start sample, segment) of the intro and the first cadence cycle."""
    out, pos = [], 0
    for seg in (*t.intro, *t.cadence):
        out.append((pos, seg))
        pos += (seg.on_ms + seg.off_ms) * MS
    return out


def _cycle_samples(t: Tone) -> tuple[int, int]:
    intro = sum(s.on_ms + s.off_ms for s in t.intro) * MS
    return intro, sum(s.on_ms + s.off_ms for s in t.cadence) * MS


def _expected_runs(t: Tone, n: int) -> list[tuple[int, int]]:
    """Sounding intervals [start, end) the table implies over n samples (segments with no gap merge)."""
    segs = list(t.intro)
    if t.cadence:
        intro, cycle = _cycle_samples(t)
        segs += list(t.cadence) * (max(1, -(-(n - intro) // cycle)) if t.repeat else 1)
    runs: list[tuple[int, int]] = []
    pos = 0
    for seg in segs:
        start, end = pos, pos + seg.on_ms * MS
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
        pos = end + seg.off_ms * MS
    if not t.cadence:  # steady after the intro
        if runs and runs[-1][1] == pos:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((pos, n))
    return [(a, min(b, n)) for a, b in runs if a < n]


def _measured_runs(x: npt.NDArray[np.int16]) -> list[tuple[int, int]]:
    """Intervals of nonzero output, bridging the < 1 ms near-zeros of zero crossings and ramp tails."""
    nz = np.flatnonzero(x)
    if not len(nz):
        return []
    breaks = np.flatnonzero(np.diff(nz) > TIME_TOL)
    starts = np.concatenate([[nz[0]], nz[breaks + 1]])
    ends = np.concatenate([nz[breaks] + 1, [nz[-1] + 1]])
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _sine_fit(x: npt.NDArray[np.float64], guess_hz: list[float]) -> tuple[list[float], list[float], float]:
    """Frequencies, peak amplitudes and residual RMS of a multi-sine least-squares fit (free frequencies)."""
    n = np.arange(len(x)) / SR

    def basis(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        w = 2 * np.pi * np.asarray(f)[None, :] * n[:, None]
        return np.concatenate([np.sin(w), np.cos(w)], axis=1)

    def resid(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        b = basis(f)
        coef = np.linalg.lstsq(b, x, rcond=None)[0]
        return np.asarray(b @ coef - x)

    fit = least_squares(resid, np.asarray(guess_hz, dtype=np.float64), diff_step=1e-9)
    b = basis(fit.x)
    coef = np.linalg.lstsq(b, x, rcond=None)[0]
    k = len(guess_hz)
    amps = np.hypot(coef[:k], coef[k:])
    return fit.x.tolist(), amps.tolist(), float(np.sqrt(np.mean(resid(fit.x) ** 2)))


def _dbm0(peak: float) -> float:
    return float(rms_to_dbm0(peak / np.sqrt(2.0)))


# ---- the table -----------------------------------------------------------------------------------

def test_required_countries_and_tones_present() -> None:
    """The brief's 26 countries, each with every REQUIRED_TONES entry; GB is the ISO alias of UK."""
    for code in REQUIRED_COUNTRIES:
        c = country(code)
        assert set(REQUIRED_TONES) <= set(c.tones), code
        assert c.source and c.ring.segments and c.ring_frequency_hz > 0
        assert c.callerid_standard in ("bell202", "v23", "dtmf")
    assert country("gb") is country("UK")
    assert country(" us ") is country("US")
    assert set(REQUIRED_COUNTRIES) <= set(countries())


def test_unknown_names_raise_clear_errors() -> None:
    with pytest.raises(KeyError, match=r"unknown country 'XX'.*US"):
        country("XX")
    with pytest.raises(KeyError, match=r"country US has no tone 'bogus'.*dial"):
        tone("US", "bogus")
    with pytest.raises(ValueError, match="COUNTRY:TONE"):
        parse_tone_spec("US")
    with pytest.raises(KeyError, match=r"unknown ring cadence.*bellcore-dr1"):
        ring_cadence("dr9")


def test_parse_spec_and_aliases() -> None:
    assert parse_tone_spec("US:dial") is tone("us", "dial")
    assert tone("US", "reorder") is tone("US", "congestion")
    assert tone("DE", "stutter") is tone("DE", "stutter_dial")
    assert tone("US", "off-hook warning") is tone("US", "howler")


def test_clipping_tone_is_rejected() -> None:
    """The table guarantees no tone saturates int16: four components at 0 dBm0 would."""
    with pytest.raises(ValueError, match="clip"):
        Tone("loud", tuple(Component(f, 0.0) for f in (400, 500, 600, 700)))


# ---- national spot checks (figures straight from the sources) -----------------------------------

@pytest.mark.parametrize(("code", "name", "freqs", "level", "cadence"), [
    # Telcordia GR-506 precise tone plan, ANSI T1.401 levels
    ("US", "dial", (350, 440), -13.0, ()),
    ("US", "ringback", (440, 480), -19.0, ((2000, 4000),)),
    ("US", "busy", (480, 620), -24.0, ((500, 500),)),
    ("US", "congestion", (480, 620), -24.0, ((250, 250),)),
    ("US", "call_waiting", (440,), -13.0, ((300, 9700),)),
    ("US", "howler", (1400, 2060, 2450, 2600), None, ((100, 100),)),
    ("CA", "dial", (350, 440), -13.0, ()),
    # BT SIN 350
    ("UK", "dial", (350, 440), None, ()),
    ("UK", "ringback", (400, 450), None, ((400, 200), (400, 2000))),
    ("UK", "busy", (400,), None, ((375, 375),)),
    ("UK", "congestion", (400,), None, ((400, 350), (225, 525))),
    # ITU-T E.180 Supp.2
    ("DE", "dial", (425,), None, ()),
    ("DE", "busy", (425,), None, ((480, 480),)),
    ("FR", "dial", (440,), None, ()),
    ("FR", "ringback", (440,), None, ((1500, 3500),)),
    ("JP", "dial", (400,), None, ()),
    ("IT", "dial", (425,), None, ((200, 200), (600, 1000))),
    ("ES", "ringback", (425,), None, ((1500, 3000),)),
    ("AT", "dial", (420,), None, ()),
    ("CN", "dial", (450,), None, ()),
    ("AU", "dial", (413, 438), None, ()),  # ACIF S002: 425 Hz x 25 Hz as two lines
    ("IN", "dial", (375, 400, 425), None, ()),  # 400x25 Hz
])
def test_national_figures(code: str, name: str, freqs: tuple[float, ...], level: float | None,
                          cadence: tuple[tuple[int, int], ...]) -> None:
    t = tone(code, name)
    assert tuple(c.freq_hz for c in t.components) == freqs
    if level is not None:
        assert all(c.level_dbm0 == level for c in t.components)
    assert tuple((s.on_ms, s.off_ms) for s in t.cadence) == cadence


def test_us_sit_cause_codes() -> None:
    """GR-506 / T1.401 SIT: first/second segment low or high frequency, short (276) or long (380) ms."""
    expect = {"sit_intercept": ((913.8, 276), (1370.6, 276)),
              "sit_vacant_code": ((985.2, 380), (1370.6, 276)),
              "sit_no_circuit": ((985.2, 380), (1428.5, 380)), "sit_reorder": ((913.8, 276), (1428.5, 380)),
              "sit_ineffective_other": ((913.8, 380), (1428.5, 276))}
    for name, (a, b) in expect.items():
        t = tone("US", name)
        got = [(s.components[0].freq_hz, s.on_ms) for s in t.cadence]
        assert got == [a, b, (1776.7, 380)], name
        assert not t.repeat


def test_q35_sit_default() -> None:
    t = tone("DE", "sit")
    assert [(s.components[0].freq_hz, s.on_ms) for s in t.cadence] == [(950, 330), (1400, 330), (1800, 330)]
    assert t.cadence[-1].off_ms == 1000 and t.cadence[0].components[0].level_dbm0 == -24.0


def test_ring_cadences() -> None:
    """GR-506 distinctive ringing by Alert-Info name; national ring cadences and frequencies."""
    assert ring_cadence("Bellcore-dr1").segments == ((2000, 4000),)
    assert ring_cadence("bellcore-DR2").segments == ((800, 400), (800, 4000))
    assert ring_cadence("Bellcore-dr3").segments == ((400, 200), (400, 200), (800, 4000))
    assert ring_cadence("Bellcore-dr4").segments == ((300, 200), (1000, 200), (300, 4000))
    assert not ring_cadence("Bellcore-dr5").repeat
    assert country("US").ring.segments == ((2000, 4000),) and country("US").ring_frequency_hz == 20
    assert country("UK").ring.segments == ((400, 200), (400, 2000)) and country("UK").ring_frequency_hz == 25
    assert country("DE").ring.segments == ((1000, 4000),)
    assert country("FR").ring.segments == ((1500, 3500),)
    assert country("JP").ring_frequency_hz == 16
    assert ring_cadence("normal", "de") is country("DE").ring
    assert ring_cadence("DR4", "AU").segments == ((400, 2600),)
    assert ring_cadence("Bellcore-dr2", "UK") is ring_cadence("Bellcore-dr2")


def test_bad_ring_cadence_is_rejected() -> None:
    with pytest.raises(ValueError, match="bad segments"):
        RingCadence("silent", ((0, 0),))


def test_ringing_at() -> None:
    uk = country("UK").ring
    on = [uk.ringing_at(ms) for ms in (0, 399, 400, 599, 600, 999, 1000, 2999, 3000, 3399)]
    assert on == [True, True, False, False, True, True, False, False, True, True]
    splash = ring_cadence("Bellcore-dr5")
    assert splash.ringing_at(499) and not splash.ringing_at(500) and not splash.ringing_at(6000)


# ---- every tone measured on the audio ------------------------------------------------------------

@pytest.mark.parametrize(("code", "name"), ALL_TONES)
def test_frequencies_and_levels(code: str, name: str) -> None:
    """Each segment's lines measured by sine fit: frequency ±0.5 %, level ±0.5 dB, nothing else present."""
    t = tone(code, name)
    segs = _segments(t) or [(0, Segment(2000, 0))]
    span = max(p + (s.on_ms + s.off_ms) * MS for p, s in segs) + 2000 * MS
    x = generate_tone(code, name, span / SR).astype(np.float64)
    for pos, seg in segs:
        comps = t.segment_components(seg)
        guard = EDGE + MS
        a, b = pos + guard, pos + min(seg.on_ms, 1000) * MS - guard
        freqs, amps, rms = _sine_fit(x[a:b], [c.freq_hz for c in comps])
        for c, f, amp in zip(comps, freqs, amps, strict=True):
            assert abs(f - c.freq_hz) <= FREQ_TOL * c.freq_hz, (code, name, c, f)
            assert abs(_dbm0(amp) - c.level_dbm0) <= LEVEL_TOL_DB, (code, name, c, _dbm0(amp))
        assert rms < 1.0, (code, name, seg, rms)  # only int16 rounding left: no stray components


@pytest.mark.parametrize(("code", "name"), ALL_TONES)
def test_cadence_times(code: str, name: str) -> None:
    """Sounding intervals of the output match the table's on/off times within ±1 ms."""
    t = tone(code, name)
    intro, cycle = _cycle_samples(t)
    n = min(intro + 2 * cycle, 25 * SR) if t.cadence else intro + SR
    x = generate_tone(code, name, n / SR)
    got, want = _measured_runs(x), _expected_runs(t, n)
    assert len(got) == len(want), (code, name, got[:4], want[:4])
    for (ga, gb), (wa, wb) in zip(got, want, strict=True):
        assert abs(ga - wa) <= TIME_TOL and abs(gb - wb) <= TIME_TOL, (code, name, (ga, gb), (wa, wb))


def test_one_shot_tone_ends_in_silence() -> None:
    t = tone("US", "sit_no_circuit")
    length = sum(s.on_ms + s.off_ms for s in t.cadence) * MS
    x = generate_tone("US", "sit_no_circuit", 3.0)
    assert np.any(x[:length]) and not np.any(x[length:])
    gen = ToneGenerator(1)
    gen.play(0, t)
    assert gen.is_playing(0)
    for _ in range(-(-length // 160)):
        gen.next_frame()
    assert not gen.is_playing(0)


# ---- streaming -----------------------------------------------------------------------------------

STREAMED = [("US", "stutter_dial"), ("UK", "stutter_dial"), ("IT", "stutter_dial"), ("US", "sit_vacant_code"),
            ("IN", "ringback"), ("AU", "congestion"), ("US", "howler"), ("DE", "call_waiting")]


def _max_slope(t: Tone) -> float:
    """Largest possible sample-to-sample step of the tone: sine slope plus the edge ramp's, plus rounding."""
    peaks = {c: DBM0_PEAK * 10 ** (c.level_dbm0 / 20) for s in (Segment(1, 0), *t.intro, *t.cadence)
             for c in t.segment_components(s)}
    return float(sum(a * (2 * np.pi * c.freq_hz / SR + np.pi / (2 * EDGE)) for c, a in peaks.items())) + 1.0


def test_streamed_frames_equal_one_generation_on_many_ports() -> None:
    """Eight ports with different tones, 160-sample frames: each port equals its own one-shot render."""
    seconds = 12.0
    gen = ToneGenerator(len(STREAMED) + 1)
    for port, (code, name) in enumerate(STREAMED):
        gen.play(port, tone(code, name))
    frames = [gen.next_frame(160) for _ in range(int(seconds * SR) // 160)]
    y = to_int16(np.concatenate(frames, axis=1))
    for port, (code, name) in enumerate(STREAMED):
        assert np.array_equal(y[port], generate_tone(code, name, seconds)), (code, name)
    assert not np.any(y[-1])  # the idle port stays silent


def test_port_started_mid_stream_is_independent() -> None:
    """A port started 37 frames into the stream plays its tone from the start; the others are unaffected."""
    gen = ToneGenerator(3)
    gen.play(0, tone("FR", "busy"))
    early = [gen.next_frame() for _ in range(37)]
    gen.play(2, tone("US", "sit_reorder"))
    late = [gen.next_frame() for _ in range(200)]
    y = to_int16(np.concatenate(early + late, axis=1))
    assert np.array_equal(y[0], generate_tone("FR", "busy", 237 * 160 / SR))
    assert np.array_equal(y[2, 37 * 160:], generate_tone("US", "sit_reorder", 200 * 160 / SR))
    assert not np.any(y[1]) and not np.any(y[2, :37 * 160])


def test_waveform_is_synth_tone() -> None:
    """The block synthesis equals dsp.synth.tone (the shared synthesiser) within 1 LSB over 60 s."""
    x = generate_tone("US", "dial", 60.0)
    ref = to_int16(synth_tone([350, 440], -13.0, 60 * SR))
    assert np.max(np.abs(x[EDGE:].astype(np.int32) - ref[EDGE:])) <= 1
    burst = generate_tone("US", "ringback", 8.0)[6 * SR + EDGE:8 * SR - EDGE]  # second ringing burst
    ref = to_int16(synth_tone([440, 480], -19.0, 2 * SR - 2 * EDGE, start=6 * SR + EDGE))
    assert np.max(np.abs(burst.astype(np.int32) - ref)) <= 1


def test_no_discontinuity_at_frame_boundaries() -> None:
    """Steps across frame boundaries (and anywhere) stay within the tone's own maximum slope."""
    for code, name in STREAMED:
        t = tone(code, name)
        gen = ToneGenerator(1)
        gen.play(0, t)
        x = np.concatenate([gen.next_frame(160)[0] for _ in range(300)])
        steps = np.abs(np.diff(np.rint(x)))
        assert steps.max() <= _max_slope(t), (code, name, steps.max())
        assert steps[159::160].max() <= _max_slope(t)


def test_hard_gating_would_fail_the_slope_bound() -> None:
    """The slope bound is tight enough to catch a click: a tone switched on at its crest exceeds it."""
    x = generate_tone("DE", "dial", 1.0).astype(np.float64)
    crest = 4000 + int(np.argmax(np.abs(x[4000:4020])))
    x[:crest] = 0
    assert np.abs(np.diff(x)).max() > _max_slope(tone("DE", "dial"))


def test_frame_size_does_not_matter() -> None:
    gen_a, gen_b = ToneGenerator(2), ToneGenerator(2)
    for g in (gen_a, gen_b):
        g.play(0, tone("UK", "ringback"))
        g.play(1, tone("JP", "ringback"))
    a = np.concatenate([gen_a.next_frame(160) for _ in range(50)], axis=1)
    b = np.concatenate([gen_b.next_frame(n) for n in (1, 159, 80, 80, 7000, 680)], axis=1)
    assert np.array_equal(a, b)


def test_stop_fades_out_and_silences_only_that_port() -> None:
    gen = ToneGenerator(3)
    gen.play(0, tone("US", "dial"))
    gen.play(1, tone("US", "dial"))
    gen.next_frame(160)
    gen.stop(0)
    frame = gen.next_frame(160)
    assert np.all(frame[0, EDGE:] == 0) and abs(frame[0, 0]) > 0
    assert np.max(np.abs(np.diff(frame[0]))) <= _max_slope(tone("US", "dial"))
    assert np.any(frame[1, EDGE:])
    assert not gen.is_playing(0) and gen.is_playing(1)
    assert not np.any(gen.next_frame(160)[0])


def test_play_restarts_from_the_cadence_start() -> None:
    gen = ToneGenerator(1)
    gen.play(0, tone("US", "busy"))
    for _ in range(17):
        gen.next_frame()
    gen.play(0, tone("US", "busy"))
    again = to_int16(gen.next_frame(4000)[0])
    assert np.array_equal(again, generate_tone("US", "busy", 0.5))


def test_other_sample_rate() -> None:
    """16 kHz (wideband ports): same frequency and cadence in seconds."""
    x = generate_tone("US", "busy", 1.0, sample_rate=16000)
    nz = np.flatnonzero(x)
    assert nz[0] < 16 and 7984 <= nz[nz < 12000][-1] < 8000 + 16
    spec = np.abs(np.fft.rfft(x[:8000] * np.hanning(8000), 16000 * 8))
    f = np.argmax(spec) / 8
    assert abs(f - 480) < 2 or abs(f - 620) < 3
