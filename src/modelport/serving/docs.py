"""``/openapi.json`` (OpenAPI 3.0, every route) and ``/docs`` (Swagger UI, served locally).

The document is written by hand because the routes take raw bodies (validation is the
signature's job, not a framework's), so there are no request models to generate it from.
Besides the generic routes it describes each model being served, as it is served now: its
inference route with the inputs and outputs (names, datatypes, shapes) and an example body
built from the model's input example, so ``/docs`` shows how to call each model. A key
limited to one model sees only that one. The document says 3.0.3 because the bundled Swagger
UI (4.x, from the ``swagger-ui-bundle`` package: nothing is fetched at run time) reads no 3.1.
"""

from __future__ import annotations

from importlib.metadata import version as _dist_version
from typing import Any

import orjson
import swagger_ui_bundle
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from modelport.protocol import v2 as codec
from modelport.protocol import v2_client
from modelport.serving._http import json_response
from modelport.serving.auth import sees
from modelport.serving.dataplane import DataPlane
from modelport.serving.manager import LoadedVersion

_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "integer"}}
_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_ERRORS = {str(code): _ERROR for code in (400, 404, 413, 415, 422, 503, 504)}


def _op(summary: str, *, body: str | None = None, versioned: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": "OK"}, **_ERRORS},
    }
    params = [_NAME, _VERSION] if versioned else [_NAME]
    if "{name}" in summary or versioned or body:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return op


def openapi_document() -> dict[str, Any]:
    """The OpenAPI description of every route the server answers."""
    paths: dict[str, Any] = {
        "/v2/health/live": {
            "get": {"summary": "Server liveness", "responses": {"200": {"description": "live"}}}
        },
        "/v2/health/ready": {
            "get": {
                "summary": "Server readiness (all models ready)",
                "responses": {"200": {"description": "ready"}, "503": _ERROR},
            }
        },
        "/v2": {"get": {"summary": "Server metadata", "responses": {"200": {"description": "OK"}}}},
        "/v2/repository/index": {
            "get": {
                "summary": "Model repository index",
                "responses": {"200": {"description": "OK"}},
            },
            "post": {
                "summary": "Model repository index",
                "responses": {"200": {"description": "OK"}},
            },
        },
        "/v2/repository/models/{name}/load": {"post": _op("Load or re-resolve a model")},
        "/v2/repository/models/{name}/unload": {"post": _op("Unload a model")},
        "/invocations": {
            "post": _op("MLflow-style scoring of the first served model", body="MlflowRequest")
            | {"parameters": []}
        },
        "/models/{name}/invocations": {
            "post": _op("MLflow-style scoring of one model", body="MlflowRequest")
        },
        "/ping": {
            "get": {
                "summary": "MLflow-style health check",
                "responses": {"200": {"description": "OK"}},
            }
        },
        "/health": {
            "get": {
                "summary": "MLflow-style health check",
                "responses": {"200": {"description": "OK"}},
            }
        },
    }
    for prefix, versioned in (
        ("/v2/models/{name}", False),
        ("/v2/models/{name}/versions/{version}", True),
    ):
        paths[prefix] = {"get": _op("Model metadata (inputs, outputs, state)", versioned=versioned)}
        paths[f"{prefix}/ready"] = {"get": _op("Model readiness", versioned=versioned)}
        paths[f"{prefix}/infer"] = {
            "post": _op(
                "Inference (Open Inference Protocol)", body="InferenceRequest", versioned=versioned
            )
        }
    paths.update(_monitoring_paths())
    for prefix, versioned in (
        ("/v1/models/{name}", False),
        ("/v1/models/{name}/versions/{version}", True),
    ):
        paths[prefix] = {"get": _op("TF-Serving-style model status", versioned=versioned)}
        paths[f"{prefix}:predict"] = {
            "post": _op("TF-Serving-style predict", body="TfPredictRequest", versioned=versioned)
        }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {
                "type": "string",
                "enum": [
                    "BOOL",
                    "UINT8",
                    "UINT16",
                    "UINT32",
                    "UINT64",
                    "INT8",
                    "INT16",
                    "INT32",
                    "INT64",
                    "FP16",
                    "FP32",
                    "FP64",
                    "BYTES",
                ],
            },
            "parameters": {"type": "object"},
            "data": {"type": "array"},
        },
    }
    schemas = {
        "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
        "InferenceRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "inputs": {"type": "array", "items": tensor},
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "parameters": {"type": "object"},
                        },
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
                {"$ref": "#/components/schemas/Label"},
                {
                    "type": "object",
                    "required": ["labels"],
                    "properties": {
                        "labels": {"type": "array", "items": {"$ref": "#/components/schemas/Label"}}
                    },
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
    return {
        "openapi": "3.0.3",
        "info": {"title": "modelport", "version": _dist_version("modelport")},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _query(name: str, kind: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind}, "description": description}


def _monitoring_paths() -> dict[str, Any]:
    window = _query("window", "string", "e.g. 30m, 1h, 7d (default 1h)")
    drift = _op("Per-feature drift of the logged inputs against the reference profile")
    drift["parameters"] = [
        _NAME,
        window,
        _query("alpha", "number", "flag when p < alpha (default 0.01)"),
        _query("psi", "number", "... and PSI > psi (default 0.1)"),
        _query("min_samples", "integer", "fewer logged rows: no verdict (default 100)"),
    ]
    quality = _op("Live accuracy/F1/AUC or MAE/RMSE from posted labels")
    quality["parameters"] = [_NAME, window, _query("buckets", "integer", "chart points")]
    text = {"200": {"description": "Prometheus text format"}}
    return {
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": text}},
        "/v2/models/{name}/drift": {"get": drift},
        "/v2/models/{name}/quality": {"get": quality},
        "/v2/models/{name}/feedback": {
            "post": _op("True labels for logged request ids", body="Feedback")
        },
        "/ui/api/models": {
            "get": {"summary": "Dashboard data", "responses": {"200": {"description": "OK"}}}
        },
    }


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>modelport API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>"""


def with_models(document: dict[str, Any], models: list[LoadedVersion]) -> dict[str, Any]:
    """``document`` plus, for each served model, its inference route described in full."""
    # The served models first: Swagger UI lists sections in the order paths name them.
    paths = {f"/v2/models/{m.name}/infer": {"post": _model_operation(m)} for m in models}
    return {**document, "paths": {**paths, **document["paths"]}}


def _model_operation(loaded: LoadedVersion) -> dict[str, Any]:
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
    op = _op(f"Inference: {loaded.name}{version}, inputs {inputs}")
    op.pop("parameters", None)
    op["description"] = description
    op["tags"] = [loaded.name]
    op["requestBody"] = {"required": True, "content": {"application/json": content}}
    return op


def routes(plane: DataPlane) -> list[Route | Mount]:
    """``/openapi.json``, ``/docs`` and Swagger UI's static files."""
    document = openapi_document()

    async def openapi(request: Request) -> Response:
        served = [
            s.current
            for name, s in plane.manager.models.items()
            if s.current is not None and sees(request, name)
        ]
        return json_response(with_models(document, served))

    async def page(request: Request) -> Response:
        return HTMLResponse(_PAGE)

    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", page, methods=["GET"]),
        Mount(
            "/docs/static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs"
        ),
    ]
