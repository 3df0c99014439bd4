"""The registry database out of reach: which failures mean it, and how a server says so.

A server keeps its loaded models in memory, so predictions never need the registry; routes
that do (feedback, drift, quality, a repository load, the check of an API key not in the
auth cache) fail while it is out of reach. Such a failure is answered with
:class:`~modelport.errors.RegistryUnavailable` (503, ``Retry-After``), whose message names
no host or database; the driver's own message goes to the server's log, at most once a
minute while the outage lasts, and its end is logged once.

A failure counts as the database being out of reach when the driver could not connect or
lost its connection (PostgreSQL: an ``OperationalError`` with no SQLSTATE, which is how
libpq reports a failed connect, or one of classes 08 connection exception, 53 insufficient
resources, 57P operator intervention), when the pool timed out waiting for a connection,
when any driver error invalidated its connection, or, on SQLite, when the file stayed locked
past the busy timeout or could not be opened. A refused statement (a constraint, a syntax
error, a missing table, a serialization failure) is not an outage and keeps its own error.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from modelport.errors import RegistryUnavailable

logger = logging.getLogger(__name__)

SAY_AGAIN_S = 60.0
"""Least time between two log lines about the same outage."""
_PG_OUTAGE_STATES = ("08", "53", "57P")
_SQLITE_OUTAGES = ("database is locked", "unable to open database file", "disk I/O error")


def unreachable(exc: BaseException) -> bool:
    """True when ``exc``, or an error it was raised from or during, means the registry
    database is out of reach (see the module docstring)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RegistryUnavailable | InterfaceError | PoolTimeout):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        orig = current.orig if isinstance(current, OperationalError) else None
        if orig is not None and _driver_outage(orig):
            return True
        # The store raises StoreError "from None": the driver's error is still the context.
        current = current.__cause__ or current.__context__
    return False


class RegistryOutage:
    """What one server knows of the registry's reachability, for its log; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._said_at = 0.0
        self._failures = 0

    @property
    def down(self) -> bool:
        """True from a failure until the next success."""
        return self._down_since is not None

    def check(self, exc: BaseException) -> RegistryUnavailable | None:
        """The error to answer with when ``exc`` means the registry is out of reach (and
        the outage is noted for the log); None for any other failure."""
        if not unreachable(exc):
            return None
        self.failed(exc)
        return exc if isinstance(exc, RegistryUnavailable) else RegistryUnavailable()

    def failed(self, exc: BaseException) -> None:
        """Note a failure to reach the registry; logged at most once a minute."""
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            first = self._down_since is None
            if first:
                self._down_since = now
            elif now - self._said_at < SAY_AGAIN_S:
                return
            self._said_at = now
            since, failures = now - (self._down_since or now), self._failures
        detail = _detail(exc)
        if first:
            logger.warning(
                "the registry database is unreachable (%s): loaded models keep serving; "
                "requests that need the registry get 503 until it is back",
                detail,
            )
        else:
            logger.warning(
                "the registry database is still unreachable after %.0f s (%s); "
                "%d failed calls so far",
                since,
                detail,
                failures,
            )

    def recovered(self) -> None:
        """Note a call that reached the registry; logs the end of an outage once."""
        if self._down_since is None:  # the common case: no lock
            return
        with self._lock:
            if self._down_since is None:
                return
            since, failures = time.monotonic() - self._down_since, self._failures
            self._down_since, self._failures = None, 0
        logger.warning(
            "the registry database is reachable again after %.0f s (%d failed calls)",
            since,
            failures,
        )


def _driver_outage(orig: BaseException) -> bool:
    """Whether the driver's own ``OperationalError`` means the database is out of reach."""
    if isinstance(orig, sqlite3.OperationalError):
        return str(orig).startswith(_SQLITE_OUTAGES)
    # psycopg is an optional dependency: known by its module, not imported.
    if not type(orig).__module__.startswith("psycopg"):
        return False
    state = getattr(orig, "sqlstate", None)
    return state is None or str(state).startswith(_PG_OUTAGE_STATES)


def _detail(exc: BaseException) -> str:
    """The first line of the error that says why (the store's message, which already has
    any password scrubbed and names the database it could not reach)."""
    if isinstance(exc, RegistryUnavailable):
        exc = exc.__cause__ or exc.__context__ or exc
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
