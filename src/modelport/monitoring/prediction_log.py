"""Sampled prediction logging that never blocks a request.

Where the log lives: the registry's own database (table ``prediction_log``, labels in
``feedback``). Drift and live accuracy are queries over a time window of one model joined
with the labels posted later by request id; a database does that join and window with an
index, works the same on SQLite and PostgreSQL, and needs no second store to back up. Rolled
Parquet files would be cheaper per row but need a compaction and an index of their own to
answer "which prediction had request id X". The cost is one compact JSON row per sampled
request, which is why logging is sampled and off by default.

How: the request path calls :meth:`PredictionLogger.offer`, which only appends the arrays to
a bounded queue (no conversion, no lock, no I/O, no wake-up of another thread). One
background thread wakes every :data:`FLUSH_S` seconds, or as soon as :data:`BATCH` entries
are queued, and hands what has queued to the store in transactions of at most ``BATCH``
rows; the store encodes the arrays and inserts them in one statement (see
``PredictionLog.log_predictions``). Writing in batches is what makes the log cheap: a
transaction (a commit, an fsync on SQLite) costs about as much as a thousand rows, so a
writer that committed each entry as it came cost about a millisecond of the serving core
per sampled request. While the writer waits on the database it holds no lock of ours and,
inside the driver, not the interpreter either: requests go on being answered, and queue.

:meth:`PredictionLogger.flush` puts a marker in the queue behind what is there, wakes the
writer, and waits (bounded) until the writer has handled the batch the marker came in: what
was offered before the call is then written, or counted as dropped. The server's feedback
route calls it, so a label posted right after its prediction finds the entry.

When the queue is full the entry is dropped and counted; a failed write counts its whole
batch as dropped. So, per model, ``sampled = written + dropped + (still queued)``, and after
:meth:`PredictionLogger.close`, nothing is queued. The memory the log holds is bounded by
``max_queue`` entries waiting plus one batch being written.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
from prometheus_client import Counter

from modelport.monitoring.metrics import ServerMetrics
from modelport.registry import LoggedPrediction, PredictionLog

logger = logging.getLogger(__name__)

BATCH = 250
"""Most entries written in one transaction; this many queued wakes the writer early.
Measured on SQLite with 1-row requests: a transaction costs about 0.4 ms of CPU whatever it
holds, and a logged request about 15 us in all (queue, encoding, insert); at 250 a commit
adds under 2 us an entry, and the stretch the writer runs Python for one batch before the
database takes over (and lets the interpreter go) stays about a millisecond."""
FLUSH_S = 0.5
"""Longest a queued entry waits before the writer takes it: the log's delay, so feedback for
a request posted within it would find the request not logged yet, but for
:meth:`PredictionLogger.flush`."""


class _Pending(NamedTuple):
    model: str
    version: int | None
    request_id: str
    created_at: float  # time.time(): a datetime is built by the writer, off the request path
    latency_ms: float
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]


class _Counters(NamedTuple):
    sampled: Counter
    written: Counter
    dropped: Counter


class PredictionLogger:
    """Bounded queue in front of one writer thread into the registry's prediction log."""

    def __init__(
        self,
        store: PredictionLog,
        *,
        max_queue: int = 10_000,
        metrics: ServerMetrics | None = None,
    ) -> None:
        """Start the writer thread; ``metrics`` counts what is sampled, written and dropped
        (a private set nobody scrapes when None)."""
        self._store = store
        self._metrics = metrics if metrics is not None else ServerMetrics()
        self._max_queue = max(1, max_queue)
        self._wake_at = min(BATCH, self._max_queue)
        # deque.append and popleft are atomic: the request path takes no lock. Only the
        # writer removes entries, so the length it reads can only have grown since. An Event
        # in the queue is flush()'s marker, set once what came before it is handled.
        self._queue: collections.deque[_Pending | threading.Event] = collections.deque()
        self._counters: dict[str, _Counters] = {}
        self._wake = threading.Event()
        self._closing = False
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
        """Queue one sampled request; False (and counted as dropped) when the queue is full
        or the logger is closed. The arrays are kept as they are, not copied: the caller
        must not change them afterwards."""
        counters = self._counters_for(model)
        counters.sampled.inc()
        queue = self._queue
        if self._closing or len(queue) >= self._max_queue:
            counters.dropped.inc()
            return False
        queue.append(_Pending(model, version, request_id, time.time(), latency_ms, inputs, outputs))
        # Once per batch: the writer clears the event when it wakes.
        if len(queue) >= self._wake_at and not self._wake.is_set():
            self._wake.set()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every entry offered before this call is written or dropped, at most
        ``timeout`` seconds; False when the time ran out (the entries stay queued). Blocks
        the calling thread: never call it on the event loop."""
        if not self._thread.is_alive():
            return not self._queue
        done = threading.Event()
        self._queue.append(done)  # even past max_queue: one per waiting caller
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread; later offers are dropped."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def _counters_for(self, model: str) -> _Counters:
        """The model's counters (looking labels up takes a lock: done once per model)."""
        counters = self._counters.get(model)
        if counters is not None:
            return counters
        counters = _Counters(
            self._metrics.log_sampled.labels(model),
            self._metrics.log_written.labels(model),
            self._metrics.log_dropped.labels(model),
        )
        self._counters[model] = counters
        return counters

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_S)
            self._wake.clear()
            closing = self._closing  # read first: what was offered before close() is queued
            # What is queued now, and no more: entries that arrive meanwhile wait for the
            # next round, or the writer would go on committing them a few at a time.
            due = len(self._queue)
            while due > 0:
                batch = self._take(min(BATCH, due))
                due -= len(batch)
                self._write(batch)
            if closing:
                while self._queue:
                    self._write(self._take(BATCH))
                return

    def _take(self, most: int) -> list[_Pending | threading.Event]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(most, len(queue)))]

    def _write(self, batch: list[_Pending | threading.Event]) -> None:
        entries = [e for e in batch if isinstance(e, _Pending)]
        try:
            if entries:
                self._write_entries(entries)
        finally:  # what came before each marker is now written or counted as dropped
            for marker in batch:
                if isinstance(marker, threading.Event):
                    marker.set()

    def _write_entries(self, batch: list[_Pending]) -> None:
        counts: dict[str, int] = {}
        for entry in batch:
            counts[entry.model] = counts.get(entry.model, 0) + 1
        try:
            self._store.log_predictions([_to_logged(e) for e in batch])
        except Exception:  # the server goes on; the loss is counted and said once per batch
            logger.exception("prediction log: writing %d entries failed", len(batch))
            for model, n in counts.items():
                self._counters_for(model).dropped.inc(n)
            return
        for model, n in counts.items():
            self._counters_for(model).written.inc(n)


def _to_logged(entry: _Pending) -> LoggedPrediction:
    """The entry as the store takes it: arrays as they are (the store encodes them)."""
    return LoggedPrediction(
        model=entry.model,
        version=entry.version,
        request_id=entry.request_id,
        created_at=datetime.fromtimestamp(entry.created_at, UTC),
        latency_ms=entry.latency_ms,
        inputs=dict(entry.inputs),
        outputs=dict(entry.outputs),
    )
