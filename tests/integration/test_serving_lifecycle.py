"""Serving across a model's life: swaps under load, SIGTERM mid-request, every datatype, client."""

from __future__ import annotations

import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.errors import ModelNotFound, SignatureError, VersionNotFound

from ._server import running_server, serving
from ._usercode import user_module


def _xy() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(n_samples=1000, n_features=20, random_state=0)
    return x.astype(np.float32), y


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_swap_under_load_never_fails_a_request(tmp_path: Path, workers: int) -> None:
    x, y = _xy()
    v1_model = LogisticRegression(max_iter=300).fit(x, y)
    v2_model = LogisticRegression(max_iter=300).fit(x, 1 - y)  # predicts the opposite
    probe = x[:8]
    settings = modelport.Settings(home=tmp_path)
    with modelport.Registry(settings) as registry:
        registry.register("churn", v1_model, input_example=x[:5])
        registry.register("churn", v2_model, input_example=x[:5])
        registry.set_alias("churn", "production", 1)
    env = {"MODELPORT_SERVING__POLL_INTERVAL_S": "0.3"}
    body = {
        "inputs": [
            {"name": "input", "shape": [8, 20], "datatype": "FP32", "data": probe.ravel().tolist()}
        ]
    }
    # One log per client: a client sends its next request only after the previous answer,
    # so its own log is in time order (requests of different clients may overlap a swap).
    logs: list[list[tuple[int, str | None, list[int] | None]]] = [[] for _ in range(4)]
    seen: list[tuple[int, str | None, list[int] | None]] = []
    failures: list[str] = []  # the bodies of any non-200 answers, for the assertion message
    stop = threading.Event()

    start = serving if workers == 1 else running_server
    with start(tmp_path, "churn@production", "--workers", str(workers), env=env) as server:

        def hammer(log: list[tuple[int, str | None, list[int] | None]]) -> None:
            with httpx.Client(timeout=10) as client:
                deadline = time.monotonic() + 60  # bounded, whatever happens
                while not stop.is_set() and time.monotonic() < deadline:
                    # A new connection each time: with several workers, any of them may answer.
                    r = client.post(
                        f"{server.url}/v2/models/churn/infer",
                        json=body,
                        headers={"Connection": "close"},
                    )
                    if r.status_code == 200:
                        doc = r.json()
                        entry = (200, doc["model_version"], doc["outputs"][0]["data"])
                    else:
                        entry = (r.status_code, None, None)
                        failures.append(r.text)
                    log.append(entry)
                    seen.append(entry)

        threads = [threading.Thread(target=hammer, args=(log,)) for log in logs]
        for t in threads:
            t.start()
        try:
            _wait_for(lambda: len(seen) > 20)
            with modelport.Registry(settings) as registry:
                registry.set_alias("churn", "production", 2)
            _wait_for(lambda: any(v == "2" for _, v, _ in seen[-5:]))
            with modelport.Registry(settings) as registry:
                broken = registry.register("churn", v1_model, input_example=x[:5])
                victim = registry.artifact_path(f"churn/{broken.version}") / "model.skops"
                victim.chmod(0o644)
                victim.write_bytes(b"not a model any more")
                registry.set_alias("churn", "production", broken.version)
            forced = httpx.post(f"{server.url}/v2/repository/models/churn/load", timeout=30)
            assert forced.status_code == 503
            assert "version 3" in forced.json()["reason"]
            before = len(seen)
            _wait_for(lambda: len(seen) > before + 20)
        finally:
            stop.set()
            for t in threads:
                t.join()
        meta = httpx.get(f"{server.url}/v2/models/churn").json()
        switched = re.findall(r"(worker \d+: )?model churn: serving version 2", server.logs())
        assert len(set(switched)) == len(switched) == workers, "every worker followed, once"

    assert all(status == 200 for status, _, _ in seen), failures[:3]
    for log in logs:
        versions = [v for _, v, _ in log]
        first_v2 = versions.index("2")
        assert set(versions[:first_v2]) == {"1"}
        assert set(versions[first_v2:]) == {"2"}, "once switched, never back, never broken v3"
    for _, version, preds in seen:
        model = v1_model if version == "1" else v2_model
        assert preds == model.predict(probe).tolist()
    assert meta["version"] == 2
    assert "version 3" in meta["error"]
    assert "corrupted" in meta["error"]


def _wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


SLOW = """
import os
import tempfile
import time

import numpy as np

from modelport.flavors.pyfunc import PythonModel


class Slow(PythonModel):
    def predict(self, inputs):
        entered = os.environ.get("SLOW_ENTERED")  # a folder: one file per call inside predict
        if entered:
            tempfile.mkstemp(dir=entered)
        time.sleep(1.0)
        return inputs["input"].sum(axis=1)
"""


