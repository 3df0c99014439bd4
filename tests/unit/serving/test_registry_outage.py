"""A registry out of reach, in process: which failures count as an outage, the prediction
log's bounded queue and its log lines while writes fail, and API keys failing closed."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from starlette.types import Receive, Scope, Send

from modelport.errors import RegistryUnavailable, StoreError, Unauthenticated
from modelport.monitoring import prediction_log
from modelport.monitoring.metrics import ServerMetrics
from modelport.monitoring.prediction_log import PredictionLogger
from modelport.registry import ApiKey, LoggedPrediction
from modelport.registry.sql._engine import build_engine, dispose, mapped_errors, parse_url
from modelport.serving import auth
from modelport.serving._outage import RegistryOutage, unreachable
from modelport.serving.app import ERROR_BODIES
from modelport.serving.auth import Authenticator
from modelport.serving.routes import RouteTable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _outage() -> StoreError:
    """The store's error for a PostgreSQL nobody listens for (connection refused)."""
    uri = f"postgresql://nobody@127.0.0.1:{_closed_port()}/registry"
    engine = build_engine(parse_url(uri))
    try:
        with pytest.raises(StoreError, match="connection") as raised, mapped_errors(uri):
            engine.connect()
    finally:
        dispose(engine)
    return raised.value


def _refused_statement() -> StoreError:
    """The store's error for a statement the database refuses (a constraint)."""
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with (
            pytest.raises(StoreError, match="UNIQUE") as raised,
            mapped_errors("sqlite://"),
            engine.begin() as conn,
        ):
            conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        engine.dispose()
    return raised.value


def test_a_refused_connection_is_an_outage_and_a_refused_statement_is_not() -> None:
    outage = _outage()
    assert "connection" in str(outage)
    assert unreachable(outage)
    assert unreachable(RegistryUnavailable())
    assert not unreachable(_refused_statement())
    assert not unreachable(StoreError("something else"))
    # On SQLite a missing table is an OperationalError too: not an outage.
    engine = create_engine("sqlite://")
    with engine.connect() as conn, pytest.raises(OperationalError, match="no such") as missing:
        conn.execute(text("SELECT * FROM nowhere"))
    assert not unreachable(missing.value)


def test_an_outage_is_logged_when_it_starts_and_ends_not_per_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage, error = RegistryOutage(), _outage()
    with caplog.at_level(logging.WARNING, logger="modelport.serving._outage"):
        for _ in range(50):
            assert isinstance(outage.check(error), RegistryUnavailable)
        assert outage.down
        assert outage.check(_refused_statement()) is None
        outage.recovered()
        outage.recovered()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "unreachable (registry database error at postgresql" in lines[0]
    assert re.search(r"reachable again after \d+ s \(50 failed calls\)", lines[1]), lines
    assert not outage.down


class FlakyLog:
    """A prediction log store that fails while ``down``, as the SQL store does then."""

    def __init__(self) -> None:
        self.down = False
        self.rows: list[LoggedPrediction] = []
        self.tries = 0

    def log_predictions(self, rows: list[LoggedPrediction]) -> None:
        self.tries += 1
        if self.down:
            raise _OUTAGE
        self.rows.extend(rows)


_OUTAGE = _outage()


def _offer(log: PredictionLogger, n: int, start: int = 0) -> int:
    x = {"x": np.zeros(1)}
    return sum(log.offer("m", 1, f"r{start + i}", 1.0, x, x) for i in range(n))


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prediction_log, "RETRY_S", 0.05)
    monkeypatch.setattr(prediction_log, "FLUSH_S", 0.02)


