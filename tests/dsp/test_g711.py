"""G.711 against the ITU-T G.191 Software Tool Library reference vectors (tests/vectors/itu-t-g191).

The vectors are the STL's own `g711` test data: every int16 input (sweep.src) encoded, decoded and
round-tripped by the reference C code. They are the oracle; our tables are never compared with
themselves. Python's audioop is a second, independent oracle for decoding and A-law encoding only
(its mu-law encoder rounds differently from G.191 on some negative inputs).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from dsp import g711

LAWS = {
    "u": (g711.ulaw_encode, g711.ulaw_decode),
    "a": (g711.alaw_encode, g711.alaw_decode),
}


def _words(vectors: Path, name: str, dtype: str) -> np.ndarray:
    data = np.fromfile(vectors / "itu-t-g191" / "g711" / name, dtype=dtype)
    assert data.size == 65536, f"{name}: expected 65536 little-endian words"
    return data


@pytest.mark.parametrize("law", LAWS)
def test_encode_all_65536_inputs_bit_exact(vectors: Path, law: str) -> None:
    encode, _ = LAWS[law]
    src = _words(vectors, "sweep.src", "<i2")
    assert np.array_equal(src, np.arange(-32768, 32768)), "sweep.src is every int16 value in order"
    ref = _words(vectors, f"sweep-r.{law}", "<u2")
    assert np.all(ref >> 8 == 0), "codes sit in the low byte"
    np.testing.assert_array_equal(encode(src), ref.astype(np.uint8))


@pytest.mark.parametrize("law", LAWS)
def test_round_trip_all_65536_inputs_bit_exact(vectors: Path, law: str) -> None:
    encode, decode = LAWS[law]
    src = _words(vectors, "sweep.src", "<i2")
    np.testing.assert_array_equal(decode(encode(src)), _words(vectors, f"sweep-r.re{law}", "<i2"))


@pytest.mark.parametrize("law", LAWS)
def test_decode_all_256_codes_bit_exact(vectors: Path, law: str) -> None:
    _, decode = LAWS[law]
    codes = _words(vectors, f"sweep-r.{law}", "<u2").astype(np.uint8)
    expected = _words(vectors, f"sweep-r.{law}-{law}", "<i2")
    assert set(np.unique(codes)) == set(range(256)), "the sweep exercises every code"
    np.testing.assert_array_equal(decode(codes), expected)
    np.testing.assert_array_equal(decode(codes.tobytes()), expected)


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="audioop left the standard library in 3.13")
def test_independent_oracle_audioop() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    codes = bytes(range(256))
    assert g711.ulaw_decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert g711.alaw_decode(codes).tobytes() == audioop.alaw2lin(codes, 2)
    everything = np.arange(-32768, 32768, dtype="<i2")
    assert g711.alaw_encode(everything).tobytes() == audioop.lin2alaw(everything.tobytes(), 2)


@pytest.mark.parametrize("law", LAWS)
def test_many_ports_in_one_call_keep_shape(law: str) -> None:
    encode, decode = LAWS[law]
    rng = np.random.default_rng(711)
    block = rng.integers(-32768, 32768, size=(8, 160), dtype=np.int16)
    codes = encode(block)
    assert codes.shape == (8, 160) and codes.dtype == np.uint8
    for port in range(8):
        np.testing.assert_array_equal(codes[port], encode(block[port]))
    out = decode(codes)
    assert out.shape == (8, 160) and out.dtype == np.int16


def test_non_int16_input_saturates_instead_of_wrapping() -> None:
    assert g711.ulaw_encode(np.array([40000, -40000])).tolist() == g711.ulaw_encode(
        np.array([32767, -32768], dtype=np.int16)).tolist()
    assert g711.alaw_encode([0.4, 1e9]).tolist() == g711.alaw_encode(
        np.array([0, 32767], dtype=np.int16)).tolist()


def test_bad_codes_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match=r"0\.\.255"):
        g711.ulaw_decode([0, 256])
    with pytest.raises(ValueError, match=r"0\.\.255"):
        g711.alaw_decode(np.array([-1]))
    with pytest.raises(TypeError, match="int16"):
        g711.ulaw_encode(np.array(["a"]))


def test_silence_and_polarity() -> None:
    # G.711 Table 2a/1a: positive zero is mu-law 0xFF and A-law 0xD5; the decoders are odd-symmetric.
    assert g711.ulaw_encode(np.zeros(1, np.int16))[0] == 0xFF
    assert g711.alaw_encode(np.zeros(1, np.int16))[0] == 0xD5
    for decode in (g711.ulaw_decode, g711.alaw_decode):
        table = decode(np.arange(256, dtype=np.uint8)).astype(np.int32)
        np.testing.assert_array_equal(table[:128], -table[128:])
