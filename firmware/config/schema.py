"""The config file's schema: typed, frozen sections with defaults, and a validator that reports every
problem at once, each against the exact field (``ports[0].extension: must be 2-15 digits``).

A user editing a TOML file by hand on a Pi needs all errors in one pass and a hint for typos, not the
first exception from deep inside the SIP stack; so every value is checked here, before any part of
the gateway sees it. Unknown keys are errors (a misspelt ``pasword`` would otherwise be silently
ignored and the port would fail to register). Port indices in error paths count from 0, in the order
of the ``[[ports]]`` blocks.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from dsp.tones import countries, ring_cadence
from dsp.tones import country as country_info
from firmware.line.dialplan import DialPlan, DialPlanError
from firmware.line.features import (
    DEFAULT_STAR_CODES,
    FEATURES,
    FeatureConfig,
    FeatureName,
    FeatureState,
    RestrictionClass,
)
from firmware.sip.agent import AgentConfig
from firmware.sip.policy import DROP, Action, Decision, PolicyConfig
from firmware.sip.ua import AccountConfig, UaConfig
from firmware.sip.uri import SipUri, UriError, parse_host, parse_port
from hal.backends import BACKENDS, BoardConfig
from hal.hook import HookTiming

SCHEMA_VERSION = 1

LOG_LEVELS = ("debug", "info", "warning", "error")
CALLERID_STANDARDS = ("auto", "bell202", "v23", "dtmf")
TRANSPORTS = ("udp", "tcp", "tls")
UNKNOWN_SOURCE_ACTIONS = ("403", "drop")
HTTPS_MODES = ("auto", "on", "off")

DEFAULT_DIAL_PLAN = "(*xx|[2-9]11|[1-9]xx|[2-9]xx[2-9]xxxxxx|1[2-9]xx[2-9]xxxxxx|011x.)"
"""North American: feature codes, N11 services, 3-digit extensions, 10-digit, 1+10-digit, 011 intl."""

GAIN_LIMIT_DB = 12.0
GAIN_STEP_DB = 0.5
"""Port gains run -12..+12 dB in 0.5 dB steps. ATAs offer about this much trim (Cisco IOS FXS
``input gain``/``output attenuation`` in 1 dB steps, Eltex TAU in 0.1 dB); more only helps a broken
phone: +12 dB already takes nominal speech (-20 dBm0 average, peaks ~ -8 dBm0) near the G.711
overload point (+3.14 dBm0), where the pipeline saturates rather than wraps."""
_EXTENSION_RE = re.compile(r"[0-9]{2,15}")
_DIGITS_RE = re.compile(r"[0-9*#]{1,32}")
_STAR_CODE_RE = re.compile(r"[*#][0-9]{1,4}")
_CLASS_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")


class Secret:
    """A password that never shows in a repr, a log line or a traceback; `reveal()` is the only way
    out, so every use of the clear text is greppable."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "******" if self._value else "''"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class FieldError:
    path: str
    """Dotted path to the field, e.g. ``ports[1].extension``; empty for whole-file problems."""
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """Everything wrong with a config, collected, so the user fixes it in one edit."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


@dataclass(frozen=True)
class SystemConfig:
    log_level: str = "info"
    data_dir: str = "/var/lib/hookflash"
    """Where the call history database lives (writable, survives reboots)."""

    @property
    def history_db(self) -> Path:
        return Path(self.data_dir) / "history.db"

    @property
    def features_db(self) -> Path:
        """What the phones programmed by star code (forwarding, DND, speed dial)."""
        return Path(self.data_dir) / "features.db"


_BOARD = BoardConfig()
"""The HAL's defaults: the config file's hardware section defaults to exactly them."""


@dataclass(frozen=True)
class HardwareConfig:
    """The board; field meanings are `hal.backends.BoardConfig`'s. Flash limits are in ms here
    because that is how phone manuals state them."""

    backend: str = _BOARD.backend
    ports: int = _BOARD.ports
    alsa_capture: str = _BOARD.alsa_capture
    alsa_playback: str = _BOARD.alsa_playback
    gpio_pins: tuple[tuple[int, int, int], ...] = _BOARD.gpio_pins
    serial_device: str = _BOARD.serial_device
    serial_baudrate: int = _BOARD.serial_baudrate
    spi_bus: int = _BOARD.spi_bus
    spi_chip_selects: tuple[int, ...] = _BOARD.spi_chip_selects
    proslic_reset_pin: int | None = _BOARD.proslic_reset_pin
    flash_min_ms: int = 100
    flash_max_ms: int = 700

    @property
    def hook_timing(self) -> HookTiming:
        return HookTiming(flash_min=self.flash_min_ms / 1000, flash_max=self.flash_max_ms / 1000)


@dataclass(frozen=True)
class RegionalConfig:
    country: str = "US"
    """Two-letter country code; sets the tones, ring cadences and caller-ID standard phones there expect."""
    callerid: str = "auto"
    """``auto`` uses the country's standard (dsp.tones); or ``bell202``, ``v23``, ``dtmf``."""
    ring_cadence: str = "normal"
    """``normal``, or a distinctive ring listed on the Regional page (e.g. ``bellcore-dr2``)."""


