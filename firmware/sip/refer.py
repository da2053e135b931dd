"""Call transfer on the wire: REFER's Refer-To (RFC 3515), Replaces (RFC 3891) and the sipfrag
progress reports of the implicit subscription (RFC 3515 §2.4.4, RFC 3420). Pure functions: the user
agent puts them into requests and reads them out of requests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from firmware.sip.headers import HeaderError, NameAddr, parse_name_addr, parse_params
from firmware.sip.uri import HEADER_SAFE, SipUri, TelUri, UriError, escape, unescape

SIPFRAG = "message/sipfrag"
"""The NOTIFY body type of the refer event package (RFC 3515 §2.4.5), 'SIP/2.0 200 OK'."""
REFER_EXPIRES = 60
"""Subscription-State expiry we announce in a NOTIFY of an active refer subscription (RFC 3515
§2.4.4 leaves it to the notifier; 60 s is a few times a blind transfer's ringing time)."""


class ReferError(ValueError):
    """A Refer-To, Replaces or sipfrag that cannot be used (the UA answers 400)."""


@dataclass(frozen=True)
class Replaces:
    """The dialog an INVITE is to replace (RFC 3891 §6.1), as the receiver of that INVITE names it:
    `to_tag` is the receiver's own (local) tag, `from_tag` the other side's."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    def __str__(self) -> str:
        early = ";early-only" if self.early_only else ""
        return f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}{early}"


def parse_replaces(value: str) -> Replaces:
    call_id, _, rest = value.strip().partition(";")
    try:
        params = {k.lower(): v for k, v in parse_params(";" + rest)} if rest else {}
    except HeaderError as exc:
        raise ReferError(f"bad Replaces: {exc}") from None
    to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
    if not call_id or not to_tag or not from_tag:
        raise ReferError(f"Replaces needs a Call-ID, to-tag and from-tag: {value!r}")
    return Replaces(call_id.strip(), to_tag, from_tag, "early-only" in params)


def refer_to(target: SipUri | TelUri, replaces: Replaces | None = None) -> str:
    """The Refer-To value: `target`, carrying `?Replaces=` (escaped as a URI header, RFC 3891 §7)
    for an attended transfer. A tel URI cannot carry headers, so attended needs a SIP target."""
    if replaces is None:
        return str(NameAddr(target))
    if not isinstance(target, SipUri):
        raise ReferError("an attended transfer needs a SIP URI to carry Replaces")
    headers = (*target.headers, ("Replaces", escape(str(replaces), HEADER_SAFE)))
    return str(NameAddr(replace(target, headers=headers)))


@dataclass(frozen=True)
class ReferTarget:
    """What an incoming REFER asks for: call `uri` (its headers stripped), replacing `replaces`."""

    uri: SipUri | TelUri
    replaces: Replaces | None


def parse_refer_to(value: str) -> ReferTarget:
    """Refer-To of a received REFER (RFC 3515 §2.1): a SIP/SIPS/tel URI; an embedded Replaces is
    returned apart, other URI headers are dropped (we never copy arbitrary headers into an INVITE)."""
    try:
        uri = parse_name_addr(value).uri
    except (HeaderError, UriError) as exc:
        raise ReferError(f"bad Refer-To: {exc}") from None
    if isinstance(uri, TelUri):
        return ReferTarget(uri, None)
    if not isinstance(uri, SipUri):
        raise ReferError(f"Refer-To must be a SIP or tel URI, not {uri}")
    replaces = None
    for name, raw in uri.headers:
        if unescape(name).lower() == "replaces":
            replaces = parse_replaces(unescape(raw))
    return ReferTarget(replace(uri, headers=()), replaces)


def sipfrag(status: int, reason: str) -> bytes:
    """A status-line sipfrag (RFC 3420 §2), the body of a refer NOTIFY."""
    return f"SIP/2.0 {status} {reason}\r\n".encode()


def parse_sipfrag(body: bytes) -> int:
    """The status code of a sipfrag's status line (RFC 3515 §2.4.5 requires one)."""
    line = body.decode("utf-8", "replace").lstrip().split("\r\n", 1)[0].split("\n", 1)[0]
    version, _, rest = line.partition(" ")
    code = rest.split(" ", 1)[0]
    if version.upper() != "SIP/2.0" or len(code) != 3 or not code.isdigit():
        raise ReferError(f"not a sipfrag status line: {line[:60]!r}")
    return int(code)


def subscription_terminated(value: str | None) -> bool:
    """Whether a Subscription-State header ends the implicit subscription (RFC 6665 §8.2.3)."""
    return (value or "").split(";")[0].strip().lower() == "terminated"
