"""Streaming resamplers: block-exactness, passband flatness, stopband rejection, delay."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from dsp.resample import Decimator, Interpolator

HIGH, LOW, M = 48000, 8000, 6


def tone(freq: float, rate: int, n: int, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / rate
    return np.tile(np.sin(2 * np.pi * freq * t), (channels, 1)) * 10000.0


def steady_rms(y: np.ndarray, skip: int) -> float:
    return float(np.sqrt(np.mean(y[..., skip:] ** 2)))


def test_decimator_streaming_equals_one_shot() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 5000, (2, 960 * 25))
    one_shot = signal.lfilter(Decimator(M, 2).taps, 1.0, x, axis=1)[:, ::M]
    d = Decimator(M, 2)
    streamed = np.concatenate([d.process(x[:, i:i + 960]) for i in range(0, x.shape[1], 960)], axis=1)
    assert streamed.shape == (2, 160 * 25)
    np.testing.assert_allclose(streamed, one_shot, rtol=0, atol=1e-9)  # float rounding only


def test_interpolator_streaming_equals_one_shot() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 5000, (3, 160 * 25))
    i6 = Interpolator(M, 3)
    up = np.zeros((3, x.shape[1] * M))
    up[:, ::M] = x * M
    one_shot = signal.lfilter(i6.taps, 1.0, up, axis=1)
    streamed = np.concatenate([i6.process(x[:, i:i + 160]) for i in range(0, x.shape[1], 160)], axis=1)
    np.testing.assert_allclose(streamed, one_shot, rtol=0, atol=1e-9)  # float rounding only


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3400.0])
def test_passband_within_0_1_db(freq: float) -> None:
    x = tone(freq, HIGH, HIGH)
    down = Decimator(M).process(x)
    up = Interpolator(M).process(tone(freq, LOW, LOW))
    ref = 10000.0 / np.sqrt(2)
    assert abs(20 * np.log10(steady_rms(down, 100) / ref)) < 0.1
    assert abs(20 * np.log10(steady_rms(up, 600) / ref)) < 0.1


@pytest.mark.parametrize("freq", [4000.0, 6000.0, 11000.0, 20000.0])
def test_decimation_rejects_above_4khz_by_60_db(freq: float) -> None:
    down = Decimator(M).process(tone(freq, HIGH, HIGH))
    assert 20 * np.log10(steady_rms(down, 100) / (10000.0 / np.sqrt(2))) < -60


def test_interpolation_removes_images() -> None:
    up = Interpolator(M).process(tone(1000.0, LOW, LOW))[0, 600:]
    spectrum = np.abs(np.fft.rfft(up * np.hanning(len(up))))
    freqs = np.fft.rfftfreq(len(up), 1 / HIGH)
    wanted = spectrum[np.argmin(np.abs(freqs - 1000))]
    image = spectrum[np.argmin(np.abs(freqs - 7000))]  # first image of 1 kHz around 8 kHz
    assert 20 * np.log10(image / wanted) < -60


def test_group_delay_matches_measured_delay() -> None:
    d = Decimator(M)
    assert d.group_delay == (len(d.taps) - 1) / 2
    impulse = np.zeros((1, 960 * 2))
    impulse[0, 0] = 1.0
    y = signal.lfilter(d.taps, 1.0, impulse, axis=1)
    assert int(np.argmax(y[0])) == d.group_delay


def test_block_shape_checked() -> None:
    with pytest.raises(ValueError, match=r"\[2, n\*6\]"):
        Decimator(M, 2).process(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="factor"):
        Decimator(1)
