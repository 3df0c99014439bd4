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

While the database fails (down, unreachable), the writer tries again every :data:`RETRY_S`
seconds with one batch, not the whole queue; entries wait in the queue meanwhile (so a short
outage loses only the batch that failed) and, once it is full, new ones are dropped and
counted. The failure is logged when it starts, then at most every :data:`SAY_AGAIN_S`
seconds with the number dropped so far, and its end once; a :meth:`~PredictionLogger.flush`
does not wait for a failing writer.
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

from modelport.errors import ModelportError
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
RETRY_S = 2.0
"""After a failed write, the writer waits this long before trying one batch again."""
SAY_AGAIN_S = 60.0
"""Least time between two log lines about the same run of failed writes."""


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
        self._closed = threading.Event()  # ends the pause after a failed write
        self._failing_since: float | None = None
        self._said_at = 0.0
        self._dropped = 0  # while failing, for the log line (the counters have them all)
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
            self._dropped += 1
            return False
        queue.append(_Pending(model, version, request_id, time.time(), latency_ms, inputs, outputs))
        # Once per batch: the writer clears the event when it wakes.
        if len(queue) >= self._wake_at and not self._wake.is_set():
            self._wake.set()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every entry offered before this call is written or dropped, at most
        ``timeout`` seconds; False when the time ran out (the entries stay queued). Blocks
        the calling thread: never call it on the event loop. Returns False at once while
        writes are failing: there is nothing to wait for."""
        if not self._thread.is_alive():
            return not self._queue
        if self._failing_since is not None:
            return False
        done = threading.Event()
        self._queue.append(done)  # even past max_queue: one per waiting caller
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread; later offers are dropped."""
        self._closing = True
        self._wake.set()
        self._closed.set()
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
                if not self._write(batch, try_it=self._worth_trying(closing)) and not closing:
                    break  # the rest waits for the next try
            if closing:
                while self._queue:
                    self._write(self._take(BATCH), try_it=self._worth_trying(closing))
                return
            if self._failing_since is not None:
                self._closed.wait(RETRY_S)

    def _worth_trying(self, closing: bool) -> bool:
        """False when closing while writes fail: what is left is dropped, not tried batch
        by batch (each try may wait for the database's connect timeout)."""
        return not (closing and self._failing_since is not None)

    def _take(self, most: int) -> list[_Pending | threading.Event]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(most, len(queue)))]

    def _write(self, batch: list[_Pending | threading.Event], *, try_it: bool = True) -> bool:
        """Write the batch's entries (or, not ``try_it``, drop them); False if they failed."""
        entries = [e for e in batch if isinstance(e, _Pending)]
        try:
            return self._write_entries(entries, try_it) if entries else True
        finally:  # what came before each marker is now written or counted as dropped
            for marker in batch:
                if isinstance(marker, threading.Event):
                    marker.set()

    def _write_entries(self, batch: list[_Pending], try_it: bool) -> bool:
        counts: dict[str, int] = {}
        for entry in batch:
            counts[entry.model] = counts.get(entry.model, 0) + 1
        try:
            if try_it:
                self._store.log_predictions([_to_logged(e) for e in batch])
        except Exception as exc:  # the server goes on; the loss is counted and said
            self._failed(exc, len(batch))
            try_it = False
        if not try_it:
            for model, n in counts.items():
                self._counters_for(model).dropped.inc(n)
            return False
        if self._failing_since is not None:  # first: a flush after this write must wait
            self._recovered()
        for model, n in counts.items():
            self._counters_for(model).written.inc(n)
        return True

    def _failed(self, exc: Exception, lost: int) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since, self._said_at, self._dropped = now, now, lost
            logger.warning(
                "prediction log: writing to the registry database failed (%s); sampled "
                "requests wait in a queue of %d and are dropped beyond it, counted in "
                "modelport_prediction_log_dropped_total; retried every %g s",
                _first_line(exc),
                self._max_queue,
                RETRY_S,
                exc_info=not isinstance(exc, ModelportError),
            )
            return
        self._dropped += lost
        if now - self._said_at >= SAY_AGAIN_S:
            self._said_at = now
            logger.warning(
                "prediction log: still failing after %.0f s (%s); %d entries dropped so far",
                now - self._failing_since,
                _first_line(exc),
                self._dropped,
            )

    def _recovered(self) -> None:
        assert self._failing_since is not None
        logger.warning(
            "prediction log: writing again after %.0f s of failures; %d entries dropped",
            time.monotonic() - self._failing_since,
            self._dropped,
        )
        self._failing_since, self._dropped = None, 0


def _first_line(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


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
