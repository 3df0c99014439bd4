"""TF-Serving-style routes: ``POST /v1/models/{name}[/versions/{v}]:predict`` and model status.

:func:`predict` is answered from :mod:`modelport.serving.asgi`; the model status route
(``GET /v1/models/{name}[/versions/{v}]``) is Starlette's. Formats (``instances`` rows,
``inputs`` columns) live in :mod:`modelport.protocol.tfserving`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from modelport.protocol import tfserving as codec
from modelport.serving._http import JSON, Call, Reply, json_response
from modelport.serving.dataplane import DataPlane
from modelport.serving.routes import RequestHandler


def handlers(plane: DataPlane) -> dict[str, RequestHandler]:
    """The model status route's handler, bound to ``plane``."""

    async def model_status(request: Request) -> Response:
        params = request.path_params  # the version, when given, is an int (``{version:int}``)
        loaded = plane.model(params["name"], params.get("version"))
        state = {"version": str(loaded.version or 0), "state": "AVAILABLE"}
        return json_response({"model_version_status": [{**state, "status": {}}]})

    return {"model_status": model_status}


async def predict(plane: DataPlane, call: Call) -> Reply:
    """``POST /v1/models/{name}[/versions/{v}]:predict`` (served from :mod:`asgi`)."""
    assert call.name is not None  # the path always names the model
    loaded = plane.model(call.name, call.version)
    call.tag(loaded.name, loaded.version)
    call.require_json()
    body = await call.body()
    data, row_format = codec.decode_request(body, loaded.model.signature)
    result = await plane.infer(loaded, data, request_id=call.request_id)
    return Reply(codec.encode_response(result.outputs, row_format), {"Content-Type": JSON})
