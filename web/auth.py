"""Who may use the web page and the API: the admin password, login sessions and API tokens, in SQLite.

The database (`web.db` in the data directory) is created 0600: it holds no clear-text secret, but
its hashes are still worth nothing to anyone else.

- The admin password is hashed with scrypt (RFC 7914), memory-hard so that a stolen hash is costly
  to guess on GPUs. Parameters follow OWASP's Password Storage Cheat Sheet minimum for scrypt:
  N = 2^17, r = 8, p = 1 (128 MiB and a few hundred ms on a Pi 4 per login). They are stored with
  each hash, so a later firmware can raise them without locking anyone out.
- Sessions and API tokens are 256-bit random values (`secrets`); only their SHA-256 is stored. A
  slow hash would add nothing to a value with 256 bits of entropy and would slow every API call.
  The clear token is shown once (API tokens) or lives only in the HttpOnly cookie (sessions).
- Each session carries its own CSRF token (synchronizer token pattern, OWASP CSRF Prevention Cheat
  Sheet), required on every state-changing request made with the session cookie.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSWORD = 8
"""NIST SP 800-63B §5.1.1.2: memorized secrets of at least 8 characters."""
SESSION_IDLE = 12 * 3600.0
SESSION_MAX = 7 * 24 * 3600.0
TOKEN_PREFIX = "hf_"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS admin (id INTEGER PRIMARY KEY CHECK (id = 1), hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (digest TEXT PRIMARY KEY, csrf TEXT NOT NULL, created REAL NOT NULL,
                                     seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (id INTEGER PRIMARY KEY, name TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
                                   created REAL NOT NULL, used REAL);
"""


class PasswordError(ValueError):
    """A new password that is not acceptable (too short, too long)."""


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$N$r$p$salt$hash`` (hex), with a 16-byte random salt."""
    salt = os.urandom(16)
    digest = _scrypt(password, salt, n, r, p)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        computed = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(computed, bytes.fromhex(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    memory = 128 * n * r * p  # RFC 7914 §2: the working set
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * memory, dklen=32)


def _acceptable(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise PasswordError(f"must be at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise PasswordError("must be at most 1024 characters")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    token: str
    """The cookie value (only its digest is stored)."""
    csrf: str


@dataclass(frozen=True)
class ApiToken:
    id: int
    name: str
    created: float
    used: float | None


class AuthStore:
    """The web's credentials database; `path` ":memory:" for tests."""

    def __init__(self, path: str | Path, *, scrypt_n: int = SCRYPT_N) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            os.chmod(path, 0o600)  # also when an older file was looser
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.executescript(_SCHEMA)
        self.scrypt_n = scrypt_n

    def close(self) -> None:
        self._db.close()

    # -- the admin password -----------------------------------------------------------------------
    @property
    def has_password(self) -> bool:
        return self._db.execute("SELECT 1 FROM admin").fetchone() is not None

    def set_password(self, password: str) -> None:
        """Set (or change) the admin password; every session ends."""
        _acceptable(password)
        self._store_hash(hash_password(password, n=self.scrypt_n))

    def check_password(self, password: str) -> bool:
        stored = self._hash()
        return stored is not None and verify_password(password, stored)

    async def set_password_async(self, password: str) -> None:
        """`set_password` with the hashing off the loop (scrypt takes a good part of a second)."""
        _acceptable(password)
        self._store_hash(await asyncio.to_thread(hash_password, password, n=self.scrypt_n))

    async def check_password_async(self, password: str) -> bool:
        stored = self._hash()
        return stored is not None and await asyncio.to_thread(verify_password, password, stored)

    def _hash(self) -> str | None:
        row = self._db.execute("SELECT hash FROM admin").fetchone()
        return None if row is None else str(row[0])

    def _store_hash(self, stored: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO admin (id, hash) VALUES (1, ?)", (stored,))
        self._db.execute("DELETE FROM sessions")

    # -- sessions -------------------------------------------------------------------------------------
    def new_session(self, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        self._db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
                         (_digest(session.token), session.csrf, now, now))
        return session

    def session(self, token: str, now: float | None = None) -> Session | None:
        """The live session for a cookie value (its idle timer restarted), or None."""
        now = time.time() if now is None else now
        self._db.execute("DELETE FROM sessions WHERE seen < ? OR created < ?",
                         (now - SESSION_IDLE, now - SESSION_MAX))
        row = self._db.execute("SELECT csrf FROM sessions WHERE digest = ?", (_digest(token),)).fetchone()
        if row is None:
            return None
        self._db.execute("UPDATE sessions SET seen = ? WHERE digest = ?", (now, _digest(token)))
        return Session(token, row[0])

    def end_session(self, token: str) -> None:
        self._db.execute("DELETE FROM sessions WHERE digest = ?", (_digest(token),))

    # -- API tokens ---------------------------------------------------------------------------------
    def create_token(self, name: str) -> tuple[ApiToken, str]:
        """A new API token; the clear value is returned here once and never again."""
        name = name.strip()[:64] or "token"
        clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        cursor = self._db.execute("INSERT INTO tokens (name, digest, created) VALUES (?, ?, ?)",
                                  (name, _digest(clear), now))
        assert cursor.lastrowid is not None
        return ApiToken(cursor.lastrowid, name, now, None), clear

    def tokens(self) -> list[ApiToken]:
        rows = self._db.execute("SELECT id, name, created, used FROM tokens ORDER BY id").fetchall()
        return [ApiToken(*row) for row in rows]

    def revoke_token(self, token_id: int) -> bool:
        return self._db.execute("DELETE FROM tokens WHERE id = ?", (token_id,)).rowcount > 0

    def check_token(self, clear: str) -> ApiToken | None:
        if not clear.startswith(TOKEN_PREFIX):
            return None
        row = self._db.execute("SELECT id, name, created FROM tokens WHERE digest = ?",
                               (_digest(clear),)).fetchone()
        if row is None:
            return None
        now = time.time()
        self._db.execute("UPDATE tokens SET used = ? WHERE id = ?", (now, row[0]))
        return ApiToken(row[0], row[1], row[2], now)