@pytest.mark.slow  # a real process, signalled
def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    slow = user_module(tmp_path, SLOW).Slow()
    modelport.save(slow, tmp_path / "slow", input_example=np.ones((1, 3)))
    entered = tmp_path / "entered"
    entered.mkdir()
    env = {"MODELPORT_SERVING__BATCHING": "false", "SLOW_ENTERED": str(entered)}
    with running_server(tmp_path, str(tmp_path / "slow"), "--trust-unsafe", env=env) as server:
        assert server.process is not None
        body = {
            "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]
        }

        def call() -> httpx.Response:
            return httpx.post(f"{server.url}/v2/models/slow/infer", json=body, timeout=30)

        warmed = len(list(entered.iterdir()))  # the warm-up's calls
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(call) for _ in range(4)]
            _wait_for(lambda: len(list(entered.iterdir())) == warmed + 4)  # all inside predict
            server.process.send_signal(signal.SIGTERM)
            responses = [f.result() for f in futures]
        assert server.process.wait(timeout=30) == 0
    assert [r.status_code for r in responses] == [200] * 4
    assert all(r.json()["outputs"][0]["data"] == [6.0] for r in responses)


ECHO = """
from modelport.flavors.pyfunc import PythonModel


class Echo(PythonModel):
    def predict(self, inputs):
        return {f"{name}_out": value for name, value in inputs.items()}
"""

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64"]  # fmt: skip


def test_every_v2_datatype_through_a_server(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    example: dict[str, np.ndarray] = {
        d: (rng.integers(0, 2, (2, 3)).astype(d) if d != "bool" else rng.random((2, 3)) > 0.5)
        for d in DTYPES
    }
    example["str"] = np.array([["a", "bé", "c"], ["d", "", "f"]], dtype=object)
    echo = user_module(tmp_path, ECHO).Echo()
    modelport.save(echo, tmp_path / "echo", input_example=example)
    with (
        serving(tmp_path, str(tmp_path / "echo"), "--trust-unsafe") as server,
        modelport.Client(server.url) as client,
    ):
        meta = client.metadata("echo")
        assert {i["name"]: i["datatype"] for i in meta["inputs"]}["float16"] == "FP16"
        for binary in (False, True):
            out = client.predict("echo", example, binary=binary)
            for name, arr in example.items():
                got = out[f"{name}_out"]
                assert got.shape == arr.shape
                if name == "str":
                    assert got.tolist() == arr.tolist()
                else:
                    assert got.dtype == arr.dtype, (name, binary)
                    np.testing.assert_array_equal(got, arr)


def test_python_client(tmp_path: Path) -> None:
    x, y = _xy()
    model = LogisticRegression(max_iter=300).fit(x, y)
    frame = pd.DataFrame({"a": x[:, 0].astype(np.float64), "b": x[:, 1].astype(np.float64)})
    table = LogisticRegression().fit(frame, y)
    with modelport.Registry(modelport.Settings(home=tmp_path)) as registry:
        registry.register("churn", model, input_example=x[:5])
        registry.register("table", table, input_example=frame.head())
    with (
        serving(tmp_path, "churn", "table", "--log-sample-rate", "1") as server,
        modelport.Client(server.url) as client,
    ):
        assert client.live()
        assert client.ready("churn")
        out = client.predict("churn", x[:50])
        np.testing.assert_array_equal(out["predictions"], model.predict(x[:50]))
        big = np.tile(x, (3, 1))  # > 64 KiB: goes over the binary extension
        np.testing.assert_allclose(
            client.predict("churn", big)["probabilities"], model.predict_proba(big), rtol=1e-5
        )
        got = client.predict("table", frame.head(9), outputs=["predictions"])
        assert list(got) == ["predictions"]
        np.testing.assert_array_equal(got["predictions"], table.predict(frame.head(9)))
        # A list of records, a request id of our own, and the label posted back for it.
        records = frame.head(3).to_dict(orient="records")
        got = client.predict("table", records, request_id="req-abc")
        assert (got.request_id, got.version) == ("req-abc", 1)
        np.testing.assert_array_equal(got["predictions"], table.predict(frame.head(3)))
        assert client.predict("table", records).request_id  # the server made one
        truth = [int(v) for v in y[:3]]
        deadline = time.monotonic() + 30  # the log is written off the request path
        while (answer := client.feedback("table", {"req-abc": truth}))["accepted"] == 0:
            assert answer["unknown_ids"] == ["req-abc"]
            assert time.monotonic() < deadline, "the request was never logged"
            time.sleep(0.1)
        assert answer == {"model": "table", "accepted": 1, "unknown_ids": []}
        # Each error comes back as its own class, from the code beside the message.
        with pytest.raises(ModelNotFound, match="model 'nope' not found"):
            client.predict("nope", x[:1])
        with pytest.raises(SignatureError, match=r"expected shape \[-1, 20\]"):
            client.predict("churn", x[:2, :5])
        with pytest.raises(VersionNotFound, match="model 'churn' has no version 9"):
            client.predict("churn", x[:1], version=9)