@dataclass(frozen=True)
class SipConfig:
    registrar: str = ""
    """``host[:port]``; empty means no PBX: the ports only call each other (intercom)."""
    secondary_registrar: str = ""
    """``host[:port]`` of a backup registrar, used when the registrar times out or answers 5xx (back
    to the registrar at a later refresh); empty means none."""
    outbound_proxy: str = ""
    """``host[:port]`` every request is sent through (RFC 3261 §8.1.2), if your provider asks for
    one; empty means straight to the registrar."""
    domain: str = ""
    """AOR domain; empty means the registrar's host."""
    transport: str = "udp"
    """How SIP travels to the PBX: ``udp`` (most PBXs), ``tcp``, or ``tls`` (encrypted, usually port 5061)."""
    expires: int = 3600
    """Seconds a registration lasts before it is renewed (60..86400; the PBX may shorten it)."""
    local_port: int = 5060
    """The gateway's own SIP port; 0 picks any free one."""
    tls_ca_file: str = ""
    """Empty means the system's CA store."""
    tls_verify: bool = True
    """Refuse a TLS server whose certificate does not match its name; turn off only for a PBX with a
    self-signed certificate you trust."""
    accept_only_from_proxy: bool = True
    """Take requests only from the registrar/proxy addresses: stops SIP scanners ringing the phones."""
    unknown_source: str = "403"
    """What a refused request gets: ``403`` (an answer, tells a misconfigured PBX what is wrong) or
    ``drop`` (silence, gives a scanner nothing)."""
    dns_servers: tuple[str, ...] = ()
    """Empty means the system's resolvers."""


@dataclass(frozen=True)
class WebConfig:
    """The onboard web page and REST API (web/)."""

    enabled: bool = True
    listen: str = "127.0.0.1:8080"
    """``host:port``; ``0.0.0.0:443`` (or ``[::]:443``) serves the whole network."""
    https: str = "auto"
    """``auto``: HTTPS unless `listen` is a loopback address (a certificate is made on first start)."""
    cert_file: str = ""
    """The owner's PEM certificate (chain); empty means the self-signed one in `system.data_dir`."""
    key_file: str = ""

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = _split_hostport(self.listen)
        return host.strip("[]"), port or 8080

    @property
    def url(self) -> str:
        host, port = self.host_port
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else \
            f"[{host}]" if ":" in host else host
        return f"{'https' if self.uses_https else 'http'}://{shown}:{port}/"

    @property
    def uses_https(self) -> bool:
        if self.https != "auto":
            return self.https == "on"
        host = self.host_port[0]
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:
            return host != "localhost"


@dataclass(frozen=True)
class PortConfig:
    extension: str
    """SIP user at the PBX, and the number other ports dial in intercom mode."""
    enabled: bool = True
    """Off: the port neither registers nor answers; its phone gets no dial tone."""
    auth_user: str = ""
    """The user name of the SIP password, if your PBX gives one that differs from the extension;
    empty means the extension."""
    password: Secret = field(default_factory=lambda: Secret(""))
    """The extension's SIP password at the PBX (write-only: never shown again)."""
    display_name: str = ""
    """The name callers see (up to 64 characters); empty means none."""
    dial_plan: str = DEFAULT_DIAL_PLAN
    """Which numbers this phone can dial and when dialling is complete, in the digit-map syntax of
    Cisco/Linksys ATAs: ``x`` any digit, ``[2-9]`` a range, ``.`` repeat, ``|`` between numbers."""
    callerid: str = ""
    """How caller ID is sent to this phone; empty means the Regional setting (`regional.callerid`)."""
    ring_cadence: str = ""
    """The ring pattern of this phone; empty means the Regional setting (`regional.ring_cadence`)."""
    hotline: str = ""
    """Number dialled as soon as the phone goes off hook; empty means dial tone as usual."""
    polarity_reversal: bool = False
    """Reverse the loop polarity while a call is answered, restore it when the call ends (answer and
    far-end disconnect supervision for payphones and call meters)."""
    mwi_subscribe: bool = False
    """Subscribe to the mailbox's message-summary (RFC 3842) rather than wait for unsolicited NOTIFYs."""
    voicemail: str = ""
    """The mailbox to subscribe to (e.g. the PBX's voicemail number); empty: the port's own extension."""
    call_waiting: bool = True
    """A second call during a call gets call-waiting tone and type II caller ID, not 486 Busy Here."""
    three_way: bool = True
    """Hook flash in a call holds it for a consultation call; a second flash joins all three."""
    transfer: bool = True
    """Hang-up during a consultation transfers the held party (REFER); the PBX may transfer us too."""
    rx_gain_db: float = 0.0
    """Earpiece volume: dB added to the caller's voice heard on this phone (-12 to +12, in 0.5 dB
    steps; 0 is the network's level). Tones and caller ID keep their standard levels."""
    tx_gain_db: float = 0.0
    """Mouthpiece volume: dB added to this phone's voice sent to the caller (-12 to +12, in 0.5 dB
    steps; 0 is the phone's own level). Raise it if callers hear you faintly."""
    features: PortFeatures = field(default_factory=lambda: PortFeatures())
    """The ``[ports.features]`` sub-table."""
    accounts: tuple[ExtraAccount, ...] = ()
    """Further SIP accounts on the same phone (``[[ports.accounts]]``), e.g. a business line."""


