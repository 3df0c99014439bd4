"""Server limits and modes: 504 on timeout, 503 + Retry-After when full, workers, deployments."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelport

from ._cli import cli
from ._server import running_server, serving
from ._usercode import user_module
from .test_serving_lifecycle import SLOW

BODY = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}


def test_timeout_is_504_and_full_queue_is_503_with_retry_after(tmp_path: Path) -> None:
    slow = user_module(tmp_path, SLOW).Slow()
    modelport.save(slow, tmp_path / "slow", input_example=np.ones((1, 3)))
    env = {
        "MODELPORT_SERVING__REQUEST_TIMEOUT_S": "0.3",
        "MODELPORT_SERVING__MAX_QUEUE": "1",
        "MODELPORT_SERVING__MAX_BATCH_SIZE": "1",
    }
    with serving(tmp_path, str(tmp_path / "slow"), "--trust-unsafe", env=env) as server:
        r = httpx.post(f"{server.url}/v2/models/slow/infer", json=BODY, timeout=10)
        assert r.status_code == 504
        assert r.json() == {
            "error": "model 'slow' did not answer within 0.3 s",
            "code": "request_timeout",
        }

        def call() -> httpx.Response:
            return httpx.post(f"{server.url}/v2/models/slow/infer", json=BODY, timeout=10)

        with ThreadPoolExecutor(max_workers=6) as pool:
            responses = list(pool.map(lambda _: call(), range(6)))
        full = [r for r in responses if r.status_code == 503]
        assert full, [r.status_code for r in responses]
        assert all(r.headers["retry-after"] == "1" for r in full)
        assert "requests queued; retry later" in full[0].json()["error"]
        assert {r.status_code for r in responses} <= {503, 504}
        assert httpx.get(f"{server.url}/v2/health/live").status_code == 200


@pytest.mark.slow  # worker processes
def test_two_workers_and_a_deployment_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    with modelport.Registry(modelport.Settings(home=tmp_path)) as registry:
        registry.register("churn", model, input_example=x[:3])
    config = tmp_path / "deployment.yaml"
    config.write_text(
        "serving:\n  workers: 2\n  max_batch_size: 8\nmodels:\n"
        "  - ref: churn/1\n    name: scorer\n    max_batch_delay_ms: 1\n"
    )
    with running_server(tmp_path, "-c", str(config)) as server:
        assert len(_workers(server.pid)) == 2, "two worker processes share the port"
        with httpx.Client() as client:
            for _ in range(40):
                body = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64",
                                    "data": x[:2].ravel().tolist()}]}  # fmt: skip
                r = client.post(
                    f"{server.url}/v2/models/scorer/infer",
                    json=body,
                    headers={"Connection": "close"},
                )
                assert r.status_code == 200, r.text
                assert r.json()["outputs"][0]["data"] == model.predict(x[:2]).tolist()
        assert httpx.get(f"{server.url}/v2/models/churn").status_code == 404


def _workers(pid: int) -> list[int]:
    """Worker processes of the server ``pid`` (not multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_bad_deployment_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path))
    config = tmp_path / "deployment.yaml"
    config.write_text("models:\n  - ref: churn\n    batch_size: 3\n")
    r = cli(capsys, "serve", "-c", str(config))
    assert r.code == 2
    assert "models.0.batch_size: unknown field (known: ref, name, max_batch_size" in r.err
    r = cli(capsys, "serve", "churn", "--tls-cert", str(config))
    assert r.code == 2
    assert "HTTPS needs both --tls-cert and --tls-key" in r.err
