"""Live audio levels: the window's arithmetic against dsp.level's dBm0, the stream on a real Pipeline
(readings every LEVEL_TICKS ticks, the tap only while watched), and the event stream of a running
gateway sending them to a client that asks, and stopping when it says so."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dsp.level import SILENCE_DBM0, dbm0_to_peak
from dsp.tones import tone
from firmware.media.pipeline import Pipeline
from hal.board import FRAME, RATE
from hal.sim import SimBoard
from tests.web.harness import Site, run
from web.api import LEVELS
from web.levels import LEVEL_TICKS, LevelStream, LevelWindow, Reading


def sine_frames(dbm0: float, ticks: int, hz: float = 1004.0) -> np.ndarray:
    """`ticks` consecutive 20 ms frames of a sine at `dbm0` (1004 Hz: the test-tone frequency of
    ITU-T O.6 / G.712, no sub-multiple of the 8 kHz rate), shape [ticks, FRAME]."""
    t = np.arange(ticks * FRAME) / RATE
    return np.round(dbm0_to_peak(dbm0) * np.sin(2 * np.pi * hz * t)).astype(np.int16).reshape(ticks, FRAME)


def test_a_window_reads_the_power_of_all_its_audio() -> None:
    window = LevelWindow(2)
    tone10 = sine_frames(-10.0, 12)
    for frame in tone10:
        window.push(np.stack([frame, np.zeros(FRAME, np.int16)]), np.stack([frame // 10, frame]))
    first = window.take()
    assert [r["port"] for r in first] == [1, 2]
    assert first[0]["mouthpiece_dbm0"] == pytest.approx(-10.0, abs=0.1)
    assert first[0]["earpiece_dbm0"] == pytest.approx(-30.0, abs=0.1)  # a tenth of the amplitude
    assert first[1]["mouthpiece_dbm0"] == SILENCE_DBM0
    assert first[1]["earpiece_dbm0"] == pytest.approx(-10.0, abs=0.1)
    # Half the window a tone, half silence: half the power, -3 dB (an average, not the last frame).
    for i, frame in enumerate(tone10):
        loud = frame if i < 6 else np.zeros(FRAME, np.int16)
        window.push(np.stack([loud, loud]), np.stack([loud, loud]))
    assert window.take()[0]["mouthpiece_dbm0"] == pytest.approx(-13.0, abs=0.1)
    assert window.take()[0] == {"port": 1, "mouthpiece_dbm0": SILENCE_DBM0, "earpiece_dbm0": SILENCE_DBM0}


def test_full_scale_does_not_overflow() -> None:
    window = LevelWindow(1)
    loud = np.full((1, FRAME), -32768, np.int16)
    for _ in range(LEVEL_TICKS):
        window.push(loud, loud)
    reading = window.take()[0]
    assert reading["mouthpiece_dbm0"] == pytest.approx(3.14 + 3.01, abs=0.05)  # a square wave: sine + 3 dB


def test_the_stream_reads_a_real_pipeline_every_level_ticks_only_while_watched() -> None:
    pipeline = Pipeline(2)
    stream = LevelStream(pipeline)
    got: list[Reading] = []
    other: list[Reading] = []
    stop = stream.subscribe(got.append)
    stop_other = stream.subscribe(other.append)
    pipeline.play_tone(1, tone("US", "dial"))  # 350 + 440 Hz at -13 dBm0 each: -10 dBm0 in all
    mouth = sine_frames(-20.0, 3 * LEVEL_TICKS)
    now = 0.0
    for i, frame in enumerate(mouth):
        pipeline.tick(np.stack([frame, np.zeros(FRAME, np.int16)]), now)
        now += 0.02
        assert len(got) == (i + 1) // LEVEL_TICKS
    assert len(got) == 3 and other == got
    last = got[-1]
    assert last[0]["mouthpiece_dbm0"] == pytest.approx(-20.0, abs=0.3)  # after the echo canceller
    assert last[0]["earpiece_dbm0"] == SILENCE_DBM0
    assert last[1]["earpiece_dbm0"] == pytest.approx(-10.0, abs=0.3)
    assert stream.interval_s == pytest.approx(0.24)

    stop()
    stop()  # twice is harmless
    assert stream.watched
    stop_other()
    assert not stream.watched
    for frame in mouth[:LEVEL_TICKS]:
        pipeline.tick(np.stack([frame, frame]), now)
        now += 0.02
    assert len(got) == 3 and stream.window.take()[0]["mouthpiece_dbm0"] == SILENCE_DBM0  # no tap, no work
    again: list[Reading] = []
    stream.subscribe(again.append)
    for _ in range(LEVEL_TICKS):
        pipeline.tick(np.zeros((2, FRAME), np.int16), now)
        now += 0.02
    assert again[0][0]["mouthpiece_dbm0"] < -60  # a fresh window: nothing of the unwatched tone
    stream.close()
    assert not stream.watched


def test_the_event_stream_sends_levels_to_a_client_that_asks(tmp_path: Path) -> None:
    async def check(s: Site) -> None:
        board = s.gateway.board
        assert isinstance(board, SimBoard)
        levels = s.app[LEVELS]
        async with s.client.ws_connect("/api/v1/events") as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
            assert not levels.watched  # nobody asked: no tap on the media path
            await ws.send_json({"levels": "yes"})
            assert (await ws.receive_json(timeout=5))["type"] == "error"
            await ws.send_json({"levels": True})
            board.phones[0].lift(board.now())  # dial tone: the earpiece meter moves
            board.phones[0].speak(sine_frames(-15.0, 150).ravel(), board.now() + 0.5)
            readings: list[dict[str, Any]] = []
            async with asyncio.timeout(10):
                while len(readings) < 20:
                    message = await ws.receive_json()
                    if message["type"] == "levels":
                        assert message["interval_s"] == pytest.approx(0.24)
                        readings.append(message)
            assert levels.watched
            ports = [r["ports"] for r in readings]
            assert all([p["port"] for p in r] == [1, 2, 3] for r in ports)
            ear = [r[0]["earpiece_dbm0"] for r in ports]
            mouth = [r[0]["mouthpiece_dbm0"] for r in ports]
            assert max(ear) == pytest.approx(-10.0, abs=0.5), ear  # US dial tone
            assert any(abs(m + 15.0) < 1.0 for m in mouth), mouth  # the phone's -15 dBm0 voice
            assert all(r[1]["earpiece_dbm0"] == SILENCE_DBM0 for r in ports)

            await ws.send_json({"levels": False})
            await asyncio.sleep(0.1)
            assert not levels.watched
            with pytest.raises(asyncio.TimeoutError):  # port changes may come; levels no more
                while True:
                    message = await ws.receive_json(timeout=3 * levels.interval_s)
                    assert message["type"] == "port", message
            await ws.send_json({"levels": True})
            await asyncio.sleep(0.1)
            assert levels.watched
        await asyncio.sleep(0.2)
        assert not levels.watched  # a closed page stops its levels

    run(tmp_path, check)
