"""The page panels in real Chromium (Playwright, Debian's chromium, a WAV file as the microphone):
the virtual handset lifts port 1, dials 102 on its keypad as real DTMF, talks to phone 2 through
WebRTC both ways and shows phone 2's caller ID; the scope and call graphs draw; the diagnostics form
rings a port; a second call is dialled in rotary mode. Requests without the page's CSRF token are
refused by the test app's stand-in check, so the panels are shown to send it."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web

from firmware.line.port import State
from hal.sim import SimBoard
from tests.web.support import ROOT, dominant_hz, gateway_for, sine, until, wav_bytes
from web.diagnostics import DiagnosticsService
from web.handset import HandsetService
from web.sim import sim_routes

playwright = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
TOKEN = "test-csrf-token"

PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><meta name="csrf-token" content="{TOKEN}"><title>panels</title>
<script src="/static/handset.js" defer></script><script src="/static/diagnostics.js" defer></script>
<style>canvas {{ width: 480px; height: 200px; display: block }}</style></head>
<body>
<section id="handset1" data-handset-port="1"></section>
<section id="handset2" data-handset-port="2"></section>
<canvas id="scope" data-scope-port="2"></canvas>
<canvas id="stats" data-callstats-port="2"></canvas>
<section id="diag" data-diagnostics-port="1"></section>
</body></html>"""

DOMINANT_JS = """async () => {
  const audio = document.querySelector('#handset1 audio');
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(audio.srcObject);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  source.connect(analyser);
  await new Promise((r) => setTimeout(r, 600));
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = 1;
  for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  const result = {hz: best * ctx.sampleRate / analyser.fftSize, db: bins[best]};
  await ctx.close();
  return result;
}"""

INK_JS = """(id) => {
  const c = document.getElementById(id);
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i]) ink++;
  return ink;
}"""


@web.middleware
async def csrf_check(request: web.Request, handler: Any) -> web.StreamResponse:
    """Stands in for the core app's CSRF check: unsafe API requests must carry the page's token."""
    if request.method not in ("GET", "HEAD") and request.headers.get("X-CSRF-Token") != TOKEN:
        raise web.HTTPForbidden(text='{"error": "CSRF token missing"}', content_type="application/json")
    return await handler(request)


async def scenario(tmp_path: Path, artifacts: Path) -> None:
    tone = tmp_path / "mic.wav"
    tone.write_bytes(wav_bytes(sine(1000, 10.0, rate=48000, amplitude=8000), 48000))
    gateway = gateway_for(tmp_path)
    board = gateway.board
    assert isinstance(board, SimBoard)
    handsets, diagnostics = HandsetService(gateway), DiagnosticsService(gateway)
    app = web.Application(middlewares=[csrf_check])
    app.add_routes(sim_routes(gateway))
    app.add_routes(handsets.routes)
    app.add_routes(diagnostics.routes)
    app.router.add_static("/static", ROOT / "web" / "static")

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")
    app.router.add_get("/", index)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await gateway.start()
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    one, two = board.phones
    client = ClientSession()
    try:
        async with playwright.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-audio-capture={tone}", "--autoplay-policy=no-user-gesture-required",
                "--allow-loopback-in-peer-connection", "--no-sandbox"])
            try:
                page = await browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                await page.goto(f"{base}/")
                h1 = page.locator("#handset1")
                await h1.locator(".handset-status").filter(has_text="On hook").wait_for(timeout=5000)

                await h1.get_by_role("button", name="Lift").click()
                await until(lambda: one.offhook and handsets.connections.get(0) == "connected", 15,
                            "handset connected and phone 1 off hook")
                for key in "102":
                    await h1.locator(f"[data-digit='{key}']").click()
                await until(lambda: two.ringing, 10, "phone 2 rings after the keypad's DTMF")
                h2 = page.locator("#handset2")
                await h2.locator(".handset-callerid").filter(has_text="101").wait_for(timeout=10000)
                assert "Kitchen" in await h2.locator(".handset-callerid").inner_text()
                await page.screenshot(path=str(artifacts / "panels-ringing.png"), full_page=True)

                await h2.get_by_role("button", name="Lift").click()  # the second panel answers
                await until(lambda: gateway.lines[1].state is State.CONNECTED, 15, "phone 2 answered")
                await asyncio.sleep(2.0)
                heard = two.earpiece(0.5)  # the browser's fake microphone, through phone 1, at phone 2
                assert abs(dominant_hz(heard) - 1000) < 4, "the WAV microphone's 1 kHz at phone 2"
                resp = await client.put(f"{base}/api/v1/sim/ports/2/mouthpiece",
                                        data=wav_bytes(sine(440, 3.0)), headers={"X-CSRF-Token": TOKEN})
                assert resp.status == 200
                await asyncio.sleep(1.0)
                back = await page.evaluate(DOMINANT_JS)
                assert abs(back["hz"] - 440) < 12 and back["db"] > -60, f"phone 2's 440 Hz in the page {back}"

                await h2.get_by_role("button", name="Hang up").click()  # frees phone 2's microphone
                await asyncio.sleep(0.5)
                await until(lambda: gateway.lines[0].state is not State.CONNECTED, 5, "call over")
                await h2.get_by_role("button", name="Lift").wait_for(timeout=5000)

                await page.screenshot(path=str(artifacts / "panels-call.png"), full_page=True)
                assert await page.evaluate(INK_JS, "scope") > 500, "the scope drew"
                assert await page.evaluate(INK_JS, "stats") > 500, "the call graphs drew"

                await h1.get_by_role("button", name="Hang up").click()
                await until(lambda: all(line.state is State.IDLE for line in gateway.lines.values()), 5,
                            "both lines idle")
                await asyncio.sleep(1.0)
                diag = page.locator("#diag")
                await diag.get_by_role("button", name="Ring", exact=True).click()
                await diag.locator("output").filter(has_text="Ringing port 1").wait_for(timeout=5000)
                await until(lambda: one.ringing, 3, "the diagnostics form rang port 1")
                await diag.get_by_role("button", name="Stop ringing").click()
                await diag.locator("output").filter(has_text="Ringing stopped").wait_for(timeout=5000)
                assert not board.lines[0].ringing
                await page.screenshot(path=str(artifacts / "panels-diagnostics.png"), full_page=True)

                # A second call dialled on the rotary dial: pulses on the hook switch, not tones.
                await asyncio.sleep(1.0)  # the ring test's on-hook data has ended
                await h1.get_by_role("button", name="Lift").click()
                await until(lambda: gateway.lines[0].state is State.DIALTONE, 15, "dial tone again")
                await h1.get_by_label("Rotary (pulse)").check()
                assert await h1.locator("[data-digit='*']").is_disabled(), "a rotary dial has no *"
                for key in "102":
                    await h1.locator(f"[data-digit='{key}']").click()
                await until(lambda: two.ringing, 15, "phone 2 rings after rotary dialling")
                await h1.get_by_role("button", name="Hang up").click()
                await until(lambda: not board.lines[1].ringing, 5, "the caller gave up")

                forged = await client.post(f"{base}/api/v1/sim/ports/1/hook", json={"offhook": True})
                assert forged.status == 403, "the stand-in CSRF check is live: the panels passed it"
                assert not errors, errors
            finally:
                await browser.close()
    finally:
        await client.close()
        await handsets.close()
        await diagnostics.close()
        await runner.cleanup()
        await gateway.stop()


def test_panels_in_chromium(tmp_path: Path) -> None:
    artifacts = Path(os.environ.get("HOOKFLASH_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    asyncio.run(scenario(tmp_path, artifacts))
