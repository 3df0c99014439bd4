"""A running batch job's heartbeat: every few seconds it records its progress and that it is
alive, so that a job killed without a chance to say so (SIGKILL, a lost machine) reads as
``abandoned`` instead of ``running`` forever (see :attr:`modelport.registry.BatchRun.status`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from modelport.registry import BatchRun, RunLog
from modelport.registry.entities import RUN_HEARTBEAT_S

logger = logging.getLogger(__name__)


class Heartbeat:
    """While open, writes ``record(now)`` to the store every ``interval`` seconds from a
    thread. Closing stops it and waits for a write in progress, so that no heartbeat can
    land after (and overwrite) the run's final record. A failed write is logged and the job
    goes on: a missed beat only risks the run reading as abandoned for a while."""

    def __init__(
        self,
        store: RunLog,
        record: Callable[[datetime], BatchRun],
        interval: float = RUN_HEARTBEAT_S,
    ) -> None:
        self._store = store
        self._record = record
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelport-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._store.record_run(self._record(datetime.now(UTC)))
            except Exception:
                logger.warning("batch run heartbeat: could not record it", exc_info=True)
