"""A registry outage while serving, on a real PostgreSQL and a real ``modelport serve``.

The test database is made unreachable without stopping the PostgreSQL server: connections
to it are refused (``ALLOW_CONNECTIONS false``) and the open ones ended. Meanwhile loaded
models keep answering (a client loop running from before the database goes until after it
is back gets 200 every time), routes that need the registry answer 503 with a clear
message, an alias change fails clearly, an API key never verified is refused, the
prediction log's queue stays bounded (drops are counted) and readiness stays true. Once
the database is back, everything recovers without a restart and the next alias move is
followed.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from psycopg import sql
from sklearn.linear_model import LogisticRegression
from sqlalchemy.engine import make_url

import modelport

from ._cli import console_command, console_env
from ._server import Server, running_server

BODY = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 1]}]}
LOG_QUEUE = 50
"""The server's prediction log queue in this test: what it may hold while the writer fails."""
BATCH = 250  # modelport.monitoring.prediction_log.BATCH: the most one failing write holds


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout} s: {what}")
        time.sleep(0.1)


@contextmanager
def _unreachable(database_uri: str) -> Iterator[None]:
    """The database refuses new connections and its open ones are ended; restored after."""
    url = make_url(database_uri).set(drivername="postgresql")
    name = url.database
    assert name is not None
    assert name.startswith("modelport_test_")
    admin = url.set(database="postgres").render_as_string(hide_password=False)

    def execute(statement: sql.Composed) -> None:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)

    database = sql.Identifier(name)
    execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database))
    try:
        execute(
            sql.SQL(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}"
            ).format(sql.Literal(name))
        )
        yield
    finally:
        execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database))


def _metric(text: str, name: str) -> float:
    """The sum of every sample of counter ``name`` (all its label sets)."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _predict(client: httpx.Client, url: str, n: int) -> set[int]:
    """``n`` predictions; the set of statuses they got."""
    return {client.post(f"{url}/v2/models/m/infer", json=BODY).status_code for _ in range(n)}


def _version(client: httpx.Client, url: str) -> str:
    answer = client.post(f"{url}/v2/models/m/infer", json=BODY)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model_version"])


class _Load:
    """A bounded client loop in a thread of its own: one prediction after another until
    stopped (or ``most`` sent), counting each answer's status (0: no answer at all)."""

    def __init__(self, url: str, headers: dict[str, str], most: int = 50_000) -> None:
        self.statuses: Counter[int] = Counter()
        self._url, self._headers, self._most = url, headers, most
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        with httpx.Client(headers=self._headers, timeout=30) as client:
            while not self._stop.is_set() and self.sent < self._most:
                try:
                    status = client.post(f"{self._url}/v2/models/m/infer", json=BODY).status_code
                except httpx.HTTPError:
                    status = 0
                self.statuses[status] += 1


def _log_counts(client: httpx.Client, server: Server) -> tuple[float, float, float]:
    text = client.get(f"{server.url}/metrics").text
    return (
        _metric(text, "modelport_prediction_log_sampled_total"),
        _metric(text, "modelport_prediction_log_written_total"),
        _metric(text, "modelport_prediction_log_dropped_total"),
    )


