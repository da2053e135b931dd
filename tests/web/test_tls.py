"""HTTPS: the self-signed certificate made on first start, and the web page served over it with
Secure cookies (a real TLS handshake verified against that certificate)."""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
from pathlib import Path

import aiohttp
from aiohttp import FormData
from cryptography import x509

from firmware.app import Gateway
from firmware.config import ConfigStore, WebConfig, load_config
from tests.sip_peers.ports import free_port
from tests.web.harness import PASSWORD, Site, run
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


def test_owner_certificate_uploaded_on_the_system_page(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    cert, key = self_signed(mine, "192.0.2.9")
    other_cert, _ = self_signed(tmp_path / "other", "192.0.2.10")

    async def check(s: Site) -> None:
        csrf = await s.csrf("/system")

        async def upload(cert_pem: bytes, key_pem: bytes) -> tuple[int, str]:
            form = FormData()
            form.add_field("csrf", csrf)
            form.add_field("cert", cert_pem, filename="cert.pem")
            form.add_field("key", key_pem, filename="key.pem")
            response = await s.client.post("/system/certificate", data=form)
            return response.status, await response.text()

        status, html = await upload(other_cert.read_bytes(), key.read_bytes())
        assert status == 422 and "the key does not belong to the certificate" in html
        assert (await upload(b"junk", key.read_bytes()))[0] == 422
        status, html = await upload(cert.read_bytes(), key.read_bytes())
        assert status == 200 and "Certificate installed" in html and "Restart the gateway" in html
        web_cfg = s.store.load().web
        assert Path(web_cfg.key_file).read_bytes() == key.read_bytes()
        assert stat.S_IMODE(os.stat(web_cfg.key_file).st_mode) == 0o600

    run(tmp_path, check)


def test_password_change_needs_the_current_one_and_ends_other_sessions(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        csrf = await s.csrf("/system")
        other = s.auth.new_session()
        wrong = await s.client.post("/system/password", data={"csrf": csrf, "current": "nope-nope",
                                                              "new": "another long one"})
        assert wrong.status == 422 and s.auth.check_password(PASSWORD)
        ok = await s.client.post("/system/password", data={"csrf": csrf, "current": PASSWORD,
                                                           "new": "another long one"})
        assert ok.status == 200 and s.auth.check_password("another long one")
        assert s.auth.session(other.token) is None  # everyone else is logged out
        assert (await s.client.get("/system")).status == 200  # this browser got a new session

    run(tmp_path, check)
