"""The server's outermost ASGI app: inference answered directly, every other route by Starlette.

The routes the table marks ``fast`` (:mod:`modelport.serving.routes`:
``/v2/models/{name}[/versions/{v}]/infer``, ``/v1/models/{name}[/versions/{v}]:predict`` and
``[/models/{name}]/invocations``) are matched on the path by one regular expression, read,
dispatched to their protocol's ``infer`` and answered here, without Starlette's router,
middleware stack and request and response objects. With batching, one ``predict`` serves
many requests, so on a one-core server that machinery, not the model, was most of the time
per request (py-spy; the figures are in the README). Health, metadata, the repository
extension and the docs stay Starlette routes.
Both sides map errors through :func:`~modelport.serving._http.error_reply`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from modelport.serving import observe
from modelport.serving._http import (
    Call,
    ClientDisconnected,
    ErrorBody,
    Reply,
    error_reply,
    int_or_none,
)
from modelport.serving.routes import Protocol, RouteTable, check_handlers

Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One protocol's inference handler and the error body its clients expect."""

    handler: Handler
    error_body: ErrorBody
    protocol: str
    """The ``protocol`` label of the request metrics."""


class InferenceRoutes:
    """Answers the table's fast routes itself and hands everything else to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        table: RouteTable,
        handlers: Mapping[str, Handler],
        error_bodies: Mapping[Protocol, ErrorBody],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        check_handlers([r for r in table.routes if r.fast], handlers)
        self._match = table.fast_matcher(
            lambda r: Endpoint(handlers[r.handler], error_bodies[r.protocol], r.protocol)
        )
        self._limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = self._match(scope["path"])
            if target is not None:
                await self._answer(scope, receive, send, *target)
                return
        await self.app(scope, receive, send)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        endpoint: Endpoint,
        name: str | None,
        version: str | None,
    ) -> None:
        method, path = scope["method"], scope["path"]
        observe.tag(scope, endpoint.protocol)
        try:
            if method != "POST":
                message = f"no route {method} {path}"
                allow = {"Content-Type": "application/json", "Allow": "POST"}
                reply = Reply(endpoint.error_body(message, 405, "method_not_allowed"), allow, 405)
            else:
                number = int_or_none(version, "version")
                reply = await endpoint.handler(Call(scope, receive, name, number, self._limit))
        except ClientDisconnected:
            return
        except Exception as exc:  # every failure gets its protocol's error body
            reply = error_reply(exc, endpoint.error_body, method, path)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
        raw.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": raw})
        await send({"type": "http.response.body", "body": reply.body})
