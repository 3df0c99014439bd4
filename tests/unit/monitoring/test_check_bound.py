"""The periodic monitoring check reads a bounded number of the newest entries of each window,
on SQLite and PostgreSQL, and still flags a real shift and only that."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelport.artifact.profile import build_profile
from modelport.artifact.signature import Signature, infer_signature
from modelport.monitoring import live
from modelport.monitoring.metrics import ServerMetrics
from modelport.registry import LoggedPrediction
from modelport.registry.sql import SqlStore
from modelport.serving.monitor import Monitor

N = 300  # the bound in these tests (live.CHECK_ENTRIES stands in for it)
_HOUR = timedelta(hours=1)


def _train() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {"amount": rng.gamma(2.0, 30.0, 2_000), "rate": rng.normal(0.0, 1.0, 2_000)}
    )


def _log(
    store: SqlStore,
    model: str,
    signature: Signature,
    frame: pd.DataFrame,
    at: datetime,
    prefix: str,
    score: float,
) -> None:
    """One entry per row of ``frame``, a millisecond apart from ``at``, each predicting a
    probability around ``score``."""
    rng = np.random.default_rng(len(prefix) + len(frame))
    entries = []
    for i in range(len(frame)):
        p = float(np.clip(score + rng.normal(0.0, 0.05), 0.0, 1.0))
        entries.append(
            LoggedPrediction(
                model=model,
                version=1,
                request_id=f"{prefix}-{i}",
                created_at=at + timedelta(milliseconds=i),
                latency_ms=0.1,
                inputs=dict(signature.coerce(frame.iloc[i : i + 1])),
                outputs={"probabilities": np.array([[1 - p, p]])},
            )
        )
    store.log_predictions(entries)


def _fill(store: SqlStore, model: str, signature: Signature, *, shifted: bool) -> None:
    """Before the window, N unshifted entries; in it, N older ones with ``rate`` moved far
    (a check that read them would flag ``rate``), then the N newest, with ``amount`` doubled
    and the predictions moved when ``shifted``."""
    now = datetime.now(UTC)
    train = _train()
    rng = np.random.default_rng(11)
    base = train.sample(3 * N, replace=True, random_state=rng).reset_index(drop=True)
    _log(store, model, signature, base[:N], now - 90 * _HOUR / 60, "before", 0.3)
    older = base[N : 2 * N].assign(rate=base["rate"][N : 2 * N] + 5.0)
    _log(store, model, signature, older, now - 50 * _HOUR / 60, "older", 0.3)
    newest = base[2 * N :]
    if shifted:
        newest = newest.assign(amount=newest["amount"] * 2.0)
    _log(store, model, signature, newest, now - 10 * _HOUR / 60, "newest", 0.7 if shifted else 0.3)


class _CountingStore:
    """The store, recording what each read asked for and how many entries it returned."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.reads: list[tuple[dict[str, Any], int]] = []

    def logged_predictions(self, model: str, **kwargs: Any) -> list[LoggedPrediction]:
        found = self.store.logged_predictions(model, **kwargs)
        self.reads.append((kwargs, len(found)))
        return found


def _monitor(
    store: Any, signature: Signature, profile: dict[str, Any], names: list[str]
) -> Monitor:
    """A Monitor over stand-ins for the data plane: what ``_check_all`` uses, no more."""

    async def run_in_thread(fn: Callable[[], Any]) -> Any:
        return fn()

    model = SimpleNamespace(signature=signature, reference_profile=lambda: profile)
    manager = SimpleNamespace(
        run_in_thread=run_in_thread,
        registry=lambda: SimpleNamespace(predictions=store),
        served=lambda name: None,
    )
    plane = SimpleNamespace(
        manager=manager,
        sample_rates=dict.fromkeys(names, 1.0),
        model=lambda name: SimpleNamespace(version=1, model=model),
    )
    return Monitor(plane, ServerMetrics())  # type: ignore[arg-type]  # a stand-in, not a DataPlane


def _gauge(monitor: Monitor, model: str, feature: str) -> float:
    return float(monitor.metrics.drift.labels(model, "1", feature)._value.get())


