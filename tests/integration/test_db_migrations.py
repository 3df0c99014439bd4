"""Explicit migrations on a shared database: PostgreSQL with an older schema is refused until
``modelport db upgrade``; a schema from a newer modelport is refused everywhere and left as it
is; SQLite still upgrades itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest
import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sklearn.linear_model import LogisticRegression
from sqlalchemy.engine import make_url

import modelport
from modelport.registry.sql._engine import MIGRATIONS_DIR

from ._cli import cli
from ._server import free_port

_SCRIPT = ScriptDirectory(str(MIGRATIONS_DIR))
HEAD = str(_SCRIPT.get_current_head())
OLDER = str(_SCRIPT.get_revision(HEAD).down_revision)


def _register(uri: str, home: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    settings = modelport.Settings(home=home, registry_uri=uri)
    with modelport.Registry(settings) as registry:
        registry.register("churn", model, input_example=x[:2])


def _alembic(uri: str, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine_url = make_url(uri).set(drivername="postgresql+psycopg")
    engine = sqlalchemy.create_engine(engine_url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            getattr(command, action)(config, revision)
    finally:
        engine.dispose()


def _revision(uri: str) -> str:
    conninfo = make_url(uri).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture
def older_pg(fresh_pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A PostgreSQL registry with a model, migrated back to the revision before head."""
    _register(fresh_pg_database, tmp_path / "home")
    _alembic(fresh_pg_database, "downgrade", OLDER)
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    # Trust auth ignores the password; it is there to show that no message carries it.
    with_password = make_url(fresh_pg_database).set(password="hunter2")
    monkeypatch.setenv("MODELPORT_REGISTRY_URI", with_password.render_as_string(False))
    return fresh_pg_database


@pytest.mark.postgres
def test_an_older_shared_schema_is_refused_until_db_upgrade(
    older_pg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(capsys, "versions", "churn")
    assert result.code == 6, result.err
    line = result.err.strip()
    assert "\n" not in line
    assert f"schema revision {OLDER}" in line
    assert f"needs {HEAD}" in line
    assert "modelport db upgrade" in line
    assert make_url(older_pg).database in line  # type: ignore[operator]
    assert "***" in line
    assert "hunter2" not in result.err
    assert _revision(older_pg) == OLDER  # opening did not migrate it

    served = cli(capsys, "serve", "churn", "--port", str(free_port()))
    assert served.code == 6, served.err
    assert "modelport db upgrade" in served.err

    current = cli(capsys, "db", "current", "--json")
    assert current.code == 0, current.err
    assert json.loads(current.out) == {
        "current": OLDER,
        "head": HEAD,
        "known": True,
        "needs_upgrade": True,
    }
    assert "upgrade needed" in cli(capsys, "db", "current").out

    upgraded = cli(capsys, "db", "upgrade")
    assert upgraded.code == 0, upgraded.err
    assert upgraded.out.strip() == f"upgraded {OLDER} -> {HEAD}"
    assert _revision(older_pg) == HEAD

    again = cli(capsys, "db", "upgrade")
    assert again.out.strip() == f"already at {HEAD}"
    listed = cli(capsys, "versions", "churn", "--json")
    assert listed.code == 0, listed.err
    assert [v["version"] for v in json.loads(listed.out)] == [1]
    assert json.loads(cli(capsys, "db", "current", "--json").out)["needs_upgrade"] is False


@pytest.mark.postgres
def test_an_empty_shared_database_gets_its_schema_on_first_open(
    fresh_pg_database: str, tmp_path: Path
) -> None:
    _register(fresh_pg_database, tmp_path / "home")
    assert _revision(fresh_pg_database) == HEAD


@pytest.mark.postgres
def test_a_schema_from_a_newer_modelport_is_refused_and_untouched(
    older_pg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _alembic(older_pg, "upgrade", "head")
    conninfo = make_url(older_pg).set(drivername="postgresql").render_as_string()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    for args in (("versions", "churn"), ("db", "upgrade")):
        result = cli(capsys, *args)
        assert result.code == 6, (args, result.err)
        assert "schema revision 9999, unknown to this modelport" in result.err
    assert _revision(older_pg) == "9999"
    current = json.loads(cli(capsys, "db", "current", "--json").out)
    assert current == {"current": "9999", "head": HEAD, "known": False, "needs_upgrade": False}


def test_sqlite_still_upgrades_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    uri = f"sqlite:///{home / 'registry.db'}"
    _register(uri, home)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", uri)
    engine = sqlalchemy.create_engine(uri)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, OLDER)
    engine.dispose()
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    assert json.loads(cli(capsys, "db", "current", "--json").out)["current"] == OLDER
    result = cli(capsys, "versions", "churn")
    assert result.code == 0, result.err
    assert json.loads(cli(capsys, "db", "current", "--json").out)["current"] == HEAD
