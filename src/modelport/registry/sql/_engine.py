"""Engines for SQLite and PostgreSQL, transaction modes, error mapping and migrations.

SQLite needs care to be safe with several writer processes: WAL lets readers proceed while
one process writes, ``busy_timeout`` makes a writer wait instead of failing at once, and a
write transaction must take the write lock at ``BEGIN IMMEDIATE``. A deferred ``BEGIN`` that
reads and then writes can deadlock against another such transaction, and SQLite resolves
that with an immediate ``database is locked`` that no timeout helps. pysqlite's own
transaction handling cannot emit ``BEGIN IMMEDIATE``, so (as SQLAlchemy's pysqlite docs
show) we switch it off on connect and emit the ``BEGIN`` ourselves in the "begin" event,
IMMEDIATE only for engines carrying the ``modelport_write`` execution option.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from modelport._permissions import private_dir, private_file
from modelport.errors import MissingDependency, SchemaOutdated, SchemaTooNew, StoreError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
WRITE_OPTION = "modelport_write"
_BUSY_TIMEOUT_MS = 30_000
# Any constant shared by every modelport process; it names the migration lock on PostgreSQL.
_PG_MIGRATION_LOCK = 0x6D6F64656C706F72  # "modelpor"
_PG_LIVENESS = {
    "connect_timeout": 5,  # seconds for a new connection (libpq waits forever by default)
    "tcp_user_timeout": 10_000,  # ms a sent query may stay unacknowledged (a cut network)
    "keepalives_idle": 10,  # an idle connection is probed after 10 s, every 5 s, 3 times
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
"""libpq's connection parameters that bound how long a lost PostgreSQL makes a call wait."""


def parse_url(uri: str) -> URL:
    """Turn a registry URI into a SQLAlchemy URL, choosing psycopg 3 for PostgreSQL."""
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise StoreError(f"cannot parse registry URI {redact(uri)!r}") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise StoreError("in-memory SQLite cannot be shared between connections; use a file")
    return url


def redact(uri: str) -> str:
    """The URI with any password replaced, safe for messages and logs."""
    try:
        return make_url(uri).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URI>"


def build_engine(url: URL) -> Engine:
    """Create the engine; on SQLite install WAL, busy timeout, foreign keys and BEGIN control."""
    if url.get_backend_name() != "sqlite":
        # A database that is down or cut off must fail a call within seconds, not hang it:
        # bounded connects, and dead connections found by TCP (a value in the URI wins).
        connect_args = {k: v for k, v in _PG_LIVENESS.items() if k not in url.query}
        try:
            return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        except ImportError as exc:
            raise MissingDependency(exc.name or "psycopg", "postgres") from exc
    assert url.database is not None  # checked by parse_url
    database = Path(url.database).expanduser()
    # Owner-only: the file holds API key hashes and logged model inputs. SQLite gives its
    # -wal and -shm files the database file's permissions.
    private_dir(database.parent)
    private_file(database)
    engine = create_engine(url, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000})

    # The DB-API connection type is driver-specific; Any because events are untyped.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def writer(engine: Engine) -> Engine:
    """A view of ``engine`` whose transactions take the write lock up front (SQLite)."""
    return engine.execution_options(**{WRITE_OPTION: True})


@contextlib.contextmanager
def mapped_errors(uri: str) -> Iterator[None]:
    """Turn SQLAlchemy/driver errors into :class:`StoreError` without leaking credentials.

    Driver messages can quote the connection string, so any password is scrubbed and the
    statement and its parameters are left out (they are in the log at debug level).
    """
    try:
        yield
    except SQLAlchemyError as exc:
        logger.debug("registry database error", exc_info=True)
        detail = str(getattr(exc, "orig", None) or exc.__class__.__name__).splitlines()[0]
        password = _password(uri)
        if password:
            detail = detail.replace(password, "***")
        raise StoreError(f"registry database error at {redact(uri)}: {detail}") from None


def _password(uri: str) -> str | None:
    try:
        return make_url(uri).password
    except ArgumentError:
        return None


def _head() -> str | None:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def _at_head(conn: Connection, head: str | None) -> bool:
    current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        return False
    if conn.dialect.name == "sqlite":
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        return str(mode).lower() == "wal"
    return True


def schema_revisions(engine: Engine) -> tuple[str | None, str | None, bool]:
    """The database's revision (None: no schema), the newest one, and whether it is known."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    known = {rev.revision for rev in script.walk_revisions()}
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, script.get_current_head(), current is None or current in known


def upgrade_schema(engine: Engine, *, explicit: bool = False) -> None:
    """Bring the schema to the newest migration, once, even with many processes starting.

    Fast path: one read that finds the database already at head. Otherwise the upgrade runs
    under a lock (a file lock beside the SQLite file, or a PostgreSQL advisory lock) and
    re-checks inside it, so concurrent first opens run the migrations exactly once.

    A revision this modelport does not know is never touched (:class:`SchemaTooNew`). On
    PostgreSQL, unless ``explicit`` (``modelport db upgrade``), only an empty database is
    migrated (first use); an older schema raises :class:`SchemaOutdated`, because other
    processes sharing the database may still need it as it is.
    """
    head = _head()
    with engine.connect() as conn:
        if _at_head(conn, head):
            return
    current, head, known = schema_revisions(engine)
    if current == head and engine.dialect.name != "sqlite":
        return  # another process finished the first migration between the two reads
    where = engine.url.render_as_string(hide_password=True)
    if not known:
        raise SchemaTooNew(where, current or "", head or "")
    if engine.dialect.name != "sqlite" and not explicit and current is not None:
        raise SchemaOutdated(where, current, head or "")
    if engine.dialect.name == "sqlite":
        assert engine.url.database is not None
        lock_path = Path(engine.url.database).expanduser().with_suffix(".migrate.lock")
        with FileLock(str(lock_path), timeout=_BUSY_TIMEOUT_MS / 1000):
            with engine.connect() as conn:
                # Persistent per database file, and must run outside a transaction, so it
                # goes to the driver directly rather than through our BEGIN event.
                raw = conn.connection.driver_connection
                assert raw is not None
                raw.execute("PRAGMA journal_mode = WAL")
            _upgrade_locked(writer(engine), head)
    else:
        _upgrade_locked(engine, head, advisory_lock=True)


def _upgrade_locked(engine: Engine, head: str | None, *, advisory_lock: bool = False) -> None:
    with engine.begin() as conn:
        if advisory_lock:
            # Transaction-scoped: released by the COMMIT (or ROLLBACK) that ends this block.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
        logger.info("upgrading registry schema to %s", head)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def schema_is_current(engine: Engine) -> bool:
    """True when the database is at the newest migration (used by tests and health checks)."""
    with engine.connect() as conn:
        return _at_head(conn, _head())


def dispose(engine: Engine) -> None:
    """Close every pooled connection (SQLite connections left open warn at exit)."""
    with contextlib.suppress(SQLAlchemyError):
        engine.dispose()
