"""A real `modelport serve` process on a free port, driven by a real HTTP client."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.protocol import v2_client as v2codec

from ._server import Server, serving


@pytest.fixture(scope="module")
def data() -> tuple[LogisticRegression, np.ndarray]:
    x, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    x = x.astype(np.float32)
    return LogisticRegression(max_iter=500).fit(x, y), x


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, data: tuple[LogisticRegression, np.ndarray]
) -> Iterator[Server]:
    model, x = data
    home = tmp_path_factory.mktemp("serving")
    frame = pd.DataFrame({"age": [31.0, 45.0, 22.0], "plan": ["a", "b", "a"]})
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    table = Pipeline(
        [
            ("p", ColumnTransformer([("o", OneHotEncoder(), ["plan"])], remainder="passthrough")),
            ("m", LogisticRegression()),
        ]
    ).fit(frame, [0, 1, 0])
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        v = registry.register("churn", model, input_example=x[:5])
        registry.set_alias("churn", "production", v.version)
        registry.register("table", table, input_example=frame)
    env = {"MODELPORT_SERVING__MAX_BODY_BYTES": str(2_000_000)}
    with serving(home, "churn@production", "table", env=env) as srv:
        yield srv


def infer_body(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    tensor = {
        "name": "input",
        "shape": list(x.shape),
        "datatype": "FP32",
        "data": x.ravel().tolist(),
    }
    return {"inputs": [tensor], **extra}


def test_v2_metadata_and_health(server: Server) -> None:
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.url}/v2/health/ready").json() == {"ready": True}
    meta = httpx.get(f"{server.url}/v2").json()
    assert meta["name"] == "modelport"
    assert "binary_tensor_data" in meta["extensions"]
    model = httpx.get(f"{server.url}/v2/models/churn").json()
    assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 20]}]
    assert [o["name"] for o in model["outputs"]] == ["predictions", "probabilities"]
    assert model["versions"] == ["1"]
    assert httpx.get(f"{server.url}/v2/models/churn/versions/1").status_code == 200
    assert httpx.get(f"{server.url}/v2/models/churn/ready").json()["ready"] is True
    r = httpx.get(f"{server.url}/v2/models/churn/versions/9/ready")
    assert r.status_code == 404
    assert r.json() == {"error": "model 'churn' has no version 9", "code": "version_not_found"}
    index = httpx.post(f"{server.url}/v2/repository/index").json()
    assert {e["name"]: e["state"] for e in index} == {"churn": "READY", "table": "READY"}


def test_v2_infer_matches_in_process(
    server: Server, data: tuple[LogisticRegression, np.ndarray]
) -> None:
    model, x = data
    rows = x[:7]
    body = infer_body(rows, id="req-1")
    r = httpx.post(f"{server.url}/v2/models/churn/infer", json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["id"] == "req-1"
    assert doc["model_name"] == "churn"
    assert doc["model_version"] == "1"
    out = {o["name"]: o for o in doc["outputs"]}
    assert out["predictions"]["data"] == model.predict(rows).tolist()
    assert out["probabilities"]["shape"] == [7, 2]
    np.testing.assert_allclose(
        np.asarray(out["probabilities"]["data"]).reshape(7, 2), model.predict_proba(rows), rtol=1e-5
    )


def test_v2_requested_and_binary_outputs(
    server: Server, data: tuple[LogisticRegression, np.ndarray]
) -> None:
    model, x = data
    rows = x[:300]
    payload, headers = v2codec.encode_request(
        {"input": rows}, outputs=["probabilities"], binary=True, binary_outputs=True
    )
    r = httpx.post(f"{server.url}/v2/models/churn/infer", content=payload, headers=headers)
    assert r.status_code == 200, r.text
    header = r.headers.get("inference-header-content-length")
    outputs, _ = v2codec.decode_response(r.content, int(header) if header else None)
    assert list(outputs) == ["probabilities"]
    np.testing.assert_allclose(outputs["probabilities"], model.predict_proba(rows), rtol=1e-5)


def test_v2_columns_model(server: Server) -> None:
    body = {
        "inputs": [
            {"name": "age", "shape": [2, 1], "datatype": "FP64", "data": [30.0, 50.0]},
            {"name": "plan", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
        ]
    }
    r = httpx.post(f"{server.url}/v2/models/table/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["shape"] == [2]


def test_tf_serving_formats(server: Server, data: tuple[LogisticRegression, np.ndarray]) -> None:
    model, x = data
    rows = x[:4]
    r = httpx.post(f"{server.url}/v1/models/churn:predict", json={"instances": rows.tolist()})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["predictions"] for p in preds] == model.predict(rows).tolist()
    r = httpx.post(
        f"{server.url}/v1/models/churn/versions/1:predict", json={"inputs": rows.tolist()}
    )
    assert r.json()["outputs"]["predictions"] == model.predict(rows).tolist()
    assert (
        httpx.get(f"{server.url}/v1/models/churn").json()["model_version_status"][0]["state"]
        == "AVAILABLE"
    )
    bad = httpx.post(f"{server.url}/v1/models/churn:predict", json={"nothing": 1})
    assert bad.status_code == 400
    assert "error" in bad.json()


def test_mlflow_formats(server: Server) -> None:
    frame = pd.DataFrame({"age": [30.0, 50.0], "plan": ["a", "b"]})
    expected = None
    bodies: list[tuple[Any, str]] = [
        ({"dataframe_split": frame.to_dict(orient="split")}, "application/json"),
        ({"dataframe_records": frame.to_dict(orient="records")}, "application/json"),
        ({"instances": frame.to_dict(orient="records")}, "application/json"),
        ({"inputs": frame.to_dict(orient="list")}, "application/json"),
        (frame.to_csv(index=False), "text/csv"),
    ]
    for body, ctype in bodies:
        content = body if isinstance(body, str) else httpx.Request("POST", "/", json=body).content
        r = httpx.post(
            f"{server.url}/models/table/invocations",
            content=content,
            headers={"Content-Type": ctype},
        )
        assert r.status_code == 200, (body, r.text)
        preds = r.json()["predictions"]
        expected = expected or preds
        assert preds == expected
    r = httpx.post(
        f"{server.url}/invocations", content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 415
    assert r.json()["error_code"] == "BAD_REQUEST"
    assert httpx.get(f"{server.url}/ping").status_code == 200


def test_batching_64_concurrent_single_rows(
    server: Server, data: tuple[LogisticRegression, np.ndarray]
) -> None:
    model, x = data
    rows = x[:64]
    bodies = [infer_body(rows[i : i + 1]) for i in range(64)]
    bodies[13] = infer_body(np.zeros((1, 19), dtype=np.float32))  # malformed: wrong width

    def send(body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{server.url}/v2/models/churn/infer", json=body, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        responses = list(pool.map(send, bodies))
    for i, r in enumerate(responses):
        if i == 13:
            assert r.status_code == 400
            assert "expected shape [-1, 20], got [1, 19]" in r.json()["error"]
            continue
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == model.predict(rows[i : i + 1]).tolist()
    meta = httpx.get(f"{server.url}/v2/models/churn").json()
    assert meta["batching"]["largest_batch"] > 1, meta["batching"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/nope/infer", b"{}", 404, "model 'nope' not found"),
        ("/v2/models/churn/infer", b"{not json", 400, "invalid JSON"),
        (
            "/v2/models/churn/infer",
            b'{"inputs":[{"name":"input","shape":[1,20],"datatype":"FP32","data":[1]}]}',
            400,
            "needs 20 elements",
        ),
        (
            "/v2/models/churn/infer",
            b'{"inputs":[{"name":"input","shape":[1,20],"datatype":"BYTES","data":'
            + b'["x"]'
            + b"}]}",
            400,
            "input",
        ),
        (
            "/v2/models/churn/infer",
            b'{"inputs":[{"name":"wrong","shape":[1,20],"datatype":"FP32","data":'
            + str([0.0] * 20).encode()
            + b"}]}",
            400,
            "missing input 'input'",
        ),
        (
            "/v2/models/churn/infer",
            b'{"inputs":[{"name":"input","shape":[100000000,100000],"datatype":"FP32","data":[1]}]}',
            400,
            "input",
        ),
        ("/v2/models/churn/versions/x/infer", b"{}", 400, "must be a positive integer"),
        ("/nowhere", b"{}", 404, "no route POST /nowhere"),
    ],
)
def test_bad_input_gets_a_precise_4xx(
    server: Server, path: str, body: bytes, status: int, message: str
) -> None:
    r = httpx.post(
        f"{server.url}{path}", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/v2/models/churn/infer", 405, "no route GET /v2/models/churn/infer"),
        ("PUT", "/v1/models/churn:predict", 405, "no route PUT /v1/models/churn:predict"),
        ("GET", "/invocations", 405, "no route GET /invocations"),
        ("POST", "/v2/models/churn/extra/infer", 404, "no route POST"),
        ("POST", "/v2/models//infer", 404, "no route POST"),
        ("POST", "/models/a/b/invocations", 404, "no route POST"),
    ],
)
def test_inference_paths_check_method_and_shape(
    server: Server, method: str, path: str, status: int, message: str
) -> None:
    r = httpx.request(method, f"{server.url}{path}", content=b"{}")
    assert r.status_code == status, r.text
    body = r.json()
    text = body["error"] if "error" in body else body["message"]  # MLflow's shape has message
    assert message in text
    if status == 405:
        assert r.headers["allow"] == "POST"


def test_wrong_dtype_names_the_input(server: Server) -> None:
    body = {
        "inputs": [{"name": "input", "shape": [1, 20], "datatype": "BYTES", "data": ["a"] * 20}]
    }
    r = httpx.post(f"{server.url}/v2/models/churn/infer", json=body)
    assert r.status_code == 400
    assert (
        r.json()["error"] == "input 'input': expected float32, got str which cannot be safely cast"
    )


def test_huge_body_is_refused_with_413(server: Server) -> None:
    r = httpx.post(
        f"{server.url}/v2/models/churn/infer",
        content=b"[" + b"1," * 1_500_000 + b"1]",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert "larger than the limit of 2000000 bytes" in r.json()["error"]

    def chunks() -> Iterator[bytes]:
        for _ in range(3000):
            yield b"x" * 1000

    r = httpx.post(f"{server.url}/v2/models/churn/infer", content=chunks())
    assert r.status_code == 413
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


def test_openapi_and_docs(server: Server) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    for path in (
        "/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer",
        "/v2/repository/index", "/v2/repository/models/{name}/load",
        "/v2/repository/models/{name}/unload", "/v1/models/{name}:predict",
        "/v1/models/{name}/versions/{version}:predict", "/invocations", "/ping",
    ):  # fmt: skip
        assert path in doc["paths"], path
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    assert "swagger-ui-bundle.js" in page.text
    assert httpx.get(f"{server.url}/docs/static/swagger-ui-bundle.js").status_code == 200
