"""Sans-IO SIP (RFC 3261): messages, URIs and header values here; transactions, dialogs,
registration, digest auth and SDP in sibling modules. Imports nothing from line, media or web."""

from firmware.sip.headers import CSeq, HeaderError, NameAddr, Via
from firmware.sip.message import (
    CrlfPing,
    CrlfPong,
    FramedMessage,
    FramingError,
    Headers,
    Request,
    Response,
    SipMessage,
    SipParseError,
    StreamFramer,
    build_error_response,
    parse_message,
)
from firmware.sip.uri import AbsoluteUri, SipUri, TelUri, Uri, UriError, parse_uri

__all__ = [
    "AbsoluteUri",
    "CSeq",
    "CrlfPing",
    "CrlfPong",
    "FramedMessage",
    "FramingError",
    "HeaderError",
    "Headers",
    "NameAddr",
    "Request",
    "Response",
    "SipMessage",
    "SipParseError",
    "SipUri",
    "StreamFramer",
    "TelUri",
    "Uri",
    "UriError",
    "Via",
    "build_error_response",
    "parse_message",
    "parse_uri",
]
