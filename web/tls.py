"""HTTPS for the web page: the owner's certificate, or a self-signed one made on first start.

A device on a home network has no public name a CA would certify, so by default it makes its own:
an ECDSA P-256 key and a self-signed certificate naming the host name, "localhost", the listen
address and 127.0.0.1 (subjectAltName, RFC 5280 §4.2.1.6; browsers ignore the CN, RFC 6125 §6.4.4).
It is valid for 10 years because an appliance has nobody to renew it; the browser warns once and
the owner can pin it, or upload a real one (config `web.cert_file`/`web.key_file`). The key file
is written 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_NAME = "web-cert.pem"
KEY_NAME = "web-key.pem"
VALID_DAYS = 3650


def self_signed(data_dir: Path, listen_host: str) -> tuple[Path, Path]:
    """The certificate and key in `data_dir`, made now if missing."""
    cert_path, key_path = data_dir / CERT_NAME, data_dir / KEY_NAME
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    data_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    hostname = socket.gethostname()
    names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        ip = ipaddress.ip_address(listen_host)
        if not ip.is_unspecified and ip != ipaddress.ip_address("127.0.0.1"):
            names.append(x509.IPAddress(ip))
    except ValueError:
        if listen_host and listen_host not in (hostname, "localhost"):
            names.append(x509.DNSName(listen_host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Hookflash {hostname}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


class CertificateError(ValueError):
    """An uploaded certificate or key that cannot serve HTTPS."""


def install_owner_certificate(data_dir: Path, cert_pem: bytes, key_pem: bytes) -> tuple[Path, Path]:
    """Check that `cert_pem` (a chain, leaf first) and `key_pem` belong together and load, then store
    them in `data_dir` (key 0600); returns their paths for `[web] cert_file/key_file`."""
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise CertificateError(f"the certificate is not a PEM certificate ({exc})") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError("the key is not an unencrypted PEM private key") from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (leaf.public_key().public_bytes(serialization.Encoding.PEM, public)
            != key.public_key().public_bytes(serialization.Encoding.PEM, public)):
        raise CertificateError("the key does not belong to the certificate")
    data_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = data_dir / "web-owner-cert.pem", data_dir / "web-owner-key.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert_path.write_bytes(cert_pem)
    try:
        server_context(cert_path, key_path)
    except ssl.SSLError as exc:
        raise CertificateError(f"TLS cannot use them: {exc}") from exc
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.2+ server context (RFC 8996 retired 1.0 and 1.1)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
