"""Shared fixtures: a clean environment, a fresh PostgreSQL database per session, and the
``store``/``registry`` fixtures that run one test suite on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from modelport.config import Settings
from modelport.registry import Registry
from modelport.registry.sql import SqlStore
from tests.s3server import S3Server, moto_server

# Read at import, before the autouse fixture below clears MODELPORT_* for each test.
PG_URL = os.environ.get("MODELPORT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/")
_TABLES = (
    "alias_history",
    "aliases",
    "model_versions",
    "models",
    "api_keys",
    "prediction_log",
    "feedback",
    "batch_runs",
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's MODELPORT_* settings out of the tests."""
    for key in list(os.environ):
        if key.startswith("MODELPORT_"):
            monkeypatch.delenv(key)


def _admin_url() -> URL:
    url = make_url(PG_URL).set(drivername="postgresql")
    return url if url.database else url.set(database="postgres")


def _admin_execute(statement: sql.Composed) -> None:
    conninfo = _admin_url().render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {_admin_url().render_as_string()} is not reachable ({exc}); "
            "set MODELPORT_TEST_DATABASE_URL or deselect with -m 'not postgres'"
        )


def create_pg_database() -> str:
    """Create an empty database and return its URI (``postgresql://...``)."""
    name = f"modelport_test_{secrets.token_hex(6)}"
    _admin_execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _admin_url().set(database=name).render_as_string(hide_password=False)


def drop_pg_database(uri: str) -> None:
    """Drop a database made by :func:`create_pg_database`, even with sessions still open."""
    name = make_url(uri).database
    assert name is not None
    assert name.startswith("modelport_test_")
    _admin_execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One fresh database for the whole session; dropped at the end."""
    uri = create_pg_database()
    yield uri
    drop_pg_database(uri)


@pytest.fixture
def fresh_pg_database() -> Iterator[str]:
    """A fresh, never-migrated database for one test (first-open races, migrations)."""
    uri = create_pg_database()
    yield uri
    drop_pg_database(uri)


def _truncate(uri: str) -> None:
    conninfo = make_url(uri).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        tables = sql.SQL(", ").join(sql.Identifier(t) for t in _TABLES)
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def registry_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A metadata store URI for each backend; PostgreSQL tables are emptied after each test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    uri: str = request.getfixturevalue("pg_database")
    yield uri
    _truncate(uri)


@pytest.fixture
def store(registry_uri: str) -> Iterator[SqlStore]:
    """The SQL store on each backend, closed after the test."""
    with SqlStore(registry_uri) as opened:
        yield opened


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def artifact_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An artifact store for each kind: a local folder under ``tmp_path``, and a fresh bucket
    on moto's S3 server."""
    if request.param == "local":
        return str(tmp_path / "artifacts")
    uri: str = request.getfixturevalue("s3_uri")
    return uri


@pytest.fixture
def registry(registry_uri: str, artifact_uri: str, tmp_path: Path) -> Iterator[Registry]:
    """A registry on each metadata backend and each artifact store, its host cache under
    ``tmp_path``."""
    settings = Settings(home=tmp_path / "home", cache_dir=tmp_path / "cache")
    with Registry(settings, registry_uri=registry_uri, artifact_uri=artifact_uri) as opened:
        yield opened


@pytest.fixture(scope="session")
def tiny_data() -> tuple[np.ndarray, np.ndarray]:
    """Twenty rows, three features, a binary target."""
    features = np.random.default_rng(0).normal(size=(20, 3))
    return features, (features[:, 0] > 0).astype(np.int64)


@pytest.fixture(scope="session")
def tiny_model(tiny_data: tuple[np.ndarray, np.ndarray]) -> object:
    """A fitted LogisticRegression, small enough to save in milliseconds."""
    from sklearn.linear_model import LogisticRegression  # only the tests that use it pay

    features, target = tiny_data
    return LogisticRegression().fit(features, target)


@pytest.fixture
def make_version(store: SqlStore) -> Callable[..., int]:
    """Create a version and, unless ``ready=False``, mark it ready; returns its number."""

    def make(name: str = "churn", *, ready: bool = True) -> int:
        created = store.create_version(name, flavor="sklearn")
        if ready:
            store.mark_version_ready(
                name, created.version, artifact_key=created.artifact_key, manifest_sha256="0" * 64
            )
        return created.version

    return make


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's standalone S3 server, one per test worker, as a process on a free port."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def s3_uri(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<a new bucket>/prefix``, with the AWS variables that reach it set for this
    test (and inherited by the processes it starts)."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = f"mp-test-{secrets.token_hex(6)}"
    s3_server.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return f"s3://{bucket}/prod"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that start processes of their own run first (in their files' order): under
    ``make test``'s two workers they are spread over both from the start, and the many quick
    in-process tests fill the gaps, instead of one long test running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
