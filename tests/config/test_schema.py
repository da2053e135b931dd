"""Validation of the config schema: every error reported, at its field, with a useful message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from firmware.config import DEFAULT_DIAL_PLAN, ConfigError, FieldError, Secret, load_config, parse_config
from firmware.config.store import dumps, to_dict
from firmware.sip.policy import DROP, Action
from firmware.sip.uri import SipUri
from hal.hook import HookTiming

EXAMPLE = Path(__file__).parents[2] / "examples" / "hookflash.toml"
PORT = '[[ports]]\nextension = "101"\n'


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(text)
    return [str(e) for e in info.value.errors]


def test_example_file_is_two_sim_ports_without_pbx() -> None:
    cfg = load_config(EXAMPLE)
    assert [p.extension for p in cfg.ports] == ["101", "102"]
    assert cfg.hardware.backend == "sim" and cfg.hardware.ports == 2
    assert cfg.regional.country == "US"
    assert cfg.intercom_only


def test_the_commented_pbx_block_in_the_example_is_valid(tmp_path: Path) -> None:
    ca = tmp_path / "pbx-ca.pem"
    ca.write_text("dummy")
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith('registrar = ""'):
            continue
        if re.match(r"# [a-z_]+ = |# \[", line):
            line = line[2:]
        lines.append(line.replace("/etc/hookflash/pbx-ca.pem", str(ca)))
    cfg = load_config("\n".join(lines))
    assert cfg.sip.registrar == "pbx.example.com:5060"
    assert cfg.sip.dns_servers == ("192.0.2.53",)
    assert cfg.hardware.gpio_pins == ((17, 27, 22), (23, 24, 25))
    assert cfg.ports[0].dial_plan == DEFAULT_DIAL_PLAN
    assert cfg.ports[0].features.restrict == ("international",) and not cfg.ports[1].features.restrict
    assert dict(cfg.restriction_classes)["premium"] == "(1900xxxxxxx|1976xxxxxxx)"


def test_defaults_fill_everything_but_the_extension() -> None:
    cfg = load_config(PORT)
    port = cfg.ports[0]
    assert port.enabled and port.dial_plan == DEFAULT_DIAL_PLAN and port.hotline == ""
    assert cfg.sip.transport == "udp" and cfg.sip.accept_only_from_proxy and cfg.sip.unknown_source == "403"
    assert cfg.system.history_db == Path("/var/lib/hookflash/history.db")
    assert cfg.hardware.hook_timing == HookTiming()


def test_all_errors_are_collected_with_their_paths() -> None:
    text = """
