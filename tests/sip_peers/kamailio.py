"""Kamailio (Debian package) as registrar + digest auth + proxy on loopback, driven from pytest.

Subscribers live in an htable filled at module init from the generated config, so no database is
needed; REGISTER is challenged with WWW-Authenticate, INVITE/MESSAGE/SUBSCRIBE (optionally) with
Proxy-Authenticate, both per-user passwords.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.sip_peers import procs
from tests.sip_peers.certs import TestCA, make_ca
from tests.sip_peers.ports import free_port, ipv6_loopback_available

TEMPLATE = Path(__file__).with_name("kamailio.cfg.tmpl")
APT_PACKAGES = "kamailio kamailio-tls-modules"
_SAFE = re.compile(r"^[A-Za-z0-9_.!~*'()+-]+$")  # usernames/passwords that need no escaping in cfg or URI


@dataclass
class KamailioPorts:
    """Ports Kamailio listens on (the same numbers on 127.0.0.1 and, if used, [::1])."""

    udp: int
    tcp: int
    tls: int


@dataclass
class Kamailio:
    """One Kamailio instance living in `workdir`; start()/stop()/restart() keep the same ports.

    `users` maps username -> password. `algorithm` is "MD5" or "SHA-256" (auth module param).
    `auth_invite` challenges INVITEs from subscribers with 407 as a real PBX would.
    `follow_redirects` makes the proxy recurse on a 301/302 itself (RFC 3261 §16.7 step 6), looking up
    the first Contact's user in its location table, as a PBX does for a forwarding phone.
    """

    workdir: Path
    users: dict[str, str] = field(default_factory=dict)
    domain: str = "127.0.0.1"
    algorithm: str = "MD5"
    auth_invite: bool = True
    follow_redirects: bool = False
    mwi_server: int | None = None
    """UDP port on 127.0.0.1 of a message-summary notifier: SUBSCRIBEs for that event go there."""
    tls: bool = True
    ipv6: bool | None = None  # None: listen on [::1] too when the host has it
    debug: int = 2
    ports: KamailioPorts | None = None
    ca: TestCA | None = None
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.ipv6 is None:
            self.ipv6 = ipv6_loopback_available()
        if self.ports is None:
            self.ports = KamailioPorts(
                udp=free_port(ipv6=self.ipv6), tcp=free_port(ipv6=self.ipv6), tls=free_port(ipv6=self.ipv6)
            )
        if self.tls and self.ca is None:
            self.ca = make_ca(self.workdir / "certs")

    @property
    def cfg_path(self) -> Path:
        return self.workdir / "kamailio.cfg"

    @property
    def log_path(self) -> Path:
        """Kamailio's stderr log (all starts of this instance appended)."""
        return self.workdir / "kamailio.log"

    @property
    def pid_path(self) -> Path:
        return self.workdir / "kamailio.pid"

    def add_user(self, user: str, password: str) -> None:
        """Add a subscriber; takes effect at the next start()/restart()."""
        for value in (user, password):
            if not _SAFE.match(value):
                raise ValueError(f"{value!r}: use only URI-unreserved characters in test credentials")
        self.users[user] = password

    def uri(self, user: str | None = None, transport: str = "udp", ipv6: bool = False) -> str:
        """SIP URI of this proxy (or of `user` at it) for a transport: udp, tcp or tls."""
        assert self.ports is not None
        host = "[::1]" if ipv6 else self.domain
        port = {"udp": self.ports.udp, "tcp": self.ports.tcp, "tls": self.ports.tls}[transport]
        userpart = f"{user}@" if user else ""
        params = "" if transport == "udp" else f";transport={transport}"
        return f"sip:{userpart}{host}:{port}{params}"

    def render_config(self) -> str:
        """The kamailio.cfg text for the current users/ports/options."""
        assert self.ports is not None
        for user, password in self.users.items():
            if not (_SAFE.match(user) and _SAFE.match(password)):
                raise ValueError(f"{user!r}/{password!r}: use only URI-unreserved characters")
        hosts = ["127.0.0.1"] + (["[::1]"] if self.ipv6 else [])
        listen = []
        for host in hosts:
            listen.append(f"listen=udp:{host}:{self.ports.udp}")
            listen.append(f"listen=tcp:{host}:{self.ports.tcp}")
            if self.tls:
                listen.append(f"listen=tls:{host}:{self.ports.tls}")
        defines = "\n".join(d for d, on in (("#!define WITH_AUTH_INVITE", self.auth_invite),
                                             ("#!define WITH_REDIRECT", self.follow_redirects),
                                             ("#!define WITH_MWI_SERVER", self.mwi_server is not None)) if on)
        tls_params = ""
        if self.tls:
            tls_cfg = self.workdir / "tls.cfg"
            assert self.ca is not None
            tls_cfg.write_text(
                "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
                f"private_key = {self.ca.server_key}\ncertificate = {self.ca.server_cert}\n"
                f"ca_list = {self.ca.ca_cert}\n\n"
                "[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
            )
            tls_params = f'modparam("tls", "config", "{tls_cfg}")'
        users = "\n".join(f'\t$sht(users=>{u}) = "{p}";' for u, p in self.users.items())
        text = TEMPLATE.read_text()
        for key, value in {
            "DEFINES": defines,
            "DEBUG": str(self.debug),
            "LISTEN": "\n".join(listen),
            "DOMAIN": self.domain,
            "ENABLE_TLS": "yes" if self.tls else "no",
            "TLS_MODULE": 'loadmodule "tls.so"' if self.tls else "",
            "TLS_PARAMS": tls_params,
            "ALGORITHM": self.algorithm,
            "MWI_SERVER": f"sip:127.0.0.1:{self.mwi_server}" if self.mwi_server else "",
            "USERS": users or "\t$var(none) = 0;",
        }.items():
            text = text.replace(f"@@{key}@@", value)
        return text

    def start(self, timeout: float = 10.0) -> None:
        """Write and check (-c) the config, start Kamailio in the foreground, wait for an OPTIONS reply."""
        if self.running:
            raise procs.PeerError("Kamailio already running")
        binary = procs.require_binary("kamailio", APT_PACKAGES)
        self.cfg_path.write_text(self.render_config())
        check = subprocess.run(
            [binary, "-c", "-f", str(self.cfg_path)],
            capture_output=True,
            timeout=30,
            check=False,
            cwd=self.workdir,
        )
        if check.returncode != 0:
            raise procs.PeerError(
                f"kamailio -c rejected {self.cfg_path}:\n{check.stderr.decode(errors='replace')}"
            )
        argv = [
            binary,
            "-DD",
            "-E",
            "-f",
            str(self.cfg_path),
            "-w",
            str(self.workdir),
            "-Y",
            str(self.workdir),
            "-P",
            str(self.pid_path),
            "-m",
            "64",
            "-M",
            "8",
        ]
        self.proc = procs.start(argv, self.log_path, self.workdir)
        try:
            procs.wait_for(self._answers_options, timeout, f"Kamailio to answer OPTIONS on UDP {self.ports}")
        except procs.PeerError as exc:
            self.stop()
            raise procs.PeerError(f"{exc}\n--- kamailio log ---\n{procs.tail(self.log_path)}") from exc

    def stop(self) -> None:
        """Terminate by pid (SIGTERM, then SIGKILL after a timeout); registrations are lost (db_mode 0)."""
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None

    def restart(self, timeout: float = 10.0) -> None:
        """Stop and start again on the same ports, re-reading `users`."""
        self.stop()
        deadline = time.monotonic() + timeout
        while True:  # the old sockets must be gone before the new process binds them
            try:
                self.start(timeout=max(1.0, deadline - time.monotonic()))
                return
            except procs.PeerError:
                if time.monotonic() >= deadline:
                    raise

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def lookup_status(self, user: str, timeout: float = 3.0) -> str | None:
        """Status line of an OPTIONS to sip:user@proxy: 404 when `user` has no binding, otherwise
        whatever the registered contact answers (the OPTIONS is relayed to it)."""
        assert self.ports is not None
        return options_ping("127.0.0.1", self.ports.udp, timeout=timeout, user=user)

    def is_registered(self, user: str, timeout: float = 3.0) -> bool:
        """True when the location table routes `user` somewhere (no 404/480 from the proxy)."""
        status = self.lookup_status(user, timeout)
        return status is not None and not status.startswith(("SIP/2.0 404", "SIP/2.0 480"))

    def log(self) -> str:
        """Whole log text, for assertions and failure messages."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _answers_options(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise procs.PeerError(f"Kamailio exited with {self.proc.returncode}")
        return options_ping("127.0.0.1", self.ports.udp if self.ports else 0, timeout=0.3) is not None


def options_ping(host: str, port: int, timeout: float = 1.0, user: str | None = None) -> str | None:
    """Send one SIP OPTIONS over UDP to host:port (to sip:user@host:port if `user`); return the
    status line of the first final reply, or None on timeout."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        s.settimeout(timeout)
        lport = s.getsockname()[1]
        hp = f"[{host}]" if family == socket.AF_INET6 else host
        lhp = "[::1]" if family == socket.AF_INET6 else "127.0.0.1"
        tag, call_id = uuid.uuid4().hex[:8], uuid.uuid4().hex
        target = f"sip:{user}@{hp}:{port}" if user else f"sip:{hp}:{port}"
        msg = (
            f"OPTIONS {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {lhp}:{lport};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{lhp}>;tag={tag}\r\n"
            f"To: <{target}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            f"Contact: <sip:probe@{lhp}:{lport}>\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        deadline = time.monotonic() + timeout
        try:
            s.sendto(msg.encode(), (host, port))
            while True:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                status = s.recv(65535).split(b"\r\n", 1)[0].decode(errors="replace")
                if not status.startswith("SIP/2.0 1"):  # skip provisional replies
                    return status
        except OSError:  # timeout, or ICMP port unreachable while the proxy is not up yet
            return None
