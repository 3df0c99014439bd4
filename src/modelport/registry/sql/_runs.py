"""Batch scoring runs: a row when a job starts, updated when it ends."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import select, update

from modelport.registry.entities import BatchRun
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
        """The newest runs first, of one model or of all."""
        query = select(BatchRunRow).order_by(BatchRunRow.started_at.desc()).limit(limit)
        if model is not None:
            query = query.where(BatchRunRow.model == model)
        with self._session() as s:
            rows = s.scalars(query).all()
        return [
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
            )
            for r in rows
        ]
