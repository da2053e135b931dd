"""Shared by the web tests: a real gateway on the real-time simulator (the example config, two ports
101 and 102), an aiohttp test client on a bare Application around it, and audio helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from scipy.io import wavfile

from firmware.app import Gateway
from firmware.config import load_config
from hal.board import Board
from hal.events import Feed
from hal.line import Line

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hookflash.toml"
RATE = 8000


def gateway_for(tmp_path: Path, board: Board | None = None) -> Gateway:
    cfg = load_config(EXAMPLE)
    cfg = dataclasses.replace(cfg, system=dataclasses.replace(cfg.system, data_dir=str(tmp_path)))
    return Gateway(cfg, board=board)


@asynccontextmanager
async def serving(gateway: Gateway, *route_tables: web.RouteTableDef,
                  start: bool = True) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The gateway running (unless not `start`) with `route_tables` on a loopback test server."""
    app = web.Application()
    for routes in route_tables:
        app.add_routes(routes)
    if start:
        await gateway.start()
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        if start:
            await gateway.stop()


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> None:
    """Wait for `check` (plain or async) to hold, polling every 50 ms, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await _value(check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if inspect.isawaitable(result) else bool(result)


def sine(hz: float, seconds: float, rate: int = RATE, amplitude: float = 6000.0) -> npt.NDArray[np.float64]:
    t = np.arange(round(seconds * rate)) / rate
    return np.asarray(amplitude * np.sin(2 * np.pi * hz * t))


def wav_bytes(samples: npt.ArrayLike, rate: int = RATE) -> bytes:
    out = io.BytesIO()
    wavfile.write(out, rate, np.asarray(samples).astype(np.int16))
    return out.getvalue()


def read_wav_bytes(data: bytes) -> tuple[int, npt.NDArray[np.int16]]:
    rate, samples = wavfile.read(io.BytesIO(data))
    return int(rate), np.asarray(samples, dtype=np.int16)


def dominant_hz(audio: npt.ArrayLike, rate: int = RATE) -> float:
    """The strongest frequency (Hann-windowed FFT) of `audio`."""
    x = np.asarray(audio, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spectrum[0] = 0.0
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


class _Driver:
    max_ring_duty = 1 / 3

    def set_ringer(self, on: bool) -> None:
        pass

    def set_polarity(self, reversed_: bool) -> None:
        pass

    def set_feed(self, feed: Feed) -> None:
        pass


class HardwareBoard(Board):
    """Stands in for a real HAT where only its type matters (the sim routes refuse it); never run."""

    def __init__(self, ports: int = 2) -> None:
        super().__init__()
        self.lines = [Line(p, _Driver()) for p in range(ports)]

    def read(self) -> tuple[float, npt.NDArray[np.int16]]:
        raise AssertionError("not run in these tests")

    def write(self, frames: npt.NDArray[np.int16]) -> None:
        raise AssertionError("not run in these tests")

    def now(self) -> float:
        return 0.0