@dataclass(frozen=True)
class ExtraAccount:
    """A second (third...) SIP account of a port: it registers on its own, its calls ring the same
    phone with their own cadence, and numbers dialled with its `prefix` or after its `star_code` go
    out on it."""

    extension: str
    auth_user: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    display_name: str = ""
    ring_cadence: str = ""
    """Empty means the port's cadence; a PBX's Alert-Info still wins per call."""
    prefix: str = ""
    """Dialled before a number to call out on this account (stripped); empty: no prefix."""
    star_code: str = ""
    """Keys (e.g. *81) that make the next call go out on this account: dial them, hear dial tone
    again, dial the number; empty: none. Must not clash with the star codes."""


def account_name(port: int, index: int = 0) -> str:
    """The SIP account name of a port's `index`-th account: "0" for port 0's own (as before several
    accounts existed), "0.1", "0.2"... for its `accounts`."""
    return str(port) if index == 0 else f"{port}.{index}"


def account_port(name: str) -> tuple[int, int]:
    """`account_name`'s inverse: (port, account index)."""
    port, _, index = name.partition(".")
    return int(port), int(index or 0)


@dataclass(frozen=True)
class PortFeatures:
    """A port's call features (``[ports.features]``). Forwarding targets and DND here are the state
    the port starts with; the phone changes them by star code, and that programmed state (kept in
    ``data_dir``) wins over these values from then on."""

    forward_always: str = ""
    forward_busy: str = ""
    forward_no_answer: str = ""
    forward_no_answer_s: int = 20
    dnd: bool = False
    anonymous: bool = False
    """Every outgoing call anonymous (RFC 3323); *82 shows the identity for one call."""
    warm_line: str = ""
    """Number dialled when no key is pressed within `warm_line_s` of going off hook."""
    warm_line_s: int = 5
    restrict: tuple[str, ...] = ()
    """Names of `restriction_classes` this port may not call."""
    disabled: tuple[FeatureName, ...] = ()
    """Features switched off on this port (their star codes give reorder)."""


