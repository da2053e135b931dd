"""CNG (T.30) and CED/ANS (T.30, V.25) detection."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from dsp.faxdetect import FaxDetector
from dsp.synth import to_int16, tone

RATE = 8000
FRAME = 160


def _run(det: FaxDetector, audio: npt.NDArray[np.float64]) -> tuple[list[int], list[int]]:
    """Frames (index) at which CNG and CED were reported on port 0 (port 1 stays silent)."""
    x = to_int16(audio)
    cng_at, ced_at = [], []
    for k in range(len(x) // FRAME):
        frame = np.stack([x[k * FRAME:(k + 1) * FRAME], np.zeros(FRAME, np.int16)])
        cng, ced = det.process(frame)
        assert not cng[1] and not ced[1]
        if cng[0]:
            cng_at.append(k)
        if ced[0]:
            ced_at.append(k)
    return cng_at, ced_at


def _cng(cycles: int, on_s: float = 0.5, hz: float = 1100.0, dbm0: float = -15.0) -> npt.NDArray[np.float64]:
    burst = tone([hz], dbm0, round(on_s * RATE))
    return np.concatenate([np.concatenate([burst, np.zeros(3 * RATE)]) for _ in range(cycles)])


def _ans(seconds: float, reversals: bool, hz: float = 2100.0, dbm0: float = -12.0) -> npt.NDArray[np.float64]:
    """2100 Hz answer tone; with reversals, its phase flips by pi every 450 ms (V.25)."""
    n = np.arange(round(seconds * RATE))
    sign = np.where((n // round(0.45 * RATE)) % 2 & reversals, -1.0, 1.0)
    return tone([hz], dbm0, n.size) * sign


def test_cng_is_reported_once_per_burst() -> None:
    cng_at, ced_at = _run(FaxDetector(2), _cng(2))
    assert ced_at == []
    # Each 0.5 s burst is reported as it ends (two frames of silence later).
    assert cng_at == [26, 26 + 175]


@pytest.mark.parametrize("on_s", [0.2, 1.0])
def test_tone_bursts_of_the_wrong_length_are_not_cng(on_s: float) -> None:
    assert _run(FaxDetector(2), _cng(1, on_s=on_s)) == ([], [])


def test_cng_off_frequency_or_too_quiet_is_ignored() -> None:
    assert _run(FaxDetector(2), _cng(1, hz=1300.0)) == ([], [])
    assert _run(FaxDetector(2), _cng(1, dbm0=-50.0)) == ([], [])


@pytest.mark.parametrize("reversals", [False, True])
def test_ced_with_or_without_phase_reversals(reversals: bool) -> None:
    cng_at, ced_at = _run(FaxDetector(2), _ans(3.3, reversals, hz=2110.0))
    assert cng_at == []
    assert ced_at == [19]  # once, after 0.4 s of tone, even across the reversal frames


def test_speech_like_noise_is_neither() -> None:
    rng = np.random.default_rng(5)
    assert _run(FaxDetector(2), rng.normal(0, 3000, 5 * RATE)) == ([], [])


def test_frame_shape_is_checked() -> None:
    with pytest.raises(ValueError):
        FaxDetector(2).process(np.zeros((2, 80)))
    with pytest.raises(ValueError):
        FaxDetector(2, frame=400)
