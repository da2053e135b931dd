"""Web security: first-run password, login and its rate limit, sessions, CSRF, API tokens, and that
every route of the app (whatever module added it) refuses a request without credentials."""

from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path

from tests.web.harness import PASSWORD, Site, pre_token, run
from web.auth import SCRYPT_N, AuthStore, hash_password, verify_password
from web.ratelimit import LimitConfig, LoginLimiter
from web.server import PUBLIC_API


def test_password_hash_is_scrypt_with_the_owasp_parameters() -> None:
    stored = hash_password("s3cret-pass")
    kind, n, r, p, salt, digest = stored.split("$")
    assert (kind, int(n), int(r), int(p)) == ("scrypt", 2**17, 8, 1) and SCRYPT_N == 2**17
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
    assert verify_password("s3cret-pass", stored) and not verify_password("s3cret-pasS", stored)
    assert hash_password("s3cret-pass") != stored  # salted
    assert not verify_password("x", "md5$abc")


def test_credentials_file_is_private_and_holds_no_clear_token(tmp_path: Path) -> None:
    store = AuthStore(tmp_path / "web.db", scrypt_n=2**14)
    store.set_password(PASSWORD)
    _token, clear = store.create_token("backup script")
    session = store.new_session()
    store.close()
    assert stat.S_IMODE(os.stat(tmp_path / "web.db").st_mode) == 0o600
    raw = (tmp_path / "web.db").read_bytes()
    assert clear.encode() not in raw and session.token.encode() not in raw and PASSWORD.encode() not in raw


def test_login_limiter_allows_a_burst_then_one_try_per_minute() -> None:
    limiter = LoginLimiter(LimitConfig(burst=5, refill=60))
    for _ in range(5):
        assert limiter.retry_after("192.0.2.7", 100.0) == 0
        limiter.failed("192.0.2.7", 100.0)
    assert limiter.retry_after("192.0.2.7", 100.0) == 60.0
    assert limiter.retry_after("192.0.2.8", 100.0) == 0  # per address
    assert limiter.retry_after("192.0.2.7", 130.0) == 30.0
    assert limiter.retry_after("192.0.2.7", 160.0) == 0
    limiter.failed("192.0.2.7", 160.0)
    assert limiter.retry_after("192.0.2.7", 161.0) > 0
    many = LoginLimiter(LimitConfig(max_clients=3))
    for n in range(10):
        many.failed(f"198.51.100.{n}", 0.0)
    assert len(many._buckets) == 3