[system]
log_level = "loud"
[hardware]
ports = true
[sip]
transport = "sctp"
expires = 5
[[ports]]
extension = "1"
hotline = "12a"
[[ports]]
extension = 102
"""
    assert errors(text) == [
        "system.log_level: must be one of debug, info, warning, error, got 'loud'",
        "hardware.ports: must be an integer, got a boolean",
        "sip.transport: must be one of udp, tcp, tls, got 'sctp'",
        "sip.expires: must be 60..86400, got 5",
        "ports[0].extension: must be 2-15 digits",
        "ports[0].hotline: must be 1-32 of 0-9 * #",
        "ports[1].extension: must be a string, got an integer",
    ]


def test_unknown_keys_are_errors_with_a_hint() -> None:
    text = f'[sytem]\n[sip]\nregistar = "pbx"\n{PORT}pasword = "x"\n'
    assert errors(text) == [
        "sip.registar: unknown key; did you mean 'registrar'?",
        "ports[0].pasword: unknown key; did you mean 'password'?",
        "sytem: unknown key; did you mean 'system'?",
    ]


def test_unknown_key_without_a_close_match_lists_the_known_ones() -> None:
    assert errors(f"[regional]\nzzz = 1\n{PORT}") == [
        "regional.zzz: unknown key; known keys: country, callerid, ring_cadence"]


def test_missing_extension_and_missing_ports_are_reported() -> None:
    assert errors('[[ports]]\ndisplay_name = "x"\n') == ["ports[0].extension: is required"]
    assert errors("") == ["ports: at least one [[ports]] block is required"]
    assert errors('ports = "101"\n')[0] == "ports: must be an array of tables ([[ports]] blocks)"
    assert errors(f'sip = "pbx"\n{PORT}') == ["sip: must be a table, got a string"]


def test_duplicate_extensions_and_too_many_ports() -> None:
    text = "[hardware]\nports = 1\n" + PORT * 2
    assert errors(text) == ["ports: 2 ports configured but hardware.ports is 1",
                            "ports[1].extension: 101 is already used by ports[0]"]


@pytest.mark.parametrize("registrar", ["pbx.example.com", "pbx:5061", "192.0.2.1:5060", "[2001:db8::1]:5060",
                                       "[2001:db8::1]"])
def test_registrar_accepts_host_and_port(registrar: str) -> None:
    assert load_config(f'[sip]\nregistrar = "{registrar}"\n{PORT}').sip.registrar == registrar


@pytest.mark.parametrize("registrar", ["pbx:", "pbx:0", "pbx:70000", "pbx:x", "bad host", "[2001:db8::1",
                                       "2001:db8::1", "sip:pbx"])
def test_registrar_rejects_bad_syntax(registrar: str) -> None:
    assert errors(f'[sip]\nregistrar = "{registrar}"\n{PORT}') == [
        f"sip.registrar: must be host or host:port (port 1-65535), got {registrar!r}"]


def test_proxy_needs_a_registrar_and_domain_takes_no_port() -> None:
    assert errors(f'[sip]\noutbound_proxy = "proxy"\ndomain = "example.com:5060"\n{PORT}') == [
        "sip.domain: must be a host name without port, got 'example.com:5060'",
        "sip.outbound_proxy: needs sip.registrar (without a registrar the ports are intercom only)"]


def test_tls_ca_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    assert errors(f'[sip]\ntls_ca_file = "{missing}"\n{PORT}') == [
        f"sip.tls_ca_file: file not found: {missing}"]
    missing.write_text("pem")
    assert load_config(f'[sip]\ntls_ca_file = "{missing}"\n{PORT}').sip.tls_ca_file == str(missing)


def test_dns_servers_must_be_ip_addresses() -> None:
    assert errors(f'[sip]\ndns_servers = ["192.0.2.1", "dns.example", 53]\n{PORT}') == [
        "sip.dns_servers[1]: must be an IP address, got 'dns.example'",
        "sip.dns_servers[2]: must be a string, got an integer"]


def test_country_is_checked_and_normalised() -> None:
    assert load_config(f'[regional]\ncountry = "gb"\n{PORT}').regional.country == "UK"
    (message,) = errors(f'[regional]\ncountry = "XX"\n{PORT}')
    assert message.startswith("regional.country: unknown country 'XX'; available: AT, AU")


def test_ring_cadences_are_checked_against_the_country() -> None:
    cfg = load_config(f'[regional]\nring_cadence = "Bellcore-dr2"\n{PORT}ring_cadence = "bellcore-dr3"\n')
    assert cfg.port_ring_cadence(0) == "bellcore-dr3"
    (message,) = errors(f'{PORT}ring_cadence = "waltz"\n')
    assert message.startswith("ports[0].ring_cadence: unknown ring cadence 'waltz'; available: ")


def test_callerid_auto_follows_the_country_and_ports_override() -> None:
    cfg = load_config(f'[regional]\ncountry = "UK"\n{PORT}[[ports]]\nextension = "102"\ncallerid = "dtmf"\n')
    assert [cfg.port_callerid(0), cfg.port_callerid(1)] == ["v23", "dtmf"]
    assert load_config(PORT).port_callerid(0) == "bell202"
    assert errors(f'{PORT}callerid = "fsk"\n') == [
        "ports[0].callerid: must be one of auto, bell202, v23, dtmf (or absent), got 'fsk'"]


def test_hardware_pins_and_flash_window() -> None:
    text = '[hardware]\nbackend = "ag1171"\nports = 3\ngpio_pins = [[17, 27, 22], [1, 2, 99]]\n' + PORT
    assert errors(text) == ["hardware.gpio_pins[1]: must be [RM, F/R, SHK] BCM pins 0..27, got [1, 2, 99]",
                            "hardware.gpio_pins: 3 ports need 3 pin triples, got 2"]
    assert errors(f"[hardware]\nflash_min_ms = 50\n{PORT}") == [
        "hardware.flash_min_ms: must satisfy 95 <= flash_min_ms < flash_max_ms (shorter breaks are "
        "pulse digits), got 50..700"]


def test_hotline_and_dial_plan_are_checked() -> None:
    assert errors(f'{PORT}hotline = "911x"\ndial_plan = "(xx|[9-1])"\n') == [
        "ports[0].dial_plan: dial plan error at position 7: bad range 9-1: needs two digits, low first",
        "ports[0].hotline: must be 1-32 of 0-9 * #"]
    assert load_config(f'{PORT}dial_plan = "<9:>xx.|1xx"\n').ports[0].dial_plan == "<9:>xx.|1xx"


def test_polarity_reversal_is_a_per_port_flag() -> None:
    assert not load_config(PORT).ports[0].polarity_reversal
    assert load_config(f"{PORT}polarity_reversal = true\n").ports[0].polarity_reversal
    assert errors(f'{PORT}polarity_reversal = "yes"\n') == [
        "ports[0].polarity_reversal: must be true or false, got a string"]


def test_hook_flash_features_are_per_port_flags_on_by_default() -> None:
    port = load_config(PORT).ports[0]
    assert port.call_waiting and port.three_way and port.transfer
    off = load_config(f"{PORT}call_waiting = false\nthree_way = false\ntransfer = false\n").ports[0]
    assert not (off.call_waiting or off.three_way or off.transfer)
    assert errors(f"{PORT}transfer = 1\n") == ["ports[0].transfer: must be true or false, got an integer"]


def test_gains_are_half_db_steps_within_12_db() -> None:
    port = load_config(PORT).ports[0]
    assert (port.rx_gain_db, port.tx_gain_db) == (0.0, 0.0)
    port = load_config(f"{PORT}rx_gain_db = 6\ntx_gain_db = -1.5\n").ports[0]
    assert (port.rx_gain_db, port.tx_gain_db) == (6.0, -1.5) and isinstance(port.rx_gain_db, float)
    cfg = load_config(f"{PORT}rx_gain_db = -12.0\ntx_gain_db = 12\n")
    assert cfg.ports[0].tx_gain_db == 12.0
    assert load_config(dumps(to_dict(cfg))) == cfg  # the web's saves write them back as TOML floats
    assert errors(f'{PORT}rx_gain_db = 12.5\ntx_gain_db = 0.3\n') == [
        "ports[0].rx_gain_db: must be -12 to +12 dB in 0.5 dB steps, got 12.5",
        "ports[0].tx_gain_db: must be -12 to +12 dB in 0.5 dB steps, got 0.3"]
    assert errors(f'{PORT}rx_gain_db = "6"\ntx_gain_db = true\ntx_gain_db_x = 1\n') == [
        "ports[0].rx_gain_db: must be a number of dB, got a string",
        "ports[0].tx_gain_db: must be a number of dB, got a boolean",
        "ports[0].tx_gain_db_x: unknown key; did you mean 'tx_gain_db'?"]
    assert errors(f"{PORT}rx_gain_db = nan\n") == [
        "ports[0].rx_gain_db: must be -12 to +12 dB in 0.5 dB steps, got nan"]


def test_passwords_never_show_in_reprs() -> None:
    cfg = load_config(f'{PORT}password = "hunter2"\n')
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.ports[0])
    assert repr(cfg.ports[0].password) == "******"
    assert cfg.ports[0].password.reveal() == "hunter2"
    assert cfg.ports[0].password == Secret("hunter2") != Secret("other")


def test_migration_from_version_0_renames_server_to_registrar() -> None:
    cfg = load_config(f'[sip]\nserver = "pbx.example.com"\n{PORT}')
    assert cfg.sip.registrar == "pbx.example.com"
    (message,) = errors(f'version = 1\n[sip]\nserver = "pbx"\n{PORT}')
    assert message.startswith("sip.server: unknown key")


def test_newer_versions_are_refused() -> None:
    assert errors(f"version = 2\n{PORT}") == [
        "version: must be an integer 0..1 (this firmware reads up to 1), got 2"]


def test_syntax_errors_and_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    assert errors("x = ")[0].startswith("TOML syntax error: ")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml")
    assert info.value.errors == [FieldError("", "cannot read: No such file or directory")]


def test_parse_config_does_not_modify_its_input() -> None:
    data = {"sip": {"server": "pbx"}, "ports": [{"extension": "101"}]}
    parse_config(data)
    assert data == {"sip": {"server": "pbx"}, "ports": [{"extension": "101"}]}


SIP_TEXT = """
[sip]
registrar = "pbx.example.com:5070"
secondary_registrar = "192.0.2.9"
transport = "tcp"
expires = 600
local_port = 5062
tls_verify = false
accept_only_from_proxy = false
unknown_source = "drop"
dns_servers = ["192.0.2.53"]
[[ports]]
extension = "101"
auth_user = "a101"
password = "s3cret"
display_name = "Kitchen"
[[ports]]
extension = "102"
enabled = false
"""


def test_to_ua_and_agent_config() -> None:
    agent = load_config(SIP_TEXT).to_agent_config()
    ua = agent.ua
    assert ua.domain == "pbx.example.com"
    assert ua.registrar == SipUri("sip", None, "pbx.example.com", 5070)
    assert ua.secondary_registrar == SipUri("sip", None, "192.0.2.9", None)
    assert ua.outbound_proxy is None
    assert (ua.transport, ua.expires) == ("tcp", 600)
    assert [(a.name, a.user, a.auth_user, a.password, a.display_name) for a in ua.accounts] == [
        ("0", "101", "a101", "s3cret", "Kitchen")]
    assert ua.policy.trust_any_source and ua.policy.reject == DROP
    assert (agent.local_port, agent.tls_verify, agent.tls_ca_file, agent.nameservers) == (
        5062, False, None, ("192.0.2.53",))


def test_ua_defaults_reply_403_and_use_the_system_resolver() -> None:
    agent = load_config(f'[sip]\nregistrar = "pbx"\ndomain = "example.com"\n{PORT}').to_agent_config()
    assert agent.ua.domain == "example.com" and agent.nameservers is None
    assert not agent.ua.policy.trust_any_source
    assert (agent.ua.policy.reject.action, agent.ua.policy.reject.status) == (Action.REPLY, 403)
    assert agent.ua.accounts[0].auth_user is None and agent.ua.accounts[0].display_name is None


def test_intercom_config_has_no_ua() -> None:
    with pytest.raises(ValueError, match="intercom only"):
        load_config(PORT).to_ua_config()


def test_to_board_config() -> None:
    text = ('[regional]\ncountry = "DE"\n[hardware]\nbackend = "proslic"\nports = 2\nspi_bus = 1\n'
            'proslic_reset_pin = 4\nflash_min_ms = 120\nflash_max_ms = 600\n' + PORT)
    board = load_config(text).to_board_config(sim_realtime=False)
    assert (board.backend, board.ports, board.country, board.spi_bus, board.spi_chip_selects) == (
        "proslic", 2, "DE", 1, (0, 1))
    assert board.proslic_reset_pin == 4 and not board.sim_realtime
    assert (board.timing.flash_min, board.timing.flash_max) == (0.12, 0.6)
    assert load_config(PORT).to_board_config().proslic_reset_pin is None
