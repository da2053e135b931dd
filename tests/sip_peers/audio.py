"""Test tones and their check: what a peer plays and what it heard."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsp.wav import RATE, read_wav, write_wav


def write_tone(path: Path, freq_hz: float, seconds: float = 30.0, amplitude: int = 8000) -> Path:
    """Mono 16-bit 8 kHz sine WAV, the only format baresip 1.0.0's aufile source takes at 8 kHz."""
    t = np.arange(int(RATE * seconds)) / RATE
    write_wav(path, (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16))
    return path


def dominant_frequency(path: Path, skip_s: float = 0.2) -> float:
    """Frequency (Hz) of the strongest FFT bin of a WAV, skipping the first `skip_s` (jitter-buffer fill)."""
    x = read_wav(path).astype(np.float64)[int(skip_s * RATE) :]
    if x.size < RATE // 10:
        raise AssertionError(f"{path}: only {x.size} samples of audio")
    x -= x.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / RATE)[int(np.argmax(spectrum))])


def rms(path: Path) -> float:
    """RMS level of a WAV in int16 units, to tell silence from signal."""
    x = read_wav(path).astype(np.float64)
    return float(np.sqrt(np.mean(x**2))) if x.size else 0.0
