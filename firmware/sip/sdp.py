"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for an analog telephone adapter, sans-IO.

An ATA speaks G.711 only (PCMU/PCMA at 8 kHz, 20 ms frames) plus RFC 4733 telephone-event, optionally
over SDES-keyed SRTP (RFC 4568). This module parses and writes SDP bodies, builds our offers and answers,
and boils a completed exchange down to a :class:`Negotiated` the media layer can act on. Unknown lines
and attributes are kept so that a parsed body serializes back unchanged.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

__all__ = [
    "SRTP_SUITES",
    "Connection",
    "Crypto",
    "Direction",
    "Media",
    "MediaConfig",
    "Negotiated",
    "NotAcceptable",
    "Origin",
    "RtpMap",
    "SdpError",
    "SdpSession",
    "SessionDescription",
    "SrtpParams",
    "parse_sdp",
]

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
_DIRECTIONS: tuple[str, ...] = get_args(Direction)

#: SDES suites we can run (RFC 4568 §6.2): both take a 16-byte AES key and a 14-byte salt.
SRTP_SUITES: dict[str, int] = {"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30}

#: RFC 3551 §6 static payload types an ATA can use.
_STATIC_PT: dict[int, tuple[str, int]] = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}
_G711 = ("PCMU", "PCMA")

# RFC 4566 §5: the order lines must appear in (session part, then each media part).
_SESSION_ORDER = "vosiuepcbtrzka"
_MEDIA_ORDER = "micbka"


class SdpError(ValueError):
    """The body is not valid SDP (the caller answers 400 Bad Request)."""


class NotAcceptable(Exception):
    """Valid SDP, but no stream we can run (the caller answers 488 Not Acceptable Here, or ends the call)."""


# --- model ---------------------------------------------------------------------------------------------


@dataclass
class Origin:
    """The o= line (RFC 4566 §5.2); ``version`` must grow whenever the session changes (RFC 3264 §8)."""

    username: str
    session_id: str
    version: int
    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} {self.nettype} {self.addrtype} {self.address}"
        )


@dataclass
class Connection:
    """A c= line (RFC 4566 §5.7); ``address`` keeps any multicast /ttl suffix as written."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """A c= line for one of our unicast addresses, choosing IP4/IP6 from its form."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError as exc:
            raise SdpError(f"not an IP address: {address!r}") from exc
        return cls(address, "IP6" if ip.version == 6 else "IP4")

    @property
    def is_hold(self) -> bool:
        """RFC 2543 hold: c=0.0.0.0 means "do not send to me" (RFC 3264 §8.4 asks us to recognise it)."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True)
class RtpMap:
    """An a=rtpmap value (RFC 4566 §6): encoding name, clock rate, channel count."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1


