"""AlsaAudio against the fake pyalsaaudio: rates, fallback resampling, xruns, clear errors."""

from __future__ import annotations

import sys
from types import ModuleType

import numpy as np
import pytest

from hal.alsa import AlsaAudio
from hal.board import HardwareError
from tests.hal.fakes import alsaaudio as fake


@pytest.fixture
def alsa(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return fake.install(monkeypatch)


def sine_source(freq: float) -> fake.FakeCard:
    """A card whose capture is a continuous `freq` sine on every channel (phase kept across reads)."""
    card = fake.add_card(1, "sndrpihifiberry", rates=(48000, 96000))
    state = {"n": 0}

    def capture(rate: int, channels: int, frames: int) -> np.ndarray:
        t = (state["n"] + np.arange(frames)) / rate
        state["n"] += frames
        x = np.round(8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
        return np.repeat(x[:, None], channels, axis=1)

    card.capture = capture
    return card


def test_opens_at_8khz_with_160_frame_periods(alsa: ModuleType) -> None:
    card = fake.add_card(0, "codec", rates=(8000, 48000))
    audio = AlsaAudio("hw:0", "hw:0", channels=2)
    assert audio.device_rate == 8000 and audio.factor == 1
    assert [p.info()["period_size"] for p in card.opened] == [160, 160]
    frames = audio.read()
    assert frames.shape == (2, 160) and frames.dtype == np.int16
    ramp = np.arange(320, dtype=np.int16).reshape(2, 160)
    audio.write(ramp)
    played = np.frombuffer(card.played[-1], dtype="<i2").reshape(160, 2).T
    np.testing.assert_array_equal(played, ramp)  # interleaved per frame, one channel per port
    assert len(card.played) == 3  # two silent prefill periods, then ours
    audio.close()


def test_falls_back_to_48khz_and_resamples(alsa: ModuleType) -> None:
    card = sine_source(1000.0)
    audio = AlsaAudio("hw:1", "hw:1", channels=2)
    assert audio.device_rate == 48000 and audio.factor == 6
    assert card.opened[-1].info()["period_size"] == 960
    got = np.concatenate([audio.read() for _ in range(10)], axis=1)
    assert got.shape == (2, 1600)
    steady = got[:, 200:].astype(float)
    level = np.sqrt(np.mean(steady**2)) / (8000 / np.sqrt(2))
    assert abs(20 * np.log10(level)) < 0.1  # the 1 kHz tone survives decimation

    audio.write(np.zeros((2, 160), dtype=np.int16))
    assert len(card.played[-1]) == 960 * 2 * 2  # 960 frames x 2 channels x 2 bytes
    audio.close()


def test_plughw_gets_8khz_from_the_plug_layer(alsa: ModuleType) -> None:
    fake.add_card(1, "usb", rates=(44100, 48000))
    audio = AlsaAudio("plughw:1", "plughw:1")
    assert audio.device_rate == 8000
    audio.close()


def test_playback_forcing_fallback_reopens_capture_at_48khz(alsa: ModuleType) -> None:
    mic = fake.add_card(0, "mic", rates=(8000, 48000))
    fake.add_card(1, "dac", rates=(48000,))
    audio = AlsaAudio("hw:0", "hw:1")
    assert audio.device_rate == 48000
    assert [(p._rate, p._open) for p in mic.opened] == [(8000, False), (48000, True)]
    audio.close()


def test_card_with_neither_rate_is_a_clear_error(alsa: ModuleType) -> None:
    fake.add_card(0, "odd", rates=(44100,))
    with pytest.raises(HardwareError, match=r"hw:0 runs neither 8000 Hz nor 48000 Hz.*44100"):
        AlsaAudio("hw:0", "hw:0")


def test_missing_device_lists_what_exists(alsa: ModuleType) -> None:
    fake.add_card(0, "Headphones")
    with pytest.raises(HardwareError, match=r"ALSA device hw:1 not found.*available: hw:0 \(Headphones\), "
                                            r"default"):
        AlsaAudio("hw:1", "hw:1")


def test_missing_module_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "alsaaudio", None)
    with pytest.raises(HardwareError, match=r"pip install 'hookflash\[pi\]'"):
        AlsaAudio()


def test_overrun_is_counted_and_recovered(alsa: ModuleType) -> None:
    card = sine_source(1000.0)
    audio = AlsaAudio("hw:1", "hw:1")
    audio.read()
    card.overruns = 1
    lost = audio.read()
    assert audio.xruns == 1
    np.testing.assert_array_equal(lost, 0)  # the lost period is silence, not stale samples
    assert audio.read().any()  # and the stream carries on
    audio.close()


def test_underrun_is_counted_and_the_period_replayed(alsa: ModuleType) -> None:
    card = fake.add_card(0, "codec", rates=(8000,))
    audio = AlsaAudio("hw:0", "hw:0")
    card.underruns = 1
    before = len(card.played)
    audio.write(np.full((1, 160), 100, dtype=np.int16))
    assert audio.xruns == 1
    assert len(card.played) == before + 1
    audio.close()


def test_write_checks_shape(alsa: ModuleType) -> None:
    fake.add_card(0, "codec", rates=(8000,))
    audio = AlsaAudio("hw:0", "hw:0", channels=2)
    with pytest.raises(ValueError, match=r"\[2, 160\]"):
        audio.write(np.zeros((1, 160), dtype=np.int16))
    audio.close()
