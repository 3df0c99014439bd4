"""The heartbeat of a running batch job: it records progress while open, never after."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from modelport.batch.heartbeat import Heartbeat
from modelport.registry import BatchRun
from modelport.registry.sql import SqlStore


def test_it_beats_while_open_and_stops_before_the_final_record(tmp_path: Path) -> None:
    started = datetime.now(UTC)
    rows = [0]
    beats = threading.Semaphore(0)

    def record(now: datetime) -> BatchRun:
        rows[0] += 100
        beats.release()
        return BatchRun(
            "r1", "churn", 1, "in", "out", "local", "running", rows[0], rows[0], 0, started,
            heartbeat_at=now,
        )  # fmt: skip

    with SqlStore(f"sqlite:///{tmp_path / 'registry.db'}") as store:
        with Heartbeat(store, record, interval=0.01):
            for _ in range(3):
                assert beats.acquire(timeout=30)
        beaten = store.list_runs("churn")[0]
        assert beaten.status == "running"
        assert beaten.rows >= 300  # the progress goes with each beat
        assert beaten.heartbeat_at is not None
        assert beaten.heartbeat_at >= started
        final = BatchRun(
            "r1", "churn", 1, "in", "out", "local", "succeeded", 999, 999, 0, started,
            finished_at=datetime.now(UTC),
        )  # fmt: skip
        store.record_run(final)
        assert not beats.acquire(timeout=0.2)  # closed: no beat comes after the end
        assert store.list_runs("churn")[0].status == "succeeded"


def test_a_failed_write_does_not_stop_the_job(tmp_path: Path) -> None:
    calls = threading.Semaphore(0)

    def record(now: datetime) -> BatchRun:
        calls.release()
        raise OSError("database is locked")

    with (
        SqlStore(f"sqlite:///{tmp_path / 'registry.db'}") as store,
        Heartbeat(store, record, interval=0.01),
    ):
        assert calls.acquire(timeout=30)
        assert calls.acquire(timeout=30)  # it went on beating
