"""Choosing the backend from configuration, and the errors a user sees when hardware is missing.

These run on a development machine where the Pi-only modules really are absent, so the messages
tested are the ones a user without the `pi` extra gets.
"""

from __future__ import annotations

import importlib.util

import pytest

from hal.backends import BoardConfig, open_board
from hal.board import HardwareError
from hal.sim import SimBoard


def test_sim_is_the_default() -> None:
    board = open_board(BoardConfig(sim_realtime=False))
    assert isinstance(board, SimBoard) and board.ports == 2
    board.close()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("backend", "ag1170", "choose one of sim, ag1171"),
    ("ports", 0, "ports must be 1..64"),
    ("country", "XX", "unknown country"),
    ("backend", "ag1171", "3 ports need 3 gpio_pins"),
])
def test_bad_config_is_refused_with_the_field_named(field: str, value: object, message: str) -> None:
    with pytest.raises((ValueError, KeyError), match=message):
        BoardConfig(**{"ports": 3, field: value})  # type: ignore[arg-type]


@pytest.mark.skipif(importlib.util.find_spec("alsaaudio") is not None, reason="pyalsaaudio is installed")
@pytest.mark.parametrize("backend", ["ag1171", "ks0835f", "serial"])
def test_alsa_backends_say_which_package_is_missing(backend: str) -> None:
    with pytest.raises(HardwareError, match=r"pyalsaaudio is not installed: pip install 'hookflash\[pi\]'"):
        open_board(BoardConfig(backend=backend))


@pytest.mark.skipif(importlib.util.find_spec("spidev") is not None, reason="spidev is installed")
def test_proslic_says_which_package_is_missing() -> None:
    with pytest.raises(HardwareError, match=r"spidev is not installed: pip install 'hookflash\[pi\]'"):
        open_board(BoardConfig(backend="proslic"))
