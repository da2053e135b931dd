"""Diagnostics against a real gateway on the real-time simulator: test ringing with caller ID that
the virtual phone decodes, test tones it hears (and dial tone coming back), the DTMF test through
the pipeline's own detector, the scope's waveform and spectrum, and per-second call statistics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dsp.level import power_dbm0
from dsp.synth import tone as synth_tone
from firmware.line.port import State
from hal.board import FRAME
from hal.sim import SimBoard
from tests.web.support import dominant_hz, gateway_for, serving, until
from web.diagnostics import DiagnosticsService, LineScope, spectrum_dbm0
from web.sim import sim_routes


def two_strongest(audio: np.ndarray) -> list[float]:
    x = audio.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / 8000)
    peaks = [i for i in range(1, len(spectrum) - 1)
             if spectrum[i] >= spectrum[i - 1] and spectrum[i] >= spectrum[i + 1]]
    return sorted(float(freqs[i]) for i in sorted(peaks, key=lambda i: -spectrum[i])[:2])


@pytest.mark.parametrize(("hz", "dbm0"), [(1000.0, -10.0), (404.0, -30.0), (3000.0, 0.0)])
def test_spectrum_reads_a_sine_at_its_level(hz: float, dbm0: float) -> None:
    x = synth_tone([hz], dbm0, 800)
    db = spectrum_dbm0(x)
    freqs = np.fft.rfftfreq(800, 1 / 8000)
    peak = int(np.argmax(db))
    assert abs(freqs[peak] - hz) <= 10
    assert db[peak] == pytest.approx(dbm0, abs=1.5)  # scalloping loss of a Hann window is at most 1.4 dB
    assert np.median(db) < dbm0 - 40


def test_scope_keeps_the_latest_second_in_order() -> None:
    scope = LineScope(2)
    for k in range(60):  # 1.2 s: the buffer wraps
        near = np.full((2, FRAME), k, np.int16)
        scope.push(near, -near)
    latest = scope.latest(1, 3 * FRAME)
    assert latest.shape == (2, 3 * FRAME)
    assert latest[0, ::FRAME].tolist() == [57, 58, 59] and latest[1, -1] == -59


async def scenario(tmp_path: Path) -> None:
    gateway = gateway_for(tmp_path)
    board = gateway.board
    assert isinstance(board, SimBoard)
    one, two = board.phones
    diagnostics = DiagnosticsService(gateway)
    async with serving(gateway, sim_routes(gateway), diagnostics.routes) as client:
        async def call(method: str, path: str, expect: int = 200, **kw: Any) -> Any:
            resp = await client.request(method, path, **kw)
            assert resp.status == expect, (path, await resp.text())
            return await resp.json()

        options = await call("GET", "/api/v1/diagnostics")
        assert {"dial", "busy", "ringback"} <= set(options["tones"]) and options["simulator"]
        assert "bellcore-dr2" in options["cadences"] and options["country"] == "US"

        # -- ring with a test caller ID: the phone's display decodes it; the test ring is stopped
        await call("POST", "/api/v1/ports/2/ring", json={"number": "5550123", "name": "LINE TEST",
                                                         "standard": "bell202"})

        def shown(number: str) -> bool:
            return two.callerid is not None and two.callerid.number == number
        await until(lambda: shown("5550123"), 10, "bell202 test caller ID shown")
        assert two.callerid is not None and two.callerid.name == "LINE TEST"
        assert board.lines[1].ringing, "still ringing (between bursts)"
        await call("DELETE", "/api/v1/ports/2/ring")
        assert not board.lines[1].ringing
        await call("POST", "/api/v1/ports/2/ring", json={"number": "5550124", "standard": "dtmf",
                                                         "cadence": "bellcore-dr2", "seconds": 3})
        await until(lambda: shown("5550124"), 10, "DTMF test caller ID shown")
        await until(lambda: not board.lines[1].ringing, 4, "the test ring ends by itself")

        # -- a test tone on a lifted phone, then its dial tone again
        await call("POST", "/api/v1/sim/ports/1/hook", json={"offhook": True})
        await asyncio.sleep(0.6)
        assert two_strongest(one.earpiece(0.5)) == pytest.approx([350, 440], abs=6)
        await call("POST", "/api/v1/ports/1/tone", json={"tone": {"freq": 1000, "level_dbm0": -10},
                                                          "seconds": 1.5})
        await asyncio.sleep(0.8)
        heard = one.earpiece(0.5)
        assert abs(dominant_hz(heard) - 1000) < 4 and float(power_dbm0(heard)) == pytest.approx(-10, abs=0.5)
        scope = await call("GET", "/api/v1/ports/1/scope", params={"ms": "200"})
        assert scope["samples"] == 1600 and len(scope["downlink"]) == 1600 and len(scope["uplink"]) == 1600
        hz, db = np.array(scope["spectrum"]["hz"]), np.array(scope["spectrum"]["downlink_dbm0"])
        assert abs(hz[int(np.argmax(db))] - 1000) <= 5 and db.max() == pytest.approx(-10, abs=1.5)
        assert scope["level_dbm0"]["downlink"] == pytest.approx(-10, abs=1)
        await asyncio.sleep(1.2)
        assert two_strongest(one.earpiece(0.5)) == pytest.approx([350, 440], abs=6), "dial tone is back"
        await call("POST", "/api/v1/ports/1/tone", json={"tone": "busy", "seconds": 0.6})
        await asyncio.sleep(0.4)
        assert two_strongest(one.earpiece(0.3)) == pytest.approx([480, 620], abs=8), "US busy"

        # -- the DTMF test: what the pipeline's detector heard from the phone's keys
        report = await call("POST", "/api/v1/ports/1/dtmf-test", json={"digits": "*#"})
        assert report["sent"] == "*#" and report["heard"] == "*#" and report["match"]
        edges = [(e["digit"], e["edge"]) for e in report["events"]]
        assert edges == [("*", "start"), ("*", "end"), ("#", "start"), ("#", "end")]
        assert 0.15 < report["events"][2]["t"] < 0.25  # keys 100 ms on, 100 ms off
        await call("POST", "/api/v1/sim/ports/1/hook", json={"offhook": False})
        await asyncio.sleep(1.0)

        # -- a call's statistics, one point per second
        await call("POST", "/api/v1/sim/ports/1/hook", json={"offhook": True})
        await asyncio.sleep(0.4)
        await call("POST", "/api/v1/sim/ports/1/dial", json={"digits": "102"})
        await until(lambda: two.ringing, 10, "phone 2 rings")
        await call("POST", "/api/v1/sim/ports/2/hook", json={"offhook": True})
        await until(lambda: gateway.lines[0].state is State.CONNECTED, 3, "connected")
        busy = await client.post("/api/v1/ports/1/tone", json={"tone": "busy"})
        assert busy.status == 409 and "in use (connected)" in (await busy.json())["error"]
        await asyncio.sleep(3.5)
        stats = await call("GET", "/api/v1/ports/2/callstats")
        assert stats["active"] and 2 <= len(stats["series"]) <= 5
        last = stats["series"][-1]
        assert last["loss_pct"] == 0 and last["jitter_ms"] < 20 and last["mos"] > 4.0
        assert stats["summary"]["packets_received"] > 100
        await call("POST", "/api/v1/sim/ports/1/hook", json={"offhook": False})
        await asyncio.sleep(1.5)
        after = await call("GET", "/api/v1/ports/2/callstats")
        assert not after["active"] and len(after["series"]) >= len(stats["series"])
        await call("POST", "/api/v1/sim/ports/2/hook", json={"offhook": False})
    await diagnostics.close()
    assert not gateway.pipeline._taps


def test_diagnostics_on_the_simulator(tmp_path: Path) -> None:
    asyncio.run(scenario(tmp_path))


async def refusals(tmp_path: Path) -> None:
    gateway = gateway_for(tmp_path)
    diagnostics = DiagnosticsService(gateway)
    async with serving(gateway, sim_routes(gateway), diagnostics.routes) as client:
        async def refused(method: str, path: str, status: int, words: str, **kw: Any) -> None:
            resp = await client.request(method, path, **kw)
            assert resp.status == status, (path, resp.status, await resp.text())
            error = (await resp.json())["error"]
            assert words in error, error

        await refused("POST", "/api/v1/ports/1/tone", 400, "has no tone 'warble'; available: busy",
                      json={"tone": "warble"})
        await refused("POST", "/api/v1/ports/1/tone", 400, "freq must be a number from 20 to 3900",
                      json={"tone": {"freq": 5000}})
        await refused("POST", "/api/v1/ports/1/tone", 400, "level_dbm0 must be",
                      json={"tone": {"freq": 1000, "level_dbm0": 6}})
        await refused("POST", "/api/v1/ports/1/tone", 400, "tone is required", json={"seconds": 1})
        await refused("POST", "/api/v1/ports/1/tone", 400, "seconds must be",
                      json={"tone": "busy", "seconds": 0})
        await refused("POST", "/api/v1/ports/1/ring", 400, "standard must be", json={"standard": "fsk"})
        await refused("POST", "/api/v1/ports/1/ring", 400, "unknown ring cadence", json={"cadence": "loud"})
        await refused("POST", "/api/v1/ports/1/ring", 400, "digits only", json={"number": "555-1234"})
        await refused("POST", "/api/v1/ports/1/ring", 400, "longer than 15", json={"name": "X" * 16})
        await refused("GET", "/api/v1/ports/1/scope?ms=5", 400, "ms must be")
        await refused("GET", "/api/v1/ports/3/scope", 404, "ports 1..2")
        await refused("POST", "/api/v1/ports/1/dtmf-test", 400, "send digits", json={})
        await refused("POST", "/api/v1/ports/1/dtmf-test", 409, "on hook", json={"digits": "1"})
        await refused("POST", "/api/v1/ports/1/dtmf-test", 400, "digits must be", json={"digits": "1x"})
        await client.post("/api/v1/sim/ports/1/hook", json={"offhook": True})
        await asyncio.sleep(0.3)
        await refused("POST", "/api/v1/ports/1/ring", 409, "in use", json={})
        assert not gateway.board.phones[0].ringing  # type: ignore[attr-defined]
    await diagnostics.close()


def test_bad_diagnostics_requests_are_refused(tmp_path: Path) -> None:
    asyncio.run(refusals(tmp_path))
