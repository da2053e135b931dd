"""ctypes wrapper of spandsp's DTMF receiver (Debian libspandsp2), the reference for bench and tests.

Benchmark and comparison only: nothing under dsp/ imports it. API of spandsp 0.0.6 (dtmf.h):
dtmf_rx_init(state, digits_callback, user_data), dtmf_rx(state, int16 amp[], samples),
dtmf_rx_get(state, char *buf, max), dtmf_rx_parms(state, filter_dialtone, twist, reverse_twist,
threshold), dtmf_rx_free(state).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import numpy as np
import numpy.typing as npt

DEBIAN_PATH = "/usr/lib/x86_64-linux-gnu/libspandsp.so.2"


@cache
def library() -> ctypes.CDLL:
    """Load libspandsp, or raise OSError naming the Debian package that provides it."""
    name = ctypes.util.find_library("spandsp") or DEBIAN_PATH
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise OSError(f"libspandsp not found ({name}): apt-get install libspandsp2") from exc
    lib.dtmf_rx_init.restype = ctypes.c_void_p
    lib.dtmf_rx_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.dtmf_rx.restype = ctypes.c_int
    lib.dtmf_rx.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    lib.dtmf_rx_get.restype = ctypes.c_size_t
    lib.dtmf_rx_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.dtmf_rx_free.restype = ctypes.c_int
    lib.dtmf_rx_free.argtypes = [ctypes.c_void_p]
    return lib


class SpandspDtmf:
    """One spandsp DTMF receiver (one port), default parameters, digits collected by polling."""

    def __init__(self) -> None:
        self._lib = library()
        self._state = self._lib.dtmf_rx_init(None, None, None)
        if not self._state:
            raise MemoryError("dtmf_rx_init failed")
        self._buf = ctypes.create_string_buffer(128)

    def __del__(self) -> None:
        if getattr(self, "_state", None):
            self._lib.dtmf_rx_free(self._state)
            self._state = None

    def feed(self, samples: npt.NDArray[np.int16]) -> None:
        """Run the receiver over int16 samples (kept contiguous for the C side)."""
        x = np.ascontiguousarray(samples, dtype=np.int16)
        self._lib.dtmf_rx(self._state, x.ctypes.data, x.size)

    def digits(self) -> str:
        """Digits received since the last call."""
        n = self._lib.dtmf_rx_get(self._state, self._buf, 127)
        return self._buf.raw[:n].decode("ascii")


def spandsp_digits(samples: npt.NDArray[np.int16], chunk: int = 160) -> str:
    """All digits spandsp finds in a mono 8 kHz recording fed in `chunk`-sample frames."""
    rx = SpandspDtmf()
    out = []
    for i in range(0, samples.size, chunk):
        rx.feed(samples[i:i + chunk])
        out.append(rx.digits())
    rx.feed(np.zeros(800, dtype=np.int16))
    out.append(rx.digits())
    return "".join(out)
