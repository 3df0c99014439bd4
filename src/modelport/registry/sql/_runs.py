"""Batch scoring runs: a row when a job starts, a heartbeat while it runs, updated when it ends."""

from __future__ import annotations

import socket
from dataclasses import asdict, replace
from datetime import UTC, datetime

from sqlalchemy import select, update

from modelport._process import process_exists
from modelport.registry.entities import RUN_ABANDONED_AFTER_S, BatchRun
from modelport.registry.sql._base import StoreBase
from modelport.registry.sql._schema import BatchRunRow


class RunMixin(StoreBase):
    """Run record methods of :class:`~modelport.registry.sql.store.SqlStore`."""

    def record_run(self, run: BatchRun) -> None:
        """Insert ``run``, or update it when its ``run_id`` is already recorded."""
        values = asdict(run)
        with self._session(write=True) as s:
            exists = s.scalar(select(BatchRunRow.id).where(BatchRunRow.run_id == run.run_id))
            if exists is None:
                s.add(BatchRunRow(**values))
            else:
                s.execute(
                    update(BatchRunRow).where(BatchRunRow.run_id == run.run_id).values(**values)
                )

    def list_runs(self, model: str | None = None, limit: int = 50) -> list[BatchRun]:
        """The newest runs first, of one model or of all; a running one whose process is
        gone reads as ``abandoned`` (see :attr:`BatchRun.status`)."""
        query = select(BatchRunRow).order_by(BatchRunRow.started_at.desc()).limit(limit)
        if model is not None:
            query = query.where(BatchRunRow.model == model)
        with self._session() as s:
            rows = s.scalars(query).all()
        now = datetime.now(UTC)
        return [
            seen_status(
                BatchRun(
                    run_id=r.run_id,
                    model=r.model,
                    version=r.version,
                    source=r.source,
                    sink=r.sink,
                    engine=r.engine,
                    status=r.status,
                    rows=r.rows,
                    scored=r.scored,
                    rejected=r.rejected,
                    started_at=r.started_at,
                    finished_at=r.finished_at,
                    error=r.error,
                    heartbeat_at=r.heartbeat_at,
                    host=r.host,
                    pid=r.pid,
                ),
                now,
            )
            for r in rows
        ]


def seen_status(run: BatchRun, now: datetime) -> BatchRun:
    """``run`` as it stands at ``now``: a ``running`` run not heard from for
    :data:`RUN_ABANDONED_AFTER_S` (since its last heartbeat, or its start if it never beat),
    or whose process on this machine no longer exists, is ``abandoned``."""
    if run.status != "running":
        return run
    last = run.heartbeat_at or run.started_at
    silent = (now - last).total_seconds() > RUN_ABANDONED_AFTER_S
    # A run without a pid, or whose pid was reused, is left to its heartbeat's age.
    pid, here = run.pid, run.host == socket.gethostname()
    if silent or (here and pid is not None and pid > 0 and not process_exists(pid)):
        return replace(run, status="abandoned")
    return run
