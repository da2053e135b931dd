"""HTTPS: the self-signed certificate made on first start, and the web page served over it with
Secure cookies (a real TLS handshake verified against that certificate)."""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
from pathlib import Path

import aiohttp
from cryptography import x509

from firmware.app import Gateway
from firmware.config import ConfigStore, WebConfig, load_config
from tests.sip_peers.ports import free_port
from web.logring import LogRing
from web.server import start_web
from web.tls import self_signed


def test_self_signed_certificate_names_the_device_and_is_kept(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "192.0.2.5")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "192.0.2.5"}
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    first = cert.read_bytes()
    assert self_signed(tmp_path, "192.0.2.5") == (cert, key) and cert.read_bytes() == first  # made once


def test_https_by_default_off_loopback() -> None:
    assert WebConfig(listen="0.0.0.0:443").uses_https
    assert WebConfig(listen="[::]:443").uses_https
    assert not WebConfig(listen="127.0.0.1:8080").uses_https
    assert not WebConfig(listen="localhost:8080").uses_https
    assert WebConfig(listen="127.0.0.1:8443", https="on").uses_https
    assert not WebConfig(listen="0.0.0.0:80", https="off").uses_https


def test_served_over_tls_with_secure_cookies(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "hookflash.toml"
    path.write_text(f'[system]\ndata_dir = "{tmp_path}"\n[web]\nlisten = "127.0.0.1:{port}"\nhttps = "on"\n'
                    '[[ports]]\nextension = "101"\n')

    async def scenario() -> None:
        gateway = Gateway(load_config(path))
        await gateway.start()
        stop = await start_web(gateway, ConfigStore(path), LogRing(), lambda: None)
        try:
            trust = ssl.create_default_context(cafile=str(tmp_path / "web-cert.pem"))
            async with aiohttp.ClientSession() as session:
                async with session.get(f"https://localhost:{port}/setup", ssl=trust) as response:
                    assert response.status == 200
                    cookie = response.headers["Set-Cookie"]
                    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
                async with session.get(f"https://127.0.0.1:{port}/api/v1/status", ssl=trust) as response:
                    assert response.status == 401
        finally:
            await stop()
            await gateway.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))
