"""The ASGI app: every protocol's routes over one DataPlane, one error mapping, one lifespan.

Errors are mapped only here: any ModelportError becomes its status and the protocol's error
body (``{"error": message}`` for V2 and TF-style routes, MLflow's shape on ``/invocations``);
anything else is logged with its traceback and answered with a generic 500, so no
internals reach a client.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from modelport.config import Settings
from modelport.errors import ModelportError, Overloaded
from modelport.serving import docs, mlflow, tfserving, v2
from modelport.serving._http import JSON
from modelport.serving.codecs import v2 as v2_codec
from modelport.serving.dataplane import DataPlane
from modelport.serving.deployment import ModelSpec
from modelport.serving.manager import ModelManager

logger = logging.getLogger(__name__)


def create_app(settings: Settings, specs: list[ModelSpec]) -> Starlette:
    """Build the server app for ``specs``; models load when the app starts."""
    manager = ModelManager(settings, specs)
    plane = DataPlane(manager, settings.serving)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await manager.start()
        try:
            yield
        finally:
            await manager.stop()

    app = Starlette(
        routes=[*v2.routes(plane), *tfserving.routes(plane), *mlflow.routes(plane), *docs.routes()],
        lifespan=lifespan,
        exception_handlers={
            ModelportError: _modelport_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )
    app.state.plane = plane
    return app


def _error_body(request: Request, message: str, status: int) -> bytes:
    path = request.url.path
    if path == "/invocations" or path.endswith("/invocations"):
        return mlflow.encode_error(message, status)
    return v2_codec.encode_error(message)  # TF-style routes use the same {"error": ...} body


async def _modelport_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelportError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Overloaded) else None
    if exc.status >= 500:
        logger.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc)
    return Response(
        _error_body(request, exc.message, exc.status),
        status_code=exc.status,
        media_type=JSON,
        headers=headers,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = (
        f"no route {request.method} {request.url.path}"
        if exc.status_code in (404, 405)
        else str(exc.detail)
    )
    return Response(
        _error_body(request, message, exc.status_code),
        status_code=exc.status_code,
        media_type=JSON,
        headers=exc.headers,
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return Response(
        _error_body(request, "internal server error", 500),
        status_code=500,
        media_type=JSON,
    )
