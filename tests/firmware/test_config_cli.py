"""`hookflash config check`, run as a real process: one line per problem, exit 2, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "hookflash.toml"


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "firmware.cli", "config", "check", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_valid_file_prints_a_summary() -> None:
    out = check(EXAMPLE)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{EXAMPLE}: OK (2 ports, backend sim, registrar none)\n"


def test_summary_names_the_registrar(tmp_path: Path) -> None:
    path = tmp_path / "pbx.toml"
    path.write_text('[hardware]\nports = 4\n[sip]\nregistrar = "pbx:5060"\n[[ports]]\nextension = "201"\n')
    out = check(path)
    assert (out.returncode, out.stdout) == (0, f"{path}: OK (1 ports, backend sim, registrar pbx:5060)\n")


def test_each_error_is_one_line_and_exit_is_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[sip]\nregistar = "pbx"\n[[ports]]\nextension = "101"\n[[ports]]\nextension = "1"\n')
    out = check(path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        f"{path}: sip.registar: unknown key; did you mean 'registrar'?",
        f"{path}: ports[1].extension: must be 2-15 digits",
    ]


def test_syntax_error_missing_file_and_directory_are_one_line(tmp_path: Path) -> None:
    syntax = tmp_path / "syntax.toml"
    syntax.write_text("[[ports]\n")
    for path, message in [(syntax, "TOML syntax error: "), (tmp_path / "missing.toml", "cannot read: "),
                          (tmp_path, "cannot read: ")]:
        out = check(path)
        assert out.returncode == 2
        assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith(f"{path}: {message}"), out.stderr
