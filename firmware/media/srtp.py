"""SRTP and SRTCP (RFC 3711) with SDES-negotiated keys (RFC 4568), through libsrtp (pylibsrtp).

One `SrtpContext` per call: it encrypts what we send with our key (the one we put in our a=crypto) and
decrypts what we receive with the peer's (RFC 4568: each side sends with the key it advertised).
Two libsrtp sessions, one per direction, each with a wildcard SSRC template (`SSRC_ANY_OUTBOUND`,
`SSRC_ANY_INBOUND`), so a peer that changes SSRC mid-call (re-INVITE, transfer) still decrypts.

Every per-packet failure (bad tag, replay, garbage) raises `SrtpError`: the RTP adapter drops the
packet and counts it, the call goes on. Configuration mistakes (unknown suite, bad key) raise
`ValueError` at construction, when the offer/answer is applied.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

import pylibsrtp

from firmware.sip.sdp import SrtpParams

__all__ = ["AUTH_TAG_LENGTH", "KEY_LENGTH", "PROFILES", "SRTCP_TRAILER_LENGTH", "SrtpContext", "SrtpError"]

KEY_LENGTH = 30
"""Master key (16 bytes) || master salt (14 bytes) for both AES_CM_128 suites (RFC 4568 §6.2.1-2)."""

PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
"""libsrtp profile per SDES suite name; the keys must stay those of `firmware.sip.sdp.SRTP_SUITES`."""

AUTH_TAG_LENGTH: dict[str, int] = {"AES_CM_128_HMAC_SHA1_80": 10, "AES_CM_128_HMAC_SHA1_32": 4}
"""Bytes an SRTP packet grows by, per suite (RFC 4568 §6.2.1-2)."""

SRTCP_TRAILER_LENGTH = 14
"""Bytes an SRTCP packet grows by for either suite: E flag + 31-bit index, then an 80-bit tag.
RFC 4568 §6.2.2 keeps SRTCP's tag at 80 bits even for the _32 suite (the short tag is an RTP-only
saving), and libsrtp does the same."""

class SrtpError(Exception):
    """One packet failed to protect or unprotect (authentication, replay, malformed); drop it."""


def _key(name: str, key: str | bytes) -> bytes:
    """Key material as bytes: raw bytes, or the base64 text of an SDES inline: key (RFC 4568 §9.1)."""
    if isinstance(key, str):
        try:
            key = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{name} is not base64") from exc
    if len(key) != KEY_LENGTH:
        raise ValueError(f"{name} must be {KEY_LENGTH} bytes of master key || salt, got {len(key)}")
    return bytes(key)


def _session(profile: int, key: bytes, ssrc_type: int) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=profile)
    return pylibsrtp.Session(policy)


class SrtpContext:
    """Protects our RTP/RTCP with `local_key` and unprotects the peer's with `remote_key`."""

    def __init__(self, suite: str, local_key: str | bytes, remote_key: str | bytes) -> None:
        profile = PROFILES.get(suite)
        if profile is None:
            raise ValueError(f"unsupported SRTP suite {suite!r}; supported: {', '.join(PROFILES)}")
        self.suite = suite
        self._tx = _session(profile, _key("local key", local_key), pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self._rx = _session(profile, _key("remote key", remote_key), pylibsrtp.Policy.SSRC_ANY_INBOUND)

    @classmethod
    def from_params(cls, params: SrtpParams) -> SrtpContext:
        """The context for the keys an SDP offer/answer settled on (`Negotiated.srtp`)."""
        return cls(params.suite, params.local_key, params.remote_key)

    def protect(self, rtp: bytes) -> bytes:
        """Encrypt and authenticate one RTP packet for sending."""
        return self._run("protect RTP", self._tx.protect, rtp)

    def unprotect(self, srtp: bytes) -> bytes:
        """Authenticate, replay-check and decrypt one received SRTP packet."""
        return self._run("unprotect SRTP", self._rx.unprotect, srtp)

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """Encrypt and authenticate one (compound) RTCP packet for sending."""
        return self._run("protect RTCP", self._tx.protect_rtcp, rtcp)

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """Authenticate, replay-check and decrypt one received SRTCP packet."""
        return self._run("unprotect SRTCP", self._rx.unprotect_rtcp, srtcp)

    @staticmethod
    def _run(what: str, func: Callable[[bytes], bytes], packet: bytes) -> bytes:
        try:
            return func(bytes(packet))
        except (pylibsrtp.Error, ValueError) as exc:  # ValueError: longer than libsrtp's 1500-byte buffer
            raise SrtpError(f"{what} failed: {exc}") from None

