"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966; RFC 5118 for IPv6 references).

Parsing is strict about what the grammar forbids (bad escapes, bare IPv6 hosts, whitespace) because a
URI that we cannot print back identically is a URI we cannot route on. Equality follows RFC 3261
§19.1.4 for SIP URIs and RFC 3966 §4 for tel URIs, so `==` is the comparison the transaction and
registration layers need.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = [
    "AbsoluteUri",
    "SipUri",
    "TelUri",
    "Uri",
    "UriError",
    "escape",
    "is_ip_literal",
    "parse_uri",
    "unescape",
]


class UriError(ValueError):
    """The text is not a URI of the scheme it claims (the message parser maps this to 400)."""


# RFC 3261 §25.1 character classes.
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_UNRESERVED = _ALNUM + "-_.!~*'()"
USER_SAFE = _UNRESERVED + "&=+$,;?/"  # user-unreserved
PASSWORD_SAFE = _UNRESERVED + "&=+$,"
PARAM_SAFE = _UNRESERVED + "[]/:&+$"  # param-unreserved
HEADER_SAFE = _UNRESERVED + "[]/?:+$"  # hnv-unreserved

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9.])?")
_IPV4_RE = re.compile(r"[0-9]+(?:\.[0-9]+){3}")


def _chars_re(safe: str) -> re.Pattern[str]:
    return re.compile("(?:[" + re.escape(safe) + "]|%[0-9A-Fa-f]{2})*")


_USER_RE = _chars_re(USER_SAFE)
_PASSWORD_RE = _chars_re(PASSWORD_SAFE)
_PARAM_RE = _chars_re(PARAM_SAFE)
_HEADER_RE = _chars_re(HEADER_SAFE)
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_NOT_IN_URI_RE = re.compile(r'[\s\x00-\x20<>"]')


def unescape(text: str) -> str:
    """Decode %xx escapes; bytes that are not UTF-8 survive as surrogates so `escape` restores them."""
    if "%" not in text:
        return text
    raw = bytearray()
    pos = 0
    for m in _ESCAPE_RE.finditer(text):
        raw += text[pos : m.start()].encode("utf-8", "surrogateescape")
        raw.append(int(m.group(1), 16))
        pos = m.end()
    raw += text[pos:].encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "surrogateescape")


def escape(text: str, safe: str = USER_SAFE) -> str:
    """Escape every octet outside `safe` as %XX (RFC 3261 §25.1 `escaped`)."""
    if all(c in safe for c in text):
        return text
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        out.append(ch if byte < 0x80 and ch in safe else f"%{byte:02X}")
    return "".join(out)


def _check(pattern: re.Pattern[str], text: str, what: str) -> str:
    if pattern.fullmatch(text) is None:
        raise UriError(f"invalid character or escape in {what}: {text!r}")
    return text


def parse_host(text: str) -> str:
    """Validate a host (RFC 3261 §25.1 `host`); an IPv6 reference is returned without brackets.

    RFC 5118 §4.2: an IPv6 address must be bracketed in a URI, else its colons read as a port.
    """
    if text.startswith("["):
        if not text.endswith("]"):
            raise UriError(f"unterminated IPv6 reference: {text!r}")
        inner = text[1:-1]
        try:
            ipaddress.IPv6Address(inner)
        except ValueError as exc:
            raise UriError(f"invalid IPv6 reference: {text!r}") from exc
        return inner
    if _IPV4_RE.fullmatch(text):
        try:
            ipaddress.IPv4Address(text)
        except ValueError as exc:
            raise UriError(f"invalid IPv4 address: {text!r}") from exc
        return text
    if _HOSTNAME_RE.fullmatch(text) is None:
        raise UriError(f"invalid host: {text!r}")
    return text


