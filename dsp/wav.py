"""WAV files in and out at the telephone rate, with one clear error for anything unusable."""

from __future__ import annotations

import struct
import warnings
from math import gcd
from pathlib import Path
from typing import BinaryIO

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


def read_wav(path: str | Path | BinaryIO, rate: int = RATE) -> npt.NDArray[np.int16]:
    """Read a WAV file (a path, or an open binary stream such as an HTTP body in a BytesIO) as mono
    int16 at `rate` (channels averaged, other rates resampled).

    Accepts 8/16/24/32-bit integer and 32/64-bit float PCM.
    """
    source: str | BinaryIO
    source, name = (str(path), str(path)) if isinstance(path, str | Path) else (path, "WAV data")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", wavfile.WavFileWarning)
            file_rate, data = wavfile.read(source)
    except FileNotFoundError as exc:
        raise WavError(f"{name}: no such file") from exc
    except (ValueError, EOFError, OSError, IndexError, TypeError, struct.error) as exc:
        raise WavError(f"{name}: not a readable WAV file ({exc})") from exc
    if any("prematurely" in str(w.message) for w in caught):  # scipy's word for a cut-off data chunk
        raise WavError(f"{name}: WAV file is truncated")
    if data.size == 0 or file_rate <= 0:
        raise WavError(f"{name}: WAV file holds no audio")
    x = data.astype(np.float64)
    if data.dtype == np.uint8:
        x = (x - 128.0) * 256.0
    elif data.dtype == np.int32:
        x /= 65536.0
    elif np.issubdtype(data.dtype, np.floating):
        x *= 32768.0
    elif data.dtype != np.int16:
        raise WavError(f"{name}: unsupported sample format {data.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    return resample(x, int(file_rate), rate)


def write_wav(path: str | Path | BinaryIO, samples: npt.ArrayLike, rate: int = RATE) -> None:
    """Write mono int16 samples as a 16-bit PCM WAV file (to a path or an open binary stream)."""
    wavfile.write(str(path) if isinstance(path, str | Path) else path, rate, to_int16(samples))
