"""MLflow-style scoring routes: ``POST /invocations``, ``GET /ping`` and ``GET /health``.

:func:`invocations` is answered from :mod:`modelport.serving.asgi`; ``/ping`` and ``/health``
are Starlette routes. MLflow serves one model per server, so ``/invocations`` scores the first
model served;
``/models/{name}/invocations`` picks one by name when several are served. Formats
(``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``, CSV) live in
:mod:`modelport.protocol.mlflow`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from modelport.errors import ModelNotFound, UnsupportedMediaType
from modelport.protocol import mlflow as codec
from modelport.serving._http import JSON, Call, Reply
from modelport.serving.dataplane import DataPlane
from modelport.serving.routes import RequestHandler

ACCEPTED = ["application/json", "text/csv"]
# MLflow's error codes by HTTP status, so its clients see the shape they expect.
_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          404: "RESOURCE_DOES_NOT_EXIST", 413: "BAD_REQUEST", 415: "BAD_REQUEST",
          422: "BAD_REQUEST", 429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE",
          504: "TEMPORARILY_UNAVAILABLE"}  # fmt: skip


def encode_error(message: str, status: int, code: str = "internal") -> bytes:
    """MLflow's error body, with the MLflow error code for ``status``."""
    return codec.encode_error(message, _CODES.get(status, "INTERNAL_ERROR"), code)


def handlers() -> dict[str, RequestHandler]:
    """The MLflow-style health check's handler (``/invocations`` is :func:`invocations`)."""

    async def ping(request: Request) -> Response:
        return Response(b"\n", media_type=JSON)

    return {"ping": ping}


async def invocations(plane: DataPlane, call: Call) -> Reply:
    """``POST [/models/{name}]/invocations`` (served from :mod:`asgi`)."""
    name = call.name or _default_model(plane)
    media = (call.header(b"content-type") or JSON).split(";")[0].strip().lower()
    if media not in ACCEPTED:
        raise UnsupportedMediaType(media, ACCEPTED)
    loaded = plane.model(name)
    call.tag(loaded.name, loaded.version)
    body = await call.body()
    data = codec.decode_request(body, media, loaded.model.signature)
    result = await plane.infer(loaded, data, request_id=call.request_id)
    return Reply(codec.encode_response(result.outputs), {"Content-Type": JSON})


def _default_model(plane: DataPlane) -> str:
    for name in plane.manager.models:
        return name
    raise ModelNotFound("(none served)")
