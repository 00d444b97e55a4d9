"""Admin password and API token: scrypt hashes (stdlib), checked in constant time.

Pure functions, no web: the CLI (`digest admin hash-password`) and the login share them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "scrypt"
# n=2**14, r=8 takes ~16 MiB and tens of milliseconds: slow for a guesser, fine for one login.
N, R, P = 2**14, 8, 1
MAXMEM = 64 * 1024 * 1024


class BadHash(ValueError):
    """A `scrypt$...` string that does not parse."""


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def encode(self) -> str:
        """`scrypt$n$r$p$salt$digest` (base64url, no padding)."""
        salt, digest = (base64.urlsafe_b64encode(x).decode().rstrip("=")
                        for x in (self.salt, self.digest))
        return f"{PREFIX}${self.n}${self.r}${self.p}${salt}${digest}"


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=MAXMEM, dklen=32)


def hash_password(password: str, *, salt: bytes | None = None) -> PasswordHash:
    """A fresh scrypt hash of `password` (random 16-byte salt unless given)."""
    if not password:
        raise ValueError("the password is empty")
    salt = salt if salt is not None else secrets.token_bytes(16)
    return PasswordHash(N, R, P, salt, _scrypt(password, salt, N, R, P))


def parse_hash(encoded: str) -> PasswordHash:
    """Read a `scrypt$n$r$p$salt$digest` string; BadHash says what is wrong."""
    parts = encoded.strip().split("$")
    if len(parts) != 6 or parts[0] != PREFIX:
        raise BadHash("expected scrypt$n$r$p$salt$digest (from `digest admin hash-password`)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = _b64(parts[4]), _b64(parts[5])
    except ValueError:
        raise BadHash("the scrypt parameters or base64 parts are malformed") from None
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or n * r * 128 > MAXMEM // 2:
        raise BadHash("scrypt parameters out of range")
    if len(salt) < 8 or len(digest) < 16:
        raise BadHash("salt or digest too short")
    return PasswordHash(n, r, p, salt, digest)


def configured_hash(setting: str) -> PasswordHash | None:
    """The hash for DIGEST_ADMIN_PASSWORD: None when empty, parsed or freshly hashed."""
    if not setting:
        return None
    if setting.startswith(PREFIX + "$"):
        return parse_hash(setting)
    return hash_password(setting)


def check_password(stored: PasswordHash, candidate: str) -> bool:
    """Whether `candidate` is the password (constant-time compare of the digests)."""
    if not candidate or len(candidate) > 1024:
        return False
    computed = _scrypt(candidate, stored.salt, stored.n, stored.r, stored.p)
    return hmac.compare_digest(computed, stored.digest)


def token_digest(token: str) -> bytes:
    """SHA-256 of an API token: compare digests so timing never depends on the token."""
    return hashlib.sha256(token.encode()).digest()


def check_token(expected_digest: bytes, given: str) -> bool:
    return hmac.compare_digest(token_digest(given), expected_digest)
