"""The simulator routes against a real gateway on the real-time sim backend: a person at phone 1
calls phone 2 over HTTP only (keypad and rotary dial), they talk, and every bad request is refused
with a clear error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from firmware.line.port import State
from tests.web.support import (
    HardwareBoard,
    dominant_hz,
    gateway_for,
    read_wav_bytes,
    serving,
    sine,
    until,
    wav_bytes,
)
from web.sim import sim_routes


async def call_scenario(tmp_path: Path) -> None:
    gateway = gateway_for(tmp_path)
    async with serving(gateway, sim_routes(gateway)) as client:
        async def status(n: int) -> dict[str, Any]:
            resp = await client.get(f"/api/v1/sim/ports/{n}")
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
            return body

        async def post(path: str, body: dict[str, Any] | None = None, expect: int = 200) -> Any:
            resp = await client.post(path, json=body)
            assert resp.status == expect, await resp.text()
            return await resp.json()

        assert await status(1) == {"offhook": False, "ringing": False, "rings": 0, "callerid": None,
                                   "mwi_lamp": False}
        for method in ("dtmf", "pulse"):
            await post("/api/v1/sim/ports/1/hook", {"offhook": True})
            await asyncio.sleep(0.5)  # dial tone first
            dialled = await post("/api/v1/sim/ports/1/dial", {"digits": "102", "method": method})
            assert dialled["method"] == method and dialled["seconds"] > 0.2

            async def two_rings() -> bool:
                s = await status(2)
                return bool(s["ringing"] and s["callerid"] is not None and s["callerid"]["number"] == "101")
            await until(two_rings, 10 + dialled["seconds"], f"phone 2 rings with caller ID 101 ({method})")
            shown = (await status(2))["callerid"]
            assert shown["name"] == "Kitchen" and len(shown["time"]) == len("MM-DD HH:MM")
            assert (await status(2))["rings"] >= 1

            await post("/api/v1/sim/ports/2/hook", {"offhook": True})

            async def connected() -> bool:
                return gateway.lines[0].state is State.CONNECTED and gateway.lines[1].state is State.CONNECTED
            await until(connected, 3, "both phones connected")
            await asyncio.sleep(0.5)  # both media sessions up
            # A 16 kHz stereo WAV: the route takes any rate and channel count.
            tone = sine(1000, 1.5, rate=16000)
            resp = await client.put("/api/v1/sim/ports/1/mouthpiece",
                                    data=wav_bytes(np.stack([tone, tone], axis=1), 16000),
                                    headers={"Content-Type": "audio/wav"})
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["seconds"] == 1.5
            await asyncio.sleep(1.4)
            resp = await client.get("/api/v1/sim/ports/2/earpiece", params={"seconds": "0.5"})
            assert resp.status == 200 and resp.content_type == "audio/wav"
            rate, heard = read_wav_bytes(await resp.read())
            assert rate == 8000 and len(heard) == 4000
            assert abs(dominant_hz(heard) - 1000) < 4, "phone 1's 1 kHz in phone 2's earpiece"
            assert np.sqrt(np.mean(heard.astype(float) ** 2)) > 1000

            await post("/api/v1/sim/ports/1/hook", {"offhook": False})
            await post("/api/v1/sim/ports/2/hook", {"offhook": False})

            async def idle() -> bool:
                return all(line.state is State.IDLE for line in gateway.lines.values())
            await until(idle, 3, "both lines idle again")
            await asyncio.sleep(0.2)

        # The flash reaches call control as a flash, not as a hang-up.
        await post("/api/v1/sim/ports/1/hook", {"offhook": True})
        await post("/api/v1/sim/ports/1/flash")
        await asyncio.sleep(1.0)
        assert (await status(1))["offhook"] and gateway.lines[0].state is not State.IDLE


def test_a_call_over_the_sim_routes_dtmf_and_pulse(tmp_path: Path) -> None:
    asyncio.run(call_scenario(tmp_path))


async def refusals(tmp_path: Path) -> None:
    gateway = gateway_for(tmp_path)
    async with serving(gateway, sim_routes(gateway)) as client:
        async def refused(method: str, path: str, status: int, words: str, **kw: Any) -> None:
            resp = await client.request(method, path, **kw)
            assert resp.status == status, (path, resp.status, await resp.text())
            error = (await resp.json())["error"]
            assert words in error, error

        await refused("GET", "/api/v1/sim/ports/3", 404, "ports 1..2")
        await refused("GET", "/api/v1/sim/ports/0", 404, "ports 1..2")
        await refused("POST", "/api/v1/sim/ports/x/hook", 404, "no port x", json={"offhook": True})
        await refused("POST", "/api/v1/sim/ports/1/hook", 400, "not valid JSON", data=b"{offhook")
        await refused("POST", "/api/v1/sim/ports/1/hook", 400, "JSON object", data=b"[true]")
        await refused("POST", "/api/v1/sim/ports/1/hook", 400, "offhook must be", json={"offhook": "yes"})
        await refused("POST", "/api/v1/sim/ports/1/hook", 400, "unknown field(s) ofhook",
                      json={"ofhook": True})
        await refused("POST", "/api/v1/sim/ports/1/dial", 409, "lift it", json={"digits": "1"})
        await refused("POST", "/api/v1/sim/ports/1/flash", 409, "on hook")
        await refused("PUT", "/api/v1/sim/ports/1/mouthpiece", 409, "on hook", data=wav_bytes(sine(440, 0.1)))
        await client.post("/api/v1/sim/ports/1/hook", json={"offhook": True})
        await refused("POST", "/api/v1/sim/ports/1/dial", 400, "a rotary dial has nothing else",
                      json={"digits": "1*", "method": "pulse"})
        await refused("POST", "/api/v1/sim/ports/1/dial", 400, "0-9 * # A-D", json={"digits": "1x"})
        await refused("POST", "/api/v1/sim/ports/1/dial", 400, "1..32", json={"digits": ""})
        await refused("POST", "/api/v1/sim/ports/1/dial", 400, "method must be",
                      json={"digits": "1", "method": "tone"})
        await refused("PUT", "/api/v1/sim/ports/1/mouthpiece", 400, "must be a WAV file", data=b"RIFFjunk")
        await refused("PUT", "/api/v1/sim/ports/1/mouthpiece", 400, "at most 60 s",
                      data=wav_bytes(np.zeros(61 * 8000)))
        await refused("POST", "/api/v1/sim/ports/1/dial", 413, "over 65536 bytes",
                      json={"digits": "1" * 70000})
        await refused("PUT", "/api/v1/sim/ports/1/mouthpiece", 413, "WAV body over",
                      data=b"\0" * (16 * 1024 * 1024 + 1))
        for bad in ("0", "-1", "61", "abc"):
            await refused("GET", "/api/v1/sim/ports/1/earpiece", 400, "seconds must be",
                          params={"seconds": bad})
        # Nothing bad reached the phone: still off hook, no digits queued, silence in the mouthpiece.
        assert (await (await client.get("/api/v1/sim/ports/1")).json())["offhook"]


def test_bad_requests_are_refused_with_the_reason(tmp_path: Path) -> None:
    asyncio.run(refusals(tmp_path))


async def on_hardware(tmp_path: Path) -> None:
    gateway = gateway_for(tmp_path, board=HardwareBoard())
    async with serving(gateway, sim_routes(gateway), start=False) as client:
        for method, path in (("GET", "/api/v1/sim/ports/1"), ("POST", "/api/v1/sim/ports/1/flash"),
                             ("GET", "/api/v1/sim/ports/1/earpiece")):
            resp = await client.request(method, path)
            assert resp.status == 409
            assert "needs the sim backend" in (await resp.json())["error"]


def test_real_hardware_has_no_virtual_phones(tmp_path: Path) -> None:
    asyncio.run(on_hardware(tmp_path))
