"""TF-Serving-style routes: ``POST /v1/models/{name}[/versions/{v}]:predict`` and model status.

The ``:predict`` suffix is not a path segment, so the route takes the rest of the path and
parses it here. Formats (``instances`` rows, ``inputs`` columns) live in
:mod:`modelport.serving.codecs.tfserving`.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelport.errors import NotFound
from modelport.serving._http import JSON, json_response, read_body
from modelport.serving.codecs import tfserving as codec
from modelport.serving.dataplane import DataPlane

_PATH = re.compile(r"(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<verb>:predict)?")


def routes(plane: DataPlane) -> list[Route]:
    """The TF-Serving-style routes, bound to ``plane``."""

    async def dispatch(request: Request) -> Response:
        match = _PATH.fullmatch(request.path_params["rest"])
        if match is None:
            raise NotFound(f"no route {request.method} {request.url.path}")
        name, verb = match["name"], match["verb"]
        version = int(match["version"]) if match["version"] else None
        if verb and request.method == "POST":
            return await predict(request, name, version)
        if not verb and request.method == "GET":
            loaded = plane.model(name, version)
            state = {"version": str(loaded.version or 0), "state": "AVAILABLE"}
            return json_response({"model_version_status": [{**state, "status": {}}]})
        raise NotFound(f"no route {request.method} {request.url.path}")

    async def predict(request: Request, name: str, version: int | None) -> Response:
        body = await read_body(request, plane.settings.max_body_bytes)
        loaded = plane.model(name, version)
        data, row_format = codec.decode_request(body, loaded.model.signature)
        result = await plane.infer(name, data, version=version)
        return Response(codec.encode_response(result.outputs, row_format), media_type=JSON)

    return [Route("/v1/models/{rest:path}", dispatch, methods=["GET", "POST"])]
