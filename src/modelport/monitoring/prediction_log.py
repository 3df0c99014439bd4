"""Sampled prediction logging that never blocks a request.

Where the log lives: the registry's own database (table ``prediction_log``, labels in
``feedback``). Drift and live accuracy are queries over a time window of one model joined
with the labels posted later by request id; a database does that join and window with an
index, works the same on SQLite and PostgreSQL, and needs no second store to back up. Rolled
Parquet files would be cheaper per row but need a compaction and an index of their own to
answer "which prediction had request id X". The cost is one row of JSON per sampled request,
which is why logging is sampled and off by default.

How: the request path calls :meth:`PredictionLogger.offer`, which only puts the arrays on a
bounded queue (no conversion, no I/O). One background thread takes what has queued, turns
it into JSON lists and writes it in one transaction. When the queue is full the entry is
dropped and counted; a failed write counts its whole batch as dropped. So, per model,
``sampled = written + dropped + (still queued)``, and after :meth:`close`, nothing is queued.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from modelport.monitoring import metrics
from modelport.registry import LoggedPrediction, MetadataStore

logger = logging.getLogger(__name__)

_BATCH = 500


@dataclass(frozen=True, slots=True)
class _Pending:
    model: str
    version: int | None
    request_id: str
    created_at: datetime
    latency_ms: float
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]


class PredictionLogger:
    """Bounded queue in front of one writer thread into the registry's prediction log."""

    def __init__(self, store: MetadataStore, *, max_queue: int = 10_000) -> None:
        self._store = store
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="modelport-predlog", daemon=True)
        self._thread.start()

    def offer(
        self,
        model: str,
        version: int | None,
        request_id: str,
        latency_ms: float,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> bool:
        """Queue one sampled request; False (and counted as dropped) when the queue is full."""
        metrics.LOG_SAMPLED.labels(model).inc()
        entry = _Pending(model, version, request_id, datetime.now(UTC), latency_ms, inputs, outputs)
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            metrics.LOG_DROPPED.labels(model).inc()
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch: list[_Pending] = []
            stop = first is None
            if first is not None:
                batch.append(first)
            while not stop and len(batch) < _BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Pending]) -> None:
        counts: dict[str, int] = {}
        for entry in batch:
            counts[entry.model] = counts.get(entry.model, 0) + 1
        try:
            self._store.log_predictions([_to_json(e) for e in batch])
        except Exception:  # the server goes on; the loss is counted and said once per batch
            logger.exception("prediction log: writing %d entries failed", len(batch))
            for model, n in counts.items():
                metrics.LOG_DROPPED.labels(model).inc(n)
            return
        for model, n in counts.items():
            metrics.LOG_WRITTEN.labels(model).inc(n)


def _to_json(entry: _Pending) -> LoggedPrediction:
    return LoggedPrediction(
        model=entry.model,
        version=entry.version,
        request_id=entry.request_id,
        created_at=entry.created_at,
        latency_ms=entry.latency_ms,
        inputs={k: _json_values(v) for k, v in entry.inputs.items()},
        outputs={k: _json_values(v) for k, v in entry.outputs.items()},
    )


def _json_values(arr: np.ndarray) -> list[object]:
    """Lists JSON can hold: NaN and infinities become None, bytes become text."""
    values = np.asarray(arr)
    if values.dtype.kind == "f":
        out = values.astype(object)
        out[~np.isfinite(values)] = None
        return list(out.tolist())
    if values.dtype.kind == "S":
        return [v.decode("utf-8", "replace") for v in values.reshape(-1).tolist()]
    if values.dtype.kind == "O":
        return [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values.tolist()
        ]
    return list(values.tolist())