@dataclass(frozen=True)
class Crypto:
    """An a=crypto value (RFC 4568 §9.1) with a single inline key; ``key`` is master key || salt."""

    tag: int
    suite: str
    key: bytes = field(repr=False)
    lifetime: str | None = None
    mki: str | None = None
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Crypto:
        """Strict parse: key length checked for suites we know, since a short key would break SRTP."""
        parts = value.split()
        if len(parts) < 3:
            raise SdpError(f"a=crypto needs tag, suite and key-params: {value!r}")
        tag_text, suite, key_params, *session_params = parts
        if not tag_text.isdigit() or len(tag_text) > 9:
            raise SdpError(f"a=crypto tag must be 1-9 digits: {value!r}")
        if ";" in key_params:
            raise SdpError(f"a=crypto with several key-params is not supported: {value!r}")
        method, _, info = key_params.partition(":")
        if method != "inline" or not info:
            raise SdpError(f"a=crypto key method must be inline: {value!r}")
        key_text, *extras = info.split("|")
        if len(extras) > 2:
            raise SdpError(f"a=crypto key-info has too many fields: {value!r}")
        lifetime = mki = None
        for extra in extras:
            if ":" in extra:
                mki = extra
            else:
                lifetime = extra
        try:
            key = base64.b64decode(key_text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SdpError(f"a=crypto key is not base64: {value!r}") from exc
        want = SRTP_SUITES.get(suite)
        if want is not None and len(key) != want:
            raise SdpError(f"a=crypto {suite} needs a {want}-byte key||salt, got {len(key)}: {value!r}")
        return cls(int(tag_text), suite, key, lifetime, mki, tuple(session_params))

    def __str__(self) -> str:
        info = base64.b64encode(self.key).decode()
        for extra in (self.lifetime, self.mki):
            if extra is not None:
                info += "|" + extra
        return " ".join([str(self.tag), self.suite, "inline:" + info, *self.session_params])


Attribute = tuple[str, str | None]


def _find(attributes: list[Attribute], name: str) -> list[str | None]:
    return [value for key, value in attributes if key == name]


def _direction_of(attributes: list[Attribute]) -> Direction | None:
    for key, value in attributes:
        if value is None and key in _DIRECTIONS:
            return cast(Direction, key)
    return None


@dataclass
class Media:
    """One m= section (RFC 4566 §5.14) and its lines."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    #: i=, b= and k= lines, as (type, value), in the order received.
    other: list[tuple[str, str]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """The value of the first a=name:value line, or None."""
        values = [v for v in _find(self.attributes, name) if v is not None]
        return values[0] if values else None

    def rtpmaps(self) -> dict[int, RtpMap]:
        """Payload type -> mapping, including the static G.711 types when no rtpmap overrides them."""
        maps = {
            pt: RtpMap(pt, name, rate) for pt, (name, rate) in _STATIC_PT.items() if str(pt) in self.formats
        }
        for value in _find(self.attributes, "rtpmap"):
            parsed = _parse_rtpmap(value)
            maps[parsed.payload_type] = parsed
        return maps

    def fmtp(self, payload_type: int) -> str | None:
        for value in _find(self.attributes, "fmtp"):
            pt, _, params = (value or "").partition(" ")
            if pt == str(payload_type):
                return params
        return None

    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        return None if value is None else _parse_ms("ptime", value)

    def cryptos(self) -> list[str]:
        return [v for v in _find(self.attributes, "crypto") if v is not None]

    def lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        out += [f"{t}={v}" for t, v in self.other if t == "i"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [
            f"{t}={v}" for t, v in sorted(self.other, key=lambda tv: _MEDIA_ORDER.index(tv[0])) if t != "i"
        ]
        out += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        return out


@dataclass
class SessionDescription:
    """A whole SDP body. ``timing`` holds t= and r= lines in order; ``other`` the rest (i u e p b z k)."""

    origin: Origin
    name: str = "-"
    connection: Connection | None = None
    timing: list[tuple[str, str]] = field(default_factory=lambda: [("t", "0 0")])
    attributes: list[Attribute] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)

    def serialize(self) -> str:
        """CRLF-terminated text in RFC 4566 §5 line order."""
        head = [("v", "0"), ("o", str(self.origin)), ("s", self.name), *self.other, *self.timing]
        if self.connection is not None:
            head.append(("c", str(self.connection)))
        head.sort(key=lambda tv: _SESSION_ORDER.index(tv[0]))  # stable: keeps t/r and repeated lines in order
        lines = [f"{t}={v}" for t, v in head]
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        for m in self.media:
            lines += m.lines()
        return "\r\n".join(lines) + "\r\n"

    def connection_for(self, media: Media) -> Connection | None:
        """Media-level c= wins over the session-level one (RFC 4566 §5.7)."""
        return media.connection or self.connection

    def direction_for(self, media: Media) -> Direction:
        """Media-level direction, else session-level, else sendrecv (RFC 3264 §5.1)."""
        return _direction_of(media.attributes) or _direction_of(self.attributes) or "sendrecv"


# --- parsing ----------------------------------------------------------------------------------------------


def _parse_ms(name: str, value: str | None) -> int:
    """a=ptime / a=maxptime in milliseconds (RFC 4566 §6); decimals are allowed and rounded down."""
    if value is None:
        raise SdpError(f"a={name} without a value")
    try:
        number = int(float(value)) if "." in value else int(value)
    except ValueError as exc:
        raise SdpError(f"a={name} is not a number: {value!r}") from exc
    if number <= 0:
        raise SdpError(f"a={name} must be positive: {value!r}")
    return number


def _parse_rtpmap(value: str | None) -> RtpMap:
    pt_text, _, encoding = (value or "").partition(" ")
    parts = encoding.strip().split("/")
    try:
        pt = int(pt_text)
        rate = int(parts[1])
        channels = int(parts[2]) if len(parts) > 2 else 1
    except (ValueError, IndexError) as exc:
        raise SdpError(f"malformed a=rtpmap: {value!r}") from exc
    if not 0 <= pt <= 127 or not parts[0] or len(parts) > 3:
        raise SdpError(f"malformed a=rtpmap: {value!r}")
    return RtpMap(pt, parts[0], rate, channels)


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"malformed c= line: {value!r}")
    address = parts[2]
    try:
        ip = ipaddress.ip_address(address.split("/")[0])
    except ValueError as exc:
        raise SdpError(f"c= address is not an IP address: {value!r}") from exc
    if (ip.version == 6) != (parts[1] == "IP6"):
        raise SdpError(f"c= address does not match {parts[1]}: {value!r}")
    return Connection(address, parts[1], parts[0])


def _parse_media(value: str) -> Media:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"m= needs media, port, proto and at least one format: {value!r}")
    media, port_text, proto, *formats = parts
    port_str, _, count_str = port_text.partition("/")
    try:
        port = int(port_str)
        count = int(count_str) if count_str else None
    except ValueError as exc:
        raise SdpError(f"m= port is not a number: {value!r}") from exc
    if not 0 <= port <= 65535:
        raise SdpError(f"m= port out of range: {value!r}")
    if proto.startswith("RTP/") and not all(f.isdigit() and int(f) <= 127 for f in formats):
        raise SdpError(f"m= RTP formats must be payload types 0-127: {value!r}")
    return Media(media, port, proto, formats, count)


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(f"o= needs 6 fields: {value!r}")
    username, session_id, version, nettype, addrtype, address = parts
    if not version.isdigit():
        raise SdpError(f"o= session version must be numeric: {value!r}")
    return Origin(username, session_id, int(version), address, addrtype, nettype)


def _check_known_attribute(key: str, value: str | None) -> None:
    """Validate the attributes negotiation relies on, so bad ones fail as SdpError at parse time."""
    if key == "rtpmap":
        _parse_rtpmap(value)
    elif key in ("ptime", "maxptime"):
        _parse_ms(key, value)
    elif key == "rtcp":
        _parse_rtcp(value, "0.0.0.0")


def _parse_rtcp(value: str | None, default_address: str) -> tuple[str, int]:
    """a=rtcp:port [nettype addrtype address] (RFC 3605 §2.1)."""
    parts = (value or "").split(maxsplit=1)
    if not parts or not parts[0].isdigit() or int(parts[0]) > 65535:
        raise SdpError(f"malformed a=rtcp: {value!r}")
    address = _parse_connection(parts[1]).address if len(parts) > 1 else default_address
    return address, int(parts[0])


def parse_sdp(data: str | bytes) -> SessionDescription:
    """Parse an SDP body; raises SdpError naming the offending line."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"SDP is not UTF-8: {exc}") from exc
    lines = [line.rstrip("\r") for line in data.split("\n")]
    lines = [line for line in lines if line.strip()]
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")
    origin: Origin | None = None
    name: str | None = None
    session = SessionDescription(Origin("-", "0", 0, "0.0.0.0"), timing=[])
    current: Media | None = None
    for number, line in enumerate(lines[1:], start=2):
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(f"line {number} is not type=value: {line!r}")
        kind, value = line[0], line[2:]
        if kind not in _SESSION_ORDER + "m" or kind == "v":
            raise SdpError(f"line {number}: unknown or repeated line type {kind}=")
        if kind == "m":
            current = _parse_media(value)
            session.media.append(current)
        elif kind == "a":
            key, sep, attr_value = value.partition(":")
            if not key:
                raise SdpError(f"line {number}: empty attribute name")
            _check_known_attribute(key, attr_value if sep else None)
            target = current.attributes if current is not None else session.attributes
            target.append((key, attr_value if sep else None))
        elif kind == "c":
            connection = _parse_connection(value)
            if current is not None:
                current.connection = connection
            else:
                session.connection = connection
        elif current is not None:
            if kind not in "bik":
                raise SdpError(f"line {number}: {kind}= is not allowed in a media section")
            current.other.append((kind, value))
        elif kind == "o":
            origin = _parse_origin(value)
        elif kind == "s":
            name = value
        elif kind in "tr":
            if kind == "t" and len(value.split()) != 2:
                raise SdpError(f"line {number}: t= needs start and stop times: {value!r}")
            session.timing.append((kind, value))
        else:  # i u e p b z k
            session.other.append((kind, value))
    if origin is None or name is None:
        raise SdpError("SDP needs o= and s= lines")
    if not any(kind == "t" for kind, _ in session.timing):
        raise SdpError("SDP needs a t= line")
    session.origin = origin
    session.name = name
    return session


# --- negotiation ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaConfig:
    """What this port can and wants to do.

    ``srtp``: "off" offers RTP/AVP and rejects RTP/SAVP offers; "accept" offers RTP/AVP but answers
    RTP/SAVP offers with SRTP; "require" offers RTP/SAVP and rejects plain RTP/AVP offers.
    """

    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    telephone_event_pt: int | None = 101
    telephone_events: str = "0-16"
    ptime: int = 20
    srtp: Literal["off", "accept", "require"] = "accept"
    #: Pick the codec by our order instead of the offerer's (RFC 3264 §6.1 lets the answerer choose).
    prefer_own_order: bool = False

    def __post_init__(self) -> None:
        if not self.codecs or any(c not in _G711 for c in self.codecs):
            raise ValueError(f"codecs must be a non-empty subset of {_G711}, got {self.codecs}")
        if self.telephone_event_pt is not None and not 96 <= self.telephone_event_pt <= 127:
            raise ValueError(f"telephone_event_pt must be dynamic (96-127), got {self.telephone_event_pt}")
        if self.ptime <= 0:
            raise ValueError(f"ptime must be positive, got {self.ptime}")


@dataclass(frozen=True)
class SrtpParams:
    """Keys for SRTP (RFC 4568): we encrypt with ``local_key``, decrypt with ``remote_key``."""

    suite: str
    local_key: bytes = field(repr=False)  # keep master keys out of logs
    remote_key: bytes = field(repr=False)


@dataclass(frozen=True)
class Negotiated:
    """The outcome of one offer/answer exchange, for the media layer.

    ``direction`` is ours: "sendonly" means we send and ignore incoming audio. ``ptime`` is the
    packetization the peer asked for (a=ptime), or ours when it did not say.
    """

    codec: str
    payload_type: int
    clock_rate: int
    telephone_event_pt: int | None
    ptime: int
    remote_addr: str
    remote_port: int
    remote_rtcp: tuple[str, int]
    direction: Direction
    srtp: SrtpParams | None


def _flags(direction: Direction) -> tuple[bool, bool]:
    return direction in ("sendrecv", "sendonly"), direction in ("sendrecv", "recvonly")


def _from_flags(send: bool, recv: bool) -> Direction:
    if send:
        return "sendrecv" if recv else "sendonly"
    return "recvonly" if recv else "inactive"


def _peer_flags(sd: SessionDescription, media: Media) -> tuple[bool, bool]:
    """What the peer says it does (send, receive); c=0.0.0.0 means it will not receive (RFC 3264 §8.4)."""
    send, recv = _flags(sd.direction_for(media))
    connection = sd.connection_for(media)
    if connection is not None and connection.is_hold:
        recv = False
    return send, recv


def _remote_endpoints(sd: SessionDescription, media: Media) -> tuple[str, int, tuple[str, int]]:
    connection = sd.connection_for(media)
    if connection is None:
        raise SdpError(f"no c= line for the {media.media} stream")
    address = connection.address.split("/")[0]
    value = media.attribute("rtcp")
    # RFC 3550 §11: RTCP on the next port up, unless a=rtcp says otherwise (RFC 3605).
    rtcp = _parse_rtcp(value, address) if value is not None else (address, media.port + 1)
    return address, media.port, rtcp


def _telephone_event(media: Media) -> RtpMap | None:
    for fmt in media.formats:
        mapping = media.rtpmaps().get(int(fmt))
        if mapping and mapping.encoding.lower() == "telephone-event" and mapping.clock_rate == 8000:
            return mapping
    return None


def _g711_offered(media: Media) -> list[RtpMap]:
    maps = media.rtpmaps()
    found = []
    for fmt in media.formats:
        mapping = maps.get(int(fmt))
        if (
            mapping is not None
            and mapping.encoding.upper() in _G711
            and mapping.clock_rate == 8000
            and mapping.channels == 1
        ):
            found.append(RtpMap(mapping.payload_type, mapping.encoding.upper(), 8000))
    return found


class SdpSession:
    """Our SDP side of one dialog: a stable o= identity, a version that moves only when the body changes
    (RFC 3264 §8), per-dialog SRTP keys, and the outstanding offer awaiting its answer.

    ``address``/``port`` are our RTP endpoint and may be changed between offers.
    """

    def __init__(
        self,
        config: MediaConfig,
        address: str,
        port: int,
        *,
        session_id: int | None = None,
        username: str = "hookflash",
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.config = config
        self.address = address
        self.port = port
        self._username = username
        self._session_id = str(session_id if session_id is not None else int.from_bytes(random_bytes(4)))
        self._version = 0
        self._last_body: str | None = None
        # Fresh keys per dialog: re-offers (hold/resume) reuse them so the media layer need not rekey.
        self._keys = {suite: random_bytes(length) for suite, length in SRTP_SUITES.items()}
        self._offer: SessionDescription | None = None

    # ---- building blocks

    def _finish(self, media: list[Media]) -> SessionDescription:
        """Wrap m-lines in a session; bump o= version only if the text changed since our last SDP."""
        connection = Connection.for_address(self.address)
        sd = SessionDescription(
            Origin(self._username, self._session_id, self._version, self.address, connection.addrtype),
            connection=connection,
            media=media,
        )
        body = sd.serialize()
        if self._last_body is not None and body != self._last_body:
            self._version += 1
            sd.origin.version = self._version
            body = sd.serialize()
        self._last_body = body
        return sd

    def _add_common(self, media: Media, te: RtpMap | None, te_fmtp: str | None) -> None:
        """telephone-event (RFC 4733 §2.4) and our ptime, shared by offers and answers."""
        if te is not None:
            media.formats.append(str(te.payload_type))
            media.attributes.append(("rtpmap", f"{te.payload_type} telephone-event/8000"))
            if te_fmtp:
                media.attributes.append(("fmtp", f"{te.payload_type} {te_fmtp}"))
        media.attributes.append(("ptime", str(self.config.ptime)))

    # ---- offerer side

    def create_offer(self, direction: Direction = "sendrecv") -> SessionDescription:
        """Our offer: G.711 in preference order, telephone-event, ptime, and SDES crypto when required.

        Use ``direction="sendonly"`` to put the call on hold (RFC 3264 §8.4).
        """
        srtp = self.config.srtp == "require"
        media = Media("audio", self.port, "RTP/SAVP" if srtp else "RTP/AVP", [])
        for codec in self.config.codecs:
            pt = 0 if codec == "PCMU" else 8
            media.formats.append(str(pt))
            media.attributes.append(("rtpmap", f"{pt} {codec}/8000"))
        te_pt = self.config.telephone_event_pt
        te = RtpMap(te_pt, "telephone-event", 8000) if te_pt is not None else None
        self._add_common(media, te, self.config.telephone_events)
        if srtp:
            for tag, suite in enumerate(SRTP_SUITES, start=1):
                media.attributes.append(("crypto", str(Crypto(tag, suite, self._keys[suite]))))
        media.attributes.append((direction, None))
        self._offer = self._finish([media])
        return self._offer

    def process_answer(self, answer: SessionDescription) -> Negotiated:
        """Apply the answer to our outstanding offer (RFC 3264 §7).

        Raises NotAcceptable if the peer rejected the audio stream (port 0) or answered with something we
        did not offer; the caller then ends the call. Raises SdpError if there is no offer outstanding or
        the answer breaks RFC 3264 §6 (different m-line count).
        """
        offer = self._offer
        if offer is None:
            raise SdpError("no offer outstanding")
        if len(answer.media) != len(offer.media):
            raise SdpError(f"answer has {len(answer.media)} m-lines, offer had {len(offer.media)}")
        ours, theirs = offer.media[0], answer.media[0]
        if theirs.port == 0:
            raise NotAcceptable("peer rejected the audio stream (port 0)")
        if theirs.proto != ours.proto:
            raise NotAcceptable(f"peer answered {theirs.proto} to our {ours.proto}")
        offered = {m.payload_type: m for m in _g711_offered(ours)}
        codec = next((m for m in _g711_offered(theirs) if m.payload_type in offered), None)
        if codec is None:
            raise NotAcceptable(f"answer has no codec we offered: {theirs.formats}")
        te = _telephone_event(theirs) if _telephone_event(ours) is not None else None
        srtp = None
        if ours.proto == "RTP/SAVP":
            srtp = self._answered_crypto(ours, theirs)
        address, port, rtcp = _remote_endpoints(answer, theirs)
        peer_send, peer_recv = _peer_flags(answer, theirs)
        our_send, our_recv = _flags(offer.direction_for(ours))
        self._offer = None
        return Negotiated(
            codec=codec.encoding,
            payload_type=codec.payload_type,
            clock_rate=codec.clock_rate,
            telephone_event_pt=te.payload_type if te is not None else None,
            ptime=theirs.ptime() or self.config.ptime,
            remote_addr=address,
            remote_port=port,
            remote_rtcp=rtcp,
            direction=_from_flags(our_send and peer_recv, our_recv and peer_send),
            srtp=srtp,
        )

    def _answered_crypto(self, ours: Media, theirs: Media) -> SrtpParams:
        mine = {c.tag: c for c in map(Crypto.parse, ours.cryptos())}
        for value in theirs.cryptos():
            crypto = Crypto.parse(value)
            offered = mine.get(crypto.tag)
            if offered is not None and offered.suite == crypto.suite:
                return SrtpParams(crypto.suite, offered.key, crypto.key)
        raise NotAcceptable("SRTP answer has no a=crypto matching one we offered")

    # ---- answerer side

    def create_answer(
        self, offer: SessionDescription, direction: Direction = "sendrecv"
    ) -> tuple[SessionDescription, Negotiated]:
        """Answer an offer (RFC 3264 §6): one audio stream accepted, every other m-line rejected with
        port 0 in place. ``direction`` is what we want (e.g. "sendonly" while we hold the call).

        Raises NotAcceptable (488) when no audio stream is usable, SdpError (400) for broken SDP.
        """
        answer_media: list[Media] = []
        reasons: list[str] = []
        result: Negotiated | None = None
        for index, offered in enumerate(offer.media):
            accepted = None
            if result is None:
                try:
                    accepted, result = self._accept(offer, offered, direction)
                except NotAcceptable as exc:
                    reasons.append(f"m-line {index + 1}: {exc}")
            answer_media.append(accepted or Media(offered.media, 0, offered.proto, list(offered.formats)))
        if result is None:
            raise NotAcceptable("; ".join(reasons) or "offer has no m-lines")
        return self._finish(answer_media), result

    def _accept(
        self, offer: SessionDescription, offered: Media, direction: Direction
    ) -> tuple[Media, Negotiated]:
        if offered.media != "audio":
            raise NotAcceptable(f"{offered.media} is not supported")
        if offered.port == 0:
            raise NotAcceptable("stream disabled by the offerer")
        if offered.proto not in ("RTP/AVP", "RTP/SAVP"):
            raise NotAcceptable(f"transport {offered.proto} is not supported")
        if offered.proto == "RTP/AVP" and self.config.srtp == "require":
            raise NotAcceptable("SRTP is required but the offer is RTP/AVP")
        if offered.proto == "RTP/SAVP" and self.config.srtp == "off":
            raise NotAcceptable("SRTP is disabled but the offer is RTP/SAVP")
        codecs = _g711_offered(offered)
        codecs = [m for m in codecs if m.encoding in self.config.codecs]
        if self.config.prefer_own_order:
            codecs.sort(key=lambda m: self.config.codecs.index(m.encoding))
        if not codecs:
            names = sorted({m.encoding for m in offered.rtpmaps().values()})
            raise NotAcceptable(f"no common codec (offered {', '.join(names) or ' '.join(offered.formats)})")
        codec = codecs[0]
        srtp = self._pick_crypto(offered) if offered.proto == "RTP/SAVP" else None
        address, port, rtcp = _remote_endpoints(offer, offered)

        peer_send, peer_recv = _peer_flags(offer, offered)
        want_send, want_recv = _flags(direction)
        ours = _from_flags(want_send and peer_recv, want_recv and peer_send)

        media = Media("audio", self.port, offered.proto, [str(codec.payload_type)])
        media.attributes.append(("rtpmap", f"{codec.payload_type} {codec.encoding}/8000"))
        te = _telephone_event(offered) if self.config.telephone_event_pt is not None else None
        self._add_common(media, te, offered.fmtp(te.payload_type) if te else None)
        if srtp is not None:
            media.attributes.append(("crypto", str(Crypto(srtp[0], srtp[1].suite, srtp[1].local_key))))
        media.attributes.append((ours, None))
        negotiated = Negotiated(
            codec=codec.encoding,
            payload_type=codec.payload_type,
            clock_rate=codec.clock_rate,
            telephone_event_pt=te.payload_type if te is not None else None,
            ptime=offered.ptime() or self.config.ptime,
            remote_addr=address,
            remote_port=port,
            remote_rtcp=rtcp,
            direction=ours,
            srtp=srtp[1] if srtp is not None else None,
        )
        return media, negotiated

    def _pick_crypto(self, offered: Media) -> tuple[int, SrtpParams]:
        """The offerer's first usable a=crypto (RFC 4568 §7.1.1), answered with our key and its tag."""
        problems: list[str] = []
        for value in offered.cryptos():
            try:
                crypto = Crypto.parse(value)
            except SdpError as exc:
                problems.append(str(exc))
                continue
            if crypto.suite not in SRTP_SUITES:
                problems.append(f"suite {crypto.suite} unsupported")
            elif crypto.mki is not None or crypto.session_params:
                problems.append(f"tag {crypto.tag}: MKI/session parameters unsupported")
            else:
                return crypto.tag, SrtpParams(crypto.suite, self._keys[crypto.suite], crypto.key)
        raise NotAcceptable("no usable a=crypto (" + ("; ".join(problems) or "none offered") + ")")