def is_ip_literal(host: str) -> bool:
    """Whether `host` is an IPv4 or IPv6 address (brackets allowed): such hosts bypass DNS (RFC 3263
    §4.2)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def format_host(host: str) -> str:
    """Bracket IPv6 addresses (RFC 5118 §4.1)."""
    return f"[{host}]" if ":" in host else host


def parse_port(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or int(text) > 65535:
        raise UriError(f"invalid port: {text!r}")
    return int(text)


Params = tuple[tuple[str, str | None], ...]


def _param_dict(params: Params) -> dict[str, str | None]:
    """Lower-cased, unescaped view for comparisons (RFC 3261 §19.1.4: parameters are case-insensitive)."""
    return {unescape(k).lower(): None if v is None else unescape(v).lower() for k, v in params}


@dataclass(frozen=True, eq=False)
class SipUri:
    """A sip: or sips: URI. `user` and `password` are unescaped; params and headers are kept as written."""

    scheme: str = "sip"
    user: str | None = None
    host: str = ""
    port: int | None = None
    password: str | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """Value of a URI parameter (None if absent or valueless); names are case-insensitive."""
        name = name.lower()
        for k, v in self.params:
            if unescape(k).lower() == name:
                return v
        return None

    def has_param(self, name: str) -> bool:
        """Names compare unescaped and case-insensitively (RFC 3261 §19.1.4): "%6C%72" is lr."""
        name = name.lower()
        return any(unescape(k).lower() == name for k, _ in self.params)

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        """Loose routing flag (RFC 3261 §16.12): decides whether a Route set is strict or loose."""
        return self.has_param("lr")

    @property
    def host_port(self) -> str:
        return format_host(self.host) if self.port is None else f"{format_host(self.host)}:{self.port}"

    def with_params(self, **values: str | None) -> SipUri:
        """Copy with the given params set (value None makes a flag) replacing same-named ones."""
        lowered = {k.lower() for k in values}
        kept = tuple((k, v) for k, v in self.params if k.lower() not in lowered)
        return SipUri(
            self.scheme,
            self.user,
            self.host,
            self.port,
            self.password,
            kept + tuple(values.items()),
            self.headers,
        )

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(escape(self.user, USER_SAFE))
            if self.password is not None:
                out += [":", escape(self.password, PASSWORD_SAFE)]
            out.append("@")
        out.append(self.host_port)
        for k, v in self.params:
            out += [";", k] if v is None else [";", k, "=", v]
        if self.headers:
            out += ["?", "&".join(f"{k}={v}" for k, v in self.headers)]
        return "".join(out)

    def __eq__(self, other: object) -> bool:
        """RFC 3261 §19.1.4 comparison."""
        if not isinstance(other, SipUri):
            return NotImplemented
        if (self.scheme, self.user, self.password, self.host.lower(), self.port) != (
            other.scheme,
            other.user,
            other.password,
            other.host.lower(),
            other.port,
        ):
            return False
        mine, theirs = _param_dict(self.params), _param_dict(other.params)
        for key in mine.keys() & theirs.keys():
            if mine[key] != theirs[key]:
                return False
        # §19.1.4 names user, ttl, method and maddr; its examples also treat transport so (a URI
        # without it "can resolve to different transports"), and so do we.
        for key in ("user", "ttl", "method", "maddr", "transport"):
            if (key in mine) != (key in theirs):
                return False
        return _header_dict(self.headers) == _header_dict(other.headers)

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, self.password, self.host.lower(), self.port))


def _header_dict(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return {unescape(k).lower(): unescape(v) for k, v in headers}


def _visual_free(number: str) -> str:
    return re.sub(r"[\-.()]", "", number).upper()


# RFC 3966 §3: digits with visual separators, at least one digit (checked apart: linear time).
_TEL_GLOBAL_RE = re.compile(r"\+[0-9\-.()]+")
_TEL_LOCAL_RE = re.compile(r"[0-9A-Fa-f*#\-.()]+")


@dataclass(frozen=True, eq=False)
class TelUri:
    """A tel: URI (RFC 3966 §3): a global +number, or a local number qualified by phone-context."""

    number: str
    params: Params = ()

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def phone_context(self) -> str | None:
        for k, v in self.params:
            if k.lower() == "phone-context":
                return v
        return None

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1), e.g. for a dial plan."""
        return _visual_free(self.number)

    def __str__(self) -> str:
        return "tel:" + self.number + "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)

    def __eq__(self, other: object) -> bool:
        """RFC 3966 §4: same number ignoring visual separators, same parameters ignoring case."""
        if not isinstance(other, TelUri):
            return NotImplemented
        return self.digits == other.digits and _param_dict(self.params) == _param_dict(other.params)

    def __hash__(self) -> int:
        return hash(self.digits)


@dataclass(frozen=True)
class AbsoluteUri:
    """Any other scheme (RFC 3261 §25.1 absoluteURI); legal in headers, never a Request-URI we serve."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


def _parse_params(text: str, what: str) -> Params:
    if not text:
        return ()
    out: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise UriError(f"empty {what} parameter")
        _check(_PARAM_RE, name, f"{what} parameter")
        if eq:
            _check(_PARAM_RE, value, f"{what} parameter")
        out.append((name, value if eq else None))
    return tuple(out)


def _parse_sip(scheme: str, rest: str) -> SipUri:
    user = password = None
    userinfo, at, hostpart = rest.rpartition("@")
    if at:
        if not userinfo:
            raise UriError("empty user part")
        user_text, colon, password_text = userinfo.partition(":")
        user = unescape(_check(_USER_RE, user_text, "user"))
        if colon:
            password = unescape(_check(_PASSWORD_RE, password_text, "password"))
    hostpart, qmark, header_text = hostpart.partition("?")
    headers: list[tuple[str, str]] = []
    if qmark:
        for item in header_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise UriError(f"malformed URI header: {item!r}")
            headers.append((_check(_HEADER_RE, name, "header"), _check(_HEADER_RE, value, "header")))
    hostport, _, param_text = hostpart.partition(";")
    if hostport.startswith("["):
        close = hostport.find("]")
        host_text, port_text = hostport[: close + 1], hostport[close + 1 :]
        if close < 0 or (port_text and not port_text.startswith(":")):
            raise UriError(f"malformed IPv6 reference: {hostport!r}")
        port_text = port_text[1:] if port_text else ""
        has_port = bool(hostport[close + 1 :])
    else:
        host_text, colon, port_text = hostport.partition(":")
        has_port = bool(colon)
    host = parse_host(host_text)
    port = parse_port(port_text) if has_port else None
    return SipUri(scheme, user, host, port, password, _parse_params(param_text, "URI"), tuple(headers))


def _parse_tel(rest: str) -> TelUri:
    number, _, param_text = rest.partition(";")
    params = _parse_params(param_text, "tel")
    has_digit = bool(_visual_free(number).strip("+"))
    if _TEL_GLOBAL_RE.fullmatch(number) and has_digit:
        return TelUri(number, params)
    local = _TEL_LOCAL_RE.fullmatch(number) and has_digit
    if local and any(k.lower() == "phone-context" for k, _ in params):
        return TelUri(number, params)
    raise UriError(f"invalid tel number (a local number needs phone-context): {number!r}")


def parse_uri(text: str) -> Uri:
    """Parse a URI; sip/sips/tel are parsed fully, other schemes kept opaque."""
    m = _SCHEME_RE.match(text)
    if m is None:
        raise UriError(f"missing scheme: {text!r}")
    rest = text[m.end() :]
    if not rest or _NOT_IN_URI_RE.search(rest):
        raise UriError(f"empty URI or whitespace/delimiter inside it: {text!r}")
    scheme = m.group(1).lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        return _parse_tel(rest)
    return AbsoluteUri(scheme, rest)
