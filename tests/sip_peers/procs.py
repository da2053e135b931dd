"""Bounded start/stop of peer subprocesses, always by pid."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class PeerError(RuntimeError):
    """A peer process could not be started, did not become ready, or misbehaved."""


def require_binary(name: str, apt_package: str) -> str:
    """Path of `name`; raise (so the test FAILS, not skips) naming the Debian package when missing."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if path is None:
        raise PeerError(
            f"{name} not found: install it with `apt-get install -y --no-install-recommends {apt_package}`"
        )
    return path


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `predicate` until true; raise PeerError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise PeerError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def start(argv: list[str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start `argv` in its own process group with stdout+stderr appended to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM the process group led by `proc.pid`, then SIGKILL it if it outlives `timeout`."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    # Kamailio's children share the group; make sure none survive their parent.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def tail(path: Path, lines: int = 80) -> str:
    """Last `lines` lines of a log file, for failure messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} missing)"
    return "\n".join(text.splitlines()[-lines:])
