"""Typed views of SIP header values (RFC 3261 §7.3, §20, §25.1).

Messages keep header values as the text that arrived; these helpers turn one value into a typed object
and back. Every parser raises `HeaderError` (a ValueError) on text the grammar forbids, so the message
parser can answer 400 instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware.sip.uri import (
    Params,
    Uri,
    UriError,
    format_host,
    parse_host,
    parse_port,
    parse_uri,
)

__all__ = [
    "BRANCH_MAGIC_COOKIE",
    "CSeq",
    "HeaderError",
    "NameAddr",
    "Via",
    "canonical_name",
    "format_params",
    "is_list_header",
    "parse_cseq",
    "parse_delta_seconds",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_params",
    "parse_via",
    "parse_via_list",
    "quote",
    "split_list",
]


class HeaderError(ValueError):
    """A header value that does not match its grammar."""


TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_SENT_PROTOCOL_RE = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+"
)
_SENT_BY_RE = re.compile(r"(\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9\-_.]+)(?:\s*:\s*([0-9]+))?\s*")
_GEN_VALUE_RE = re.compile(r"[^\s;,\"<>]+")
_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_CSEQ_RE = re.compile(r"([0-9]+)\s+([A-Za-z0-9\-.!%*_+`'~]+)")

BRANCH_MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 §8.1.1.7: a branch starting with this was made by an RFC 3261 element, so it is unique."""

# RFC 3261 §7.3.3 and the IANA registry of compact forms.
_COMPACT = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
_SPELLING = {
    name.lower(): name
    for name in (
        *_COMPACT.values(),
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Authentication-Info",
        "Authorization",
        "Call-Info",
        "Content-Disposition",
        "Content-Language",
        "CSeq",
        "Date",
        "Error-Info",
        "Expires",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Organization",
        "Path",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "RAck",
        "Record-Route",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "Server",
        "Service-Route",
        "Timestamp",
        "Unsupported",
        "User-Agent",
        "Warning",
        "WWW-Authenticate",
    )
}
# Headers whose grammar is `x *(COMMA x)` (RFC 3261 §7.3.1), so a comma separates values. Contact is a
# list unless it is "*"; the authentication headers are NOT lists (their params are comma-separated).
_LIST_HEADERS = frozenset(
    n.lower()
    for n in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "In-Reply-To",
        "Path",
        "Proxy-Require",
        "Record-Route",
        "Reject-Contact",
        "Require",
        "Route",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    )
)


def canonical_name(name: str) -> str:
    """The conventional spelling of a header name, expanding compact forms ("i" -> "Call-ID")."""
    lower = name.lower()
    if len(lower) == 1:
        return _COMPACT.get(lower, name)
    return _SPELLING.get(lower, name)


def is_list_header(name: str) -> bool:
    return canonical_name(name).lower() in _LIST_HEADERS


