"""API key tokens: ``mp_<key_id>_<secret>``, and how their secrets are stored and checked.

- ``key_id``: 16 hex characters (8 random bytes), public; it finds the key's row.
- ``secret``: 64 hex characters (32 random bytes from :mod:`secrets`); shown once, never stored.

The store keeps a random 16-byte salt and ``HMAC-SHA256(key=salt, msg=secret)``. A slow KDF
(bcrypt, scrypt, argon2) exists to make guessing *low-entropy passwords* expensive; these
secrets carry 256 random bits, so no amount of hashing speed makes guessing them feasible,
and a fast hash keeps every authenticated request cheap. Comparison is constant-time. Key ids
are not secret, so telling "unknown id" from "wrong secret" by timing reveals nothing new.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "mp"
_KEY_ID_BYTES = 8
_SECRET_BYTES = 32
_SALT_BYTES = 16
_TOKEN = re.compile(
    rf"{PREFIX}_([0-9a-f]{{{2 * _KEY_ID_BYTES}}})_([0-9a-f]{{{2 * _SECRET_BYTES}}})"
)


def new_token() -> tuple[str, str, str]:
    """A fresh ``(token, key_id, secret)``."""
    key_id = secrets.token_hex(_KEY_ID_BYTES)
    secret = secrets.token_hex(_SECRET_BYTES)
    return f"{PREFIX}_{key_id}_{secret}", key_id, secret


def parse_token(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed token, or None."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    return match.group(1), match.group(2)


def new_salt() -> str:
    """A random salt, hex."""
    return secrets.token_hex(_SALT_BYTES)


def hash_secret(salt: str, secret: str) -> str:
    """``HMAC-SHA256(salt, secret)``, hex: what the store keeps instead of the secret."""
    return hmac.new(bytes.fromhex(salt), secret.encode("ascii"), hashlib.sha256).hexdigest()


def secret_matches(salt: str, secret_hash: str, secret: str) -> bool:
    """True if ``secret`` is the one ``secret_hash`` was made from (constant-time compare)."""
    return hmac.compare_digest(hash_secret(salt, secret), secret_hash)
