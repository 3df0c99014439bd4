"""HTTP plumbing shared by the protocol modules, below any web framework.

Inference routes are answered straight from ASGI (:mod:`modelport.serving.asgi`), so what a
protocol's ``infer`` needs is here in plain terms: a :class:`Call` in (the model named in the
path, headers, a bounded body read) and a :class:`Reply` out. :func:`error_reply` is the one
mapping from exceptions to responses, used by those routes and by the Starlette app alike.
The other routes are Starlette's and answer with :func:`json_response`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope

from modelport.errors import (
    InvalidInput,
    ModelportError,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    RegistryUnavailable,
    UnsupportedContentEncoding,
    UnsupportedMediaType,
)
from modelport.serving import observe

logger = logging.getLogger(__name__)

JSON = "application/json"
_READ_AS_JSON = frozenset({"", JSON, "text/json", "application/x-www-form-urlencoded"})
ErrorBody = Callable[[str, int, str], bytes]  # (message, status, stable error code)
"""A protocol's error body for (message, status)."""


@dataclass(slots=True)
class Reply:
    """A whole response: body, headers (content type included) and status."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": JSON})
    status: int = 200


class ClientDisconnected(Exception):
    """The client went away before its whole body arrived; there is no one to answer."""


class Call:
    """One inference request: the model and version named in its path, its headers, its body."""

    __slots__ = ("_limit", "_receive", "_scope", "name", "version")

    def __init__(
        self, scope: Scope, receive: Receive, name: str | None, version: int | None, limit: int
    ) -> None:
        self.name = name
        self.version = version
        self._scope = scope
        self._receive = receive
        self._limit = limit

    @property
    def request_id(self) -> str:
        """The request's id (``X-Request-ID``, V2's ``id``, or generated)."""
        return observe.request_id(self._scope)

    def adopt_request_id(self, body_id: str | None) -> None:
        """Take V2's body ``id`` as the request id when no header named one."""
        observe.adopt_request_id(self._scope, body_id)

    def tag(self, model: str, version: int | None) -> None:
        """Say which model and version answered, for the access log and the metrics."""
        observe.tag(self._scope, self._scope.get("modelport.protocol", ""), model, version)

    def require_json(self, *others: str) -> None:
        """415 unless the body is JSON (or one of ``others``): an XML or CSV body would only
        earn a misleading "invalid JSON". No ``Content-Type``, ``*/*+json`` and curl's default
        ``application/x-www-form-urlencoded`` (``curl -d`` without ``-H``) are read as JSON."""
        given = self.header(b"content-type")
        if given is None:
            return
        media = given.partition(";")[0].strip().lower()
        if media in _READ_AS_JSON or media.endswith("+json") or media in others:
            return
        raise UnsupportedMediaType(media, [JSON, *others])

    def header(self, name: bytes) -> str | None:
        """The value of header ``name`` (lower-case, as ASGI gives them), or None."""
        for key, value in self._scope["headers"]:
            if key == name:
                return str(value.decode("latin-1"))
        return None

    async def body(self) -> bytes:
        """The whole body, refusing more than the limit before holding it in memory.

        A declared ``Content-Length`` over the limit is refused without reading; a chunked
        body is counted as it streams and refused as soon as it passes the limit. A
        compressed body (``Content-Encoding`` other than identity) is refused with 415:
        inflating it would let a few kilobytes claim gigabytes past the limit.
        """
        encoding = self.header(b"content-encoding")
        if encoding is not None and encoding.strip().lower() not in ("", "identity"):
            raise UnsupportedContentEncoding(encoding)
        declared = self.header(b"content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                raise InvalidInput(f"invalid Content-Length {declared[:40]!r}")
            if int(declared) > self._limit:
                raise PayloadTooLarge(self._limit)
        body = b""
        buffer: bytearray | None = None  # from a second non-empty chunk on: no quadratic joins
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            if buffer is not None:
                buffer += chunk
            elif body and chunk:
                buffer = bytearray(body)
                buffer += chunk
            elif chunk:
                body = chunk
            if len(body if buffer is None else buffer) > self._limit:
                raise PayloadTooLarge(self._limit)
            if not message.get("more_body", False):
                return body if buffer is None else bytes(buffer)


def error_reply(exc: BaseException, error_body: ErrorBody, method: str, path: str) -> Reply:
    """The response for ``exc``: its own status and message, or a generic 500.

    Only a :class:`ModelportError` says what went wrong; anything else is logged with its
    traceback and answered ``internal server error``, so no internals reach a client.
    """
    if not isinstance(exc, ModelportError):
        logger.error("unexpected error on %s %s", method, path, exc_info=exc)
        return Reply(error_body("internal server error", 500, "internal"), status=500)
    headers = {"Content-Type": JSON}
    if isinstance(exc, Overloaded | RateLimited | RegistryUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    if exc.status >= 500:
        logger.warning("%s %s -> %d: %s", method, path, exc.status, exc)
    return Reply(error_body(exc.message, exc.status, exc.code), headers, exc.status)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """orjson-encoded response; numpy arrays are serialized natively."""
    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def int_or_none(value: str | None, what: str) -> int | None:
    """A path or query value that must be a positive integer when present."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise InvalidInput(f"{what} {value[:40]!r} must be a positive integer")
    return int(value)
