"""The prediction log's writer and encoding: batches, a locked database, every dtype, old rows.

Nothing here waits on a clock: the writer's timer is set to an hour, so it wakes only when a
full batch is queued or the logger closes, and events say when it is inside the store.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from sqlalchemy import insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url

from modelport.artifact.profile import build_profile
from modelport.artifact.signature import NUMERIC_DTYPES, infer_signature
from modelport.monitoring import prediction_log
from modelport.monitoring.live import drift_summary, quality_summary
from modelport.monitoring.metrics import ServerMetrics
from modelport.monitoring.prediction_log import BATCH, PredictionLogger
from modelport.registry import LoggedPrediction
from modelport.registry.sql import SqlStore
from modelport.registry.sql._monitoring import decode_values, encode_values, sqlite_time
from modelport.registry.sql._schema import PredictionRow

_WRITE_TIMEOUT_S = 60.0  # only a broken writer gets near it; nothing is timed against it


@pytest.fixture(autouse=True)
def no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer wakes for a full batch or close(), never because time passed."""
    monkeypatch.setattr(prediction_log, "FLUSH_S", 3600.0)


@pytest.fixture
def metrics() -> ServerMetrics:
    """The counters the logger records into, this test's alone."""
    return ServerMetrics()


def _model(request: pytest.FixtureRequest) -> str:
    """A model name of this test alone (its rows in a shared database)."""
    return "m-" + str(request.node.name).replace("[", "-").replace("]", "")


def _count(counter: Any, model: str) -> int:
    return int(counter.labels(model)._value.get())


def _offer(log: PredictionLogger, model: str, first: int, n: int) -> int:
    x, y = {"x": np.arange(3, dtype=np.float32)}, {"y": np.array([1])}
    return sum(log.offer(model, 1, f"r{i}", 0.5, x, y) for i in range(first, first + n))


class _GatedStore:
    """Records each batch; the first one waits inside the store until ``gate`` is set."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def log_predictions(self, entries: Sequence[LoggedPrediction]) -> None:
        self.sizes.append(len(entries))
        self.entered.set()
        assert self.gate.wait(_WRITE_TIMEOUT_S)


def test_entries_are_written_in_batches_and_close_writes_the_rest(
    request: pytest.FixtureRequest, metrics: ServerMetrics
) -> None:
    model = _model(request)
    store = _GatedStore()
    log = PredictionLogger(store, max_queue=10 * BATCH, metrics=metrics)  # type: ignore[arg-type]
    assert _offer(log, model, 0, BATCH) == BATCH  # a full batch wakes the writer
    assert store.entered.wait(_WRITE_TIMEOUT_S)
    assert _offer(log, model, BATCH, 2 * BATCH + 10) == 2 * BATCH + 10  # queue meanwhile
    store.gate.set()
    log.close()
    # One transaction per full batch, not one per entry; close() wrote the remainder.
    assert store.sizes == [BATCH, BATCH, BATCH, 10]
    assert _count(metrics.log_written, model) == 3 * BATCH + 10
    assert not log.offer(model, 1, "late", 0.5, {}, {})  # closed: dropped and counted
    assert _count(metrics.log_sampled, model) == 3 * BATCH + 11
    assert _count(metrics.log_dropped, model) == 1


def test_flush_writes_what_was_offered_before_it(
    store: SqlStore, request: pytest.FixtureRequest, metrics: ServerMetrics
) -> None:
    model = _model(request)
    log = PredictionLogger(store, metrics=metrics)
    try:
        assert _offer(log, model, 0, 3) == 3  # under a batch, and the timer is an hour
        assert store.logged_predictions(model) == []
        assert log.flush(_WRITE_TIMEOUT_S)
        assert [e.request_id for e in store.logged_predictions(model)] == ["r0", "r1", "r2"]
        assert log.flush(_WRITE_TIMEOUT_S)  # nothing queued: answers once the writer has looked
    finally:
        log.close()
    assert log.flush(0.0)  # closed, nothing queued: at once
    assert _count(metrics.log_written, model) == 3


def test_flush_waits_for_the_batch_being_written(request: pytest.FixtureRequest) -> None:
    model = _model(request)
    store = _GatedStore()
    log = PredictionLogger(store, max_queue=10 * BATCH)  # type: ignore[arg-type]
    try:
        assert _offer(log, model, 0, BATCH) == BATCH
        assert store.entered.wait(_WRITE_TIMEOUT_S)  # the writer holds the whole batch
        assert _offer(log, model, BATCH, 5) == 5
        # The gate is shut, so this flush can only run out of time, however long it waits.
        assert not log.flush(0.05)
        store.gate.set()
        assert log.flush(_WRITE_TIMEOUT_S)
        # The batch in flight, then the rest (the first flush's marker came with them).
        assert store.sizes[0] == BATCH
        assert sum(store.sizes) == BATCH + 5
    finally:
        store.gate.set()
        log.close()


class _Signalling:
    """The real store, saying when the writer has called it."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.entered = threading.Event()

    def log_predictions(self, entries: Sequence[LoggedPrediction]) -> None:
        self.entered.set()
        self.store.log_predictions(entries)