def test_first_visit_must_set_the_password(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        c = s.client
        for path in ("/", "/ports", "/system", "/login"):
            response = await c.get(path, allow_redirects=False)
            if path != "/login":
                assert (response.status, response.headers["Location"]) == (303, "/setup"), path
        assert (await c.get("/api/v1/status")).status == 401
        token = await pre_token(c, "/setup")
        forged = await c.post("/setup", data={"password": "attacker-pass", "confirm": "attacker-pass"},
                              allow_redirects=False)
        assert forged.status == 403 and not s.auth.has_password
        short = await c.post("/setup", data={"csrf": token, "password": "short", "confirm": "short"})
        assert short.status == 422 and "at least 8 characters" in await short.text()
        differ = await c.post("/setup", data={"csrf": token, "password": PASSWORD, "confirm": PASSWORD + "x"})
        assert differ.status == 422
        done = await c.post("/setup", data={"csrf": token, "password": PASSWORD, "confirm": PASSWORD},
                            allow_redirects=False)
        assert done.status == 303 and s.auth.has_password
        cookie = done.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert (await c.get("/")).status == 200
        again = await c.get("/setup", allow_redirects=False)
        assert (again.status, again.headers["Location"]) == (303, "/login")  # cannot be set twice

    run(tmp_path, check, logged_in=False)


def test_login_logout_and_rate_limit(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        c = s.client
        csrf = await s.csrf()
        out = await c.post("/logout", data={"csrf": csrf}, allow_redirects=False)
        assert out.status == 303 and (await c.get("/", allow_redirects=False)).status == 303
        token = await pre_token(c, "/login")
        wrong = await c.post("/login", data={"csrf": token, "password": "nope-nope"})
        assert wrong.status == 401 and "Wrong password" in await wrong.text()
        good = await c.post("/login", data={"csrf": token, "password": PASSWORD}, allow_redirects=False)
        assert good.status == 303 and (await c.get("/")).status == 200
        for _ in range(2):
            assert (await c.post("/login", data={"csrf": token, "password": "guess-guess"})).status == 401
        limited = await c.post("/login", data={"csrf": token, "password": PASSWORD})
        assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0  # even the right one waits

    run(tmp_path, check, limiter=LoginLimiter(LimitConfig(burst=3, refill=600)))


def test_forged_form_without_csrf_token_is_refused(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        c = s.client
        before = s.store.path.read_text()
        for data in ({"registrar": "evil.example"}, {"registrar": "evil.example", "csrf": "guessed"}):
            response = await c.post("/sip", data=data)
            assert response.status == 403 and "CSRF" in await response.text()
        assert s.store.path.read_text() == before and s.gateway.config.sip.registrar == ""
        api = await c.put("/api/v1/config/sip", json={"expires": 600})
        assert api.status == 403  # a session without the header
        headers = {"X-CSRF-Token": await s.csrf()}
        ok = await c.put("/api/v1/config/sip", json={"expires": 600}, headers=headers)
        assert ok.status == 200 and s.gateway.config.sip.expires == 600

    run(tmp_path, check)


def test_bearer_tokens_created_shown_once_and_revoked(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        c = s.client
        csrf = await s.csrf("/system")
        page = await (await c.post("/system/tokens", data={"csrf": csrf, "name": "monitoring"})).text()
        clear = re.search(r'<code id="new-token">([^<]+)</code>', page)
        assert clear is not None
        token = clear.group(1)
        assert token not in await (await c.get("/system")).text()  # shown once
        headers = {"Authorization": f"Bearer {token}"}
        async with c.session.get(c.make_url("/api/v1/status"), headers=headers, cookies=None) as r:
            assert r.status == 200
        await c.post("/logout", data={"csrf": csrf})
        anonymous = await c.get("/api/v1/status")
        assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await c.get("/api/v1/status", headers=headers)).status == 200
        put = await c.put("/api/v1/config/regional", json={"ring_cadence": "bellcore-dr2"}, headers=headers)
        assert put.status == 200  # no CSRF needed: a Bearer token is no ambient credential
        assert (await c.get("/api/v1/status", headers={"Authorization": "Bearer hf_forged"})).status == 401
        (listed,) = (await (await c.get("/api/v1/tokens", headers=headers)).json())["tokens"]
        assert listed["name"] == "monitoring" and "token" not in listed
        assert (await c.delete(f"/api/v1/tokens/{listed['id']}", headers=headers)).status == 204
        assert (await c.get("/api/v1/status", headers=headers)).status == 401

    run(tmp_path, check)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_route_refuses_requests_without_credentials(tmp_path: Path) -> None:
    """Enumerates the app's router, so a route added later (by any module) is covered too."""
    async def check(s: Site) -> None:
        c = s.client
        c.session.cookie_jar.clear()
        checked = 0
        for route in s.app.router.routes():
            info = route.resource.get_info() if route.resource is not None else {}
            path = info.get("path") or info.get("formatter") or info.get("prefix")
            assert isinstance(path, str)
            if path.startswith("/static") or path in PUBLIC_API or path in ("/login", "/setup"):
                continue
            if route.method == "HEAD":
                continue
            response = await c.request(route.method, _concrete(path), allow_redirects=False)
            if path.startswith("/api/"):
                assert response.status == 401, (route.method, path, response.status)
            else:
                where = (route.method, path)
                assert (response.status, response.headers.get("Location")) == (303, "/login"), where
            checked += 1
        assert checked >= 30
        public = await c.get("/api/v1/openapi.json")
        assert public.status == 200 and (await public.json())["openapi"].startswith("3.")

    run(tmp_path, check)


def test_security_headers(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        response = await s.client.get("/")
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "<script>" not in await response.text()  # all behaviour in static files (CSP)

    run(tmp_path, check)


def test_websocket_from_another_origin_is_refused(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        response = await s.client.get("/api/v1/events", headers={
            "Origin": "http://evil.example", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert response.status == 403

    run(tmp_path, check)




def test_two_browsers_racing_through_setup_set_one_password(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        c = s.client
        token = await pre_token(c, "/setup")

        async def attempt(password: str) -> str:
            data = {"csrf": token, "password": password, "confirm": password}
            response = await c.post("/setup", data=data, allow_redirects=False)
            assert response.status == 303
            return response.headers["Location"]

        first, second = await asyncio.gather(attempt("first password"), attempt("second password"))
        assert sorted([first, second]) == ["/", "/login"]  # the later one did not overwrite it
        winner = "first password" if first == "/" else "second password"
        assert s.auth.check_password(winner)

    run(tmp_path, check, logged_in=False)