@pytest.mark.slow  # a real server process, and a database taken away and given back
@pytest.mark.postgres
def test_serving_through_a_registry_outage(tmp_path: Path, fresh_pg_database: str) -> None:
    settings = modelport.Settings(home=tmp_path, registry_uri=fresh_pg_database)
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    with modelport.Registry(settings) as registry:
        registry.register("m", LogisticRegression().fit(x, y), input_example=x[:2])
        registry.register("m", LogisticRegression().fit(x, 1 - y), input_example=x[:2])
        registry.set_alias("m", "production", 1)
        _, token = registry.keys.create_key("used", "admin")
        _, unverified = registry.keys.create_key("unused", "admin")  # first sent in the outage
    env = {
        "MODELPORT_REGISTRY_URI": fresh_pg_database,
        "MODELPORT_SERVING__AUTH": "true",
        "MODELPORT_SERVING__AUTH_CACHE_S": "3600",  # the used key stays verified throughout
        "MODELPORT_SERVING__LOG_SAMPLE_RATE": "1",
        "MODELPORT_SERVING__LOG_QUEUE": str(LOG_QUEUE),
        "MODELPORT_SERVING__POLL_INTERVAL_S": "1",  # the poll fails all through the outage
        "MODELPORT_SERVING__ACCESS_LOG": "false",
    }
    auth = {"Authorization": f"Bearer {token}"}
    with (
        running_server(tmp_path, "m@production", env=env) as server,
        httpx.Client(headers=auth, timeout=30) as client,
    ):
        url = server.url
        assert _version(client, url) == "1"
        _wait_for(lambda: "following alias changes" in server.logs(), 30, "listening")
        _wait_for(lambda: _log_counts(client, server)[1] >= 1, 30, "the log writes")

        # A client loop runs from before the database goes until after it is back: the
        # moment its connections are ended, and the moment it returns, cost no request.
        with _Load(url, auth) as background:
            _wait_for(lambda: background.sent > 0, 30, "the client loop runs")
            with _unreachable(fresh_pg_database):
                at_outage = background.sent
                # Loaded models keep answering, every time.
                assert _predict(client, url, 300) == {200}
                # Routes that need the registry: 503, a clear message, a hint when to retry.
                load = client.post(f"{url}/v2/repository/models/m/load")
                assert load.status_code == 503, load.text
                assert load.json()["code"] == "registry_unavailable"
                assert "registry is unreachable" in load.json()["error"]
                assert "modelport_test_" not in load.text  # the database is not named
                assert load.headers["Retry-After"]
                feedback = client.post(f"{url}/v2/models/m/feedback", json={"id": "r", "label": 1})
                assert (feedback.status_code, feedback.json()["code"]) == (
                    503,
                    "registry_unavailable",
                )
                drift = client.get(f"{url}/v2/models/m/drift")
                assert (drift.status_code, drift.json()["code"]) == (503, "registry_unavailable")
                # What the server holds in memory still answers.
                assert client.get(f"{url}/v2/models/m").status_code == 200
                assert client.get(f"{url}/v2/repository/index").status_code == 200
                # An alias change (the CLI: there is no HTTP route for it) fails clearly, exit 6.
                moved = subprocess.run(
                    console_command("alias", "set", "m", "production", "2"),
                    env={**console_env(tmp_path), "MODELPORT_REGISTRY_URI": fresh_pg_database},
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert moved.returncode == 6, moved.stderr
                assert "registry database error" in moved.stderr
                # A key never verified by this server is refused, and not with 200 or 401.
                stranger = httpx.post(
                    f"{url}/v2/models/m/infer",
                    json=BODY,
                    headers={"Authorization": f"Bearer {unverified}"},
                    timeout=30,
                )
                assert stranger.status_code == 503, stranger.text
                assert stranger.json()["code"] == "registry_unavailable"
                # The prediction log drops and counts: bounded by its queue, whatever the load.
                rss_before = _rss_kib(server.pid)
                dropped_before = _log_counts(client, server)[2]
                assert _predict(client, url, 2000) == {200}
                sampled, written, dropped = _log_counts(client, server)
                assert dropped >= dropped_before + 2000 - LOG_QUEUE - BATCH
                assert sampled - written - dropped <= LOG_QUEUE + BATCH  # what is still queued
                assert _rss_kib(server.pid) - rss_before < 64 * 1024
                # A load balancer keeps the replica: it still serves.
                ready = client.get(f"{url}/v2/health/ready")
                assert (ready.status_code, ready.json()) == (200, {"ready": True})
                assert client.get(f"{url}/v2/health/live").status_code == 200
                assert _version(client, url) == "1"
                _wait_for(lambda: background.sent > at_outage, 30, "the loop runs meanwhile")

            # Back: without a restart, the log writes again, the unverified key is checked,
            # repository loads work, and the next alias move is followed.
            written_at_restore = _log_counts(client, server)[1]
            assert _predict(client, url, 20) == {200}
            _wait_for(
                lambda: _log_counts(client, server)[1] > written_at_restore, 60, "the log resumes"
            )
            stranger = httpx.post(
                f"{url}/v2/models/m/infer",
                json=BODY,
                headers={"Authorization": f"Bearer {unverified}"},
                timeout=30,
            )
            assert stranger.status_code == 200, stranger.text
            assert client.post(f"{url}/v2/repository/models/m/load").status_code == 200
            _wait_for(
                lambda: server.logs().count("following alias changes") >= 2, 60, "listening again"
            )
            with modelport.Registry(settings) as registry:
                registry.set_alias("m", "production", 2)
            _wait_for(lambda: _version(client, url) == "2", 60, "the alias move followed")
        assert set(background.statuses) == {200}, background.statuses  # not one failed
    logs = server.logs()
    assert "the registry database is unreachable" in logs
    assert "the registry database is reachable again" in logs
    assert "prediction log: writing again" in logs
