"""SIP message model, parser, serializer and stream framer (RFC 3261 §7, §18.3, §20; RFC 5626 §3.5.1).

Sans-IO: bytes in, objects out. `parse_message` raises only `SipParseError`, whose status is what a
UAS answers a malformed request with (400, 416, 505, 513...). A malformed *response* cannot be answered
and callers drop it (RFC 3261 §18.1.2 leaves no other option).

Headers keep the text and spelling that arrived, so a proxy-like pass-through or a digest computation
sees exactly what the peer sent; typed views (Via, NameAddr, CSeq) are parsed on access.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from firmware.sip.headers import (
    CSeq,
    HeaderError,
    NameAddr,
    Via,
    canonical_name,
    is_list_header,
    parse_cseq,
    parse_delta_seconds,
    parse_name_addr,
    parse_name_addr_list,
    parse_via_list,
    split_list,
)
from firmware.sip.uri import SipUri, TelUri, UriError, parse_uri

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_URI_LENGTH",
    "CrlfPing",
    "CrlfPong",
    "FramedMessage",
    "FramingError",
    "Headers",
    "Request",
    "Response",
    "SipMessage",
    "SipParseError",
    "StreamEvent",
    "StreamFramer",
    "build_error_response",
    "parse_message",
]

MAX_HEADER_BYTES = 16 * 1024
"""Start-line plus headers; beyond this we answer 513 Message Too Large (RFC 3261 §21.5.14)."""
MAX_BODY_BYTES = 64 * 1024
"""Body limit; beyond this we answer 413 Request Entity Too Large (RFC 3261 §21.4.11)."""
MAX_URI_LENGTH = 4096
"""Request-URI limit; beyond this we answer 414 Request-URI Too Long (RFC 3261 §21.4.12)."""

_SUPPORTED_SCHEMES = ("sip", "sips", "tel")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_HEADER_LINE_RE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*:[ \t]*(.*)", re.DOTALL)
_VERSION_RE = re.compile(r"SIP/([0-9]+)\.([0-9]+)", re.IGNORECASE)
_STATUS_LINE_RE = re.compile(r"(SIP/[0-9]+\.[0-9]+) ([0-9]{3})(?: (.*))?", re.IGNORECASE | re.DOTALL)
_DATE_RE = re.compile(r"[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")
_FOLD_RE = re.compile(r"\r\n[ \t]+")
# C0 controls (but HTAB) and DEL are illegal in a header section (RFC 3261 §25.1 TEXT-UTF8char) except
# as a quoted-pair; CR and LF never are (RFC 4475 §3.1.1.2 has BEL, NUL and DEL escaped by a backslash).
_CONTROL_RE = re.compile(r"[\r\n]|(?<!\\)[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Headers that occur at most once (RFC 3261 §7.3.1 / §20); duplicates are malformed (RFC 4475 §3.1.2.18).
_SINGLE = ("call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type", "expires")
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")  # RFC 3261 §8.1.1


class SipParseError(Exception):
    """Bytes that are not an acceptable SIP message.

    `status`/`reason` are what to answer a request with; `headers` and `is_request` hold what was
    parsed before the error, so `build_error_response` can still answer statelessly (RFC 3261 §8.2.6).
    """

    def __init__(
        self, status: int, reason: str, *, headers: Headers | None = None, is_request: bool | None = None
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers
        self.is_request = is_request


@lru_cache(maxsize=1024)
def _key(name: str) -> str:
    """Lookup key of a header name; cached because every message repeats the same few names."""
    return canonical_name(name).lower()


class Headers:
    """Ordered multi-map of header fields: original names and order kept, lookup case-insensitive
    with compact forms expanded (RFC 3261 §7.3.1, §7.3.3)."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = [(_key(n), n, v) for n, v in items]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(name as written, value) for every header line, in order."""
        return ((n, v) for _, n, v in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k == _key(name) for k, _, _ in self._items)

    def __eq__(self, other: object) -> bool:
        """Equal when the same fields carry the same values in the same order (spelling ignored)."""
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def lines(self, name: str) -> list[str]:
        """Raw values of every line with this name, unsplit."""
        key = _key(name)
        return [v for k, _, v in self._items if k == key]

    def get_all(self, name: str) -> list[str]:
        """All values, splitting comma lists for headers whose grammar is a list (never for
        WWW-Authenticate/Authorization, whose commas separate parameters). Raises HeaderError on a
        malformed list, which `parse_message` has already ruled out for the messages it returns."""
        values = self.lines(name)
        if not is_list_header(name):
            return values
        out: list[str] = []
        for value in values:
            if _key(name) == "contact" and value.strip().startswith("*"):
                out.append(value.strip())
            else:
                out.extend(split_list(value))
        return out

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value (for list headers, the first element: e.g. the top Via)."""
        values = self.get_all(name) if is_list_header(name) else self.lines(name)[:1]
        return values[0] if values else default

    def add(self, name: str, value: str) -> None:
        self._items.append((_key(name), name, value))

    def insert(self, index: int, name: str, value: str) -> None:
        """Insert at a position, e.g. a new top Via at 0 (RFC 3261 §16.6 step 8)."""
        self._items.insert(index, (_key(name), name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every line of this name by one, where the first one was (or at the end)."""
        key = _key(name)
        for i, (k, n, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (k, n, value)
                self._items[i + 1 :] = [item for item in self._items[i + 1 :] if item[0] != key]
                return
        self._items.append((key, name, value))

    def remove(self, name: str) -> int:
        """Delete every line of this name; returns how many."""
        key = _key(name)
        before = len(self._items)
        self._items = [item for item in self._items if item[0] != key]
        return before - len(self._items)

    def without(self, name: str) -> Headers:
        """A copy lacking every line of this name."""
        new = self.copy()
        new.remove(name)
        return new

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        return new


class SipMessage:
    """Accessors shared by requests and responses (what the transaction and dialog layers key on)."""

    headers: Headers
    body: bytes

    def _start_line(self) -> str:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        """Same start-line, headers and body; Content-Length is ignored since `to_bytes` derives it."""
        if type(other) is not type(self) or not isinstance(other, SipMessage):
            return NotImplemented
        return (
            self._start_line() == other._start_line()
            and self.body == other.body
            and self.headers.without("Content-Length") == other.headers.without("Content-Length")
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @property
    def cseq(self) -> CSeq:
        return parse_cseq(self._required("CSeq"))

    @property
    def vias(self) -> list[Via]:
        return [v for line in self.headers.lines("Via") for v in parse_via_list(line)]

    @property
    def top_via(self) -> Via:
        """The Via that names the transaction (RFC 3261 §17.2.3 branch, §18.2.2 response routing)."""
        return parse_via_list(self._required("Via"))[0]

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self._required("From"))

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self._required("To"))

    @property
    def from_tag(self) -> str | None:
        return self.from_.tag

    @property
    def to_tag(self) -> str | None:
        return self.to.tag

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return None if value is None else _parse_max_forwards(value)

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        return None if value is None else parse_delta_seconds(value)

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; a wildcard "*" is a NameAddr whose uri is None."""
        return [na for line in self.headers.lines("Contact") for na in parse_name_addr_list(line)]

    @property
    def routes(self) -> list[NameAddr]:
        return [na for line in self.headers.lines("Route") for na in parse_name_addr_list(line)]

    @property
    def record_routes(self) -> list[NameAddr]:
        return [na for line in self.headers.lines("Record-Route") for na in parse_name_addr_list(line)]

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise HeaderError(f"missing {name}")
        return value

    def to_bytes(self) -> bytes:
        """Wire format: CRLF line ends and a Content-Length that matches the body (RFC 3261 §20.14)."""
        headers = self.headers.copy()
        headers.set("Content-Length", str(len(self.body)))
        lines = [self._start_line(), *(f"{n}: {v}" for n, v in headers), "", ""]
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


@dataclass(eq=False)
class Request(SipMessage):
    method: str
    uri: SipUri | TelUri
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass(eq=False)
class Response(SipMessage):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def _start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"


def _parse_max_forwards(value: str) -> int:
    """RFC 3261 §20.22; values above 255 are malformed (RFC 4475 §3.1.2.4)."""
    digits = value.strip().lstrip("0") or "0"
    if not digits.isdigit() or not digits.isascii() or len(digits) > 3 or int(digits) > 255:
        raise HeaderError(f"bad Max-Forwards: {value!r}")
    return int(digits)


def _split_head(text: str) -> tuple[str, Headers]:
    """Start-line and unfolded header fields (RFC 3261 §7.3.1 line folding)."""
    lines = _FOLD_RE.sub(" ", text).split("\r\n")
    headers = Headers()
    if _CONTROL_RE.search(lines[0]):
        raise SipParseError(400, "Control character in the start-line")
    for line in lines[1:]:
        m = _HEADER_LINE_RE.fullmatch(line)
        if m is None or _CONTROL_RE.search(line):
            raise SipParseError(400, f"Bad header line {line[:40]!r}", headers=headers)
        headers.add(m.group(1), m.group(2).rstrip(" \t"))
    return lines[0], headers


def _validate(headers: Headers, is_request: bool, method: str | None) -> None:
    """Check the headers everything downstream relies on, so later accessors cannot fail."""
    for name in _REQUIRED:
        if name not in headers:
            raise HeaderError(f"Missing {name}")
    for name in _SINGLE:
        if len(headers.lines(name)) > 1:
            raise HeaderError(f"Multiple {canonical_name(name)} headers")
    for name, value in headers:
        if is_list_header(name):
            split_list(value)
    for line in headers.lines("Via"):
        parse_via_list(line)
    for name in ("From", "To"):
        parse_name_addr(headers.lines(name)[0])
    for name in ("Contact", "Route", "Record-Route"):
        for line in headers.lines(name):
            for na in parse_name_addr_list(line):
                if na.has_param("expires"):
                    parse_delta_seconds(na.param("expires") or "")
    cseq = parse_cseq(headers.lines("CSeq")[0])
    if is_request and cseq.method != method:
        raise HeaderError("CSeq method does not match the request method")  # RFC 4475 §3.1.2.17
    if not headers.lines("Call-ID")[0]:
        raise HeaderError("empty Call-ID")
    for value in headers.lines("Max-Forwards"):
        _parse_max_forwards(value)
    for value in headers.lines("Expires"):
        parse_delta_seconds(value)
    for value in headers.lines("Date"):
        if _DATE_RE.fullmatch(value) is None:
            raise HeaderError("Date must be an RFC 1123 date in GMT")  # RFC 3261 §20.17, RFC 4475 §3.1.2.12


def _parse_content_length(values: list[str]) -> int | None:
    if not values:
        return None
    value = values[0].strip()
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        raise HeaderError(f"bad Content-Length {value[:20]!r}")
    return int(value)


def parse_message(data: bytes) -> Request | Response:
    """Parse one SIP message from a datagram (or a frame from `StreamFramer`).

    Without Content-Length the body is the rest of the datagram (RFC 3261 §18.3); octets beyond
    Content-Length are ignored (RFC 4475 §3.1.1.8); fewer octets than it announces is a 400
    (RFC 4475 §3.1.2.2).
    """
    start = 0
    while data.startswith(b"\r\n", start):  # RFC 3261 §7.5: ignore CRLFs before the start-line
        start += 2
    end = data.find(b"\r\n\r\n", start)
    head_end = end if end >= 0 else len(data)
    if head_end - start > MAX_HEADER_BYTES:
        raise SipParseError(513, "Message Too Large")
    try:
        text = data[start:head_end].decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError(400, "Header section is not UTF-8") from None
    is_request = text[:4].upper() != "SIP/"
    try:
        start_line, headers = _split_head(text)
    except SipParseError as exc:
        exc.is_request = is_request
        raise
    if end < 0:
        raise SipParseError(
            400, "Header section not terminated by an empty line", headers=headers, is_request=is_request
        )
    body_data = data[end + 4 :]
    try:
        return _build(start_line, headers, body_data, is_request)
    except SipParseError as exc:
        exc.headers, exc.is_request = headers, is_request
        raise
    except (HeaderError, UriError) as exc:
        raise SipParseError(400, str(exc)[:200], headers=headers, is_request=is_request) from None


def _build(start_line: str, headers: Headers, body_data: bytes, is_request: bool) -> Request | Response:
    length = _parse_content_length(headers.lines("Content-Length"))
    if length is not None and length > len(body_data):
        if length > MAX_BODY_BYTES:
            raise SipParseError(413, "Request Entity Too Large")
        raise HeaderError("Content-Length larger than the message body")
    body = body_data if length is None else body_data[:length]
    if len(body) > MAX_BODY_BYTES:
        raise SipParseError(413, "Request Entity Too Large")
    if not is_request:
        m = _STATUS_LINE_RE.fullmatch(start_line)
        if m is None or m.group(1).upper() != "SIP/2.0":
            raise HeaderError(f"bad status line {start_line[:40]!r}")
        status = int(m.group(2))
        if status < 100:
            raise HeaderError("status code below 100")
        _validate(headers, False, None)
        return Response(status, m.group(3) or "", headers, body)
    parts = start_line.split(" ")
    if len(parts) != 3:
        raise HeaderError("request line must be Method SP Request-URI SP SIP-Version")  # RFC 4475 §3.1.2.9
    method, uri_text, version = parts
    if _TOKEN_RE.fullmatch(method) is None:
        raise HeaderError("bad method")
    if _VERSION_RE.fullmatch(version) is None:
        raise HeaderError("bad SIP-Version")
    if version.upper() != "SIP/2.0":
        raise SipParseError(505, "Version Not Supported")
    if len(uri_text) > MAX_URI_LENGTH:
        raise SipParseError(414, "Request-URI Too Long")
    uri = parse_uri(uri_text)
    if not isinstance(uri, SipUri | TelUri):
        raise SipParseError(416, "Unsupported URI Scheme")  # RFC 3261 §8.2.2.1
    if isinstance(uri, SipUri) and uri.headers:
        raise HeaderError("headers are not allowed in a Request-URI")  # RFC 3261 §19.1.1, RFC 4475 §3.1.2.11
    _validate(headers, True, method)
    return Request(method, uri, headers, body)


_ECHOED = ("Via", "From", "To", "Call-ID", "CSeq")  # RFC 3261 §8.2.6.2


def build_error_response(
    source: SipParseError | Request,
    status: int | None = None,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
) -> Response | None:
    """A stateless final response to a (possibly malformed) request (RFC 3261 §8.2.6).

    Returns None when no answer is possible or allowed: the source was a response, an ACK
    (RFC 3261 §17.1.1.3 never answered), or a header needed to route it back (Via, From, To,
    Call-ID, CSeq) is missing, or the top Via or CSeq is unreadable (the client could not match
    the answer to its transaction). From, To and Call-ID are echoed verbatim even if malformed:
    they are the peer's own words. Status/reason default to the parse error's.
    """
    if isinstance(source, SipParseError):
        if source.is_request is not True or source.headers is None:
            return None
        headers = source.headers
        status = status or source.status
        reason = reason or source.reason
    else:
        headers = source.headers
        if source.method == "ACK":
            return None
        if status is None:
            raise ValueError("status is required when answering a parsed request")
        reason = reason or ""
    if any(name not in headers for name in _ECHOED):
        return None
    try:
        if parse_cseq(headers.lines("CSeq")[0]).method == "ACK":
            return None
        parse_via_list(headers.lines("Via")[0])
    except HeaderError:
        return None
    out = Headers()
    for name in _ECHOED:  # every Via (the response retraces them); one of each single-value header
        for value in headers.lines(name) if name == "Via" else headers.lines(name)[:1]:
            out.add(name, value)
    if to_tag is not None and status != 100:
        to_value = out.lines("To")[0]
        try:
            has_tag = parse_name_addr(to_value).tag is not None
        except HeaderError:
            has_tag = True  # an unparsable To is echoed untouched rather than made worse
        if not has_tag:
            out.set("To", f"{to_value};tag={to_tag}")
    return Response(status, reason or "", out)


@dataclass(frozen=True)
class FramedMessage:
    """One complete message cut from a stream; hand `data` to `parse_message`."""

    data: bytes


@dataclass(frozen=True)
class CrlfPing:
    """A CRLFCRLF keep-alive (RFC 5626 §3.5.1): answer with a single CRLF."""


@dataclass(frozen=True)
class CrlfPong:
    """A lone CRLF: the answer to our ping (RFC 5626 §4.4.1)."""


StreamEvent = FramedMessage | CrlfPing | CrlfPong


class FramingError(Exception):
    """The stream cannot be framed any more; the transport should close the connection (after an
    optional `status` response, RFC 3261 §18.3). The framer refuses further input."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.framed: list[StreamEvent] = []
        """Events framed from the same input before the error: still to be delivered."""


