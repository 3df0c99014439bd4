"""The prediction log and posted labels: what drift and live accuracy are computed from.

The log is appended in batches by the server's background writer (one transaction per batch);
readers take a time window of one model. A label is kept per (model, request id): posting a
label again for the same request replaces it, and a request id that was never logged for the
model is reported back rather than stored, so a typo cannot pass for feedback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Result, delete, insert, select
from sqlalchemy.orm import Session

from modelport.registry.entities import LoggedPrediction
from modelport.registry.sql._base import StoreBase
from modelport.registry.sql._schema import FeedbackRow, PredictionRow, utcnow

_CHUNK = 500  # ids per IN (...) clause


class MonitoringMixin(StoreBase):
    """Prediction log and feedback methods of :class:`~modelport.registry.sql.store.SqlStore`."""

    def log_predictions(self, entries: Sequence[LoggedPrediction]) -> None:
        """Append ``entries`` in one transaction."""
        if not entries:
            return
        with self._session(write=True) as s:
            s.execute(
                insert(PredictionRow),
                [
                    {
                        "model": e.model,
                        "version": e.version,
                        "request_id": e.request_id,
                        "created_at": e.created_at,
                        "latency_ms": e.latency_ms,
                        "inputs": e.inputs,
                        "outputs": e.outputs,
                    }
                    for e in entries
                ],
            )

    def logged_predictions(
        self,
        model: str,
        *,
        since: datetime | None = None,
        version: int | None = None,
        labelled_only: bool = False,
        limit: int = 100_000,
    ) -> list[LoggedPrediction]:
        """The newest ``limit`` entries of ``model`` since ``since``, oldest first, with
        their labels where one was posted."""
        query = (
            select(PredictionRow, FeedbackRow.label)
            .join(
                FeedbackRow,
                (FeedbackRow.model == PredictionRow.model)
                & (FeedbackRow.request_id == PredictionRow.request_id),
                isouter=not labelled_only,
            )
            .where(PredictionRow.model == model)
            .order_by(PredictionRow.created_at.desc(), PredictionRow.id.desc())
            .limit(limit)
        )
        if since is not None:
            query = query.where(PredictionRow.created_at >= since)
        if version is not None:
            query = query.where(PredictionRow.version == version)
        with self._session() as s:
            rows = s.execute(query).all()
        return [_to_logged(row, label) for row, label in reversed(rows)]

    def add_feedback(self, model: str, labels: Iterable[tuple[str, Any]]) -> list[str]:
        """Store each (request id, label) logged for ``model``; returns the unknown ids."""
        pairs = dict(labels)  # a request labelled twice in one call: the last label wins
        unknown: list[str] = []
        with self._session(write=True) as s:
            known = self._known_ids(s, model, list(pairs))
            unknown = [rid for rid in pairs if rid not in known]
            kept = [rid for rid in pairs if rid in known]
            for start in range(0, len(kept), _CHUNK):
                chunk = kept[start : start + _CHUNK]
                s.execute(
                    delete(FeedbackRow).where(
                        FeedbackRow.model == model, FeedbackRow.request_id.in_(chunk)
                    )
                )
            if kept:
                now = utcnow()
                s.execute(
                    insert(FeedbackRow),
                    [
                        {"model": model, "request_id": rid, "label": pairs[rid], "created_at": now}
                        for rid in kept
                    ],
                )
        return unknown

    def prune_predictions(self, before: datetime, model: str | None = None) -> tuple[int, int]:
        """Delete the log entries made before ``before`` (of one model, or all) and the labels
        that pointed at them; returns (entries, labels) removed. The log otherwise grows for
        as long as a model is served with sampling on."""
        old = PredictionRow.created_at < before
        if model is not None:
            old = old & (PredictionRow.model == model)
        logged = select(PredictionRow.id).where(
            PredictionRow.model == FeedbackRow.model,
            PredictionRow.request_id == FeedbackRow.request_id,
        )
        with self._session(write=True) as s:
            entries = _rowcount(s.execute(delete(PredictionRow).where(old)))
            orphans = ~logged.exists()
            if model is not None:
                orphans = orphans & (FeedbackRow.model == model)
            labels = _rowcount(s.execute(delete(FeedbackRow).where(orphans)))
        return entries, labels

    def _known_ids(self, s: Session, model: str, ids: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            known.update(
                s.scalars(
                    select(PredictionRow.request_id).where(
                        PredictionRow.model == model, PredictionRow.request_id.in_(chunk)
                    )
                )
            )
        return known


def _rowcount(result: Result[Any]) -> int:
    """Rows a DELETE removed (a CursorResult's count; the typing says only Result)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def _to_logged(row: PredictionRow, label: Any) -> LoggedPrediction:
    return LoggedPrediction(
        model=row.model,
        version=row.version,
        request_id=row.request_id,
        created_at=row.created_at,
        latency_ms=row.latency_ms,
        inputs=row.inputs,
        outputs=row.outputs,
        label=label,
    )