def _scan_quoted(text: str, start: int) -> int:
    """Index just past the quoted-string opening at `start` (RFC 3261 §25.1 quoted-pair rules)."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n or text[i + 1] in "\r\n":
                break
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise HeaderError(f"unterminated quoted string: {text!r}")


def unquote(text: str) -> str:
    """Decode a complete quoted-string, resolving quoted-pairs."""
    return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)


def quote(text: str) -> str:
    """Encode text as a quoted-string (escaping \\ and \")."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_list(value: str) -> list[str]:
    """Split on commas outside quoted strings and <...> (RFC 3261 §7.3.1). Empty elements are errors."""
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    parts: list[str] = []
    start = i = 0
    n = len(value)
    in_angle = False
    while i < n:
        c = value[i]
        if c == '"':
            i = _scan_quoted(value, i)
            continue
        if c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    if any(not p for p in parts):
        raise HeaderError(f"empty element in list: {value!r}")
    return parts


def _split_semis(text: str) -> list[str]:
    """Split on ';' outside quoted strings."""
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    start = i = 0
    while i < len(text):
        if text[i] == '"':
            i = _scan_quoted(text, i)
            continue
        if text[i] == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def parse_params(text: str) -> Params:
    """Parse `*( SEMI generic-param )` (text starts at the first ';', or is empty).

    Values may be a token, host (IPv6 with or without brackets, RFC 5118 §4.5) or quoted-string;
    quoted values keep their quotes so the header prints back unchanged.
    """
    text = text.strip()
    if not text:
        return ()
    if not text.startswith(";"):
        raise HeaderError(f"expected ';' before parameters: {text!r}")
    out: list[tuple[str, str | None]] = []
    for item in _split_semis(text[1:]):
        name, eq, value = item.partition("=")
        name = name.strip()
        if TOKEN_RE.fullmatch(name) is None:
            raise HeaderError(f"bad parameter name in {text!r}")
        if not eq:
            out.append((name, None))
            continue
        value = value.strip()
        if value.startswith('"'):
            if _scan_quoted(value, 0) != len(value):
                raise HeaderError(f"junk after quoted parameter value: {value!r}")
        elif _GEN_VALUE_RE.fullmatch(value) is None:
            raise HeaderError(f"bad parameter value in {text!r}")
        out.append((name, value))
    return tuple(out)


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _get_param(params: Params, name: str) -> str | None:
    name = name.lower()
    for k, v in params:
        if k.lower() == name:
            return v
    return None


def _has_param(params: Params, name: str) -> bool:
    name = name.lower()
    return any(k.lower() == name for k, _ in params)


@dataclass(frozen=True)
class NameAddr:
    """From/To/Contact/Route value: optional display name, URI, header parameters (RFC 3261 §20.10).

    `uri` is None only for the Contact wildcard "*" (RFC 3261 §10.2.2, de-registration of all bindings).
    """

    uri: Uri | None
    display_name: str | None = None
    params: Params = ()

    def param(self, name: str) -> str | None:
        return _get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    @property
    def tag(self) -> str | None:
        """Dialog identification (RFC 3261 §19.3)."""
        return self.param("tag")

    @property
    def expires(self) -> int | None:
        value = self.param("expires")
        return None if value is None else parse_delta_seconds(value)

    @property
    def q(self) -> float | None:
        """Contact preference (RFC 3261 §20.10 qvalue, 0..1)."""
        value = self.param("q")
        if value is None:
            return None
        if _QVALUE_RE.fullmatch(value) is None:
            raise HeaderError(f"bad q value: {value!r}")
        return float(value)

    def with_param(self, name: str, value: str | None) -> NameAddr:
        kept = tuple((k, v) for k, v in self.params if k.lower() != name.lower())
        return NameAddr(self.uri, self.display_name, (*kept, (name, value)))

    def __str__(self) -> str:
        if self.uri is None:
            return "*" + format_params(self.params)
        name = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"


def _parse_uri_strict(text: str) -> Uri:
    try:
        return parse_uri(text)
    except UriError as exc:
        raise HeaderError(str(exc)) from exc


def parse_name_addr(text: str, *, allow_star: bool = False) -> NameAddr:
    """Parse `(name-addr / addr-spec) *(SEMI param)`.

    RFC 3261 §20.10: in the addr-spec form (no <>) any ';' starts a header parameter, so a URI with
    ',', '?' or ';' must be bracketed; we reject '?' and ',' there (RFC 4475 §3.1.2.13).
    """
    text = text.strip()
    if allow_star and text.startswith("*"):
        return NameAddr(None, None, parse_params(text[1:]))
    display: str | None = None
    rest = text
    if text.startswith('"'):
        end = _scan_quoted(text, 0)
        display = unquote(text[:end])
        rest = text[end:].lstrip()
        if not rest.startswith("<"):
            raise HeaderError(f"display name not followed by <URI>: {text!r}")
    else:
        lt = text.find("<")
        if lt >= 0:
            words = text[:lt].split()
            if any(TOKEN_RE.fullmatch(w) is None for w in words):
                raise HeaderError(f"display name must be tokens or a quoted string: {text!r}")
            display = " ".join(words) if words else None
            rest = text[lt:]
    if rest.startswith("<"):
        gt = rest.find(">")
        if gt < 0:
            raise HeaderError(f"missing '>': {text!r}")
        uri = _parse_uri_strict(rest[1:gt])
        return NameAddr(uri, display, parse_params(rest[gt + 1 :]))
    spec, semi, param_text = rest.partition(";")
    if any(c in spec for c in "?,>") or not spec:
        raise HeaderError(f"URI with '?' or ',' must be in <>: {text!r}")
    return NameAddr(_parse_uri_strict(spec.rstrip()), None, parse_params(semi + param_text))


def parse_name_addr_list(value: str) -> list[NameAddr]:
    """Contact/Route/Record-Route value(s); "*" only as a whole Contact value."""
    if value.strip().startswith("*"):
        return [parse_name_addr(value, allow_star=True)]
    return [parse_name_addr(part) for part in split_list(value)]


def parse_delta_seconds(text: str) -> int:
    """RFC 3261 §20.19: 0 .. 2**32-1 seconds; larger values are malformed (RFC 4475 §3.1.2.4)."""
    text = text.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 10 or int(text) > 0xFFFFFFFF:
        raise HeaderError(f"bad delta-seconds: {text!r}")
    return int(text)


@dataclass(frozen=True)
class CSeq:
    """RFC 3261 §20.16: sequence number (32-bit unsigned) and method."""

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    m = _CSEQ_RE.fullmatch(value.strip())
    if m is None or not m.group(1).isascii() or len(m.group(1)) > 10 or int(m.group(1)) > 0xFFFFFFFF:
        raise HeaderError(f"bad CSeq: {value!r}")
    return CSeq(int(m.group(1)), m.group(2))


@dataclass(frozen=True)
class Via:
    """One via-parm (RFC 3261 §20.42), with RFC 3581 rport."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    def param(self, name: str) -> str | None:
        return _get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def has_magic_cookie(self) -> bool:
        """True when the branch is RFC 3261-unique (§17.2.3); else RFC 2543 matching applies.
        A bare cookie identifies nothing (RFC 4475 §3.2.1), so it does not count."""
        branch = self.branch
        return branch is not None and branch.startswith(BRANCH_MAGIC_COOKIE) and branch != BRANCH_MAGIC_COOKIE

    @property
    def received(self) -> str | None:
        """The received address without brackets (RFC 5118 §4.5 allows both spellings)."""
        value = self.param("received")
        return value[1:-1] if value and value.startswith("[") and value.endswith("]") else value

    @property
    def rport_requested(self) -> bool:
        """RFC 3581 §3: the client asked for the source port back, with a valueless rport."""
        return self.has_param("rport")

    @property
    def rport(self) -> int | None:
        value = self.param("rport")
        return None if value is None else parse_port(value)

    @property
    def sent_by(self) -> str:
        return format_host(self.host) if self.port is None else f"{format_host(self.host)}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


def parse_via(value: str) -> Via:
    """Parse one via-parm; LWS around '/' ':' ';' '=' is allowed (RFC 4475 §3.1.1.1)."""
    value = value.strip()
    m = _SENT_PROTOCOL_RE.match(value)
    if m is None:
        raise HeaderError(f"bad Via sent-protocol: {value!r}")
    by = _SENT_BY_RE.match(value, m.end())
    if by is None:
        raise HeaderError(f"bad Via sent-by: {value!r}")
    try:
        host = parse_host(by.group(1))
        port = None if by.group(2) is None else parse_port(by.group(2))
    except UriError as exc:
        raise HeaderError(str(exc)) from exc
    params = parse_params(value[by.end() :])
    rport = _get_param(params, "rport")
    if rport is not None and not (
        rport.isdigit() and rport.isascii() and len(rport) <= 5 and int(rport) < 65536
    ):
        raise HeaderError(f"bad rport: {rport!r}")
    return Via(m.group(3).upper(), host, port, params, f"{m.group(1).upper()}/{m.group(2)}")


def parse_via_list(value: str) -> list[Via]:
    return [parse_via(part) for part in split_list(value)]