def test_the_check_reads_the_newest_entries_of_each_window_and_flags_only_a_real_shift(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = _train()
    signature = infer_signature(train.head())
    profile = build_profile(signature, signature.coerce(train))
    shifted, steady = "shifted", "steady"
    _fill(store, shifted, signature, shifted=True)
    _fill(store, steady, signature, shifted=False)
    counting = _CountingStore(store)
    monkeypatch.setattr(live, "CHECK_ENTRIES", N)

    monitor = _monitor(counting, signature, profile, [shifted, steady])
    asyncio.run(monitor._check_all())

    # Each read asked for one more than the bound (to know whether there were more), and
    # none returned more: 2 N entries lie in the window, the check took the newest N.
    assert counting.reads
    assert all(kwargs["limit"] == N + 1 for kwargs, _ in counting.reads)
    assert all(found <= N + 1 for _, found in counting.reads)
    assert any(kwargs.get("until") is not None for kwargs, _ in counting.reads)
    # The older half of the window moved ``rate`` far; it was not read, so it flags nothing.
    assert _gauge(monitor, shifted, "amount") == 1.0
    assert _gauge(monitor, shifted, "rate") == 0.0
    assert _gauge(monitor, steady, "amount") == 0.0
    assert _gauge(monitor, steady, "rate") == 0.0


def test_a_full_window_leaves_the_window_before_to_prediction_drift(store: SqlStore) -> None:
    train = _train()
    signature = infer_signature(train.head())
    profile = build_profile(signature, signature.coerce(train))
    _fill(store, "full", signature, shifted=True)
    _fill(store, "calm", signature, shifted=False)

    body = live.drift_summary(store, "full", 1, signature, profile, _HOUR, most=N)
    assert body["sampled"] is True
    assert body["n_entries"] == N
    assert body["n_entries_before"] == N  # read on its own: the busy window left it room
    assert body["n_live"] == N
    assert body["drifted"] == ["amount"]
    assert body["predictions"]["n_baseline"] == N
    assert body["predictions"]["n_live"] == N
    assert body["predictions"]["drifted"] is True

    calm = live.drift_summary(store, "calm", 1, signature, profile, _HOUR, most=N)
    assert calm["drifted"] == []
    assert calm["predictions"]["drifted"] is False

    # Unbounded (the HTTP route, the CLI): the whole window, and nothing was left out.
    whole = live.drift_summary(store, "calm", 1, signature, profile, _HOUR)
    assert whole["sampled"] is False
    assert whole["n_entries"] == 2 * N
    assert whole["n_entries_before"] == N
    assert whole["drifted"] == ["rate"]  # the older half of the window is read too


def test_quality_of_a_bounded_check_reads_the_newest_labelled_entries(store: SqlStore) -> None:
    now = datetime.now(UTC)
    entries = [
        LoggedPrediction(
            model="labelled",
            version=1,
            request_id=f"r{i}",
            created_at=now - timedelta(minutes=30) + timedelta(milliseconds=i),
            latency_ms=0.1,
            inputs={"x": [0.0]},
            outputs={"predictions": [1]},
        )
        for i in range(2 * N)
    ]
    store.log_predictions(entries)
    # The older half is labelled wrong, the newest half right.
    labels = [(f"r{i}", 0 if i < N else 1) for i in range(2 * N)]
    assert store.add_feedback("labelled", labels) == []

    bounded = live.quality_summary(store, "labelled", _HOUR, buckets=1, most=N)
    assert bounded["sampled"] is True
    assert bounded["n_entries"] == N
    assert bounded["versions"]["1"]["accuracy"] == 1.0
    whole = live.quality_summary(store, "labelled", _HOUR, buckets=1)
    assert whole["sampled"] is False
    assert whole["n_entries"] == 2 * N
    assert whole["versions"]["1"]["accuracy"] == 0.5


def test_until_bounds_a_read_to_entries_made_before_it(store: SqlStore) -> None:
    start = datetime.now(UTC) - timedelta(minutes=5)
    store.log_predictions(
        [
            LoggedPrediction(
                model="bounded",
                version=1,
                request_id=f"r{i}",
                created_at=start + timedelta(seconds=i),
                latency_ms=0.1,
                inputs={"x": [float(i)]},
                outputs={"y": [0]},
            )
            for i in range(10)
        ]
    )
    cut = start + timedelta(seconds=6)
    before = store.logged_predictions("bounded", until=cut)
    assert [e.request_id for e in before] == [f"r{i}" for i in range(6)]  # r6 is at the cut
    newest = store.logged_predictions("bounded", since=start + timedelta(seconds=2), until=cut)
    assert [e.request_id for e in newest] == ["r2", "r3", "r4", "r5"]
    assert [e.request_id for e in store.logged_predictions("bounded", until=cut, limit=2)] == [
        "r4",
        "r5",
    ]
