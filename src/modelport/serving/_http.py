"""Small HTTP helpers shared by the protocol modules: bounded body reads, JSON responses."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from modelport.errors import InvalidInput, PayloadTooLarge

JSON = "application/json"


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes before holding them in memory.

    A declared ``Content-Length`` over the limit is refused without reading; a chunked body
    is counted as it streams and refused as soon as it passes the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidInput(f"invalid Content-Length {declared[:40]!r}")
        if int(declared) > limit:
            raise PayloadTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(limit)
    return bytes(body)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """orjson-encoded response; numpy arrays are serialized natively."""
    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def int_or_none(value: str | None, what: str) -> int | None:
    """A path or query value that must be a positive integer when present."""
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise InvalidInput(f"{what} {value[:40]!r} must be a positive integer")
    return int(value)
