"""The `hookflash dsp` command line, run as a real process on real WAV files."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from dsp.callerid import generate_callerid
from dsp.dtmf import generate_dtmf
from dsp.wav import read_wav, resample, write_wav


def hookflash(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "firmware.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_dtmf_decode_prints_digit_start_end(tmp_path: Path) -> None:
    path = tmp_path / "keys.wav"
    write_wav(path, generate_dtmf("159#*D", on_ms=80, off_ms=80))
    out = hookflash("dsp", "dtmf-decode", path)
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines()]
    assert [d for d, _, _ in lines] == list("159#*D")
    for n, (_, start, end) in enumerate(lines):
        assert float(start) == pytest.approx(n * 0.160, abs=0.03)
        assert float(end) - float(start) == pytest.approx(0.080, abs=0.03)


def test_dtmf_decode_resamples_other_rates(tmp_path: Path) -> None:
    path = tmp_path / "keys44k.wav"
    wavfile.write(path, 44100, resample(generate_dtmf("0842"), 8000, 44100))
    out = hookflash("dsp", "dtmf-decode", path)
    assert [line.split()[0] for line in out.stdout.splitlines()] == list("0842")


def test_callerid_decode_prints_json(tmp_path: Path) -> None:
    path = tmp_path / "cid.wav"
    burst = generate_callerid("5551234567", "ALICE SMITH", datetime(2026, 11, 25, 21, 30))
    write_wav(path, np.concatenate([np.zeros(800, np.int16), burst, np.zeros(800, np.int16)]))
    out = hookflash("dsp", "callerid-decode", path)
    assert out.returncode == 0, out.stderr
    fields = json.loads(out.stdout)
    assert fields["number"] == "5551234567"
    assert fields["name"] == "ALICE SMITH"


def test_callerid_decode_reports_absence(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    write_wav(path, np.zeros(8000, np.int16))
    out = hookflash("dsp", "callerid-decode", path)
    assert out.returncode == 1
    assert "no caller ID" in out.stderr


def test_tone_writes_the_country_tone(tmp_path: Path) -> None:
    path = tmp_path / "dial.wav"
    out = hookflash("dsp", "tone", "US:dial", "--seconds", "1", "-o", path)
    assert out.returncode == 0, out.stderr
    x = read_wav(path)
    assert len(x) == 8000
    spectrum = np.abs(np.fft.rfft(x))
    peaks = sorted(np.argsort(spectrum)[-2:])  # 1 Hz bins over 1 s
    assert peaks == [350, 440]  # ANSI T1.401 precise dial tone


@pytest.mark.parametrize("args", [
    ("dsp", "dtmf-decode", "{missing}"),
    ("dsp", "dtmf-decode", "{junk}"),
    ("dsp", "callerid-decode", "{junk}"),
    ("dsp", "tone", "XX:dial", "-o", "{out}"),
    ("dsp", "tone", "US:nonsense", "-o", "{out}"),
    ("dsp", "tone", "US", "-o", "{out}"),
    ("dsp", "tone", "US:dial", "--seconds", "-1", "-o", "{out}"),
    ("dsp", "tone", "US:dial", "-o", "/nonexistent-dir/x.wav"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is a text file, not audio\n")
    names = {"missing": tmp_path / "missing.wav", "junk": junk, "out": tmp_path / "o.wav"}
    out = hookflash(*(a.format(**names) for a in args))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
