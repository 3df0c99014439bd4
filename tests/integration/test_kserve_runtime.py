"""KServe's path, simulated with real parts: a version registered into S3 (moto's server),
the ClusterServingRuntime and InferenceService that ``modelport k8s --kserve`` generates,
the storage initializer's job done by hand (every object under the InferenceService's
``storageUri`` downloaded into a folder standing in for ``/mnt/models``), and the runtime's
container args run as a real ``modelport serve`` process with ``STORAGE_URI`` set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.deploy import k8s
from modelport.serving.deployment import KSERVE_MODEL_DIR
from tests.s3server import S3Server

from ._server import running_server

pytestmark = [pytest.mark.slow, pytest.mark.s3]


def initialize_storage(server: S3Server, storage_uri: str, into: Path) -> list[str]:
    """What KServe's storage initializer does for ``s3://``: every object under the prefix,
    at its path relative to the prefix. Returns the names written."""
    bucket, _, prefix = storage_uri.removeprefix("s3://").partition("/")
    s3: Any = server.client()
    names = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix) + 1 :]
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            names.append(name)
    return names


def test_the_generated_runtime_serves_what_the_storage_initializer_downloaded(
    tmp_path: Path, s3_uri: str, s3_server: S3Server
) -> None:
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    settings = modelport.Settings(home=tmp_path / "registry-home")
    with modelport.Registry(settings, artifact_uri=s3_uri) as registry:
        registry.register("churn", model, input_example=x[:2])
        registry.set_alias("churn", "production", 1)
        source = k8s.find_model(registry, "churn@production", s3_uri)
    runtime, isvc = k8s.kserve_manifests(source, image="modelport:test", name="churn")
    storage_uri = isvc["spec"]["predictor"]["model"]["storageUri"]
    assert storage_uri.startswith(f"{s3_uri}/")

    mnt = tmp_path / "mnt" / "models"
    names = initialize_storage(s3_server, storage_uri, mnt)
    assert "modelport.json" in names

    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"
    assert container["args"][0] == "serve"
    args = [
        str(mnt) if arg == str(KSERVE_MODEL_DIR) else arg.replace("{{.Name}}", "churn")
        for arg in container["args"][1:]
    ]
    port = args.index("--port")
    del args[port : port + 2]  # the test's own free port instead of 8080
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    env["MODELPORT_HOME"] = str(tmp_path / "pod-home")  # the pod's emptyDir
    env["STORAGE_URI"] = storage_uri
    with running_server(tmp_path, *args, env=env) as server:
        ready = httpx.get(f"{server.url}/v2/health/ready", timeout=10)
        assert (ready.status_code, ready.json()) == (200, {"ready": True})
        rows = x[:4]
        body = {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(rows.shape),
                    "datatype": "FP32",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
        answer = httpx.post(f"{server.url}/v2/models/churn/infer", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == model.predict(rows).tolist()
        index = httpx.post(f"{server.url}/v2/repository/index", json={}, timeout=10).json()
        assert [m["name"] for m in index] == ["churn"]
