"""Migrations: the schema they build matches the ORM, they run once, reopening is cheap, and
each later migration upgrades (and downgrades) a database that holds data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, event, insert, inspect, text

from modelport.errors import StoreError, UnsupportedURI
from modelport.registry._backends import open_artifact_store, open_metadata_store, scheme_of
from modelport.registry.artifact_store import LocalArtifactStore
from modelport.registry.sql import SqlStore
from modelport.registry.sql._engine import MIGRATIONS_DIR, parse_url, schema_is_current
from modelport.registry.sql._schema import Base, ModelRow, VersionRow
from modelport.registry.sql.migrations import upgrade_database


def test_migrations_build_exactly_the_orm_schema(registry_uri: str) -> None:
    SqlStore(registry_uri).close()
    engine = create_engine(parse_url(registry_uri))
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert schema_is_current(engine)
    finally:
        engine.dispose()


def test_reopening_is_idempotent_and_keeps_data(registry_uri: str) -> None:
    with SqlStore(registry_uri) as first:
        first.create_version("churn")
    with SqlStore(registry_uri) as second:
        assert second.get_version("churn", 1).status == "pending"
        assert second.create_version("churn").version == 2


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'sub' / 'registry.db'}"
    SqlStore(uri).close()
    engine = create_engine(uri)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(StoreError, match="in-memory SQLite"):
        SqlStore("sqlite://")


@pytest.mark.postgres
def test_connection_errors_never_show_the_password() -> None:
    uri = "postgresql://postgres:s3cret-pw@127.0.0.1:1/nodb?connect_timeout=2"
    with pytest.raises(StoreError, match="registry database error") as info:
        SqlStore(uri)
    assert "s3cret-pw" not in str(info.value)
    assert "***" in str(info.value)


def test_stores_are_chosen_by_scheme(tmp_path: Path) -> None:
    assert scheme_of("postgresql+psycopg://h/db") == "postgresql"
    assert scheme_of("/plain/path") is None
    store = open_artifact_store(str(tmp_path / "a"))
    assert isinstance(store, LocalArtifactStore)
    assert isinstance(open_artifact_store((tmp_path / "b").as_uri()), LocalArtifactStore)
    meta = open_metadata_store(f"sqlite:///{tmp_path / 'r.db'}")
    assert isinstance(meta, SqlStore)
    meta.close()


def test_unknown_schemes_are_refused_without_credentials() -> None:
    with pytest.raises(UnsupportedURI, match="known schemes: file") as info:
        open_artifact_store("gopher://user:pw@host/x")
    assert ":pw@" not in str(info.value)
    with pytest.raises(UnsupportedURI, match="known schemes: postgresql, sqlite"):
        open_metadata_store("mysql://u@h/db")


def test_sqlite_writes_take_the_lock_at_begin_and_reads_do_not(tmp_path: Path) -> None:
    """A deferred BEGIN that later writes can deadlock with another writer; see _engine."""
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    with SqlStore(f"sqlite:///{tmp_path / 'registry.db'}") as store:
        event.listen(store._engine, "before_cursor_execute", record)
        store.create_version("churn")
        writes = [s for s in statements if s.startswith("BEGIN")]
        statements.clear()
        store.get_version("churn", 1)
        reads = [s for s in statements if s.startswith("BEGIN")]
        event.remove(store._engine, "before_cursor_execute", record)
    assert writes == ["BEGIN IMMEDIATE"]
    assert reads == ["BEGIN"]


# -- 0002: API keys and the trust record ---------------------------------------------------


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def empty_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database no migration has touched yet, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    uri: str = request.getfixturevalue("fresh_pg_database")
    return uri


def _migrate(uri: str, revision: str, *, down: bool = False) -> None:
    engine = create_engine(parse_url(uri))
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def _tables_and_version_columns(uri: str) -> tuple[set[str], set[str]]:
    engine = create_engine(parse_url(uri))
    try:
        found = inspect(engine)
        columns = {c["name"] for c in found.get_columns("model_versions")}
        return set(found.get_table_names()), columns
    finally:
        engine.dispose()


def test_0002_upgrades_a_0001_database_and_keeps_its_versions(empty_uri: str) -> None:
    _migrate(empty_uri, "0001")
    engine = create_engine(parse_url(empty_uri))
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(ModelRow).values(
                    name="churn", last_version=1, created_at=now, updated_at=now
                )
            )
            model_id = conn.execute(text("SELECT id FROM models")).scalar_one()
            conn.execute(
                insert(VersionRow).values(
                    model_id=model_id,
                    version=1,
                    status="pending",
                    artifact_key="models/1/v1",
                    created_at=now,
                    updated_at=now,
                )
            )
    finally:
        engine.dispose()
    assert "api_keys" not in _tables_and_version_columns(empty_uri)[0]
    upgrade_database(empty_uri)  # a shared (PostgreSQL) schema is only migrated explicitly
    with SqlStore(empty_uri) as store:
        old = store.get_version("churn", 1)
        assert (old.trusted_unsafe_by, old.trusted_unsafe_at, old.trusts_unsafe) == (
            None,
            None,
            False,
        )
        trusted = store.create_version("churn", trusted_unsafe_by="alice")
        assert trusted.trusted_unsafe_by == "alice"
        assert trusted.trusted_unsafe_at is not None
        assert store.get_version("churn", 2).trusted_unsafe_at == trusted.trusted_unsafe_at
        store.create_key("ci", key_id="0" * 16, salt="1" * 32, secret_hash="2" * 64, scope="read")
        assert [k.name for k in store.list_keys()] == ["ci"]


def test_0002_downgrades_cleanly_and_upgrades_again(empty_uri: str) -> None:
    SqlStore(empty_uri).close()
    tables, columns = _tables_and_version_columns(empty_uri)
    assert "api_keys" in tables
    assert {"trusted_unsafe_by", "trusted_unsafe_at"} <= columns
    _migrate(empty_uri, "0001", down=True)
    tables, columns = _tables_and_version_columns(empty_uri)
    assert "api_keys" not in tables
    assert not {"trusted_unsafe_by", "trusted_unsafe_at"} & columns
    upgrade_database(empty_uri)
    with SqlStore(empty_uri) as store:
        assert store.list_keys().items == []


def test_0005_upgrades_a_0004_database_and_its_runs(empty_uri: str) -> None:
    """A run recorded before heartbeats existed keeps its figures; an old one still marked
    running (its job long gone) reads as abandoned, a finished one as it was."""
    _migrate(empty_uri, "0004")
    long_ago = datetime(2026, 11, 1, tzinfo=UTC)
    engine = create_engine(parse_url(empty_uri))
    try:
        with engine.begin() as conn:
            for run_id, status in (("killed", "running"), ("done", "succeeded")):
                conn.execute(
                    text(
                        "INSERT INTO batch_runs (run_id, model, version, source, sink, engine,"
                        " status, rows, scored, rejected, started_at) VALUES (:r, 'churn', 1,"
                        " 'in.csv', 'out', 'local', :s, 10, 9, 1, :t)"
                    ),
                    {"r": run_id, "s": status, "t": long_ago},
                )
    finally:
        engine.dispose()
    upgrade_database(empty_uri)
    with SqlStore(empty_uri) as store:
        runs = {r.run_id: r for r in store.list_runs("churn")}
    assert runs["killed"].status == "abandoned"
    assert runs["done"].status == "succeeded"
    killed = runs["killed"]
    assert (killed.rows, killed.scored, killed.heartbeat_at) == (10, 9, None)
    _migrate(empty_uri, "0004", down=True)
    engine = create_engine(parse_url(empty_uri))
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("batch_runs")}
    finally:
        engine.dispose()
    assert not {"heartbeat_at", "host", "pid"} & columns
