"""The prediction log and posted labels: what drift and live accuracy are computed from.

The log is appended in batches by the server's background writer (one transaction per batch);
readers take a time window of one model. A label is kept per (model, request id): posting a
label again for the same request replaces it, and a request id that was never logged for the
model is reported back rather than stored, so a typo cannot pass for feedback.

How a logged request is stored: ``inputs`` and ``outputs`` are JSON objects, tensor or column
name -> values as nested lists, batch axis first. orjson writes them straight from the numpy
arrays, in C: a float32 as the shortest text that reads back as the same float32 (about half
the digits of its float64 widening, which rows written before used), NaN and infinities as
null, bytes as UTF-8 text, anything else JSON has no type for as its text. The rows go in
with one statement per batch below the ORM: one ``executemany`` on SQLite, one ``COPY`` on
PostgreSQL; the driver waits on the database without holding the interpreter. Readers
decode with orjson, falling back to the json module for older rows that hold ``NaN``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection, CursorResult, Result, Row, Text, cast, delete, insert, select
from sqlalchemy.orm import Session

from modelport.registry.entities import LoggedPrediction
from modelport.registry.sql._base import StoreBase
from modelport.registry.sql._schema import FeedbackRow, PredictionRow, utcnow

_CHUNK = 500  # ids per IN (...) clause
_READ_CHUNK = 1000  # rows fetched at a time: raw rows are decoded as they arrive
_COLUMNS = ("model", "version", "request_id", "created_at", "latency_ms", "inputs", "outputs")
_SQLITE_INSERT = (
    f"INSERT INTO prediction_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_PG_COPY = f"COPY prediction_log ({', '.join(_COLUMNS)}) FROM STDIN"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


class MonitoringMixin(StoreBase):
    """Prediction log and feedback methods of :class:`~modelport.registry.sql.store.SqlStore`."""

    def log_predictions(self, entries: Sequence[LoggedPrediction]) -> None:
        """Append ``entries`` in one transaction. Their ``inputs`` and ``outputs`` values may
        be numpy arrays or JSON lists; either is encoded here, before the transaction starts,
        so the write lock is held only while the rows go in."""
        if not entries:
            return
        rows = [
            (
                e.model,
                e.version,
                e.request_id,
                e.created_at,
                e.latency_ms,
                encode_values(e.inputs),
                encode_values(e.outputs),
            )
            for e in entries
        ]
        with self._session(write=True) as s:
            conn = s.connection()
            if conn.dialect.name == "postgresql":
                _copy_rows(conn, rows)
            else:
                _insert_rows(conn, rows)

    def logged_predictions(
        self,
        model: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = None,
        labelled_only: bool = False,
        limit: int = 100_000,
    ) -> list[LoggedPrediction]:
        """The newest ``limit`` entries of ``model`` made at ``since`` or later and before
        ``until``, oldest first, with their labels where one was posted."""
        query = (
            select(
                PredictionRow.model,
                PredictionRow.version,
                PredictionRow.request_id,
                PredictionRow.created_at,
                PredictionRow.latency_ms,
                # As text, decoded by orjson below rather than the json module.
                cast(PredictionRow.inputs, Text),
                cast(PredictionRow.outputs, Text),
                FeedbackRow.label,
            )
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
        if until is not None:
            query = query.where(PredictionRow.created_at < until)
        if version is not None:
            query = query.where(PredictionRow.version == version)
        # Columns, not ORM objects (nothing for the session to track), fetched and decoded a
        # chunk at a time: a window of 100,000 rows never sits in memory twice.
        with self._session() as s:
            result = s.execute(query, execution_options={"yield_per": _READ_CHUNK})
            logged = [_to_logged(row) for row in result]
        logged.reverse()
        return logged

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


def _to_logged(row: Row[str, int | None, str, datetime, float, str, str, Any]) -> LoggedPrediction:
    model, version, request_id, created_at, latency_ms, inputs, outputs, label = row
    return LoggedPrediction(
        model=model,
        version=version,
        request_id=request_id,
        created_at=created_at,
        latency_ms=latency_ms,
        inputs=decode_values(inputs),
        outputs=decode_values(outputs),
        label=label,
    )


def encode_values(values: Mapping[str, Any]) -> str:
    """``values`` (name -> numpy array or JSON list) as the JSON text the log stores."""
    try:
        return orjson.dumps(values, default=_plain, option=_NUMPY).decode()
    except orjson.JSONEncodeError:  # a byte-swapped array, an int beyond 64 bits: rare
        return json.dumps(_jsonable(values), allow_nan=False, separators=(",", ":"))


def decode_values(text: str | bytes) -> dict[str, Any]:
    """The stored JSON text of ``inputs`` or ``outputs`` back as name -> lists."""
    try:
        values: dict[str, Any] = orjson.loads(text)
    except orjson.JSONDecodeError:  # rows written before orjson may hold NaN or Infinity
        values = json.loads(text)
    return values


def _plain(value: Any) -> Any:
    """What orjson cannot write itself, as something it can (orjson's ``default`` hook)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and not value.flags.c_contiguous:
            return np.ascontiguousarray(value)
        return value.tolist()  # text, bytes, objects, complex: Python values, then this hook
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON values, for the json module (what orjson refused)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | list | tuple):
        return [_jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _insert_rows(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """SQLite: one executemany."""
    stamped = [(m, v, r, sqlite_time(t), *rest) for m, v, r, t, *rest in rows]
    conn.exec_driver_sql(_SQLITE_INSERT, stamped)


def sqlite_time(value: datetime) -> str:
    """``value`` as SQLAlchemy's SQLite DateTime stores a :class:`UTCDateTime` (naive UTC,
    ``YYYY-MM-DD HH:MM:SS.ffffff``), in C: reads and the window's comparisons see no
    difference from rows the ORM wrote."""
    return _utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


def _utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive one is refused, as :class:`UTCDateTime` refuses it."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the registry; use datetime.now(UTC)")
    return value.astimezone(UTC)


def _copy_rows(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: one COPY (psycopg 3), a third of executemany's cost per row."""
    driver: Any = conn.connection.driver_connection  # psycopg.Connection; untyped here
    with driver.cursor() as cursor, cursor.copy(_PG_COPY) as copy:
        for m, v, r, t, *rest in rows:
            copy.write_row((m, v, r, _utc(t), *rest))