@contextmanager
def _locked(uri: str) -> Iterator[Any]:
    """Another connection holding the lock a log write needs; yields it (it can read)."""
    url = make_url(uri)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        conn = sqlite3.connect(url.database, timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # SQLite's write lock
        try:
            yield conn
        finally:
            conn.rollback()
            conn.close()
        return
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as pg:
        pg.execute("LOCK TABLE prediction_log IN EXCLUSIVE MODE")  # COPY waits; reads do not
        try:
            yield pg
        finally:
            pg.rollback()


def test_a_locked_database_blocks_neither_requests_nor_the_interpreter(
    store: SqlStore, registry_uri: str, request: pytest.FixtureRequest, metrics: ServerMetrics
) -> None:
    """While the writer waits on the database, the offering thread runs Python, and the
    writer's batch is written once the lock goes. A writer that held the interpreter while it
    waited would keep this thread from releasing the lock until the database gave up (30 s),
    and the first batch would be dropped instead."""
    model = _model(request)
    signalling = _Signalling(store)
    with _locked(registry_uri) as blocker:
        log = PredictionLogger(signalling, max_queue=BATCH, metrics=metrics)  # type: ignore[arg-type]
        assert _offer(log, model, 0, BATCH) == BATCH
        assert signalling.entered.wait(_WRITE_TIMEOUT_S)  # the writer took them: it waits
        # Meanwhile requests go on: BATCH more fit in the queue, the next BATCH are dropped.
        assert _offer(log, model, BATCH, 2 * BATCH) == BATCH
        assert sum(i * i for i in range(100_000)) > 0  # and this thread computes
        assert blocker.execute("SELECT COUNT(*) FROM prediction_log").fetchone()[0] == 0
        assert _count(metrics.log_written, model) == 0
    log.close(_WRITE_TIMEOUT_S)
    assert _count(metrics.log_written, model) == 2 * BATCH
    assert _count(metrics.log_dropped, model) == BATCH
    assert _count(metrics.log_sampled, model) == 3 * BATCH
    assert len(store.logged_predictions(model)) == 2 * BATCH


def _numeric_values(name: str) -> np.ndarray:
    dtype = np.dtype(name)
    if dtype.kind == "b":
        return np.array([True, False, True])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.array([info.min, 0, 1, info.max], dtype=dtype)
    finfo = np.finfo(dtype)
    return np.array(
        [finfo.min, -1 / 3, -0.0, finfo.tiny, 0.1, finfo.max, np.nan, np.inf, -np.inf],
        dtype=dtype,
    )


def test_every_dtype_round_trips(store: SqlStore, request: pytest.FixtureRequest) -> None:
    """Each signature dtype, and what models return besides, read back as the same values:
    numbers exactly at their own precision (non-finite ones as None), text as text."""
    model = _model(request)
    inputs: dict[str, np.ndarray] = {name: _numeric_values(name) for name in NUMERIC_DTYPES}
    text = ["a", "é ü 中", "", None, 'quote " backslash \\ newline \n tab \t']
    inputs["str"] = np.array(text, dtype=object)
    inputs["matrix"] = np.arange(12, dtype=np.float32).reshape(3, 4).T / 7  # not contiguous
    inputs["big_endian"] = np.array([1, -2, 3], dtype=">i4")
    inputs["empty"] = np.zeros((0, 3), dtype=np.float64)
    outputs = {
        "labels": np.array(["yes", "no"]),  # numpy text, as scikit-learn returns class names
        "bytes": np.array([b"ab", b"\xff"]),
        "objects": np.array([b"raw", "text", 1.5, None], dtype=object),
    }
    log = PredictionLogger(store)
    log.offer(model, 3, "all-dtypes", 1.25, inputs, outputs)
    log.close(_WRITE_TIMEOUT_S)
    [logged] = store.logged_predictions(model)

    assert (logged.version, logged.request_id, logged.latency_ms) == (3, "all-dtypes", 1.25)
    for name in NUMERIC_DTYPES:
        sent, back = inputs[name], logged.inputs[name]
        finite = np.isfinite(sent) if sent.dtype.kind == "f" else np.ones(len(sent), bool)
        assert [v is None for v in back] == list(~finite), name
        kept = np.array([v for v in back if v is not None], dtype=sent.dtype)
        assert np.array_equal(kept, sent[finite]), name
        assert np.array_equal(np.signbit(kept), np.signbit(sent[finite])), name  # -0.0
    assert logged.inputs["str"] == text
    assert np.array_equal(np.array(logged.inputs["matrix"], np.float32), inputs["matrix"])
    assert logged.inputs["big_endian"] == [1, -2, 3]
    assert logged.inputs["empty"] == []
    assert logged.outputs == {
        "labels": ["yes", "no"],
        "bytes": ["ab", "\ufffd"],
        "objects": ["raw", "text", 1.5, None],
    }


def test_float32_is_written_short_and_reads_back_exactly() -> None:
    values = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    text = encode_values({"x": values})
    back = np.array(decode_values(text)["x"], dtype=np.float32)
    assert np.array_equal(back, values)
    # The shortest text that reads back as the same float32, not its float64 widening.
    assert len(text) < 0.6 * len(str(values.astype(np.float64).tolist()))


def test_values_json_has_no_type_for_are_kept_as_null_or_text() -> None:
    values = {
        "nan": [float("nan"), 1.0],
        "huge": [2**70, 1],  # beyond orjson's 64 bits: the json module writes it
        "complex": np.array([1 + 2j]),
        "when": np.array(["2026-01-02T03:04:05"], dtype="datetime64[s]"),
    }
    assert decode_values(encode_values(values)) == {
        "nan": [None, 1.0],
        "huge": [2**70, 1],
        "complex": ["(1+2j)"],
        "when": ["2026-01-02T03:04:05"],
    }


def test_rows_written_before_read_the_same(store: SqlStore) -> None:
    """Rows the ORM wrote with the json module (float32 widened to float64 digits; on SQLite
    also NaN, which PostgreSQL's json type refuses) read back as they were written."""
    old_inputs: dict[str, Any] = {"x": [[0.25129178166389465, None, -1.0]], "s": ["a"]}
    old_outputs: dict[str, Any] = {"predictions": [1], "scores": [[0.1, 0.9]]}
    sqlite_only = store._engine.dialect.name == "sqlite"
    if sqlite_only:
        old_outputs["raw"] = [float("nan")]
    at = datetime.now(UTC) - timedelta(minutes=1)
    with store._session(write=True) as s:
        s.execute(
            insert(PredictionRow),
            [
                {
                    "model": "old",
                    "version": 1,
                    "request_id": "before",
                    "created_at": at,
                    "latency_ms": 2.0,
                    "inputs": old_inputs,
                    "outputs": old_outputs,
                }
            ],
        )
    store.log_predictions(
        [
            LoggedPrediction(
                model="old",
                version=2,
                request_id="after",
                created_at=datetime.now(UTC),
                latency_ms=1.0,
                inputs={"x": np.array([[0.25129178, np.nan, -1.0]], dtype=np.float32)},
                outputs={"predictions": np.array([0])},
            )
        ]
    )
    before, after = store.logged_predictions("old", since=at)
    assert before.request_id == "before"
    assert before.created_at == at
    assert before.inputs == old_inputs
    if sqlite_only:
        assert math.isnan(before.outputs.pop("raw")[0])
        old_outputs.pop("raw")
    assert before.outputs == old_outputs
    assert after.request_id == "after"
    assert after.inputs == {"x": [[0.25129178, None, -1.0]]}


def test_windows_read_in_chunks_keep_their_order_and_limit(store: SqlStore) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    store.log_predictions(
        [
            LoggedPrediction(
                model="many",
                version=1,
                request_id=f"r{i:05d}",
                created_at=start + timedelta(milliseconds=i),
                latency_ms=0.1,
                inputs={"x": np.array([float(i)])},
                outputs={"y": np.array([i % 2])},
            )
            for i in range(2_345)
        ]
    )
    everything = store.logged_predictions("many")
    assert [e.request_id for e in everything] == [f"r{i:05d}" for i in range(2_345)]
    newest = store.logged_predictions("many", limit=1_500)
    assert [e.inputs["x"][0] for e in newest] == [float(i) for i in range(845, 2_345)]
    window = store.logged_predictions("many", since=start + timedelta(milliseconds=2_000))
    assert len(window) == 345


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 6, 1, 1, 0, 0, 7, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ],
)
def test_sqlite_times_are_stored_as_sqlalchemy_stores_them(when: datetime) -> None:
    dialect = sqlite.dialect()
    column = PredictionRow.__table__.c.created_at
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    assert process is not None
    assert sqlite_time(when) == process(when)


