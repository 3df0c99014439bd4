"""Serving behind a load balancer, as one of several replicas: readiness only once every
model is loaded and gone as soon as a graceful stop begins (while the requests in flight
finish), and an alias moved on PostgreSQL followed at once (LISTEN/NOTIFY), not at the poll."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy.engine import make_url

import modelport

from ._server import running_server, serving
from ._usercode import user_module

MODELS = """
import os
import tempfile
import time

from modelport.flavors.pyfunc import PythonModel


class Slow(PythonModel):
    def predict(self, inputs):
        entered = os.environ.get("SLOW_ENTERED")  # a folder: one file per call inside predict
        if entered:
            tempfile.mkstemp(dir=entered)
        time.sleep(float(os.environ.get("SLOW_SECONDS", "0.5")))
        return inputs["input"].sum(axis=1)


class Fast(PythonModel):
    def predict(self, inputs):
        return inputs["input"].sum(axis=1)
"""

BODY = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}


def _save_models(tmp_path: Path) -> tuple[Path, Path]:
    module = user_module(tmp_path, MODELS)
    slow, fast = tmp_path / "slow", tmp_path / "fast"
    # The warm-up calls predict twice with the example: the slow model takes ~1 s to load.
    modelport.save(module.Slow(), slow, input_example=np.ones((1, 3)))
    modelport.save(module.Fast(), fast, input_example=np.ones((1, 3)))
    return slow, fast


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_not_ready_while_a_model_loads(tmp_path: Path) -> None:
    slow, fast = _save_models(tmp_path)
    env = {"MODELPORT_SERVING__BATCHING": "false", "SLOW_SECONDS": "1"}
    # Before its start-up has loaded every model the server answers nothing (connection
    # refused); a model loaded again later, through the repository API, shows the readiness
    # answer itself: 503 while loading (the warm-up's two calls take ~2 s), 200 after.
    with serving(tmp_path, str(fast), str(slow), "--trust-unsafe", env=env) as server:
        url = server.url
        assert httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
        unloaded = httpx.post(f"{url}/v2/repository/models/slow/unload", timeout=30)
        assert unloaded.status_code == 200
        assert httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 503
        during: list[int] = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            load = pool.submit(httpx.post, f"{url}/v2/repository/models/slow/load", timeout=60)
            while not load.done():
                during.append(httpx.get(f"{url}/v2/health/ready", timeout=5).status_code)
                time.sleep(0.02)
            assert load.result().status_code == 200
        # Not ready from the start of the load, ready once it is over (the last probes may
        # land after the swap and before the load's own answer): false, then true, once.
        assert during
        assert during[0] == 503
        assert during == sorted(during, key=lambda status: status == 200)
        assert set(during) <= {200, 503}
        ready = httpx.get(f"{url}/v2/health/ready", timeout=5)
        assert (ready.status_code, ready.json()) == (200, {"ready": True})


def test_failed_model_keeps_the_server_not_ready(tmp_path: Path) -> None:
    _slow, fast = _save_models(tmp_path)
    broken = tmp_path / "broken"
    modelport.save(user_module(tmp_path, MODELS).Fast(), broken, input_example=np.ones((1, 3)))
    (broken / "modelport.json").write_text("{not json")
    env = {"MODELPORT_SERVING__BATCHING": "false"}
    with serving(tmp_path, str(fast), str(broken), "--trust-unsafe", env=env) as server:
        assert httpx.get(f"{server.url}/v2/models/fast/ready", timeout=5).status_code == 200
        ready = httpx.get(f"{server.url}/v2/health/ready", timeout=5)
        assert ready.status_code == 503
        assert ready.json() == {"ready": False}


@pytest.mark.slow  # a real process, signalled
def test_sigterm_drops_readiness_while_in_flight_requests_finish(tmp_path: Path) -> None:
    slow, _fast = _save_models(tmp_path)
    entered = tmp_path / "entered"
    entered.mkdir()
    env = {
        "MODELPORT_SERVING__BATCHING": "false",
        "SLOW_ENTERED": str(entered),
        "SLOW_SECONDS": "3",
    }
    with running_server(tmp_path, str(slow), "--trust-unsafe", env=env) as server:
        assert server.process is not None
        assert httpx.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200
        warmed = len(list(entered.iterdir()))
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(
                httpx.post, f"{server.url}/v2/models/slow/infer", json=BODY, timeout=30
            )
            _wait_for(lambda: len(list(entered.iterdir())) == warmed + 1)  # inside predict
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)  # let the signal land; the request has ~2.7 s left to run
            try:
                probe: int | None = httpx.get(
                    f"{server.url}/v2/health/ready", timeout=5
                ).status_code
            except httpx.TransportError:
                probe = None  # refused: the listening socket is closed
            assert not future.done()  # the probe came while the request was still in flight
            response = future.result()
        assert server.process.wait(timeout=30) == 0
    assert probe != 200
    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"] == [6.0]


def _register_two(settings: modelport.Settings) -> None:
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    with modelport.Registry(settings) as registry:
        registry.register("m", LogisticRegression().fit(x, y), input_example=x[:2])
        registry.register("m", LogisticRegression().fit(x, 1 - y), input_example=x[:2])
        registry.set_alias("m", "production", 1)


def _answering_version(url: str) -> str:
    body = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 1]}]}
    answer = httpx.post(f"{url}/v2/models/m/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model_version"])


def _follows_within(url: str, version: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answering_version(url) == version:
            return True
        time.sleep(0.05)
    return False


# The poll is an hour away in both: only a notification can move the served alias in time.
_NO_POLL = {"MODELPORT_SERVING__POLL_INTERVAL_S": "3600"}


@pytest.mark.postgres
def test_alias_move_reaches_the_server_through_notify(
    tmp_path: Path, fresh_pg_database: str
) -> None:
    settings = modelport.Settings(home=tmp_path, registry_uri=fresh_pg_database)
    _register_two(settings)
    env = {**_NO_POLL, "MODELPORT_REGISTRY_URI": fresh_pg_database}
    with serving(tmp_path, "m@production", env=env) as server:
        assert _answering_version(server.url) == "1"
        with modelport.Registry(settings) as registry:
            registry.set_alias("m", "production", 2)
            assert _follows_within(server.url, "2", 10)
            registry.delete_alias("m", "production")  # announced too; the server keeps v2
            registry.set_alias("m", "production", 1)
            assert _follows_within(server.url, "1", 10)


def test_alias_move_waits_for_the_poll_on_sqlite(tmp_path: Path) -> None:
    """The control: without notifications (SQLite) the same move is not followed in 3 s."""
    settings = modelport.Settings(home=tmp_path)
    _register_two(settings)
    with serving(tmp_path, "m@production", env=_NO_POLL) as server:
        assert _answering_version(server.url) == "1"
        with modelport.Registry(settings) as registry:
            registry.set_alias("m", "production", 2)
        assert not _follows_within(server.url, "2", 3)


@pytest.mark.postgres
def test_lost_listener_connection_is_reopened(tmp_path: Path, fresh_pg_database: str) -> None:
    settings = modelport.Settings(home=tmp_path, registry_uri=fresh_pg_database)
    _register_two(settings)
    env = {**_NO_POLL, "MODELPORT_REGISTRY_URI": fresh_pg_database}
    conninfo = make_url(fresh_pg_database).set(drivername="postgresql")
    with serving(tmp_path, "m@production", env=env) as server:
        _wait_for(lambda: "following alias changes" in server.logs())
        with psycopg.connect(conninfo.render_as_string(hide_password=False)) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            ).fetchall()
        assert killed  # the listener's connection was there, and is gone
        _wait_for(lambda: "retrying in" in server.logs())
        assert _answering_version(server.url) == "1"  # the server never stopped serving
        _wait_for(lambda: server.logs().count("following alias changes") >= 2)
        with modelport.Registry(settings) as registry:
            registry.set_alias("m", "production", 2)
        assert _follows_within(server.url, "2", 10)
