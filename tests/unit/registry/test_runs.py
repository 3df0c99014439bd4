"""Batch run records: a running run whose process is gone reads as abandoned, on each backend."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from modelport.registry import BatchRun
from modelport.registry.entities import RUN_ABANDONED_AFTER_S
from modelport.registry.sql import SqlStore


def _run(run_id: str, **changes: object) -> BatchRun:
    now = datetime.now(UTC)
    run = BatchRun(
        run_id=run_id,
        model="churn",
        version=1,
        source="in.parquet",
        sink="out.parquet",
        engine="local",
        status="running",
        rows=100,
        scored=99,
        rejected=1,
        started_at=now - timedelta(minutes=5),
        heartbeat_at=now,
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    return replace(run, **changes)  # type: ignore[arg-type]


def _gone_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_running_reads_as_abandoned_once_its_process_is_gone(store: SqlStore) -> None:
    silent = datetime.now(UTC) - timedelta(seconds=RUN_ABANDONED_AFTER_S + 5)
    recorded = {
        "alive": _run("alive"),
        "killed-here": _run("killed-here", pid=_gone_pid()),
        "silent-elsewhere": _run("silent-elsewhere", host="another-machine", heartbeat_at=silent),
        "beating-elsewhere": _run("beating-elsewhere", host="another-machine", pid=_gone_pid()),
        "never-beat": _run("never-beat", host=None, pid=None, heartbeat_at=None),
        "finished-then-gone": _run(
            "finished-then-gone", status="succeeded", pid=_gone_pid(), heartbeat_at=silent
        ),
    }
    for run in recorded.values():
        store.record_run(run)
    seen = {r.run_id: r.status for r in store.list_runs("churn")}
    assert seen == {
        "alive": "running",
        "killed-here": "abandoned",  # at once: this machine knows the process is gone
        "silent-elsewhere": "abandoned",  # another machine's: by the heartbeat's age
        "beating-elsewhere": "running",  # a pid is only checked on its own machine
        "never-beat": "abandoned",  # recorded before heartbeats: by its start, 5 min ago
        "finished-then-gone": "succeeded",
    }
    # A heartbeat brings a run that was only slow to report back to running.
    store.record_run(replace(recorded["silent-elsewhere"], heartbeat_at=datetime.now(UTC)))
    again = {r.run_id: r for r in store.list_runs("churn")}
    assert again["silent-elsewhere"].status == "running"
    assert again["alive"].host == socket.gethostname()
    assert again["alive"].pid == os.getpid()
