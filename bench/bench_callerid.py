"""Caller ID: cost of one burst (generate, decode) and the lowest SNR at which decoding still works.

The SNR limit is measured the same way for minimodem (Debian's software modem, an independent FSK
receiver) when it is installed, so the figure has a reference next to it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.io import wavfile

from bench.common import Row, median_seconds
from dsp.callerid import callerid_message, decode_callerid, generate_callerid
from dsp.level import dbm0_to_rms, power_dbm0
from dsp.synth import to_int16

WHEN = datetime(2024, 3, 7, 9, 5)
NUMBER, NAME = "5551234567", "DOE JOHN"
SNRS_DB = tuple(range(14, 2, -1))
TRIALS = 20
PASS_RATE = 0.95
MINIMODEM_TRIALS = 8
MINIMODEM_ARGS = {"bell202": ["1200"], "v23": ["--mark", "1300", "--space", "2100", "1200"]}


def _noisy(clean: npt.NDArray[np.int16], snr_db: float, seed: int) -> npt.NDArray[np.float64]:
    """The burst between 100 ms of silence, plus white noise `snr_db` below the burst's power."""
    pad = np.zeros(800)
    x = np.concatenate([pad, clean.astype(np.float64), pad])
    sigma = float(dbm0_to_rms(float(power_dbm0(clean)) - snr_db))
    return x + np.random.default_rng(seed).normal(0.0, sigma, len(x))


Decoder = Callable[[npt.NDArray[np.float64]], bool]


def snr_limit(ok: Decoder, clean: npt.NDArray[np.int16], trials: int) -> float:
    """Lowest SNR (dB, full band) down to which every tested SNR decodes >= PASS_RATE of `trials`."""
    limit = float("nan")
    for snr in SNRS_DB:
        passed = sum(ok(_noisy(clean, snr, seed)) for seed in range(trials))
        if passed < PASS_RATE * trials:
            break
        limit = float(snr)
    return limit


def _minimodem_ok(standard: str, message: bytes, workdir: Path) -> Decoder:
    """minimodem as a pass/fail receiver: did it print the message bytes?"""
    exe = shutil.which("minimodem")
    assert exe is not None
    wav = workdir / "burst.wav"

    def ok(x: npt.NDArray[np.float64]) -> bool:
        wavfile.write(wav, 8000, to_int16(x))
        out = subprocess.run([exe, "--rx", "-q", "-8", "--startbits", "1", "--stopbits", "1", "-f", str(wav),
                              *MINIMODEM_ARGS[standard]], capture_output=True, timeout=30, check=False).stdout
        return message in out

    return ok


def run() -> list[Row]:
    rows: list[Row] = []
    burst = generate_callerid(NUMBER, NAME, WHEN)
    rows.append(Row("callerid", "generate MDMF burst (bell202, 8 kHz)",
                    1000 * median_seconds(lambda: generate_callerid(NUMBER, NAME, WHEN)), "ms"))
    rows.append(Row("callerid", "decode burst, standard given",
                    1000 * median_seconds(lambda: decode_callerid(burst, standard="bell202")), "ms"))
    auto_ms = 1000 * median_seconds(lambda: decode_callerid(burst))
    rows.append(Row("callerid", "decode burst, standard auto", auto_ms, "ms",
                    goal="< 20 ms (burst lasts 600 ms)", met=auto_ms < 20.0))
    with tempfile.TemporaryDirectory() as tmp:
        for standard in ("bell202", "v23"):
            clean = generate_callerid(NUMBER, NAME, WHEN, standard)
            message = callerid_message(NUMBER, NAME, WHEN, standard)

            def ours(x: npt.NDArray[np.float64], message: bytes = message) -> bool:
                got = decode_callerid(x)
                return got is not None and got.valid and got.message == message

            limit = snr_limit(ours, clean, TRIALS)
            reference = (snr_limit(_minimodem_ok(standard, message, Path(tmp)), clean, MINIMODEM_TRIALS)
                         if shutil.which("minimodem") else None)
            rows.append(Row("callerid", f"decode SNR limit {standard} (>= 95 % of {TRIALS})", limit, "dB",
                            baseline_name="minimodem" if reference is not None else "", baseline=reference,
                            goal="<= 12 dB", met=limit <= 12.0))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
