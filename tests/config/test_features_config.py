"""The feature keys of the config file: `[star_codes]`, `[restriction_classes]`, `[ports.features]`."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.config import ConfigError, load_config
from firmware.config.store import ConfigStore
from firmware.line.features import DEFAULT_STAR_CODES, FeatureState

FULL = """
[star_codes]
dnd_on = "*50"
dnd_off = "*51"
[restriction_classes]
international = "011x."
premium = "(1900xxxxxxx|1976xxxxxxx)"
[[ports]]
extension = "101"
mwi_subscribe = true
voicemail = "*97"
[ports.features]
forward_no_answer = "2125551234"
forward_no_answer_s = 15
dnd = true
anonymous = true
warm_line = "911"
warm_line_s = 4
restrict = ["international", "premium"]
disabled = ["redial"]
[[ports]]
extension = "102"
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(text)
    return [str(e) for e in info.value.errors]


def test_features_reach_the_line_config() -> None:
    cfg = load_config(FULL)
    f = cfg.port_features(0)
    assert f.codes["dnd_on"] == "*50" and f.codes["forward_always_on"] == "*72", "NANPA default kept"
    assert f.forward_no_answer_s == 15.0 and f.anonymous and f.warm_line == "911" and f.warm_line_s == 4.0
    assert [r.name for r in f.restrictions] == ["international", "premium"]
    assert f.restrictions[0].matches("01144123") and not f.restrictions[0].matches("2125551234")
    assert f.restrictions[1].matches("19005551234") and not f.restrictions[1].matches("18005551234")
    assert f.disabled == frozenset({"redial"})
    assert cfg.port_feature_state(0) == FeatureState(forward_no_answer="2125551234", dnd=True)
    plain = cfg.port_features(1)
    assert not plain.restrictions and not plain.anonymous and not plain.warm_line
    assert dict(load_config('[[ports]]\nextension = "101"\n').star_codes) == DEFAULT_STAR_CODES
    assert cfg.ports[0].mwi_subscribe and cfg.ports[0].voicemail == "*97" and not cfg.ports[1].mwi_subscribe


def test_every_bad_feature_key_is_reported_against_its_field() -> None:
    bad = """
[star_codes]
dnd_on = "78"
dnd_off = "*7"
redial = "*66"
[restriction_classes]
International = "011x."
premium = "(19[00"
[[ports]]
extension = "101"
[ports.features]
forward_always = "sip:x"
forward_no_answer_s = 2
restrict = ["intl"]
disabled = ["dnd", "teleport"]
dnn = true
"""
    found = errors(bad)
    assert any(e.startswith("star_codes.dnd_on: must be * or #") for e in found)
    assert any(e.startswith("star_codes.dnd_off: *7 is the same as or the start of") for e in found)
    assert any(e.startswith("restriction_classes.International: class names") for e in found)
    assert any(e.startswith("restriction_classes.premium:") for e in found)
    assert "ports[0].features.forward_always: must be 1-32 of 0-9 * #" in found
    assert "ports[0].features.forward_no_answer_s: must be 6..300, got 2" in found
    assert any(e.startswith("ports[0].features.restrict[0]: no restriction class 'intl'") for e in found)
    assert any(e.startswith("ports[0].features.disabled[1]: must be one of") for e in found)
    assert any(e.startswith("ports[0].features.dnn: unknown key; did you mean 'dnd'?") for e in found)
    assert len(found) == 9, found


def test_features_survive_a_save_and_load(tmp_path: Path) -> None:
    cfg = load_config(FULL)
    store = ConfigStore(tmp_path / "hookflash.toml")
    store.save(cfg)
    assert store.load() == cfg
    assert "[ports.features]" in (tmp_path / "hookflash.toml").read_text()


ACCOUNTS = """
[sip]
registrar = "pbx.example.com"
[[ports]]
extension = "201"
password = "home-pw"
[[ports.accounts]]
extension = "301"
password = "work-pw"
display_name = "Business"
ring_cadence = "bellcore-dr2"
prefix = "8"
[[ports]]
extension = "202"
"""


def test_a_second_account_on_a_port_registers_and_keeps_the_old_names() -> None:
    cfg = load_config(ACCOUNTS)
    names = [(a.name, a.user, a.display_name) for a in cfg.to_ua_config().accounts]
    assert names == [("0", "201", None), ("1", "202", None), ("0.1", "301", "Business")]
    assert cfg.port_ring_cadence(0) == "normal" and cfg.port_ring_cadence(0, 1) == "bellcore-dr2"
    assert cfg.outgoing_account(0, "82125551234") == ("0.1", "2125551234"), "prefix 8: the business line"
    assert cfg.outgoing_account(0, "2125551234") == ("0", "2125551234")
    assert cfg.outgoing_account(1, "82125551234") == ("1", "82125551234")


def test_account_errors_are_per_field(tmp_path: Path) -> None:
    found = errors(ACCOUNTS.replace('extension = "202"', 'extension = "301"').replace(
        'prefix = "8"', 'prefix = "8x"\n[[ports.accounts]]\nextension = "5"\nring_cadence = "odd"'))
    assert "ports[0].accounts[0].prefix: must be 1-4 of 0-9 * #" in found
    assert "ports[0].accounts[1].extension: must be 2-15 digits" in found
    assert any(e.startswith("ports[0].accounts[1].ring_cadence: unknown ring cadence") for e in found)
    assert "ports[1].extension: 301 is already used by ports[0].accounts[0]" in found
    cfg = load_config(ACCOUNTS)
    store = ConfigStore(tmp_path / "hookflash.toml")
    store.save(cfg)
    assert store.load() == cfg and "[[ports.accounts]]" in (tmp_path / "hookflash.toml").read_text()


def test_an_account_star_code_reaches_the_line_and_may_not_hide_another_code() -> None:
    cfg = load_config(ACCOUNTS.replace('prefix = "8"', 'prefix = "8"\nstar_code = "*81"'))
    assert cfg.ports[0].accounts[0].star_code == "*81"
    assert cfg.port_features(0).account_codes == {"*81": 1} and cfg.port_features(1).account_codes == {}
    assert cfg.outgoing_account(0, "82125551234", 1) == ("0.1", "82125551234"), "chosen: sent as dialled"
    more = "".join(f'\n[[ports.accounts]]\nextension = "{ext}"\nstar_code = "{code}"'
                   for ext, code in (("302", "*5"), ("303", "*51"), ("304", "81")))
    found = errors(ACCOUNTS.replace('prefix = "8"', f'star_code = "*8"{more}'))
    assert found == [
        "ports[0].accounts[0].star_code: *8 clashes with *82 (star_codes.show_id_call): neither may be the "
        "start of the other",
        "ports[0].accounts[2].star_code: *51 clashes with *5 (accounts[1]): neither may be the start of the "
        "other",
        "ports[0].accounts[3].star_code: must be * or # and 1-4 digits, e.g. *81"]
    moved = ACCOUNTS.replace('prefix = "8"', 'star_code = "*41"').replace("[[ports]]", '[star_codes]\n'
                                                                           'redial = "*4"\n[[ports]]', 1)
    assert errors(moved) == ["ports[0].accounts[0].star_code: *41 clashes with *4 (star_codes.redial): "
                             "neither may be the start of the other"]