_CL_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


class StreamFramer:
    """Cuts a TCP/TLS byte stream into messages by Content-Length, which is mandatory on streams
    (RFC 3261 §18.3), and reports keep-alives between messages.

    A CRLFCRLF is a ping; a CRLF not followed by another CRLF in the same read is a pong (a ping split
    across reads is thus reported as two pongs, which is harmless: pongs only refresh a timer).
    """

    def __init__(
        self, max_header_bytes: int = MAX_HEADER_BYTES, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self._buffer = bytearray()
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        self._failed: FramingError | None = None
        self._scanned = 0  # where the search for the blank line resumes (keeps byte-wise feeds linear)
        self._total: int | None = None  # size of the message at the buffer's head, once its header is in

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        events: list[StreamEvent] = []
        try:
            while self._next(events):
                pass
        except FramingError as exc:
            exc.framed = events
            self._failed = exc
            raise
        return events

    def _next(self, events: list[StreamEvent]) -> bool:
        buf = self._buffer
        if self._total is None:
            if buf.startswith(b"\r\n\r\n"):
                del buf[:4]
                events.append(CrlfPing())
                return True
            if buf.startswith(b"\r\n") and (len(buf) == 2 or buf[2:3] != b"\r"):
                del buf[:2]
                events.append(CrlfPong())
                return True
            if buf[:1] == b"\r" and len(buf) < 4:
                return False
            self._total = self._message_size(buf)
            if self._total is None:
                return False
        total = self._total
        if len(buf) < total:
            return False
        events.append(FramedMessage(bytes(buf[:total])))
        del buf[:total]
        self._total, self._scanned = None, 0
        return True

    def _message_size(self, buf: bytearray) -> int | None:
        """Header plus Content-Length octets, or None while the header is incomplete."""
        end = buf.find(b"\r\n\r\n", self._scanned)
        if end < 0:
            if len(buf) > self._max_header:
                raise FramingError(513, "Message Too Large")
            self._scanned = max(0, len(buf) - 3)
            return None
        if end > self._max_header:
            raise FramingError(513, "Message Too Large")
        head = bytes(buf[:end]).replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
        lengths = _CL_RE.findall(head)
        if not lengths:
            raise FramingError(400, "Missing Content-Length on a stream transport")
        text = lengths[0].strip()
        if not text.isdigit() or len(text) > 10:
            raise FramingError(400, "Bad Content-Length")
        length = int(text)
        if length > self._max_body:
            raise FramingError(413, "Request Entity Too Large")
        return end + 4 + length
