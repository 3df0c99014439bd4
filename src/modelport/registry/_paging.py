"""Opaque page tokens for list calls: URL-safe base64 of the last key returned.

Keyset paging (``WHERE key > last``) stays correct while rows are added or deleted between
calls, unlike offsets. The token is opaque to callers so the key can change later.
"""

from __future__ import annotations

import base64
import binascii
import json

from modelport.errors import InvalidInput

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_LIMIT = 1000


def encode_token(key: str | int) -> str:
    """Wrap the last key of a page into a token."""
    raw = json.dumps({"k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None, kind: type[str] | type[int]) -> str | int | None:
    """The key inside ``token`` (None for the first page); InvalidInput if it was tampered with."""
    if token is None or token == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)["k"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"invalid page token {token[:40]!r}") from exc
    if type(key) is not kind:
        raise InvalidInput(f"invalid page token {token[:40]!r}")
    return key


def check_max_results(max_results: int) -> int:
    """Validate a page size: 1 to MAX_RESULTS_LIMIT."""
    if not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise InvalidInput(f"max_results must be between 1 and {MAX_RESULTS_LIMIT}")
    return max_results
