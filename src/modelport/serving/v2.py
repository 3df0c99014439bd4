"""Open Inference Protocol (KServe V2) routes: translate HTTP to the DataPlane and back.

Health, server and model metadata, readiness and the model repository extension (index, load,
unload) are Starlette routes; :func:`infer` (JSON and the binary tensor data extension) is
answered from :mod:`modelport.serving.asgi`. Every route is declared in
:mod:`modelport.serving.routes`. The wire format itself lives in :mod:`modelport.protocol.v2`.
"""

from __future__ import annotations

from importlib.metadata import version as _dist_version
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from modelport.protocol import v2 as codec
from modelport.protocol import v2_binary
from modelport.serving._http import Call, Reply, int_or_none, json_response
from modelport.serving.auth import sees
from modelport.serving.dataplane import DataPlane
from modelport.serving.routes import RequestHandler

EXTENSIONS = ["binary_tensor_data", "model_repository"]
HEADER_LENGTH = b"inference-header-content-length"


def handlers(plane: DataPlane) -> dict[str, RequestHandler]:
    """The V2 routes' handlers, by their key in the route table, bound to ``plane``."""

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        manager = plane.manager
        is_ready = all(manager.state(m) == "ready" for m in manager.models.values())
        return json_response({"ready": is_ready}, status=200 if is_ready else 503)

    async def server_metadata(request: Request) -> Response:
        return json_response(
            codec.server_metadata("modelport", _dist_version("modelport"), EXTENSIONS)
        )

    async def model_metadata(request: Request) -> Response:
        name, version = _target(request)
        loaded = plane.model(name, version)
        served = plane.manager.served(name)
        body: dict[str, Any] = codec.model_metadata(
            name,
            [str(loaded.version)] if loaded.version is not None else [],
            loaded.model.manifest.flavor,
            loaded.model.signature,
        )
        body.update({k: v for k, v in plane.manager.status(served).items() if k not in body})
        return json_response(body)

    async def model_ready(request: Request) -> Response:
        name, version = _target(request)
        plane.model(name, version)  # 404 unknown, 503 not ready
        return json_response({"name": name, "ready": True})

    async def repository_index(request: Request) -> Response:
        names = [n for n in plane.manager.models if sees(request, n)]
        return json_response([_index_entry(plane, n) for n in names])

    async def repository_load(request: Request) -> Response:
        name = request.path_params["name"]
        served = await plane.manager.load(name)
        ready = plane.manager.state(served) == "ready" and served.error is None
        status = 200 if ready else 503
        return json_response(_index_entry(plane, name), status=status)

    async def repository_unload(request: Request) -> Response:
        name = request.path_params["name"]
        await plane.manager.unload(name)
        return json_response(_index_entry(plane, name))

    return {
        "live": live,
        "ready": ready,
        "server_metadata": server_metadata,
        "model_metadata": model_metadata,
        "model_ready": model_ready,
        "repository_index": repository_index,
        "repository_load": repository_load,
        "repository_unload": repository_unload,
    }


async def infer(plane: DataPlane, call: Call) -> Reply:
    """``POST /v2/models/{name}[/versions/{v}]/infer`` (served from :mod:`asgi`)."""
    assert call.name is not None  # the path always names the model
    loaded = plane.model(call.name, call.version)  # 404/503 before reading the body
    call.tag(loaded.name, loaded.version)
    call.require_json(v2_binary.BINARY_TYPE)
    body = await call.body()
    header = int_or_none(call.header(HEADER_LENGTH), "Inference-Header-Content-Length")
    decoded = codec.decode_request(body, header)
    call.adopt_request_id(decoded.id)
    inputs = _fit_columns(decoded.inputs, loaded.model.signature.kind)
    result = await plane.infer(loaded, inputs, outputs=decoded.outputs, request_id=call.request_id)
    payload, headers = codec.encode_response(
        call.name, _str(result.version), result.outputs, decoded, decoded.id or call.request_id
    )
    return Reply(payload, headers)


def error_body(message: str, status: int, code: str = "internal") -> bytes:
    """The V2 error body, ``{"error": message, "code": code}``; TF-style routes use it too."""
    return codec.encode_error(message, code)


def _target(request: Request) -> tuple[str, int | None]:
    params = request.path_params
    return params["name"], int_or_none(params.get("version"), "version")


def _str(version: int | None) -> str | None:
    return None if version is None else str(version)


def _fit_columns(inputs: dict[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """V2 clients send a table column as shape [N] or [N, 1]; the signature wants [N]."""
    if kind != "columns":
        return inputs
    return {n: a.reshape(-1) if a.ndim == 2 and a.shape[1] == 1 else a for n, a in inputs.items()}


def _index_entry(plane: DataPlane, name: str) -> dict[str, Any]:
    status = plane.manager.status(plane.manager.models[name])
    entry: dict[str, Any] = {"name": name, "state": status["state"].upper()}
    if status.get("version") is not None:
        entry["version"] = str(status["version"])
    if "error" in status:
        entry["reason"] = status["error"]
    return entry
