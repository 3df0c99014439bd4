"""``serve --workers 2`` is one server: repository commands and key changes reach every
worker, and whichever worker answers says the same thing.

Each request here opens its own connection (``Connection: close``) and several clients run
at once, so the kernel hands requests to both workers; the server log (each worker's lines
carry its pid) proves both of them followed each change.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelport

from ._server import Server, running_server

pytestmark = pytest.mark.slow

X = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
BODY = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [0.5] * 8}]}
CLOSE = {"Connection": "close"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    with modelport.Registry(modelport.Settings(home=tmp_path)) as registry:
        model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
        registry.register("churn", model, input_example=X[:3])
    return tmp_path


def _workers_saying(server: Server, pattern: str) -> Counter[str]:
    """How many lines matching ``pattern`` each worker (by pid) logged."""
    return Counter(re.findall(rf"worker (\d+): {pattern}", server.logs()))


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def _from_many_connections(request: Callable[[], httpx.Response], n: int = 40) -> set[str]:
    """What ``n`` requests on fresh connections, 8 at a time, answered (status and body)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: request(), range(n)))
    return {f"{r.status_code} {r.text}" for r in answers}


def test_repository_unload_and_load_reach_every_worker(home: Path) -> None:
    with running_server(home, "churn", "--workers", "2") as server:
        _wait_for(lambda: len(_workers_saying(server, "model churn: serving version 1")) == 2)
        url = server.url

        def index() -> httpx.Response:
            return httpx.post(f"{url}/v2/repository/index", headers=CLOSE, timeout=10)

        def infer() -> httpx.Response:
            return httpx.post(f"{url}/v2/models/churn/infer", json=BODY, headers=CLOSE, timeout=10)

        def ready() -> httpx.Response:
            return httpx.get(f"{url}/v2/health/ready", headers=CLOSE, timeout=10)

        unloaded = httpx.post(f"{url}/v2/repository/models/churn/unload", timeout=30)
        assert unloaded.status_code == 200
        assert unloaded.json()["state"] == "UNLOADED"
        # Answered only once both workers let the model go.
        assert len(_workers_saying(server, "model churn: unloaded version 1")) == 2
        assert _from_many_connections(index) == {'200 [{"name":"churn","state":"UNLOADED"}]'}
        assert {a.split(" ")[0] for a in _from_many_connections(infer)} == {"503"}
        assert _from_many_connections(ready) == {'503 {"ready":false}'}

        loaded = httpx.post(f"{url}/v2/repository/models/churn/load", timeout=60)
        assert loaded.status_code == 200, loaded.text
        assert loaded.json() == {"name": "churn", "state": "READY", "version": "1"}
        # Each worker switches (and says so) when it next reads the board: on its next
        # request, or its board watch within 50 ms; requests below see the switch either way.
        says = "model churn: serving version 1"
        _wait_for(lambda: sorted(_workers_saying(server, says).values()) == [2, 2])  # start, now
        assert _from_many_connections(index) == {
            '200 [{"name":"churn","state":"READY","version":"1"}]'
        }
        answers = _from_many_connections(infer)
        assert {a.split(" ")[0] for a in answers} == {"200"}
        assert all('"model_version":"1"' in a for a in answers)
        assert _from_many_connections(ready) == {'200 {"ready":true}'}


def test_a_revoked_key_is_refused_by_every_worker(home: Path) -> None:
    settings = modelport.Settings(home=home)
    with modelport.Registry(settings) as registry:
        _, token = registry.keys.create_key("ci", "predict")
    env = {"MODELPORT_SERVING__AUTH": "true", "MODELPORT_SERVING__AUTH_CACHE_S": "1"}
    with running_server(home, "churn", "--workers", "2", env=env) as server:
        _wait_for(lambda: len(_workers_saying(server, "model churn: serving version 1")) == 2)
        headers = {**CLOSE, "Authorization": f"Bearer {token}"}

        def infer() -> httpx.Response:
            return httpx.post(
                f"{server.url}/v2/models/churn/infer", json=BODY, headers=headers, timeout=10
            )

        assert {a.split(" ")[0] for a in _from_many_connections(infer)} == {"200"}
        with modelport.Registry(settings) as registry:
            registry.keys.revoke_key("ci")
        # Within the cache time every worker asks the registry again.
        _wait_for(lambda: {a.split(" ")[0] for a in _from_many_connections(infer)} == {"401"})
        assert {a.split(" ")[0] for a in _from_many_connections(infer, n=80)} == {"401"}
