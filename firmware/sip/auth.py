"""Client-side (UAC) HTTP Digest authentication for SIP, sans-IO.

RFC 3261 §22 reuses HTTP Digest: RFC 2617 (MD5, MD5-sess, qop auth/auth-int, RFC 2069 compatibility),
RFC 7616 (SHA-256, SHA-512-256, userhash, picking the strongest of several challenges) and RFC 8760
(the same algorithms for SIP). Nothing here does I/O or reads a clock: the caller hands in header
values and gets header values back, so every path is testable with fixed inputs.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthError",
    "AuthFailed",
    "AuthHeader",
    "Challenge",
    "Credentials",
    "DigestClient",
    "build_authorization",
    "digest_response",
    "parse_challenges",
    "select_challenge",
]


class AuthError(ValueError):
    """A challenge cannot be parsed or answered (malformed header, no usable challenge, realm mismatch)."""


class AuthFailed(AuthError):
    """The server rejected our credentials: retrying would only loop (wrong username or password)."""


# Algorithm name -> (hashlib name, strength rank). RFC 7616 §3.7: prefer SHA-512-256 > SHA-256 > MD5.
_HASHES: dict[str, tuple[str, int]] = {
    "MD5": ("md5", 0),
    "SHA-256": ("sha256", 1),
    "SHA-512-256": ("sha512_256", 2),
}
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(
    name + suffix for name in _HASHES for suffix in ("", "-SESS")
)
_QOPS = ("auth", "auth-int")

_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_TOKEN68_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/")


@dataclass(frozen=True)
class Challenge:
    """One Digest challenge (RFC 7616 §3.3). ``algorithm`` is upper-cased, e.g. ``SHA-256-SESS``."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    opaque: str | None = None
    qop: tuple[str, ...] = ()
    stale: bool = False
    domain: tuple[str, ...] = ()
    userhash: bool = False
    #: The challenge named an algorithm explicitly (echoed back only then, as RFC 2069 peers expect).
    algorithm_given: bool = False

    @property
    def supported(self) -> bool:
        """We can answer it: a known algorithm and, if qop was offered, a qop we implement."""
        if self.algorithm not in SUPPORTED_ALGORITHMS:
            return False
        return not self.qop or any(q in _QOPS for q in self.qop)

    @property
    def strength(self) -> int:
        return _HASHES[self.algorithm.removesuffix("-SESS")][1]


class AuthHeader(NamedTuple):
    """A header to add to the retried request: ``Authorization`` or ``Proxy-Authorization``."""

    name: str
    value: str


@dataclass(frozen=True)
class Credentials:
    """SIP account secrets; ``realm=None`` answers any realm (RFC 3261 §22.1 default credentials)."""

    username: str
    password: str
    realm: str | None = None


# --- parsing -----------------------------------------------------------------------------------------


