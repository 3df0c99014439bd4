"""The ASGI app: every protocol's routes over one DataPlane, one error mapping, one lifespan.

Every route is declared once, in :mod:`modelport.serving.routes`; from that table come the
fast path (:class:`~modelport.serving.asgi.InferenceRoutes`, in front, answering inference),
the Starlette routes behind it, the auth check and ``/openapi.json``. Errors are mapped by
:func:`~modelport.serving._http.error_reply` on both sides: any ModelportError becomes its
status and the protocol's error body (``{"error": message}`` for V2 and TF-style routes,
MLflow's shape on ``/invocations``); anything else is logged with its traceback and answered
with a generic 500, so no internals reach a client.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from functools import partial

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from modelport.config import Settings
from modelport.errors import ModelportError
from modelport.monitoring.metrics import ServerMetrics
from modelport.serving import docs, mlflow, monitor, observe, tfserving, v2
from modelport.serving._http import ErrorBody, error_reply
from modelport.serving.asgi import InferenceRoutes
from modelport.serving.auth import Authenticator
from modelport.serving.dataplane import DataPlane
from modelport.serving.deployment import ModelSpec
from modelport.serving.manager import ModelManager
from modelport.serving.routes import Protocol, RouteTable
from modelport.serving.worker_board import WorkerBoard

ERROR_BODIES: dict[Protocol, ErrorBody] = {
    "v2": v2.error_body,
    "tfserving": v2.error_body,  # TF-Serving's clients read ``{"error": message}`` too
    "mlflow": mlflow.encode_error,
}
"""Each protocol's error body, for the routes the table says speak it."""


def create_app(
    settings: Settings, specs: list[ModelSpec], board: WorkerBoard | None = None
) -> ASGIApp:
    """Build the server app for ``specs``; models load when the app starts.

    Outermost is the :class:`~modelport.serving.observe.RequestObserver` (request id,
    access log, request metrics), so refused requests are logged and counted too.

    ``board`` is what the worker processes of one server share (see
    :mod:`~modelport.serving.worker_board`); a server of one process needs none.

    With ``settings.serving.auth``, every request first passes the
    :class:`~modelport.serving.auth.Authenticator`.

    The app's Prometheus metrics live in a :class:`~modelport.monitoring.metrics.ServerMetrics`
    of its own (its ``/metrics``), not in prometheus_client's default registry.
    """
    metrics = ServerMetrics()
    manager = ModelManager(settings, specs, board, metrics=metrics)
    plane = DataPlane(manager, settings.serving, metrics)
    watch = monitor.Monitor(plane, metrics, settings.serving.chart_interval_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await manager.start()
        # Everything alive now (modules, models) lives as long as the server: keep it out of
        # the cyclic collector, whose full passes over it were the server's worst pauses.
        gc.freeze()
        try:
            async with watch.running():
                yield
        finally:
            await manager.stop()

    table = RouteTable()
    handlers = {
        **v2.handlers(plane),
        **tfserving.handlers(plane),
        **mlflow.handlers(),
        **docs.handlers(plane),
        **monitor.handlers(watch),
    }
    routes = Starlette(
        routes=table.starlette_routes(handlers),
        lifespan=lifespan,
        # ModelportError is handled by the exception middleware; the Exception entry goes to
        # Starlette's outermost middleware, which answers and then re-raises for the log.
        exception_handlers={ModelportError: _error, HTTPException: _http_error, Exception: _error},
    )
    app: ASGIApp = InferenceRoutes(
        routes,
        table=table,
        handlers={
            "infer": partial(v2.infer, plane),
            "predict": partial(tfserving.predict, plane),
            "invocations": partial(mlflow.invocations, plane),
        },
        error_bodies=ERROR_BODIES,
        max_body_bytes=settings.serving.max_body_bytes,
    )
    if settings.serving.auth:
        app = Authenticator(
            app,
            manager.registry,
            table=table,
            default_model=lambda: next(iter(manager.models), None),
            error_bodies=ERROR_BODIES,
            cache_seconds=settings.serving.auth_cache_s,
            model_of=manager.registry_name,
            outage=manager.outage,
        )
    access_log = observe.AccessLog() if settings.serving.access_log else None
    return observe.RequestObserver(app, metrics=metrics, access_log=access_log)


async def _error(request: Request, exc: Exception) -> Response:
    reply = error_reply(exc, v2.error_body, request.method, request.url.path)
    return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = (
        f"no route {request.method} {request.url.path}"
        if exc.status_code in (404, 405)
        else str(exc.detail)
    )
    headers = {"Content-Type": "application/json", **(exc.headers or {})}
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = v2.error_body(message, exc.status_code, code)
    return Response(body, exc.status_code, headers=headers)