@pytest.mark.usefixtures("fast_retry")
def test_a_failing_database_makes_the_log_drop_and_count_then_resume(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, metrics = FlakyLog(), ServerMetrics()
    log = PredictionLogger(store, max_queue=20, metrics=metrics)  # type: ignore[arg-type]
    sampled, written, dropped = (
        metrics.log_sampled.labels("m"),
        metrics.log_written.labels("m"),
        metrics.log_dropped.labels("m"),
    )
    try:
        with caplog.at_level(logging.WARNING, logger="modelport.monitoring.prediction_log"):
            store.down = True
            _offer(log, 1, 9999)
            _wait_for(lambda: bool(caplog.records))  # the first write has failed
            for round_ in range(20):  # far more than the queue holds, over many retries
                _offer(log, 50, round_ * 50)
                assert len(log._queue) <= 20
                time.sleep(0.01)
            _wait_for(lambda: store.tries >= 3)
            assert log.flush(5.0) is False  # no wait for a failing writer
            assert sampled._value.get() == 1001
            assert dropped._value.get() >= 1001 - 20  # all but what the queue holds
            assert written._value.get() == 0
            store.down = False
            _offer(log, 5, 4000)  # queued, or dropped if the queue is still full
            _wait_for(lambda: written._value.get() > 0)  # the next try writes what waits
            assert log.flush(5.0) is True
            assert _offer(log, 5, 5000) == 5  # the queue has room again
            assert log.flush(5.0) is True
        queued = sampled._value.get() - written._value.get() - dropped._value.get()
        assert queued == 0
        assert {r.request_id for r in store.rows} >= {f"r{i}" for i in range(5000, 5005)}
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2, lines  # once when it starts, once when it ends
        assert "writing to the registry database failed" in lines[0]
        assert "modelport_prediction_log_dropped_total" in lines[0]
        assert "writing again" in lines[1]
        lost = int(lines[1].split("; ")[1].split()[0])  # those dropped while failing
        assert 1001 - 2 * 20 <= lost <= dropped._value.get()  # all but the queue, and a batch
    finally:
        log.close()


def test_a_failing_writer_tries_one_batch_then_pauses(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(prediction_log, "RETRY_S", 3600.0)  # no second try in this test
    store = FlakyLog()
    store.down = True
    log = PredictionLogger(store, max_queue=10_000)  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.WARNING, logger="modelport.monitoring.prediction_log"):
            _offer(log, 2000)  # 8 batches: one is tried, the rest waits for the next try
            _wait_for(lambda: bool(caplog.records))  # the writer has failed, and pauses
        assert store.tries == 1
        assert log.flush(5.0) is False  # at once: no wait for a failing writer
        assert len(log._queue) >= 2000 - prediction_log.BATCH
    finally:
        log.close()  # ends the pause, and drops the queue without trying it
    assert store.tries == 1
    assert not log._queue


@pytest.mark.usefixtures("fast_retry")
def test_a_failing_writer_says_so_when_it_starts_then_at_most_once_a_minute(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyLog()
    store.down = True
    log = PredictionLogger(store, max_queue=10_000)  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.WARNING, logger="modelport.monitoring.prediction_log"):
            _offer(log, 5000)  # 20 batches, one tried each pause
            _wait_for(lambda: store.tries >= 4)
            lines = [r.getMessage() for r in caplog.records]
            assert len(lines) == 1, lines  # the start; the minute has not passed
            assert "writing to the registry database failed" in lines[0]
            monkeypatch.setattr(prediction_log, "SAY_AGAIN_S", 0.0)  # as if it had
            _wait_for(lambda: any("still failing" in r.getMessage() for r in caplog.records))
    finally:
        store.down = False
        log.close()


def test_closing_while_the_database_fails_drops_the_queue_without_trying_each_batch() -> None:
    store = FlakyLog()
    store.down = True
    log = PredictionLogger(store, max_queue=10_000)  # type: ignore[arg-type]
    _offer(log, 2000)
    log.close()
    assert not log._thread.is_alive()
    assert store.tries == 1
    assert not log._queue


Call = Callable[[str], httpx.Response]


class Inner:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class Keys:
    """A registry knowing the token ``good``; out of reach while ``down``."""

    def __init__(self) -> None:
        self.key = ApiKey("k", "id", "predict", None, datetime.now(UTC))
        self.keys = self
        self.down = False
        self.calls = 0

    def authenticate(self, token: str) -> ApiKey:
        self.calls += 1
        if self.down:
            raise _OUTAGE
        if token != "good":
            raise Unauthenticated()
        return self.key


@pytest.fixture
def keys() -> Keys:
    return Keys()


class Clock:
    """Stands in for ``time`` in the auth module: its ``monotonic`` moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(auth, "time", clock)
    return clock


@pytest.fixture
def call(keys: Keys, clock: Clock) -> Iterator[Call]:
    app = Authenticator(
        Inner(),
        lambda: keys,  # type: ignore[arg-type,return-value]
        table=RouteTable(),
        default_model=lambda: "m",
        error_bodies=ERROR_BODIES,
        cache_seconds=0.5,
    )
    loop = asyncio.new_event_loop()

    def call(token: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                headers = {"Authorization": f"Bearer {token}"}
                return await client.post("/v2/models/m/infer", headers=headers)

        return loop.run_until_complete(go())

    yield call
    loop.close()


def test_a_verified_key_works_until_its_cache_window_ends_and_no_longer(
    keys: Keys, call: Call, clock: Clock
) -> None:
    assert call("good").status_code == 200  # verified now
    assert call("bad").status_code == 401  # refused now
    keys.down = True
    clock.now += 0.5  # the end of the window (cache_seconds): still as verified
    assert call("good").status_code == 200
    assert call("bad").status_code == 401
    clock.now += 0.01  # past it: the outage does not extend it
    refused = call("good")
    assert refused.status_code == 503
    assert refused.json()["code"] == "registry_unavailable"
    assert refused.headers["Retry-After"] == "5"
    assert "www-authenticate" not in refused.headers
    assert call("bad").status_code == 503


def test_an_unknown_key_in_an_outage_is_refused_at_once_and_accepted_once_it_is_over(
    keys: Keys, call: Call, clock: Clock
) -> None:
    keys.down = True
    assert call("good").status_code == 503
    calls = keys.calls
    for _ in range(20):  # within a second of the failure: refused without another try
        clock.now += 0.04
        assert call("good").status_code == 503
    assert keys.calls == calls
    keys.down = False
    clock.now += 0.25  # the second is over: the registry is asked again
    assert call("good").status_code == 200
    assert call("bad").status_code == 401
    assert keys.calls == calls + 2
