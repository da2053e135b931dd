"""WAV input: every PCM flavour becomes 8 kHz mono int16; anything else is one clear WavError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from dsp.level import power_dbm0
from dsp.synth import tone
from dsp.wav import WavError, read_wav, write_wav


def _peak_hz(x: np.ndarray, rate: int = 8000) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


@pytest.mark.parametrize(("rate", "dtype", "scale"), [
    (8000, np.int16, 1.0), (16000, np.int16, 1.0), (44100, np.int32, 65536.0),
    (48000, np.float32, 1 / 32768), (11025, np.uint8, 1 / 256),
])
def test_formats_and_rates_are_converted(tmp_path: Path, rate: int, dtype: type, scale: float) -> None:
    x = tone([1000.0], -10.0, rate, sample_rate=rate) * scale
    if dtype is np.uint8:
        x = x + 128
    path = tmp_path / "in.wav"
    wavfile.write(path, rate, x.astype(dtype))
    y = read_wav(path)
    assert y.dtype == np.int16 and len(y) == 8000
    assert _peak_hz(y) == pytest.approx(1000.0, abs=2)
    assert power_dbm0(y[400:-400]) == pytest.approx(-10.0, abs=0.5 if dtype is np.uint8 else 0.1)


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    x = tone([1000.0], -10.0, 8000)
    wavfile.write(tmp_path / "s.wav", 8000, np.stack([x, x], axis=1).astype(np.int16))
    assert power_dbm0(read_wav(tmp_path / "s.wav")) == pytest.approx(-10.0, abs=0.1)


def test_round_trip(tmp_path: Path) -> None:
    x = np.arange(-100, 100, dtype=np.int16)
    write_wav(tmp_path / "r.wav", x)
    np.testing.assert_array_equal(read_wav(tmp_path / "r.wav"), x)


@pytest.mark.parametrize("content", [b"", b"hello, this is not audio", b"RIFF\x10\x00\x00\x00WAVEfmt "])
def test_unusable_files_raise_one_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(WavError, match=r"bad\.wav"):
        read_wav(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WavError, match="no such file"):
        read_wav(tmp_path / "nope.wav")


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    write_wav(path, tone([1000.0], -10.0, 800))
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(WavError):
        read_wav(path)