class _Scanner:
    """Tokenizer for the RFC 7235 §2.1 challenge list: scheme, then token/quoted-string params."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self, chars: frozenset[str] = _TOKEN_CHARS) -> str:
        self.skip_ws()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        """A quoted-string with backslash escapes (RFC 7230 §3.2.6); the cursor is on the quote."""
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\":
                if self.pos + 1 >= len(self.text):
                    break
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif ch == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(ch)
                self.pos += 1
        raise AuthError(f"unterminated quoted string in {self.text!r}")

    def value(self) -> str:
        if self.peek() == '"':
            return self.quoted()
        value = self.token()
        if not value:
            raise AuthError(f"missing parameter value at offset {self.pos} in {self.text!r}")
        return value


def _parse_params(text: str) -> list[tuple[str, dict[str, str]]]:
    """Split a header value into (scheme, params) pairs; params keys are lower-cased.

    A bare token where a parameter was expected starts the next challenge (RFC 7235 §4.1 allows
    several challenges in one value); token68 credentials of other schemes are skipped.
    """
    sc = _Scanner(text)
    result: list[tuple[str, dict[str, str]]] = []
    while not sc.at_end():
        if sc.peek() == ",":  # empty list elements are allowed (RFC 7230 §7)
            sc.pos += 1
            continue
        scheme = sc.token()
        if not scheme:
            raise AuthError(f"expected an auth scheme at offset {sc.pos} in {text!r}")
        params: dict[str, str] = {}
        result.append((scheme, params))
        while not sc.at_end():
            if sc.peek() == ",":
                sc.pos += 1
                continue
            mark = sc.pos
            name = sc.token(_TOKEN68_CHARS | _TOKEN_CHARS)
            if not name:
                raise AuthError(f"unexpected {sc.peek()!r} at offset {sc.pos} in {text!r}")
            if sc.peek() != "=":
                sc.pos = mark
                break
            sc.pos += 1
            if sc.peek() in ("=", ",", ""):  # token68 with '=' padding
                while sc.peek() == "=":
                    sc.pos += 1
                continue
            key = name.lower()
            if key in params:
                raise AuthError(f"duplicate parameter {name!r} in {text!r}")
            params[key] = sc.value()
            if not sc.at_end() and sc.peek() != ",":
                raise AuthError(f"expected ',' at offset {sc.pos} in {text!r}")
    return result


def parse_challenges(values: str | Sequence[str]) -> list[Challenge]:
    """Digest challenges from one or more WWW-/Proxy-Authenticate values; other schemes are skipped.

    Raises AuthError on a syntax error or a Digest challenge without realm or nonce (RFC 7616 §3.3).
    """
    if isinstance(values, str):
        values = [values]
    challenges: list[Challenge] = []
    for value in values:
        for scheme, params in _parse_params(value):
            if scheme.lower() != "digest":
                continue
            for required in ("realm", "nonce"):
                if required not in params:
                    raise AuthError(f"Digest challenge without {required}: {value!r}")
            algorithm = params.get("algorithm")
            qop = params.get("qop")
            challenges.append(
                Challenge(
                    realm=params["realm"],
                    nonce=params["nonce"],
                    algorithm=(algorithm or "MD5").upper(),
                    opaque=params.get("opaque"),
                    qop=tuple(q.strip().lower() for q in qop.split(",") if q.strip()) if qop else (),
                    stale=params.get("stale", "").lower() == "true",
                    domain=tuple(params.get("domain", "").split()),
                    userhash=params.get("userhash", "").lower() == "true",
                    algorithm_given=algorithm is not None,
                )
            )
    return challenges


def select_challenge(challenges: Sequence[Challenge]) -> Challenge | None:
    """The strongest supported challenge (RFC 7616 §3.7); ties keep the server's order."""
    best: Challenge | None = None
    for ch in challenges:
        if ch.supported and (best is None or ch.strength > best.strength):
            best = ch
    return best


# --- computation ---------------------------------------------------------------------------------------


