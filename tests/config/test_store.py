"""The config file on disk: round trips, atomic replacement, backups, permissions, migrations."""

from __future__ import annotations

import dataclasses
import os
import stat
import tomllib
from pathlib import Path

import pytest

from firmware.config import ConfigError, ConfigStore, Secret, load_config
from firmware.config.store import dumps, to_dict

FULL = r"""
[system]
log_level = "debug"
data_dir = "/srv/hf"
[hardware]
backend = "ag1171"
ports = 2
gpio_pins = [[1, 2, 3], [4, 5, 6]]
proslic_reset_pin = 7
flash_min_ms = 150
[regional]
country = "UK"
callerid = "dtmf"
[sip]
registrar = "[2001:db8::1]:5061"
transport = "tls"
dns_servers = ["192.0.2.53", "2001:db8::53"]
[[ports]]
extension = "101"
password = "q\"uo\\te\u00e9\u007f"
display_name = "Küche"
[[ports]]
extension = "102"
enabled = false
hotline = "*97"
"""


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    return ConfigStore(tmp_path / "hookflash.toml")


def test_save_then_load_gives_the_same_config(store: ConfigStore) -> None:
    cfg = load_config(FULL)
    store.save(cfg)
    assert store.load() == cfg
    assert cfg.ports[0].password.reveal() == 'q"uo\\teé\x7f'


def test_saved_file_is_versioned_toml_readable_by_tomllib(store: ConfigStore) -> None:
    cfg = load_config(FULL)
    store.save(cfg)
    doc = tomllib.loads(store.path.read_text())
    assert doc == to_dict(cfg) and doc["version"] == 1
    no_pin = tomllib.loads(dumps(to_dict(load_config('[[ports]]\nextension = "10"'))))
    assert "proslic_reset_pin" not in no_pin["hardware"]


def test_file_is_private_and_previous_one_is_kept(store: ConfigStore) -> None:
    first = load_config('[[ports]]\nextension = "101"\n')
    second = load_config('[[ports]]\nextension = "202"\n')
    store.save(first)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert not store.backup_path.exists()
    store.save(second)
    assert store.load() == second
    assert load_config(store.backup_path) == first
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["hookflash.toml", "hookflash.toml.bak"]


def test_failure_after_writing_the_temp_file_leaves_the_original(store: ConfigStore,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store.save(load_config('[[ports]]\nextension = "101"\n'))
    before = store.path.read_bytes()
    written: list[str] = []

    def crash(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        written.append(Path(src).read_text())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        store.save(load_config('[[ports]]\nextension = "202"\n'))
    assert 'extension = "202"' in written[0]
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["hookflash.toml", "hookflash.toml.bak"]


def test_invalid_config_is_never_written(store: ConfigStore) -> None:
    good = load_config('[[ports]]\nextension = "101"\n')
    store.save(good)
    bad = dataclasses.replace(good, ports=(dataclasses.replace(good.ports[0], extension="x"),))
    with pytest.raises(ConfigError, match=r"ports\[0\].extension: must be 2-15 digits"):
        store.save(bad)
    assert store.load() == good


def test_version_0_file_loads_and_saves_as_version_1(store: ConfigStore) -> None:
    store.path.write_text('[sip]\nserver = "pbx.example.com"\n'
                          '[[ports]]\nextension = "101"\npassword = "pw"\n')
    cfg = store.load()
    assert cfg.sip.registrar == "pbx.example.com" and cfg.ports[0].password == Secret("pw")
    store.save(cfg)
    doc = tomllib.loads(store.path.read_text())
    assert doc["version"] == 1 and doc["sip"]["registrar"] == "pbx.example.com" and "server" not in doc["sip"]


def test_load_errors_are_config_errors(store: ConfigStore) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        store.load()