def test_naive_times_are_refused(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        sqlite_time(datetime(2026, 1, 2))
    naive = LoggedPrediction(
        model="naive",
        version=1,
        request_id="r",
        created_at=datetime(2026, 1, 2),
        latency_ms=1.0,
        inputs={"x": [1.0]},
        outputs={"y": [0]},
    )
    with pytest.raises(ValueError, match="naive datetime"):
        store.log_predictions([naive])
    assert store.logged_predictions("naive") == []


def _as_lists_before(arr: np.ndarray) -> list[Any]:
    """An array as the writer turned it into JSON lists before the compact encoding."""
    if arr.dtype.kind == "f":
        out = arr.astype(object)
        out[~np.isfinite(arr)] = None
        return list(out.tolist())
    return list(arr.tolist())


def test_drift_and_quality_read_the_same_as_from_rows_written_before(store: SqlStore) -> None:
    """Drift and live quality over entries the writer encoded from numpy (float32 as its
    shortest text) equal those over the same entries written as plain lists the old way."""
    rng = np.random.default_rng(3)
    train = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 30.0, 1_000).astype(np.float32),
            "rate": rng.choice(np.arange(1, 8) / 10, 1_000).astype(np.float32),  # discrete
            "plan": rng.choice(["basic", "pro", "team"], 1_000),
        }
    )
    signature = infer_signature(train.head())
    profile = build_profile(signature, signature.coerce(train))
    live = train.sample(300, replace=True, random_state=1)
    live.loc[live.index[:5], "amount"] = np.nan
    requests = [signature.coerce(live.iloc[i : i + 3]) for i in range(0, 300, 3)]
    outputs = [
        {
            "predictions": (r["amount"] > 50).astype(np.int64),
            "probabilities": np.stack([r["rate"], 1 - r["rate"]], axis=1),
        }
        for r in requests
    ]
    labels = [(f"r{i}", [1, 0, 1]) for i in range(len(requests))]

    log = PredictionLogger(store)
    for i, (inputs, out) in enumerate(zip(requests, outputs, strict=True)):
        assert log.offer("arrays", 1, f"r{i}", 0.5, inputs, out)
    log.close(_WRITE_TIMEOUT_S)
    now = datetime.now(UTC)
    with store._session(write=True) as s:
        s.execute(
            insert(PredictionRow),
            [
                {
                    "model": "lists",
                    "version": 1,
                    "request_id": f"r{i}",
                    "created_at": now,
                    "latency_ms": 0.5,
                    "inputs": {k: _as_lists_before(v) for k, v in inputs.items()},
                    "outputs": {k: _as_lists_before(v) for k, v in out.items()},
                }
                for i, (inputs, out) in enumerate(zip(requests, outputs, strict=True))
            ],
        )
    for model in ("arrays", "lists"):
        assert store.add_feedback(model, labels) == []
        assert store.count_logged_rows(model, ["r0"]) == {"r0": 3}

    def drift(model: str) -> dict[str, Any]:
        body = drift_summary(store, model, 1, signature, profile, timedelta(hours=1))
        return {k: v for k, v in body.items() if k != "model"}

    def quality(model: str) -> dict[str, Any]:
        body = quality_summary(store, model, timedelta(hours=1), buckets=1)
        return {k: v for k, v in body.items() if k not in ("model", "series")}

    assert drift("arrays")["n_live"] == 300
    assert drift("arrays") == drift("lists")
    assert quality("arrays")["n_labelled"] == 300
    assert quality("arrays") == quality("lists")
