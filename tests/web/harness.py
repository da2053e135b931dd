"""A running gateway (simulator, intercom config in a temp dir) with the web app on an aiohttp test
server, and a logged-in or anonymous client; every test runs in one bounded `asyncio.run`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from firmware.app import Gateway
from firmware.config import ConfigStore
from web.auth import AuthStore
from web.ratelimit import LoginLimiter
from web.server import create_app

PASSWORD = "correct horse battery"
CONFIG = """
version = 1
[system]
data_dir = "{data}"
[hardware]
ports = 3
[[ports]]
extension = "101"
display_name = "Kitchen"
password = "kitchen-secret"
[[ports]]
extension = "102"
"""


@dataclass
class Site:
    gateway: Gateway
    app: web.Application
    client: TestClient[web.Request, web.Application]
    store: ConfigStore
    auth: AuthStore

    async def csrf(self, path: str = "/") -> str:
        """The session's CSRF token, as a page carries it."""
        text = await (await self.client.get(path)).text()
        match = re.search(r'name="csrf-token" content="([^"]+)"', text)
        assert match, text[:500]
        return match.group(1)

    async def login(self, password: str = PASSWORD) -> None:
        await set_up(self.client, password)


async def pre_token(client: TestClient[web.Request, web.Application], path: str) -> str:
    text = await (await client.get(path)).text()
    match = re.search(r'name="csrf" value="([^"]+)"', text)
    assert match, text[:500]
    return match.group(1)


async def set_up(client: TestClient[web.Request, web.Application], password: str = PASSWORD) -> None:
    """First run: set the password (or log in when it is set); the client then holds a session."""
    path = "/setup" if (await client.get("/setup", allow_redirects=False)).status == 200 else "/login"
    token = await pre_token(client, path)
    response = await client.post(path, data={"csrf": token, "password": password, "confirm": password},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()


@asynccontextmanager
async def site(tmp_path: Path, *, logged_in: bool = True, config: str = CONFIG,
               limiter: LoginLimiter | None = None) -> AsyncIterator[Site]:
    path = tmp_path / "hookflash.toml"
    path.write_text(config.format(data=tmp_path))
    store = ConfigStore(path)
    gateway = Gateway(store.load())
    auth = AuthStore(tmp_path / "web.db", scrypt_n=2**14)  # the default 2^17 is tested in test_auth
    await gateway.start()
    app = create_app(gateway, store, auth=auth, limiter=limiter)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        s = Site(gateway, app, client, store, auth)
        if logged_in:
            await s.login()
        yield s
    finally:
        await client.close()
        await gateway.stop()


def run(tmp_path: Path, test: Callable[[Site], Coroutine[Any, Any, None]], *, logged_in: bool = True,
        timeout: float = 60.0, **options: Any) -> None:
    async def main() -> None:
        async with site(tmp_path, logged_in=logged_in, **options) as s:
            await test(s)

    asyncio.run(asyncio.wait_for(main(), timeout))
