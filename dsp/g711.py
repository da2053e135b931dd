"""ITU-T G.711 companding (mu-law and A-law), bit-exact with the ITU-T G.191 Software Tool Library.

The coders are table look-ups: the 65 536-entry encode tables and 256-entry decode tables are built
once at import from the G.191 `g711.c` integer algorithms (reproduced below as vectorised numpy), so
any shape of input (one port, or [ports, samples] for all ports in one call) costs one gather.

G.191 quirks kept on purpose, since bit-exactness with it is the contract:
- mu-law encoding works on the 14-bit magnitude `(x >> 2)` of the one's complement of negative
  input (`~x`), with the G.711 bias of 33 and clipping at 0x1FFF (G.711 Table 2a);
- A-law encoding works on the 12-bit magnitude `(x >> 4)` of the one's complement of negative
  input, then inverts the even bits (XOR 0x55, G.711 Table 1a);
- decoders return the 16-bit left-justified mid-point of each quantisation interval.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Codes = bytes | bytearray | memoryview | npt.ArrayLike
_ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32)
_ALL_CODES = np.arange(256, dtype=np.int32)


def _segment(magnitude: npt.NDArray[np.int32], base_shift: int, top: int) -> npt.NDArray[np.int32]:
    """Number of right shifts that bring `magnitude >> base_shift` to zero (the G.191 while-loop)."""
    seg = np.zeros_like(magnitude)
    m = magnitude >> base_shift
    for _ in range(top):  # at most 8 iterations, over the whole table at once
        nz = m != 0
        seg += nz
        m = m >> 1
    return seg


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    x = _ALL_INT16
    absno = np.where(x < 0, (~x) >> 2, x >> 2) + 33  # G.191 ulaw_compress
    absno = np.minimum(absno, 0x1FFF)
    segno = 1 + _segment(absno, 6, 8)
    high = 0x8 - segno
    low = 0xF - ((absno >> segno) & 0xF)
    code = (high << 4) | low
    code = np.where(x >= 0, code | 0x80, code)
    return np.asarray(code, dtype=np.uint8)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    c = _ALL_CODES
    sign = np.where(c < 0x80, -1, 1)  # G.191 ulaw_expand
    mantissa = ~c
    exponent = (mantissa >> 4) & 0x7
    step = 4 << (exponent + 1)
    mantissa = mantissa & 0xF
    lin = sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)
    return np.asarray(lin, dtype=np.int16)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    x = _ALL_INT16
    ix = np.where(x < 0, (~x) >> 4, x >> 4)  # G.191 alaw_compress
    iexp = np.where(ix > 15, 1 + _segment(ix, 5, 8), 0)  # first shift once ix > 16 + 15
    mant = np.where(ix > 15, (ix >> np.maximum(iexp - 1, 0)) - 16, ix)
    code = mant + (iexp << 4)
    code = np.where(x >= 0, code | 0x80, code)
    return np.asarray(code ^ 0x55, dtype=np.uint8)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    c = _ALL_CODES
    ix = (c ^ 0x55) & 0x7F  # G.191 alaw_expand
    iexp = ix >> 4
    mant = ix & 0xF
    mant = np.where(iexp > 0, mant + 16, mant)
    mant = (mant << 4) + 0x8
    mant = np.where(iexp > 1, mant << np.maximum(iexp - 1, 0), mant)
    return np.asarray(np.where(c > 127, mant, -mant), dtype=np.int16)


# Encode tables are indexed by the int16 sample reinterpreted as uint16 (0..65535).
_ULAW_ENC = np.roll(_build_ulaw_encode(), -32768)
_ALAW_ENC = np.roll(_build_alaw_encode(), -32768)
_ULAW_DEC = _build_ulaw_decode()
_ALAW_DEC = _build_alaw_decode()
for _table in (_ULAW_ENC, _ALAW_ENC, _ULAW_DEC, _ALAW_DEC):
    _table.flags.writeable = False


def _as_index16(samples: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    if isinstance(samples, np.ndarray) and samples.dtype == np.int16:  # the media path's case
        return samples.view(np.uint16)
    x = np.asarray(samples)
    if x.dtype != np.int16:
        if not np.issubdtype(x.dtype, np.number):
            raise TypeError(f"G.711 encoders take int16 samples, not {x.dtype}")
        x = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return x.view(np.uint16)


def _as_codes(codes: Codes) -> npt.NDArray[np.uint8]:
    if isinstance(codes, np.ndarray) and codes.dtype == np.uint8:
        return codes
    if isinstance(codes, bytes | bytearray | memoryview):
        return np.frombuffer(codes, dtype=np.uint8)
    c = np.asarray(codes)
    if c.dtype != np.uint8:
        if not np.issubdtype(c.dtype, np.integer) or (c.size and (c.min() < 0 or c.max() > 255)):
            raise ValueError("G.711 codes must be bytes or integers 0..255")
        c = c.astype(np.uint8)
    return c


def ulaw_encode(samples: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Encode int16 linear samples (any shape) to mu-law codes of the same shape.

    Non-int16 numeric input is rounded and saturated to int16 first.
    """
    return _ULAW_ENC.take(_as_index16(samples))


def alaw_encode(samples: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Encode int16 linear samples (any shape) to A-law codes of the same shape."""
    return _ALAW_ENC.take(_as_index16(samples))


def ulaw_decode(codes: Codes) -> npt.NDArray[np.int16]:
    """Decode mu-law codes (bytes or a uint8 array of any shape) to int16 samples."""
    return _ULAW_DEC.take(_as_codes(codes))


def alaw_decode(codes: Codes) -> npt.NDArray[np.int16]:
    """Decode A-law codes (bytes or a uint8 array of any shape) to int16 samples."""
    return _ALAW_DEC.take(_as_codes(codes))
