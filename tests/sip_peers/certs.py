"""Throw-away CA and server certificate for TLS tests, made with the openssl CLI.

The openssl CLI rather than the `cryptography` package because the venv does not carry
`cryptography` and the CLI is a plain Debian package (`openssl`).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.sip_peers.procs import PeerError, require_binary


@dataclass(frozen=True)
class TestCA:
    """Paths of a CA certificate and of a server key+cert it signed (PEM)."""

    __test__ = False  # not a pytest test class

    ca_cert: Path
    server_cert: Path
    server_key: Path
    server_combined: Path  # cert + key in one file, the form baresip's sip_certificate wants


def make_ca(directory: Path, common_name: str = "127.0.0.1") -> TestCA:
    """Create a CA and a server certificate valid for 127.0.0.1, ::1 and localhost."""
    openssl = require_binary("openssl", "openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
    )
    steps = [
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_cert),
            "-days",
            "2",
            "-subj",
            "/CN=Hookflash test CA",
        ],
        [
            openssl,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            f"/CN={common_name}",
        ],
        [
            openssl,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_cert),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-out",
            str(cert),
            "-days",
            "2",
            "-extfile",
            str(ext),
        ],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
        if done.returncode != 0:
            raise PeerError(f"{' '.join(argv[:3])} failed: {done.stderr.decode(errors='replace')}")
    combined = directory / "server-combined.pem"
    combined.write_text(cert.read_text() + key.read_text())
    return TestCA(ca_cert=ca_cert, server_cert=cert, server_key=key, server_combined=combined)