@dataclass(frozen=True)
class Config:
    system: SystemConfig = field(default_factory=SystemConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    ports: tuple[PortConfig, ...] = ()
    regional: RegionalConfig = field(default_factory=RegionalConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    web: WebConfig = field(default_factory=WebConfig)
    star_codes: tuple[tuple[str, str], ...] = tuple(DEFAULT_STAR_CODES.items())
    """Star-code name -> keys (``[star_codes]``), NANPA defaults for names not given."""
    restriction_classes: tuple[tuple[str, str], ...] = ()
    """Class name -> digit-map patterns (``[restriction_classes]``), e.g. international = "011x."."""

    def port_features(self, index: int) -> FeatureConfig:
        """The line's feature settings of port `index` (restriction classes compiled)."""
        port = self.ports[index]
        f = port.features
        classes = dict(self.restriction_classes)
        return FeatureConfig(codes=dict(self.star_codes), disabled=frozenset(f.disabled),
                             forward_no_answer_s=float(f.forward_no_answer_s), anonymous=f.anonymous,
                             warm_line=f.warm_line, warm_line_s=float(f.warm_line_s),
                             restrictions=tuple(RestrictionClass(n, DialPlan.parse(classes[n]))
                                                for n in f.restrict),
                             account_codes={a.star_code: k for k, a in enumerate(port.accounts, 1)
                                            if a.star_code})

    def port_feature_state(self, index: int) -> FeatureState:
        """The programmable state a port starts with before the phone has changed anything."""
        f = self.ports[index].features
        return FeatureState(forward_always=f.forward_always, forward_busy=f.forward_busy,
                            forward_no_answer=f.forward_no_answer, dnd=f.dnd)

    @property
    def intercom_only(self) -> bool:
        """No registrar: do not start SIP registration; ports reach each other by extension."""
        return not self.sip.registrar

    def port_callerid(self, index: int) -> str:
        """The caller-ID standard port `index` sends (bell202|v23|dtmf), overrides resolved."""
        chosen = self.ports[index].callerid or self.regional.callerid
        return country_info(self.regional.country).callerid_standard if chosen == "auto" else chosen

    def port_ring_cadence(self, index: int, account: int = 0) -> str:
        """The cadence name for `dsp.tones.ring_cadence(name, country)` of calls to a port's account
        (0: its own), overrides resolved."""
        extra = self.ports[index].accounts[account - 1].ring_cadence if account else ""
        return extra or self.ports[index].ring_cadence or self.regional.ring_cadence

    def outgoing_account(self, index: int, number: str, chosen: int = 0) -> tuple[str, str]:
        """(account name, number to send) for a number port `index` dialled: the extra account
        `chosen` by its star code (1-based; the number as dialled), else an account whose prefix
        starts the number (stripped), else the port's own account."""
        if 0 < chosen <= len(self.ports[index].accounts):
            return account_name(index, chosen), number
        for k, extra in enumerate(self.ports[index].accounts, start=1):
            if extra.prefix and number.startswith(extra.prefix) and len(number) > len(extra.prefix):
                return account_name(index, k), number[len(extra.prefix):]
        return account_name(index), number

    def to_board_config(self, *, sim_realtime: bool = True) -> BoardConfig:
        hw = self.hardware
        shared = {f.name: getattr(hw, f.name) for f in fields(BoardConfig) if hasattr(hw, f.name)}
        return BoardConfig(**shared, country=self.regional.country, timing=hw.hook_timing,
                           sim_realtime=sim_realtime)

    def to_ua_config(self) -> UaConfig:
        """SIP identities of the enabled ports; account names are the port indices as strings."""
        sip = self.sip
        if not sip.registrar:
            raise ValueError("no registrar configured (intercom only): there is no SIP account to run")
        registrar = _sip_uri(sip.registrar)
        accounts = tuple(
            AccountConfig(name=account_name(i), user=p.extension, password=p.password.reveal(),
                          auth_user=p.auth_user or None, display_name=p.display_name or None,
                          mwi_subscribe=p.mwi_subscribe, mailbox=p.voicemail or None,
                          accept_refer=p.transfer)
            for i, p in enumerate(self.ports) if p.enabled) + tuple(
            AccountConfig(name=account_name(i, k), user=a.extension, password=a.password.reveal(),
                          auth_user=a.auth_user or None, display_name=a.display_name or None,
                          accept_refer=p.transfer)
            for i, p in enumerate(self.ports) if p.enabled for k, a in enumerate(p.accounts, start=1))
        reject = Decision(Action.REPLY, 403, "Forbidden") if sip.unknown_source == "403" else DROP
        return UaConfig(
            domain=sip.domain or registrar.host, accounts=accounts, registrar=registrar,
            secondary_registrar=_sip_uri(sip.secondary_registrar) if sip.secondary_registrar else None,
            outbound_proxy=_sip_uri(sip.outbound_proxy) if sip.outbound_proxy else None,
            transport=cast(Literal["udp", "tcp", "tls"], sip.transport), expires=sip.expires,
            policy=PolicyConfig(trust_any_source=not sip.accept_only_from_proxy, reject=reject))

    def to_agent_config(self) -> AgentConfig:
        sip = self.sip
        return AgentConfig(ua=self.to_ua_config(), local_port=sip.local_port,
                           tls_ca_file=sip.tls_ca_file or None, tls_verify=sip.tls_verify,
                           nameservers=sip.dns_servers or None)


def _split_hostport(text: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port); raises UriError."""
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[:end + 1], text[end + 1:]
    else:
        host, _, port = text.partition(":")
        rest = f":{port}" if _ else ""
    if rest and not rest.startswith(":"):
        raise UriError(f"invalid host: {text!r}")
    port_num = parse_port(rest[1:]) if rest else None
    if port_num == 0:
        raise UriError(f"invalid port: {rest[1:]!r}")
    return parse_host(host), port_num


def _sip_uri(text: str) -> SipUri:
    host, port = _split_hostport(text)
    return SipUri("sip", None, host, port)


# ---- migrations ---------------------------------------------------------------------------------

def _v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 (pre-release files, no `version` key) called the registrar `sip.server`."""
    sip = data.get("sip")
    if isinstance(sip, dict) and "server" in sip and "registrar" not in sip:
        sip["registrar"] = sip.pop("server")
    return data


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _v0_to_v1}
"""``MIGRATIONS[n]`` turns a version-n document into version n+1."""


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a parsed document up to SCHEMA_VERSION (in place) and drop the version key."""
    version = data.pop("version", 0)
    if type(version) is not int or not 0 <= version <= SCHEMA_VERSION:
        raise ConfigError([FieldError("version", f"must be an integer 0..{SCHEMA_VERSION} "
                                                 f"(this firmware reads up to {SCHEMA_VERSION}), "
                                                 f"got {version!r}")])
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
    return data


# ---- validation ---------------------------------------------------------------------------------

T = TypeVar("T")


class _Table:
    """Reads one TOML table, recording a FieldError (not raising) for each bad value, so one pass
    reports everything; `finish()` flags the keys nobody asked for."""

    def __init__(self, data: object, path: str, errors: list[FieldError]) -> None:
        self.path, self.errors = path, errors
        if not isinstance(data, dict):
            self.error("", f"must be a table, got {_kind(data)}")
            data = {}
        self.data: dict[str, Any] = data
        self.known: list[str] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(FieldError(".".join(filter(None, (self.path, key))), message))

    def _get(self, key: str, default: T, types: tuple[type, ...], what: str) -> tuple[T, bool]:
        self.known.append(key)
        if key not in self.data:
            return default, False
        value = self.data[key]
        # bool is an int subclass; TOML `true` must not pass as 1.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            self.error(key, f"must be {what}, got {_kind(value)}")
            return default, False
        return cast(T, value), True

    def text(self, key: str, default: str, check: Callable[[str], str | None] | None = None) -> str:
        value, found = self._get(key, default, (str,), "a string")
        if found and check is not None and (problem := check(value)) is not None:
            self.error(key, problem)
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            self.error(key, f"must be one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def flag(self, key: str, default: bool) -> bool:
        return self._get(key, default, (bool,), "true or false")[0]

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value, found = self._get(key, default, (int,), "an integer")
        if found and not lo <= value <= hi:
            self.error(key, f"must be {lo}..{hi}, got {value}")
        return value

    def ints(self, key: str, default: tuple[int, ...], lo: int, hi: int,
                 length: int | None = None) -> tuple[int, ...]:
        value, found = self._get(key, default, (list,), "a list of integers")
        if not found:
            return default
        if (any(type(v) is not int or not lo <= v <= hi for v in value)
                or (length is not None and len(value) != length)):
            size = f"{length} " if length is not None else ""
            self.error(key, f"must be a list of {size}integers {lo}..{hi}, got {value!r}")
            return default
        return tuple(value)

    def decibels(self, key: str, default: float) -> float:
        """A gain in dB within +-GAIN_LIMIT_DB on the GAIN_STEP_DB grid (TOML ``6`` or ``-1.5``)."""
        value, found = self._get(key, default, (int, float), "a number of dB")
        if found and not (abs(value) <= GAIN_LIMIT_DB and (value / GAIN_STEP_DB).is_integer()):
            self.error(key, f"must be {-GAIN_LIMIT_DB:g} to +{GAIN_LIMIT_DB:g} dB in {GAIN_STEP_DB:g} dB "
                            f"steps, got {value!r}")
            return default
        return float(value)

    def texts(self, key: str, check: Callable[[str], str | None]) -> tuple[str, ...]:
        value: list[object] = self._get(key, [], (list,), "a list of strings")[0]
        out: list[str] = []
        for n, item in enumerate(value):
            if not isinstance(item, str):
                self.error(f"{key}[{n}]", f"must be a string, got {_kind(item)}")
            elif (problem := check(item)) is not None:
                self.error(f"{key}[{n}]", problem)
            else:
                out.append(item)
        return tuple(out)

    def finish(self) -> None:
        for key in self.data:
            if key not in self.known:
                close = difflib.get_close_matches(key, self.known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(self.known)}"
                self.error(key, f"unknown key{hint}")


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _check_hostport(text: str) -> str | None:
    try:
        _split_hostport(text)
    except UriError:
        return f"must be host or host:port (port 1-65535), got {text!r}"
    return None


def _check_domain(text: str) -> str | None:
    if not text or (_check_hostport(text) is None and _split_hostport(text)[1] is None):
        return None
    return f"must be a host name without port, got {text!r}"


def _check_ip(text: str) -> str | None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return f"must be an IP address, got {text!r}"
    return None


def _check_dial_plan(text: str) -> str | None:
    """The line's own parser, so a plan that loads is a plan that runs."""
    try:
        DialPlan.parse(text)
    except DialPlanError as exc:
        return str(exc)
    return None


def _system(data: object, errors: list[FieldError]) -> SystemConfig:
    t = _Table(data, "system", errors)
    cfg = SystemConfig(log_level=t.choice("log_level", "info", LOG_LEVELS),
                       data_dir=t.text("data_dir", SystemConfig.data_dir,
                                      lambda v: None if v else "must not be empty"))
    t.finish()
    return cfg


def _hardware(data: object, errors: list[FieldError]) -> HardwareConfig:
    t = _Table(data, "hardware", errors)
    d = HardwareConfig()
    backend = t.choice("backend", d.backend, BACKENDS)
    ports = t.integer("ports", d.ports, 1, 64)
    pins_raw, found = t._get("gpio_pins", [list(p) for p in d.gpio_pins], (list,),
                             "a list of [RM, F/R, SHK] pin triples")
    pins: list[tuple[int, int, int]] = []
    for n, triple in enumerate(pins_raw):
        if (not isinstance(triple, list) or len(triple) != 3
                or any(type(v) is not int or not 0 <= v <= 27 for v in triple)):
            t.error(f"gpio_pins[{n}]", f"must be [RM, F/R, SHK] BCM pins 0..27, got {triple!r}")
        else:
            pins.append((triple[0], triple[1], triple[2]))
    reset_pin = t.integer("proslic_reset_pin", -1, 0, 27)  # TOML has no null: absent means none
    cfg = HardwareConfig(
        backend=backend, ports=ports,
        alsa_capture=t.text("alsa_capture", d.alsa_capture),
        alsa_playback=t.text("alsa_playback", d.alsa_playback),
        gpio_pins=tuple(pins),
        serial_device=t.text("serial_device", d.serial_device),
        serial_baudrate=t.integer("serial_baudrate", d.serial_baudrate, 1200, 4_000_000),
        spi_bus=t.integer("spi_bus", d.spi_bus, 0, 6),
        spi_chip_selects=t.ints("spi_chip_selects", d.spi_chip_selects, 0, 3),
        proslic_reset_pin=None if reset_pin < 0 else reset_pin,
        flash_min_ms=t.integer("flash_min_ms", d.flash_min_ms, 0, 5000),
        flash_max_ms=t.integer("flash_max_ms", d.flash_max_ms, 0, 5000))
    t.finish()
    if found and backend in ("ag1171", "ks0835f") and len(pins_raw) < ports:
        t.error("gpio_pins", f"{ports} ports need {ports} pin triples, got {len(pins_raw)}")
    if backend == "proslic" and len(cfg.spi_chip_selects) < ports:
        t.error("spi_chip_selects",
                f"{ports} ports need {ports} chip selects, got {len(cfg.spi_chip_selects)}")
    try:
        cfg.hook_timing  # noqa: B018 - HookTiming validates the flash window against pulse dialling
    except ValueError:
        pulse_max_ms = round(HookTiming.pulse_break_max * 1000)
        t.error("flash_min_ms", f"must satisfy {pulse_max_ms} <= flash_min_ms < flash_max_ms (shorter "
                                f"breaks are pulse digits), got {cfg.flash_min_ms}..{cfg.flash_max_ms}")
    return cfg


def _regional(data: object, errors: list[FieldError]) -> RegionalConfig:
    t = _Table(data, "regional", errors)
    code = t.text("country", "US")
    try:
        code = country_info(code).code
    except KeyError:
        t.error("country", f"unknown country {code!r}; available: {', '.join(countries())}")
        code = "US"
    cfg = RegionalConfig(country=code, callerid=t.choice("callerid", "auto", CALLERID_STANDARDS),
                         ring_cadence=t.text("ring_cadence", "normal", _cadence_check(code)))
    t.finish()
    return cfg


def _cadence_check(code: str) -> Callable[[str], str | None]:
    def check(name: str) -> str | None:
        try:
            ring_cadence(name, code)
        except KeyError as exc:
            return str(exc.args[0])
        return None
    return check


def _sip(data: object, errors: list[FieldError]) -> SipConfig:
    t = _Table(data, "sip", errors)

    def hostport(key: str) -> str:
        return t.text(key, "", lambda v: _check_hostport(v) if v else None)

    cfg = SipConfig(
        registrar=hostport("registrar"), secondary_registrar=hostport("secondary_registrar"),
        outbound_proxy=hostport("outbound_proxy"),
        domain=t.text("domain", "", _check_domain),
        transport=t.choice("transport", "udp", TRANSPORTS),
        expires=t.integer("expires", 3600, 60, 86400),
        local_port=t.integer("local_port", 5060, 0, 65535),
        tls_ca_file=t.text("tls_ca_file", "", lambda v: None if not v or Path(v).is_file()
                          else f"file not found: {v}"),
        tls_verify=t.flag("tls_verify", True),
        accept_only_from_proxy=t.flag("accept_only_from_proxy", True),
        unknown_source=t.choice("unknown_source", "403", UNKNOWN_SOURCE_ACTIONS),
        dns_servers=t.texts("dns_servers", _check_ip))
    t.finish()
    if not cfg.registrar:
        for key in ("secondary_registrar", "outbound_proxy"):
            if getattr(cfg, key):
                t.error(key, "needs sip.registrar (without a registrar the ports are intercom only)")
    return cfg


def _web(data: object, errors: list[FieldError]) -> WebConfig:
    t = _Table(data, "web", errors)

    def listen(v: str) -> str | None:
        if _check_hostport(v) is None and _split_hostport(v)[1] is not None:
            return None
        return f"must be host:port (e.g. 127.0.0.1:8080 or 0.0.0.0:443), got {v!r}"

    def pem(v: str) -> str | None:
        return None if not v or Path(v).is_file() else f"file not found: {v}"

    cfg = WebConfig(enabled=t.flag("enabled", True), listen=t.text("listen", WebConfig.listen, listen),
                    https=t.choice("https", "auto", HTTPS_MODES),
                    cert_file=t.text("cert_file", "", pem), key_file=t.text("key_file", "", pem))
    t.finish()
    if bool(cfg.cert_file) != bool(cfg.key_file):
        t.error("key_file" if cfg.cert_file else "cert_file", "cert_file and key_file go together")
    return cfg


def _check_number(v: str) -> str | None:
    return None if not v or _DIGITS_RE.fullmatch(v) else "must be 1-32 of 0-9 * #"


def _star_codes(data: object, errors: list[FieldError]) -> tuple[tuple[str, str], ...]:
    t = _Table(data, "star_codes", errors)
    codes = {name: t.text(name, default, lambda v: None if _STAR_CODE_RE.fullmatch(v)
                          else "must be * or # and 1-4 digits, e.g. *72")
             for name, default in DEFAULT_STAR_CODES.items()}
    t.finish()
    for name, code in codes.items():  # a code that is the start of another would hide it
        other = next((n for n, c in codes.items() if n != name and c.startswith(code)), None)
        if other is not None and name in t.data:
            t.error(name, f"{code} is the same as or the start of {other} ({codes[other]})")
    return tuple(codes.items())


def _restriction_classes(data: object, errors: list[FieldError]) -> tuple[tuple[str, str], ...]:
    t = _Table(data, "restriction_classes", errors)
    out = []
    for name in list(t.data):
        if not _CLASS_NAME_RE.fullmatch(name):
            t.known.append(name)
            t.error(name, "class names are lower-case letters, digits and _ (e.g. international)")
            continue
        plan = t.text(name, "", _check_dial_plan)
        if plan and _check_dial_plan(plan) is None:
            out.append((name, plan))
    t.finish()
    return tuple(out)


def _port_features(data: object, path: str, classes: set[str], errors: list[FieldError]) -> PortFeatures:
    t = _Table(data, path, errors)
    cfg = PortFeatures(
        forward_always=t.text("forward_always", "", _check_number),
        forward_busy=t.text("forward_busy", "", _check_number),
        forward_no_answer=t.text("forward_no_answer", "", _check_number),
        forward_no_answer_s=t.integer("forward_no_answer_s", 20, 6, 300),
        dnd=t.flag("dnd", False),
        anonymous=t.flag("anonymous", False),
        warm_line=t.text("warm_line", "", _check_number),
        warm_line_s=t.integer("warm_line_s", 5, 1, 60),
        restrict=t.texts("restrict", lambda v: None if v in classes else
                         f"no restriction class {v!r}; defined: {', '.join(sorted(classes)) or 'none'}"),
        disabled=cast(tuple[FeatureName, ...], t.texts(
            "disabled", lambda v: None if v in FEATURES else f"must be one of {', '.join(FEATURES)}")))
    t.finish()
    return cfg


def _accounts(data: object, path: str, country: str, star_codes: tuple[tuple[str, str], ...],
              errors: list[FieldError]) -> tuple[ExtraAccount, ...]:
    if not isinstance(data, list):
        errors.append(FieldError(path, "must be an array of tables ([[ports.accounts]] blocks)"))
        return ()
    out: list[ExtraAccount] = []
    for n, item in enumerate(data):
        t = _Table(item, f"{path}[{n}]", errors)
        account = ExtraAccount(
            extension=t.text("extension", "", lambda v: None if _EXTENSION_RE.fullmatch(v)
                             else "must be 2-15 digits"),
            auth_user=t.text("auth_user", ""),
            password=Secret(t.text("password", "")),
            display_name=t.text("display_name", "", lambda v: None if len(v) <= 64 and v.isprintable()
                                else "must be at most 64 printable characters"),
            ring_cadence=t.text("ring_cadence", "", lambda v: _cadence_check(country)(v) if v else None),
            prefix=t.text("prefix", "", lambda v: None if not v or re.fullmatch(r"[0-9*#]{1,4}", v)
                          else "must be 1-4 of 0-9 * #"),
            star_code=t.text("star_code", "", lambda v: None if not v or _STAR_CODE_RE.fullmatch(v)
                             else "must be * or # and 1-4 digits, e.g. *81"))
        if "extension" not in t.data:
            t.error("extension", "is required")
        if account.prefix and account.prefix in [a.prefix for a in out]:
            t.error("prefix", f"{account.prefix} is already the prefix of another account of this port")
        code = account.star_code if _STAR_CODE_RE.fullmatch(account.star_code) else ""
        taken = [(c, f"star_codes.{name}") for name, c in star_codes] + \
            [(a.star_code, f"accounts[{k}]") for k, a in enumerate(out) if a.star_code]
        clash = next(((c, owner) for c, owner in taken
                      if code and (c.startswith(code) or code.startswith(c))), None)
        if clash is not None:  # one code the start of another would hide it
            t.error("star_code", f"{code} clashes with {clash[0]} ({clash[1]}): neither may be the start "
                                 "of the other")
        t.finish()
        out.append(account)
    return tuple(out)


def _port(data: object, path: str, country: str, classes: set[str], star_codes: tuple[tuple[str, str], ...],
          errors: list[FieldError]) -> PortConfig:
    t = _Table(data, path, errors)
    cfg = PortConfig(
        extension=t.text("extension", "", lambda v: None if _EXTENSION_RE.fullmatch(v)
                        else "must be 2-15 digits"),
        enabled=t.flag("enabled", True),
        auth_user=t.text("auth_user", ""),
        password=Secret(t.text("password", "")),
        display_name=t.text("display_name", "", lambda v: None if len(v) <= 64 and v.isprintable()
                           else "must be at most 64 printable characters"),
        dial_plan=t.text("dial_plan", DEFAULT_DIAL_PLAN, _check_dial_plan),
        callerid=t.text("callerid", "", lambda v: None if not v or v in CALLERID_STANDARDS
                       else f"must be one of {', '.join(CALLERID_STANDARDS)} (or absent), got {v!r}"),
        ring_cadence=t.text("ring_cadence", "", lambda v: _cadence_check(country)(v) if v else None),
        hotline=t.text("hotline", "", _check_number),
        polarity_reversal=t.flag("polarity_reversal", False),
        call_waiting=t.flag("call_waiting", True), three_way=t.flag("three_way", True),
        transfer=t.flag("transfer", True),
        rx_gain_db=t.decibels("rx_gain_db", 0.0), tx_gain_db=t.decibels("tx_gain_db", 0.0),
        mwi_subscribe=t.flag("mwi_subscribe", False),
        voicemail=t.text("voicemail", "", _check_number),
        features=_port_features(t.data.get("features", {}), f"{path}.features", classes, errors),
        accounts=_accounts(t.data.get("accounts", []), f"{path}.accounts", country, star_codes, errors))
    t.known += ["features", "accounts"]
    if "extension" not in t.data:
        t.error("extension", "is required")
    t.finish()
    return cfg


def parse_config(data: Mapping[str, Any]) -> Config:
    """Validate a parsed TOML document (any schema version); raises ConfigError listing every problem."""
    doc = migrate(copy.deepcopy(dict(data)))
    errors: list[FieldError] = []
    top = _Table(doc, "", errors)
    system = _system(top.data.get("system", {}), errors)
    hardware = _hardware(top.data.get("hardware", {}), errors)
    regional = _regional(top.data.get("regional", {}), errors)
    sip = _sip(top.data.get("sip", {}), errors)
    web = _web(top.data.get("web", {}), errors)
    star_codes = _star_codes(top.data.get("star_codes", {}), errors)
    classes = _restriction_classes(top.data.get("restriction_classes", {}), errors)
    top.known += ["system", "hardware", "regional", "sip", "web", "ports", "star_codes",
                  "restriction_classes"]
    raw_ports = top.data.get("ports", [])
    if not isinstance(raw_ports, list):
        top.error("ports", "must be an array of tables ([[ports]] blocks)")
        raw_ports = []
    names = {name for name, _ in classes}
    ports = tuple(_port(p, f"ports[{n}]", regional.country, names, star_codes, errors)
                  for n, p in enumerate(raw_ports))
    top.finish()
    if not ports:
        top.error("ports", "at least one [[ports]] block is required")
    if len(ports) > hardware.ports:
        top.error("ports", f"{len(ports)} ports configured but hardware.ports is {hardware.ports}")
    seen: dict[str, str] = {}
    for n, p in enumerate(ports):
        for path, ext in [(f"ports[{n}]", p.extension),
                          *((f"ports[{n}].accounts[{k}]", a.extension) for k, a in enumerate(p.accounts))]:
            if _EXTENSION_RE.fullmatch(ext) and ext in seen:
                top.error(f"{path}.extension", f"{ext} is already used by {seen[ext]}")
            seen.setdefault(ext, path)
    if errors:
        raise ConfigError(errors)
    return Config(system=system, sip=sip, ports=ports, regional=regional, hardware=hardware, web=web,
                  star_codes=star_codes, restriction_classes=classes)


def load_config(source: str | Path) -> Config:
    """A Config from TOML text (str) or a file (Path). Unreadable files and TOML syntax errors are
    ConfigErrors too, so callers handle one exception type."""
    if isinstance(source, Path):
        try:
            source = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError([FieldError("", f"cannot read: {reason}")]) from exc
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([FieldError("", f"TOML syntax error: {exc}")]) from exc
    return parse_config(data)
