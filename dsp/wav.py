"""WAV files in and out at the telephone rate, with one clear error for anything unusable."""

from __future__ import annotations

import struct
import warnings
from math import gcd
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.io import wavfile
from scipy.signal import resample_poly

from dsp.synth import to_int16

RATE = 8000


class WavError(ValueError):
    """The file is missing, unreadable or not audio; the message is one line for the user."""


def resample(samples: npt.ArrayLike, from_rate: int, to_rate: int = RATE) -> npt.NDArray[np.int16]:
    """Polyphase resampling (anti-aliased) to `to_rate`, saturated to int16."""
    x = np.asarray(samples)
    if from_rate == to_rate:
        return to_int16(x)
    g = gcd(from_rate, to_rate)
    return to_int16(resample_poly(x.astype(np.float64), to_rate // g, from_rate // g))


def read_wav(path: str | Path, rate: int = RATE) -> npt.NDArray[np.int16]:
    """Read a WAV file as mono int16 at `rate` (channels averaged, other rates resampled).

    Accepts 8/16/24/32-bit integer and 32/64-bit float PCM.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", wavfile.WavFileWarning)
            file_rate, data = wavfile.read(str(path))
    except FileNotFoundError as exc:
        raise WavError(f"{path}: no such file") from exc
    except (ValueError, EOFError, OSError, IndexError, TypeError, struct.error) as exc:
        raise WavError(f"{path}: not a readable WAV file ({exc})") from exc
    if any("prematurely" in str(w.message) for w in caught):  # scipy's word for a cut-off data chunk
        raise WavError(f"{path}: WAV file is truncated")
    if data.size == 0 or file_rate <= 0:
        raise WavError(f"{path}: WAV file holds no audio")
    x = data.astype(np.float64)
    if data.dtype == np.uint8:
        x = (x - 128.0) * 256.0
    elif data.dtype == np.int32:
        x /= 65536.0
    elif np.issubdtype(data.dtype, np.floating):
        x *= 32768.0
    elif data.dtype != np.int16:
        raise WavError(f"{path}: unsupported sample format {data.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    return resample(x, int(file_rate), rate)


def write_wav(path: str | Path, samples: npt.ArrayLike, rate: int = RATE) -> None:
    """Write mono int16 samples as a 16-bit PCM WAV file."""
    wavfile.write(str(path), rate, to_int16(samples))
