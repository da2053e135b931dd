"""DTMF conformance: generator and receiver against the operate/non-operate limits of the standards.

Sources: ITU-T Q.23 (frequencies), ITU-T Q.24 Table A.1 AT&T column (= Telcordia GR-506-CORE / SR-TSV-002476
figures: frequency tolerance accept +-1.5 % / reject +-3.5 %, twist 8 dB normal / 4 dB reverse, signal
duration accept 40 ms / reject 23 ms, interdigit pause 40 ms, interruption 10 ms bridged, operate level
0 to -25 dBm0 per tone) and ETSI ES 201 235-3 (receiver, same duration and pause limits).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from dsp.dtmf import DIGITS, detect_dtmf, dtmf_frequencies, generate_dtmf
from dsp.level import DBM0_PEAK, power_dbm0
from dsp.synth import to_int16, tone

RATE = 8000
SAMPLE_DIGITS = "159D*0"
"""A digit from every row and column of the keypad."""


def keyed(freqs: tuple[float, float], levels: tuple[float, float], on_ms: float, lead: int = 400,
          tail_ms: float = 100.0) -> npt.NDArray[np.float64]:
    """`lead` samples of silence, one tone pair, then silence."""
    on = round(on_ms * RATE / 1000)
    return np.concatenate([np.zeros(lead), tone(freqs, list(levels), on), np.zeros(int(tail_ms * 8))])


def keys(x: npt.ArrayLike) -> str:
    return "".join(d for d, _, _ in detect_dtmf(to_int16(x)))


def test_generator_frequencies_and_levels() -> None:
    """Q.23 nominal frequencies (Q.24: sender within +-1.5 %), and the requested level per tone."""
    for digit in DIGITS:
        x = generate_dtmf(digit, on_ms=1000, off_ms=0, level_dbm0=-7.0, twist_db=2.0).astype(np.float64)
        spec = np.abs(np.fft.rfft(x)) * 2.0 / x.size  # 1 Hz bins: peak amplitude per sine
        peaks = np.sort(np.argsort(spec)[-2:]).astype(np.float64)
        lo, hi = dtmf_frequencies(digit)
        assert abs(peaks[0] - lo) <= 0.015 * lo and abs(peaks[1] - hi) <= 0.015 * hi
        levels = 20.0 * np.log10(spec[peaks.astype(int)] / DBM0_PEAK)
        np.testing.assert_allclose(levels, [-7.0, -9.0], atol=0.05)
        np.testing.assert_allclose(power_dbm0(x), 10 * np.log10(10 ** -0.7 + 10 ** -0.9), atol=0.05)


def test_generator_timing() -> None:
    x = generate_dtmf("12", on_ms=50, off_ms=70)
    assert x.dtype == np.int16 and x.size == 2 * (400 + 560)
    assert np.all(x[400:960] == 0) and np.count_nonzero(x[:400]) > 390


def test_generator_edge_cases() -> None:
    assert generate_dtmf("").size == 0
    with pytest.raises(ValueError, match="not a DTMF digit"):
        generate_dtmf("12E")
    assert detect_dtmf(np.zeros(0, dtype=np.int16)) == []
    assert generate_dtmf("a").tolist() == generate_dtmf("A").tolist()


def test_all_sixteen_digits() -> None:
    """Every key of the 4x4 keypad (Q.23), with start/end times within 5 ms."""
    got = detect_dtmf(generate_dtmf(DIGITS, on_ms=60, off_ms=60))
    assert "".join(d for d, _, _ in got) == DIGITS
    for i, (_, start, end) in enumerate(got):
        assert abs(start - 0.120 * i) <= 0.005 and abs(end - (0.120 * i + 0.060)) <= 0.005


def test_other_sample_rates_are_resampled() -> None:
    for rate in (16000, 11025, 44100):
        assert "".join(d for d, _, _ in detect_dtmf(generate_dtmf("3#7", sample_rate=rate), rate)) == "3#7"


@pytest.mark.parametrize("dev", [-0.015, 0.015])
@pytest.mark.parametrize("which", ["both", "low", "high", "opposite"])
def test_accepts_frequency_deviation_1_5_percent(dev: float, which: str) -> None:
    """Q.24 AT&T: operate with each tone off nominal by up to +-1.5 %."""
    for digit in DIGITS:
        lo, hi = dtmf_frequencies(digit)
        f_lo = lo * (1 + dev) if which != "high" else lo
        f_hi = hi * (1 + dev) if which in ("both", "high") else hi * (1 - dev) if which == "opposite" else hi
        assert keys(keyed((f_lo, f_hi), (-10.0, -10.0), 60)) == digit


@pytest.mark.parametrize("dev", [-0.035, 0.035, -0.05, 0.05])
@pytest.mark.parametrize("which", ["both", "low", "high"])
def test_rejects_frequency_deviation_3_5_percent(dev: float, which: str) -> None:
    """Q.24 AT&T: do not operate with a tone off nominal by +-3.5 % or more."""
    for digit in DIGITS:
        lo, hi = dtmf_frequencies(digit)
        f_lo = lo * (1 + dev) if which in ("both", "low") else lo
        f_hi = hi * (1 + dev) if which in ("both", "high") else hi
        assert keys(keyed((f_lo, f_hi), (-10.0, -10.0), 100)) == ""


@pytest.mark.parametrize("strong_dbm0", [-3.0, -10.0, -17.0])
def test_twist(strong_dbm0: float) -> None:
    """Q.24 AT&T: operate with the low group up to 8 dB stronger (normal twist) and the high group up to
    4 dB stronger (reverse twist), also with the weak tone 1.5 % off nominal."""
    for digit in DIGITS:
        lo, hi = dtmf_frequencies(digit)
        for dev in (0.0, -0.015, 0.015):
            assert keys(keyed((lo, hi * (1 + dev)), (strong_dbm0, strong_dbm0 - 8.0), 60)) == digit
            assert keys(keyed((lo * (1 + dev), hi), (strong_dbm0 - 4.0, strong_dbm0), 60)) == digit


def test_level_range() -> None:
    """Q.24 AT&T: operate from 0 to -25 dBm0 per tone; we reach -39 dBm0 (design aim -36 dBm0).
    At 0 dBm0 per tone the pair clips the int16 / G.711 range (+3.14 dBm0 sine peak) and still operates."""
    for level in (0.0, -3.0, -10.0, -20.0, -25.0, -30.0, -36.0, -39.0):
        assert keys(generate_dtmf(DIGITS, level_dbm0=level)) == DIGITS, level


def test_non_operate_level() -> None:
    """Below the sensitivity floor (-40 dBm0 per tone on the window estimate) nothing operates."""
    assert keys(generate_dtmf(DIGITS, level_dbm0=-45.0)) == ""


@pytest.mark.parametrize("level", [-3.0, -10.0, -25.0, -36.0])
def test_duration_40ms_accepted_at_every_phase(level: float) -> None:
    """Q.24 / ES 201 235-3: a 40 ms tone operates, whatever its alignment to our 5 ms sub-blocks
    and 20 ms frames (all 160 offsets of one frame)."""
    for offset in range(160):
        digit = SAMPLE_DIGITS[offset % len(SAMPLE_DIGITS)]
        assert keys(keyed(dtmf_frequencies(digit), (level, level), 40, lead=offset)) == digit, offset


@pytest.mark.parametrize("level", [0.0, -3.0, -10.0, -25.0, -36.0])
@pytest.mark.parametrize("on_ms", [10.0, 20.0, 23.0, 25.0])
def test_duration_23ms_rejected_at_every_phase(level: float, on_ms: float) -> None:
    """Q.24 / ES 201 235-3: a tone of 23 ms or less must not operate (we also reject 25 ms)."""
    for offset in range(160):
        digit = SAMPLE_DIGITS[offset % len(SAMPLE_DIGITS)]
        assert keys(keyed(dtmf_frequencies(digit), (level, level), on_ms, lead=offset)) == "", offset


@pytest.mark.parametrize("level", [-3.0, -25.0])
def test_pause_40ms_separates_digits(level: float) -> None:
    """Q.24 / ES 201 235-3: a 40 ms pause between 40 ms tones gives two digits, even for the same key."""
    for offset in range(0, 160, 3):
        for pair in ("55", "19"):
            x = np.concatenate([np.zeros(offset), generate_dtmf(pair, on_ms=40, off_ms=40, level_dbm0=level)])
            assert keys(x) == pair, (offset, pair)


@pytest.mark.parametrize("level", [-3.0, -25.0])
def test_interruption_10ms_bridged(level: float) -> None:
    """Q.24 AT&T: a 10 ms interruption within a digit must not split it."""
    for offset in range(0, 160, 3):
        for digit in SAMPLE_DIGITS:
            pair = dtmf_frequencies(digit)
            x = np.concatenate([np.zeros(offset), tone(pair, level, 400), np.zeros(80),
                                tone(pair, level, 400, start=480), np.zeros(800)])
            assert keys(x) == digit, (offset, digit)
