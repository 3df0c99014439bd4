"""Alias changes announced by PostgreSQL, so a served ``name@alias`` moves within a moment.

The SQL store sends ``NOTIFY modelport_aliases, '<model name>'`` in the transaction that
sets or deletes an alias. :class:`AliasListener` holds one connection of its own that
``LISTEN``\\ s on that channel, in a daemon thread (psycopg's blocking ``notifies`` with a
timeout, so a stop is noticed within a second), and hands each model name to a callback.
A lost connection is logged and reopened with a growing pause; it never stops the server,
and the poll goes on either way: a notification only makes a swap come sooner.
SQLite has no notifications: there, the poll is the only way a server follows an alias.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from modelport.registry.sql._aliases import ALIAS_CHANNEL
from modelport.registry.sql._engine import parse_url, redact

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.5
LAST_RETRY_SECONDS = 30.0
_WAIT_SECONDS = 1.0
"""How long one wait for notifications lasts: the most a stop waits for the thread."""


def listens(registry_uri: str) -> bool:
    """Whether a registry at ``registry_uri`` announces alias changes (PostgreSQL does)."""
    return parse_url(registry_uri).get_backend_name() == "postgresql"


class AliasListener:
    """Calls ``on_change(model_name)`` for each alias change announced on PostgreSQL.

    ``on_change`` runs in the listener's thread: hand the work to the event loop from it
    (``loop.call_soon_threadsafe``). ``start`` returns at once; ``stop`` waits (about a
    second at most) for the thread to end.
    """

    def __init__(self, registry_uri: str, on_change: Callable[[str], None]) -> None:
        url = parse_url(registry_uri).set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._where = redact(registry_uri)
        self._on_change = on_change
        self._stopping = threading.Event()
        self._listening = False
        self._thread = threading.Thread(
            target=self._run, name="modelport-alias-listener", daemon=True
        )

    def start(self) -> None:
        """Start listening in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close the connection."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=_WAIT_SECONDS * 5)

    def _run(self) -> None:
        pause = FIRST_RETRY_SECONDS
        while not self._stopping.is_set():
            self._listening = False
            try:
                self._listen()
                return  # stopped
            except Exception as exc:  # a lost connection: say so, wait, connect again
                if self._listening:  # it worked for a while: start the pauses over
                    pause = FIRST_RETRY_SECONDS
                logger.warning(
                    "listening for alias changes on %s failed (%s); retrying in %g s, "
                    "and following aliases by polling meanwhile",
                    self._where,
                    exc,
                    pause,
                )
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, LAST_RETRY_SECONDS)

    def _listen(self) -> None:
        import psycopg  # installed with the PostgreSQL registry, which this runs only for
        from psycopg import sql

        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(ALIAS_CHANNEL)))
            self._listening = True
            logger.info("following alias changes announced on %s", self._where)
            while not self._stopping.is_set():
                for note in conn.notifies(timeout=_WAIT_SECONDS):
                    try:
                        self._on_change(note.payload)
                    except Exception:  # the callback's failure is not the connection's
                        logger.exception("handling the alias change of %r failed", note.payload)
