"""Independent check of the FSK transmitter: Debian's minimodem must read back the exact message bytes.

minimodem is required (CI installs the `minimodem` package); its absence is a failure, not a skip.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.io import wavfile

from dsp.callerid import callerid_message, fsk_burst, vmwi_message

WHEN = datetime(2024, 12, 31, 23, 59)
MODEM_ARGS = {
    "bell202": ["1200"],  # minimodem's "1200" mode is Bell 202: mark 1200 Hz, space 2200 Hz
    "v23": ["--mark", "1300", "--space", "2100", "1200"],
}
SEIZURE_CHAR = 0x55
"""The 0101... seizure read as async characters: start 0, then 1010 1010 LSB first = 0x55."""


def minimodem(samples: npt.NDArray[np.int16], rate: int, standard: str, tmp_path: Path) -> bytes:
    """Bytes minimodem decodes from `samples` (8-bit, 1 start bit, 1 stop bit)."""
    exe = shutil.which("minimodem")
    assert exe is not None, "minimodem is not installed (apt-get install minimodem)"
    wav = tmp_path / f"cid-{standard}-{rate}.wav"
    padding = np.zeros(rate // 10, np.int16)
    wavfile.write(wav, rate, np.concatenate([padding, samples, padding]))
    result = subprocess.run(
        [exe, "--rx", "-q", "-8", "--startbits", "1", "--stopbits", "1", "-f", str(wav),
         *MODEM_ARGS[standard]],
        capture_output=True, timeout=30, check=True,
    )
    return result.stdout


@pytest.mark.parametrize("standard", ["bell202", "v23"])
@pytest.mark.parametrize("rate", [8000, 48000])
@pytest.mark.parametrize(
    "message",
    [
        callerid_message("5551234567", "DOE JOHN", WHEN, "bell202", "mdmf"),
        callerid_message("5551234567", None, WHEN, "bell202", "sdmf"),
        callerid_message(None, None, WHEN, "v23", "mdmf", absence="P", call_type=1),
        vmwi_message(True, "mdmf", message_count=2),
        vmwi_message(False, "sdmf"),
    ],
    ids=["mdmf", "sdmf", "mdmf-private", "vmwi-mdmf", "vmwi-sdmf"],
)
def test_minimodem_reads_on_hook_burst(standard: str, rate: int, message: bytes, tmp_path: Path) -> None:
    out = minimodem(fsk_burst(message, standard, rate), rate, standard, tmp_path)  # type: ignore[arg-type]
    assert out.endswith(message), out
    # Before the message: only the channel seizure, which minimodem frames as 0x55 characters plus at most
    # one character straddling the seizure/mark boundary.
    head = out[: -len(message)]
    assert head.count(SEIZURE_CHAR) >= len(head) - 1 and len(head) >= 25


@pytest.mark.parametrize("standard", ["bell202", "v23"])
def test_minimodem_reads_off_hook_burst_exactly(standard: str, tmp_path: Path) -> None:
    """Type II burst has no seizure, so minimodem's output must be the message and nothing else."""
    message = callerid_message("0123456789", "A N OTHER", WHEN, "bell202")
    out = minimodem(fsk_burst(message, standard, 8000, offhook=True), 8000, standard, tmp_path)  # type: ignore[arg-type]
    assert out == message
