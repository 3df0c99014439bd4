"""Live quality and the prediction log over a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error

from modelport.errors import InvalidInput
from modelport.monitoring.history import _quantile
from modelport.monitoring.labels import check_label_kinds, parse_feedback
from modelport.monitoring.live import parse_window, quality_summary
from modelport.monitoring.metrics import ServerMetrics
from modelport.monitoring.prediction_log import PredictionLogger
from modelport.registry import LoggedPrediction
from modelport.registry.sql import SqlStore


def entry(model: str, rid: str, outputs: dict[str, Any], version: int = 1) -> LoggedPrediction:
    return LoggedPrediction(
        model=model,
        version=version,
        request_id=rid,
        created_at=datetime.now(UTC),
        latency_ms=1.0,
        inputs={"x": [0.0] * len(next(iter(outputs.values())))},
        outputs=outputs,
    )


def test_pruning_removes_old_entries_and_their_labels_only(store: SqlStore) -> None:
    now = datetime.now(UTC)

    def at(model: str, rid: str, days: int) -> LoggedPrediction:
        logged = entry(model, rid, {"predictions": [1]})
        return dataclasses.replace(logged, created_at=now - timedelta(days=days))

    store.log_predictions(
        [
            at("churn", "old1", 40),
            at("churn", "old2", 31),
            at("churn", "new", 1),
            at("price", "old", 45),
            at("price", "new", 2),
        ]
    )
    store.add_feedback("churn", [("old1", 0), ("new", 1)])
    store.add_feedback("price", [("old", 3.0)])

    # One model: the other keeps its old entry and label.
    assert store.prune_predictions(now - timedelta(days=30), "churn") == (2, 1)
    assert [p.request_id for p in store.logged_predictions("churn")] == ["new"]
    assert [p.label for p in store.logged_predictions("churn")] == [1]
    assert [p.request_id for p in store.logged_predictions("price")] == ["old", "new"]

    # Every model; a second run finds nothing more.
    assert store.prune_predictions(now - timedelta(days=30)) == (1, 1)
    assert [p.request_id for p in store.logged_predictions("price")] == ["new"]
    assert store.prune_predictions(now - timedelta(days=30)) == (0, 0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800), ("1h30m", 5400), ("2w", 1209600)],
)
def test_windows_parse(text: str, seconds: float) -> None:
    assert parse_window(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "soon", "1y", "-1h", "0m", "1h and more", "9" * 30 + "w"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="window"):
        parse_window(text)


def test_regression_quality_equals_scikit_learn(store: SqlStore) -> None:
    rng = np.random.default_rng(0)
    predicted, truth = rng.normal(size=50), rng.normal(size=50)
    store.log_predictions(
        [entry("price", f"r{i}", {"predictions": [float(p)]}) for i, p in enumerate(predicted)]
    )
    assert store.add_feedback("price", [(f"r{i}", float(t)) for i, t in enumerate(truth)]) == []
    report = quality_summary(store, "price", timedelta(hours=1))
    scores = report["versions"]["1"]
    assert report["task"] == "regression"
    assert scores["mae"] == pytest.approx(mean_absolute_error(truth, predicted))
    assert scores["rmse"] == pytest.approx(np.sqrt(mean_squared_error(truth, predicted)))


def test_multiclass_quality_per_version_and_multi_row_requests(store: SqlStore) -> None:
    rng = np.random.default_rng(1)
    classes = np.array(["bronze", "gold", "silver"])
    logged: list[LoggedPrediction] = []
    labels: list[tuple[str, Any]] = []
    by_version: dict[int, tuple[list[str], list[str]]] = {1: ([], []), 2: ([], [])}
    for i in range(40):
        version = 1 + i % 2
        predicted = rng.choice(classes, 3).tolist()
        truth = rng.choice(classes, 3).tolist()
        logged.append(entry("tier", f"r{i}", {"predictions": predicted}, version))
        labels.append((f"r{i}", truth))  # one request of three rows: a list of three labels
        by_version[version][0].extend(predicted)
        by_version[version][1].extend(truth)
    logged.append(entry("tier", "short", {"predictions": ["gold", "gold"]}))
    labels.append(("short", ["gold"]))  # two rows, one label: cannot be paired
    store.log_predictions(logged)
    assert store.add_feedback("tier", [*labels, ("ghost", "gold")]) == ["ghost"]
    report = quality_summary(store, "tier", timedelta(hours=1))
    assert report["unpaired"] == 1
    assert report["n_labelled"] == 120
    for version, (predicted, truth) in by_version.items():
        scores = report["versions"][str(version)]
        assert scores["n"] == 60
        assert scores["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
        assert scores["f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
        assert scores["auc"] is None


def test_a_second_label_replaces_the_first(store: SqlStore) -> None:
    store.log_predictions([entry("churn", "r1", {"predictions": [1]})])
    store.add_feedback("churn", [("r1", 0)])
    store.add_feedback("churn", [("r1", 1)])
    [logged] = store.logged_predictions("churn", labelled_only=True)
    assert logged.label == 1
    # Labels belong to a model: the same id under another model is unknown.
    assert store.add_feedback("other", [("r1", 1)]) == ["r1"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "needs 'id' and 'label'"),
        ([], "non-empty list"),
        ({"labels": "x"}, "non-empty list"),
        ([{"id": 3, "label": 1}], "request id string"),
        ([{"id": "a", "label": None}], "'label' must be"),
        ([{"id": "a" * 129, "label": 1}], "request id string"),
        ([{"id": "a", "label": "x" * 1001}], "a text label is at most 1000 characters"),
        ([{"id": "a", "label": ["x" * 5_000_000]}], "a text label is at most 1000 characters"),
        ([{"id": "a", "label": list(range(10_001))}], "1 to 10000 values, one per row"),
        ([{"id": "a", "label": []}], "1 to 10000 values, one per row"),
        ([{"id": "a", "label": [[1, 2]]}], "'label' must be a number, true/false or text"),
        ([{"id": "a", "label": {"x": 1}}], "'label' must be a number, true/false or text"),
        ([{"id": "a", "label": float("nan")}], "'label' must be a number, true/false or text"),
    ],
)
def test_feedback_bodies_are_checked(doc: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_feedback(doc)


def test_label_kinds_must_match_what_the_model_predicts() -> None:
    pairs = parse_feedback([{"id": "a", "label": 1}, {"id": "b", "label": [0, True]}])
    check_label_kinds("churn", pairs, "int64")
    check_label_kinds("churn", parse_feedback({"id": "c", "label": ["stay", "go"]}), "str")
    with pytest.raises(InvalidInput, match=r"'churn' predicts numbers; .* request 'c' is text"):
        check_label_kinds("churn", parse_feedback({"id": "c", "label": "churn"}), "int64")
    with pytest.raises(InvalidInput, match=r"'kind' predicts text; .* request 'd' is a number"):
        check_label_kinds("kind", parse_feedback({"id": "d", "label": 1}), "str")
    # Class ids are whole numbers (1.0 is 1), a true/false model's labels are 0 and 1.
    check_label_kinds("churn", parse_feedback({"id": "e", "label": [1.0, 0]}), "int64")
    with pytest.raises(InvalidInput, match=r"predicts whole numbers \(int64\); .* 'e' is 0.5"):
        check_label_kinds("churn", parse_feedback({"id": "e", "label": [1, 0.5]}), "int64")
    check_label_kinds("flag", parse_feedback({"id": "f", "label": [True, 0]}), "bool")
    with pytest.raises(InvalidInput, match=r"'flag' predicts true/false; .* 'f' is 2"):
        check_label_kinds("flag", parse_feedback({"id": "f", "label": 2}), "bool")
    check_label_kinds("price", parse_feedback({"id": "g", "label": 2.5}), "float32")


def test_row_counts_of_logged_requests(store: SqlStore) -> None:
    store.log_predictions(
        [
            entry("churn", "one", {"predictions": [1]}),
            entry("churn", "three", {"predictions": [1, 0, 1], "probabilities": [[0, 1]] * 3}),
            entry("other", "two", {"predictions": [1, 0]}),
        ]
    )
    store.log_predictions([entry("churn", "again", {"predictions": [1]})])
    store.log_predictions([entry("churn", "again", {"predictions": [1, 1]})])  # newest counts
    ids = ["one", "three", "two", "again", "ghost", "one"]
    assert store.count_logged_rows("churn", ids) == {"one": 1, "three": 3, "again": 2}
    assert store.count_logged_rows("churn", []) == {}


class _FailingStore:
    """Stands in for a database that refuses every write (a disk full, say)."""

    def log_predictions(self, entries: Sequence[LoggedPrediction]) -> None:
        raise OSError("disk full")


def _counter(counter: Any, model: str) -> float:
    return float(counter.labels(model)._value.get())


def test_failed_writes_are_counted_as_dropped_and_nothing_blocks(store: SqlStore) -> None:
    model = f"m{threading.get_ident()}-{datetime.now(UTC).timestamp()}"
    metrics = ServerMetrics()
    log = PredictionLogger(_FailingStore(), max_queue=1000, metrics=metrics)  # type: ignore[arg-type]
    for i in range(25):
        log.offer(model, 1, f"r{i}", 0.5, {"x": np.zeros(2)}, {"y": np.ones(2)})
    log.close()
    assert _counter(metrics.log_sampled, model) == 25
    assert _counter(metrics.log_dropped, model) == 25
    assert _counter(metrics.log_written, model) == 0

    good = PredictionLogger(store, max_queue=1000, metrics=metrics)
    nan = np.array([1.0, np.nan, np.inf])
    good.offer(
        model, 2, "ok", 0.5, {"x": nan, "s": np.array(["a", "b", "c"], dtype=object)}, {"y": nan}
    )
    good.close()
    [written] = store.logged_predictions(model)
    assert written.inputs == {"x": [1.0, None, None], "s": ["a", "b", "c"]}
    assert _counter(metrics.log_written, model) == 1


def test_histogram_quantiles_interpolate_like_prometheus() -> None:
    # 100 observations: 50 under 10 ms, 40 in (10, 50] ms, 10 in (50, 100] ms.
    buckets = {0.01: 50.0, 0.05: 90.0, 0.1: 100.0, float("inf"): 100.0}
    assert _quantile(0.5, buckets) == pytest.approx(10.0)
    assert _quantile(0.7, buckets) == pytest.approx(30.0)
    assert _quantile(0.99, buckets) == pytest.approx(95.0)
    assert _quantile(0.5, {0.01: 0.0, float("inf"): 0.0}) is None
