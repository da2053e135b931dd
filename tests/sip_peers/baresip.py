"""baresip 1.0.0 (Debian `baresip-core`) as a scripted far-end softphone on loopback.

No audio device: `aufile` plays a WAV as the microphone, `aubridge` is a silent player, and the
`sndfile` filter dumps what is sent and received per call as WAV files. Control is the `ctrl_tcp`
module (netstring-framed JSON) with `menu` providing the commands (dial, accept, hangup, ...).
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.sip_peers import procs
from tests.sip_peers.ports import free_port

APT_PACKAGE = "baresip-core"
MODULE_PATH = Path("/usr/lib/baresip/modules")
Event = dict[str, Any]


@dataclass
class Account:
    """One line of baresip's `accounts` file.

    `aor` is the address of record, e.g. "sip:alice@127.0.0.1:5060;transport=tcp"; with a
    `password` baresip registers to the AOR's host (regint > 0) and answers digest challenges.
    """

    aor: str
    password: str | None = None
    regint: int = 60
    answermode: str = "manual"  # manual | early | auto
    mediaenc: str | None = None  # e.g. "srtp", "srtp-mand"
    outbound: str | None = None  # proxy URI when it differs from the AOR host
    extra: str = ""

    def line(self) -> str:
        parts = [f"<{self.aor}>"]
        if self.password is not None:
            parts.append(f"auth_pass={self.password}")
        parts.append(f"regint={self.regint if self.password is not None else 0}")
        parts.append(f"answermode={self.answermode}")
        if self.mediaenc:
            parts.append(f"mediaenc={self.mediaenc}")
        if self.outbound:
            parts.append(f'outbound="{self.outbound}"')
        if self.extra:
            parts.append(self.extra)
        return ";".join(parts)


@dataclass
class Baresip:
    """One baresip process with its own config dir under `workdir`.

    `source_wav` is played as the microphone (mono S16LE at 8 kHz, long enough for the test);
    recordings land in `recordings_dir` as dump-<call-id>-{enc,dec}.wav.
    """

    workdir: Path
    source_wav: Path
    accounts: list[Account] = field(default_factory=list)
    ca_file: Path | None = None
    certificate: Path | None = None  # combined cert+key PEM; needed for baresip to listen on TLS
    sip_port: int | None = None
    ctrl_port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    _sock: socket.socket | None = None
    _reader: threading.Thread | None = None
    _pending: list[Event] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _responses: queue.Queue[Event] = field(default_factory=queue.Queue)
    history: list[Event] = field(default_factory=list)
    _token: int = 0

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.sip_port is None:
            self.sip_port = free_port(count=2)  # baresip puts TLS on SIP port + 1
        if self.ctrl_port is None:
            self.ctrl_port = free_port()

    @property
    def log_path(self) -> Path:
        return self.workdir / "baresip.log"

    @property
    def recordings_dir(self) -> Path:
        return self.workdir / "recordings"

    def contact_uri(self, user: str = "peer", transport: str = "udp") -> str:
        """URI that reaches this baresip directly (no proxy)."""
        assert self.sip_port is not None
        port = self.sip_port + 1 if transport == "tls" else self.sip_port
        params = "" if transport == "udp" else f";transport={transport}"
        return f"sip:{user}@127.0.0.1:{port}{params}"

    def write_config(self) -> None:
        """Write config, accounts (and nothing else) into workdir."""
        self.recordings_dir.mkdir(exist_ok=True)
        lines = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "net_interface 127.0.0.1",
            "call_local_timeout 120",
            "call_max_calls 4",
            "audio_player aubridge,hookflash-null",
            "audio_alert aubridge,hookflash-null",
            f"audio_source aufile,{self.source_wav}",
            "ausrc_srate 8000",
            "auplay_srate 8000",
            "ausrc_channels 1",
            "auplay_channels 1",
            "audio_level no",
            "rtp_stats no",
            "rtp_timeout 0",
            "statmode_default off",
            f"module_path {MODULE_PATH}",
            "module g711.so",
            "module aufile.so",
            "module aubridge.so",
            "module sndfile.so",
            "module srtp.so",
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            f"snd_path {self.recordings_dir}",
        ]
        if self.ca_file is not None:
            lines.append(f"sip_cafile {self.ca_file}")
        if self.certificate is not None:
            lines.append(f"sip_certificate {self.certificate}")
        (self.workdir / "config").write_text("\n".join(lines) + "\n")
        # Accounts are added over ctrl_tcp after connecting (add_account) so no REGISTER event is missed.
        (self.workdir / "accounts").write_text("")

    def start(self, timeout: float = 10.0) -> None:
        """Start baresip and connect to its ctrl_tcp socket (bounded by `timeout`)."""
        binary = procs.require_binary("baresip", APT_PACKAGE)
        if not (MODULE_PATH / "ctrl_tcp.so").exists():
            raise procs.PeerError(f"{MODULE_PATH}/ctrl_tcp.so missing: install {APT_PACKAGE}")
        self.write_config()
        self.proc = procs.start([binary, "-4", "-f", str(self.workdir)], self.log_path, self.workdir)
        try:
            procs.wait_for(self._connect, timeout, f"baresip ctrl_tcp on 127.0.0.1:{self.ctrl_port}")
        except procs.PeerError as exc:
            self.stop()
            raise procs.PeerError(f"{exc}\n--- baresip log ---\n{procs.tail(self.log_path)}") from exc
        for account in self.accounts:
            self._add_ua(account)

    def add_account(self, account: Account) -> None:
        """Add (and, with a password and regint, register) a user agent in the running baresip."""
        self.accounts.append(account)
        self._add_ua(account)

    def _add_ua(self, account: Account) -> None:
        resp = self.command("uanew", account.line())
        if not resp.get("ok"):
            raise procs.PeerError(f"uanew {account.line()!r} failed: {resp}\n{procs.tail(self.log_path)}")

    def _connect(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise procs.PeerError(f"baresip exited with {self.proc.returncode}")
        assert self.ctrl_port is not None
        try:
            sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=0.5)
        except OSError:
            return False
        sock.settimeout(None)
        self._sock = sock
        self._reader = threading.Thread(target=self._read_loop, name=f"baresip-{self.ctrl_port}", daemon=True)
        self._reader.start()
        return True

    def _read_loop(self) -> None:
        """Split the netstring stream into JSON messages: events and command responses."""
        sock = self._sock
        assert sock is not None
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                length = int(buf[:colon])
                if len(buf) < colon + 1 + length + 1:
                    break
                payload = buf[colon + 1 : colon + 1 + length]
                buf = buf[colon + 1 + length + 1 :]  # skip the trailing ","
                try:
                    msg: Event = json.loads(payload)
                except ValueError:
                    continue
                if msg.get("event"):
                    with self._cond:
                        self.history.append(msg)
                        self._pending.append(msg)
                        self._cond.notify_all()
                elif msg.get("response"):
                    self._responses.put(msg)

    def command(self, cmd: str, params: str = "", timeout: float = 5.0) -> Event:
        """Run a menu command (dial, accept, hangup, reginfo, ...) and return its JSON response."""
        if self._sock is None:
            raise procs.PeerError("baresip not started")
        self._token += 1
        token = str(self._token)
        body = json.dumps({"command": cmd, "params": params, "token": token}).encode()
        self._sock.sendall(str(len(body)).encode() + b":" + body + b",")
        deadline = time.monotonic() + timeout
        while True:
            try:
                resp = self._responses.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise procs.PeerError(
                    f"no response to {cmd!r} within {timeout} s\n{procs.tail(self.log_path)}"
                ) from None
            if resp.get("token") == token:
                return resp

    def dial(self, uri: str) -> Event:
        return self.command("dial", uri)

    def accept(self) -> Event:
        return self.command("accept")

    def hangup(self) -> Event:
        return self.command("hangup")

    def hold(self) -> Event:
        """Put the current call on hold (re-INVITE with a=sendonly)."""
        return self.command("hold")

    def resume(self) -> Event:
        """Take the current call off hold (re-INVITE with a=sendrecv)."""
        return self.command("resume")

    def send_dtmf(self, digits: str) -> None:
        """Send DTMF as RFC 4733 telephone-events; the far baresip reports CALL_DTMF_START/END."""
        for digit in digits:
            resp = self.command("sndcode", digit)
            if not resp.get("ok"):
                raise procs.PeerError(f"sndcode {digit!r} failed: {resp}")

    def wait_event(self, *types: str, timeout: float = 10.0) -> Event:
        """Take the oldest not-yet-taken event whose type is one of `types`.

        Events of other types stay pending for later waits (so CALL_RTPESTAB arriving before
        CALL_ESTABLISHED is not lost); `history` keeps everything.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, ev in enumerate(self._pending):
                    if ev.get("type") in types:
                        return self._pending.pop(i)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [e.get("type") for e in self.history]
                    raise procs.PeerError(
                        f"no {'/'.join(types)} event within {timeout} s (seen: {seen})\n"
                        f"--- baresip log ---\n{procs.tail(self.log_path)}"
                    )
                self._cond.wait(remaining)

    def clear_events(self) -> None:
        """Forget pending events (e.g. before waiting for a re-registration)."""
        with self._cond:
            self._pending.clear()

    def recordings(self) -> list[Path]:
        """All WAV dumps, oldest first."""
        return sorted(self.recordings_dir.glob("*.wav"), key=lambda p: p.stat().st_mtime)

    def received_wav(self) -> Path:
        """The latest dump of decoded (heard) audio."""
        decs = [p for p in self.recordings() if p.name.endswith("-dec.wav")]
        if not decs:
            raise procs.PeerError(f"no received-audio dump in {self.recordings_dir}: {self.recordings()}")
        return decs[-1]

    def stop(self) -> None:
        """Close control, then terminate by pid (SIGTERM, SIGKILL after a timeout)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None
