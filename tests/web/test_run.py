"""`hookflash run` serves the web page (a real process on a free loopback port); a restart asked
through the API stops everything and starts again from the config file, sessions surviving."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import aiohttp

from tests.sip_peers import procs
from tests.sip_peers.ports import free_port
from tests.web.harness import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
[system]
data_dir = "{data}"
[web]
listen = "127.0.0.1:{port}"
[[ports]]
extension = "101"
display_name = "{name}"
"""


def test_hookflash_run_serves_the_web_page_and_restarts_from_the_file(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "hookflash.toml"
    config.write_text(CONFIG.format(data=tmp_path, port=port, name="Kitchen"))
    log = tmp_path / "run.log"
    proc = procs.start([sys.executable, "-m", "firmware.cli", "run", "--config", str(config), "--no-console"],
                       log, ROOT)
    url = f"http://127.0.0.1:{port}"

    async def scenario() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async def wait_up() -> None:
                for _ in range(200):
                    try:
                        async with http.get(url + "/api/v1/openapi.json") as r:
                            if r.status == 200:
                                return
                    except aiohttp.ClientError:
                        pass
                    assert proc.poll() is None, procs.tail(log)
                    await asyncio.sleep(0.1)
                raise AssertionError(procs.tail(log))

            await wait_up()
            async with http.get(url + "/setup") as r:
                token = re.search(r'name="csrf" value="([^"]+)"', await r.text())
            assert token is not None
            form = {"csrf": token.group(1), "password": PASSWORD, "confirm": PASSWORD}
            async with http.post(url + "/setup", data=form) as r:
                page = await r.text()
                assert r.status == 200 and "Status" in page
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
            assert csrf is not None
            async with http.get(url + "/api/v1/status") as r:
                assert (await r.json())["ports"][0]["display_name"] == "Kitchen"
            config.write_text(CONFIG.format(data=tmp_path, port=port, name="Hall"))  # edited by hand
            async with http.post(url + "/api/v1/restart", headers={"X-CSRF-Token": csrf.group(1)}) as r:
                assert r.status == 202
            for _ in range(100):
                if log.read_text().count("hookflash: ready") >= 2:
                    break
                await asyncio.sleep(0.1)
            await wait_up()
            async with http.get(url + "/api/v1/status") as r:  # the session survived the restart
                assert r.status == 200 and (await r.json())["ports"][0]["display_name"] == "Hall"

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
        assert "restarting" in log.read_text()
    finally:
        procs.stop(proc)
    assert proc.returncode == 0, procs.tail(log)
