"""dBm0 convention: a full-scale int16 sine is +3.14 dBm0 (ITU-T G.711 A-law digital milliwatt)."""

from __future__ import annotations

import numpy as np
import pytest

from dsp import level
from dsp.synth import to_int16, tone


def test_full_scale_sine_is_plus_3_14_dbm0() -> None:
    n = np.arange(8000)
    full = 32768.0 * np.sin(2 * np.pi * 1004 * n / 8000)  # 1004 Hz: the G.711 test-tone frequency
    assert level.power_dbm0(full) == pytest.approx(3.14, abs=0.01)


def test_conversions_are_inverse() -> None:
    for dbm0 in (-60.0, -25.0, -13.0, 0.0, 3.0):
        assert level.rms_to_dbm0(level.dbm0_to_rms(dbm0)) == pytest.approx(dbm0)
        assert level.dbm0_to_peak(dbm0) == pytest.approx(level.dbm0_to_rms(dbm0) * np.sqrt(2))


def test_synth_levels_per_component() -> None:
    assert level.power_dbm0(tone([1000.0], -10.0, 8000)) == pytest.approx(-10.0, abs=0.01)
    # two equal tones at -10 dBm0 each carry -6.99 dBm0 together (powers add)
    assert level.power_dbm0(tone([697.0, 1209.0], -10.0, 8000)) == pytest.approx(-6.99, abs=0.01)


def test_silence_is_floored_not_minus_infinity() -> None:
    assert level.power_dbm0(np.zeros(160)) == level.SILENCE_DBM0


def test_to_int16_saturates() -> None:
    assert to_int16([40000.0, -40000.0, 1.5]).tolist() == [32767, -32768, 2]


def test_meter_tracks_each_port_with_fast_attack_and_slow_release() -> None:
    meter = level.LevelMeter(ports=2)
    loud = to_int16(tone([1000.0], -10.0, 160))
    frame = np.stack([loud, np.zeros(160, np.int16)])
    for _ in range(5):  # 100 ms: the 10 ms attack has settled
        out = meter.update(frame)
    assert out[0] == pytest.approx(-10.0, abs=0.1)
    assert out[1] == level.SILENCE_DBM0
    after = meter.update(np.zeros((2, 160), np.int16))
    assert -12.0 < after[0] < -10.0  # one 20 ms frame of the 300 ms release drops it only a little
