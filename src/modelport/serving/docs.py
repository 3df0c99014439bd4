"""``/openapi.json`` (OpenAPI 3.0, every route) and ``/docs`` (Swagger UI, served locally).

The document is generated from the route table (:mod:`modelport.serving.routes`): each route
with a :class:`~modelport.serving.routes.Doc` becomes an operation, its path parameters taken
from its pattern, its request body one of the schemas below (written by hand: the routes take
raw bodies, validated by the signature rather than by request models). On a server with auth,
every route that needs a key also lists the answers auth gives (401, 403, 429) and its scope
(``x-modelport-scope``), and the document declares the bearer scheme. Besides the generic
routes it describes each model being served, as it is served now: its inference route with
the inputs and outputs (names, datatypes, shapes) and an example body built from the model's
input example, so ``/docs`` shows how to call each model. A key limited to one model sees
only that one. The document says 3.0.3 because the bundled Swagger UI (4.x, from the
``swagger-ui-bundle`` package: nothing is fetched at run time) reads no 3.1.
"""

from __future__ import annotations

import re
from importlib.metadata import version as _dist_version
from typing import Any

import orjson
import swagger_ui_bundle
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from modelport.protocol import v2 as codec
from modelport.protocol import v2_client
from modelport.serving._http import json_response
from modelport.serving.auth import sees
from modelport.serving.dataplane import DataPlane
from modelport.serving.routes import TABLE, Route
from modelport.serving.served import LoadedVersion

_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_AUTH_ERRORS = {
    "401": {
        **_ERROR,
        "description": "No API key, or one that is malformed, unknown or revoked",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "403": {**_ERROR, "description": "The key's scope or model does not allow this"},
    "429": {
        **_ERROR,
        "description": "The key's rate limit is spent",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}
_PATH_PARAMS = {"version": "integer"}  # any other path parameter ({name}) is a string
_CONVERTOR = re.compile(r"{(\w+):\w+}")
_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
              "FP16", "FP32", "FP64", "BYTES"]  # fmt: skip
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": _DATATYPES},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
_LABEL_REF = {"$ref": "#/components/schemas/Label"}
SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": _TENSOR},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                },
            },
        },
    },
    "TfPredictRequest": {
        "type": "object",
        "properties": {
            "signature_name": {"type": "string"},
            "instances": {"type": "array"},
            "inputs": {},
        },
    },
    "Feedback": {
        "oneOf": [
            _LABEL_REF,
            {
                "type": "object",
                "required": ["labels"],
                "properties": {"labels": {"type": "array", "items": _LABEL_REF}},
            },
        ]
    },
    "Label": {
        "type": "object",
        "required": ["id", "label"],
        "properties": {"id": {"type": "string", "maxLength": 128}, "label": {}},
    },
    "MlflowRequest": {
        "type": "object",
        "properties": {
            "dataframe_split": {"type": "object"},
            "dataframe_records": {"type": "array"},
            "instances": {"type": "array"},
            "inputs": {},
            "params": {"type": "object"},
        },
    },
}
"""The request bodies the routes' :class:`~modelport.serving.routes.Doc` name."""


def openapi_document(routes: tuple[Route, ...] = TABLE, *, auth: bool) -> dict[str, Any]:
    """The OpenAPI description of every documented route in ``routes``; with ``auth``, the
    answers auth gives on every route that needs a key."""
    paths: dict[str, Any] = {}
    for route in routes:
        if route.doc is not None:
            path = _CONVERTOR.sub(r"{\1}", route.path)
            for method in route.methods:
                paths.setdefault(path, {})[method.lower()] = _operation(route, path, auth)
    components: dict[str, Any] = {"schemas": SCHEMAS}
    if auth:
        components["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "modelport", "version": _dist_version("modelport")},
        "paths": paths,
        "components": components,
    }


def _operation(route: Route, path: str, auth: bool) -> dict[str, Any]:
    doc = route.doc
    assert doc is not None
    responses = {"200": {"description": doc.ok}, **{str(c): _ERROR for c in doc.errors}}
    op: dict[str, Any] = {"summary": doc.summary, "responses": responses}
    if auth and route.scope is not None:
        responses.update(_AUTH_ERRORS)
        op["security"] = [{"apiKey": []}]
        op["x-modelport-scope"] = route.scope
    params = [
        {
            "name": p,
            "in": "path",
            "required": True,
            "schema": {"type": _PATH_PARAMS.get(p, "string")},
        }
        for p in re.findall(r"{(\w+)}", path)
    ] + [
        {"name": q.name, "in": "query", "schema": {"type": q.kind}, "description": q.description}
        for q in doc.query
    ]
    if params:
        op["parameters"] = params
    if doc.body is not None:
        content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{doc.body}"}}}
        op["requestBody"] = {"required": True, "content": content}
    return op


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>modelport API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>"""


def with_models(document: dict[str, Any], models: list[LoadedVersion]) -> dict[str, Any]:
    """``document`` plus, for each served model, its inference route described in full
    (answering as the generic ``/v2/models/{name}/infer`` does)."""
    generic = document["paths"]["/v2/models/{name}/infer"]["post"]
    # The served models first: Swagger UI lists sections in the order paths name them.
    paths = {f"/v2/models/{m.name}/infer": {"post": _model_operation(m, generic)} for m in models}
    return {**document, "paths": {**paths, **document["paths"]}}


def _model_operation(loaded: LoadedVersion, generic: dict[str, Any]) -> dict[str, Any]:
    signature = loaded.model.signature
    meta = codec.model_metadata(loaded.name, [], loaded.model.manifest.flavor, signature)

    def rows(tensors: list[dict[str, Any]]) -> str:
        return (
            "\n".join(f"| `{t['name']}` | {t['datatype']} | {t['shape']} |" for t in tensors)
            or "| (not recorded) | | |"
        )

    version = "" if loaded.version is None else f" version {loaded.version}"
    inputs = ", ".join(t["name"] for t in meta["inputs"])
    description = (
        f"Model `{loaded.name}`{version} ({loaded.model.manifest.flavor}).\n\n"
        "| input | datatype | shape |\n|---|---|---|\n" + rows(meta["inputs"]) + "\n\n"
        "| output | datatype | shape |\n|---|---|---|\n" + rows(meta["outputs"]) + "\n\n"
        "A shape's -1 is the batch axis: send any number of rows."
    )
    content: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}
    example = loaded.model.input_example()
    if example is not None:
        body, _ = v2_client.encode_request(example)
        content["example"] = orjson.loads(body)
    op = {k: v for k, v in generic.items() if k not in ("parameters", "requestBody")}
    op["summary"] = f"Inference: {loaded.name}{version}, inputs {inputs}"
    op["description"] = description
    op["tags"] = [loaded.name]
    op["requestBody"] = {"required": True, "content": {"application/json": content}}
    return op


def handlers(plane: DataPlane) -> dict[str, Any]:
    """The handlers of ``/openapi.json``, ``/docs`` and Swagger UI's static files.

    Any: ``docs_static`` is an ASGI app, the others endpoints.
    """
    document = openapi_document(auth=plane.settings.auth)

    async def openapi(request: Request) -> Response:
        served = [
            s.current
            for name, s in plane.manager.models.items()
            if s.current is not None and sees(request, name)
        ]
        return json_response(with_models(document, served))

    async def page(request: Request) -> Response:
        return HTMLResponse(_PAGE)

    return {
        "openapi": openapi,
        "docs_page": page,
        "docs_static": StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
    }
