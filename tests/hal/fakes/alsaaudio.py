"""A fake of the pyalsaaudio (>= 0.10) API subset hal.alsa uses, with simulated sound cards.

Modelled on pyalsaaudio's src/alsaaudio.c:
- `PCM(type, mode, rate, channels, format, periodsize, periods, device, cardindex)` opens the
  device and applies the hardware parameters with the *_near setters: a rate the card does not
  support is silently replaced by the nearest one it does (the caller must check `info()['rate']`);
- an unknown device raises `ALSAAudioError("No such file or directory [hw:5]")`;
- `read()` returns `(frames, bytes)` for one period, or `(-EPIPE, b'')` after an overrun (the
  stream is re-prepared, the data is lost);
- `write(data)` needs a whole number of frames and returns the frames written, or `-EPIPE` after
  an underrun (the stream is re-prepared; that data was not played);
- `pcms(type)`, `cards()`, `card_indexes()` list what exists.
`plughw:` devices accept any rate (ALSA's plug layer converts), `hw:` devices only their card's.

Cards are added with `add_card`; capture data comes from the card's `capture` callable, playback
bytes are collected in the card's `played` list, and `overruns`/`underruns` queue injected xruns.
"""

from __future__ import annotations

import errno
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

PCM_PLAYBACK = 0
PCM_CAPTURE = 1
PCM_NORMAL = 0
PCM_NONBLOCK = 1
PCM_FORMAT_S16_LE = 2
PCM_STATE_PREPARED = 2
PCM_STATE_RUNNING = 3


class ALSAAudioError(Exception):
    pass


@dataclass
class FakeCard:
    index: int
    id: str
    rates: tuple[int, ...]
    max_channels: int = 2
    capture: Callable[[int, int, int], np.ndarray] | None = None
    """(rate, channels, frames) -> int16 [frames, channels]; silence when None."""
    played: list[bytes] = field(default_factory=list)
    overruns: int = 0
    """Reads still to fail with -EPIPE."""
    underruns: int = 0
    opened: list[PCM] = field(default_factory=list)


_cards: dict[int, FakeCard] = {}


def add_card(index: int, id_: str, rates: tuple[int, ...] = (8000, 16000, 48000),
             max_channels: int = 2) -> FakeCard:
    card = FakeCard(index, id_, rates, max_channels)
    _cards[index] = card
    return card


def reset() -> None:
    _cards.clear()


def cards() -> list[str]:
    return [c.id for _, c in sorted(_cards.items())]


def card_indexes() -> list[int]:
    return sorted(_cards)


def pcms(pcmtype: int = PCM_PLAYBACK) -> list[str]:
    names = ["null", "default"] if _cards else ["null"]
    for _, c in sorted(_cards.items()):
        names += [f"hw:CARD={c.id},DEV=0", f"plughw:CARD={c.id},DEV=0", f"sysdefault:CARD={c.id}"]
    return names


def _resolve(device: str) -> tuple[FakeCard, bool] | None:
    """The card a device name refers to and whether it goes through the plug layer."""
    if device in ("default", "sysdefault") and _cards:
        return _cards[min(_cards)], True
    m = re.fullmatch(r"(hw|plughw|sysdefault):(?:CARD=)?([^,]+)(?:,(?:DEV=)?\d+)?", device)
    if not m:
        return None
    plug = m.group(1) != "hw"
    key = m.group(2)
    for c in _cards.values():
        if key in (str(c.index), c.id):
            return c, plug
    return None


class PCM:
    def __init__(self, type: int = PCM_PLAYBACK, mode: int = PCM_NORMAL, rate: int = 44100,
                 channels: int = 2, format: int = PCM_FORMAT_S16_LE, periodsize: int = 32,
                 periods: int = 4, device: str = "default", cardindex: int = -1) -> None:
        if cardindex >= 0:
            device = f"hw:{cardindex}"
        found = _resolve(device)
        if found is None:
            raise ALSAAudioError(f"No such file or directory [{device}]")
        card, plug = found
        if format != PCM_FORMAT_S16_LE:
            raise ALSAAudioError(f"fake supports S16_LE only [{device}]")
        self.card = card
        self._type = type
        self._device = device
        self._channels = min(channels, card.max_channels)
        self._rate = rate if plug else min(card.rates, key=lambda r: (abs(r - rate), r))
        self._periodsize = periodsize
        self._periods = periods
        self._open = True
        self._frames_read = 0
        card.opened.append(self)

    def _check_open(self) -> None:
        if not self._open:
            raise ALSAAudioError("PCM device is closed")

    def info(self) -> dict[str, object]:
        self._check_open()
        return {"name": self._device, "card_no": self.card.index, "rate": self._rate,
                "channels": self._channels, "period_size": self._periodsize, "periods": self._periods,
                "format": PCM_FORMAT_S16_LE, "format_name": "S16_LE"}

    def pcmtype(self) -> int:
        return self._type

    def read(self) -> tuple[int, bytes]:
        self._check_open()
        if self._type != PCM_CAPTURE:
            raise ALSAAudioError(f"Bad file descriptor [{self._device}]")
        if self.card.overruns:
            self.card.overruns -= 1
            return -errno.EPIPE, b""
        n = self._periodsize
        if self.card.capture is None:
            data = np.zeros((n, self._channels), dtype=np.int16)
        else:
            data = self.card.capture(self._rate, self._channels, n)
        self._frames_read += n
        return n, np.ascontiguousarray(data, dtype="<i2").tobytes()

    def write(self, data: bytes) -> int:
        self._check_open()
        if self._type != PCM_PLAYBACK:
            raise ALSAAudioError(f"Bad file descriptor [{self._device}]")
        framesize = 2 * self._channels
        if len(data) % framesize:
            raise ALSAAudioError("Data size must be a multiple of framesize")
        if self.card.underruns:
            self.card.underruns -= 1
            return -errno.EPIPE
        self.card.played.append(bytes(data))
        return len(data) // framesize

    def close(self) -> None:
        self._open = False


def install(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Make `import alsaaudio` return this fake (cards cleared) for the duration of a test."""
    reset()
    module = sys.modules[__name__]
    monkeypatch.setitem(sys.modules, "alsaaudio", module)
    return module