def _h(algorithm: str, data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.new(_HASHES[algorithm.removesuffix("-SESS")][0], raw).hexdigest()


def digest_response(
    challenge: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    qop: str | None,
    cnonce: str = "",
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """The ``response`` value: RFC 2617 §3.2.2 / RFC 7616 §3.4.1 (``qop=None`` is RFC 2069 §2.1.2)."""
    alg = challenge.algorithm
    if alg not in SUPPORTED_ALGORITHMS:
        raise AuthError(f"unsupported digest algorithm {alg!r}")
    ha1 = _h(alg, f"{username}:{challenge.realm}:{password}")
    if alg.endswith("-SESS"):
        if not cnonce:
            raise AuthError(f"{alg} needs a cnonce")
        ha1 = _h(alg, f"{ha1}:{challenge.nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _h(alg, f"{method}:{uri}:{_h(alg, body)}")
    elif qop in ("auth", None):
        ha2 = _h(alg, f"{method}:{uri}")
    else:
        raise AuthError(f"unsupported qop {qop!r}")
    if qop is None:
        return _h(alg, f"{ha1}:{challenge.nonce}:{ha2}")
    return _h(alg, f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _choose_qop(challenge: Challenge) -> str | None:
    """``auth`` when offered (the body may change in transit); ``auth-int`` only if it is all there is."""
    if not challenge.qop:
        return None
    return "auth" if "auth" in challenge.qop else "auth-int"


def build_authorization(
    challenge: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """An Authorization / Proxy-Authorization value answering ``challenge`` (RFC 3261 §22.2, §25.1)."""
    if not challenge.supported:
        raise AuthError(f"cannot answer challenge with algorithm {challenge.algorithm!r} qop {challenge.qop}")
    qop = _choose_qop(challenge)
    response = digest_response(
        challenge,
        username=username,
        password=password,
        method=method,
        uri=uri,
        qop=qop,
        cnonce=cnonce,
        nc=nc,
        body=body,
    )
    # RFC 7616 §3.4.4: with userhash the username is H(username:realm), never sent in clear.
    shown_user = _h(challenge.algorithm, f"{username}:{challenge.realm}") if challenge.userhash else username
    parts = [
        f"username={_quote(shown_user)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
    ]
    if challenge.algorithm_given:
        parts.append(f"algorithm={challenge.algorithm.replace('-SESS', '-sess')}")
    if qop is not None or challenge.algorithm.endswith("-SESS"):
        parts.append(f"cnonce={_quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop is not None:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc:08x}")
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


# --- stateful client -------------------------------------------------------------------------------------


@dataclass
class _RealmState:
    challenge: Challenge
    header: str
    nc: int = 0
    from_stale: bool = False


def _default_cnonce() -> str:
    return secrets.token_hex(8)


class DigestClient:
    """Answers 401/407 challenges for one account and reuses nonces pre-emptively, per realm.

    Sans-IO: the transaction layer passes in the challenge header values of a 401/407 and the
    Authorization values its rejected request carried, and gets back headers for the retry.
    """

    def __init__(
        self, credentials: Credentials, *, cnonce_factory: Callable[[], str] = _default_cnonce
    ) -> None:
        self.credentials = credentials
        self._cnonce = cnonce_factory
        self._realms: dict[str, _RealmState] = {}

    def authorize(self, method: str, uri: str, body: bytes = b"") -> list[AuthHeader]:
        """Pre-emptive headers for a new request from the cached challenges (RFC 7616 §3.4 nc reuse)."""
        return [self._answer(state, method, uri, body) for state in self._realms.values()]

    def handle_challenge(
        self,
        status: int,
        challenge_values: Sequence[str],
        method: str,
        uri: str,
        body: bytes = b"",
        sent: Sequence[str] = (),
    ) -> list[AuthHeader]:
        """Headers for retrying a request rejected with ``status`` (401 or 407).

        ``challenge_values`` are the WWW-Authenticate (401) or Proxy-Authenticate (407) values;
        ``sent`` are the Authorization/Proxy-Authorization values of the rejected request, so that a
        rejection of a fresh answer is reported as AuthFailed instead of looping (RFC 2617 §3.2.1 stale).
        """
        if status == 401:
            header = "Authorization"
        elif status == 407:
            header = "Proxy-Authorization"
        else:
            raise AuthError(f"status {status} carries no challenge")
        challenges = parse_challenges(challenge_values)
        if not challenges:
            raise AuthError(f"{status} without a Digest challenge")
        previous = self._sent_by_realm(sent)
        by_realm: dict[str, list[Challenge]] = {}
        for ch in challenges:
            by_realm.setdefault(ch.realm, []).append(ch)
        wanted = self.credentials.realm
        if wanted is not None and wanted not in by_realm:
            # RFC 3261 §22.4: credentials are bound to a realm; answering another would leak a digest.
            raise AuthError(f"challenge realm(s) {sorted(by_realm)} do not match configured realm {wanted!r}")
        headers: list[AuthHeader] = []
        for realm, offered in by_realm.items():
            if wanted is not None and realm != wanted:
                continue
            chosen = select_challenge(offered)
            if chosen is None:
                algs = sorted({c.algorithm for c in offered})
                raise AuthError(f"no supported digest algorithm/qop for realm {realm!r}: {algs}")
            state = self._realms.get(realm)
            prior = previous.get(realm)
            if prior is not None:
                try:
                    self._check_rejection(realm, chosen, state, prior)
                except AuthFailed:
                    self._realms.pop(realm, None)  # stop pre-emptively sending rejected credentials
                    raise
            new_state = _RealmState(chosen, header, from_stale=chosen.stale and prior is not None)
            self._realms[realm] = new_state
            headers.append(self._answer(new_state, method, uri, body))
        return headers

    def _check_rejection(
        self, realm: str, chosen: Challenge, state: _RealmState | None, prior: dict[str, str]
    ) -> None:
        """Raise AuthFailed when the rejected request already carried a fresh answer (no point retrying)."""
        nc_text = prior.get("nc")
        try:
            prior_nc = int(nc_text, 16) if nc_text is not None else None
        except ValueError:
            prior_nc = None
        same_nonce = state is not None and state.challenge.nonce == prior.get("nonce")
        if prior_nc is not None:
            first_use = prior_nc == 1
        else:
            first_use = not same_nonce or state is None or state.nc <= 1
        if not chosen.stale and (first_use or prior.get("nonce") == chosen.nonce):
            raise AuthFailed(f"credentials for {self.credentials.username!r} rejected in realm {realm!r}")
        if chosen.stale and first_use and same_nonce and state is not None and state.from_stale:
            raise AuthFailed(f"realm {realm!r} reports every fresh nonce stale; giving up")

    @staticmethod
    def _sent_by_realm(sent: Sequence[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for value in sent:
            for scheme, params in _parse_params(value):
                if scheme.lower() == "digest" and "realm" in params:
                    found[params["realm"]] = params
        return found

    def _answer(self, state: _RealmState, method: str, uri: str, body: bytes) -> AuthHeader:
        state.nc += 1
        value = build_authorization(
            state.challenge,
            username=self.credentials.username,
            password=self.credentials.password,
            method=method,
            uri=uri,
            cnonce=self._cnonce(),
            nc=state.nc,
            body=body,
        )
        return AuthHeader(state.header, value)
