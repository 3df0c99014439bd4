"""What the command line looks like: help without stray markup, one-line summaries, a
readable ``runs`` at 80 columns, and one duration syntax for every --older-than."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.main import get_command

import modelport
from modelport.cli import app
from modelport.registry import BatchRun

from ._cli import cli


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "80")
    return tmp_path / "home"


def test_help_shows_defaults_and_no_stray_markup(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one help line per option
    text = cli(capsys, "serve", "--help").out
    assert "[default: 127.0.0.1]" in text
    assert "[default: 8000]" in text
    assert " ." not in text, "a bracketed default eaten as markup left ' .' behind"
    top = cli(capsys, "--help").out
    assert "[env: MODELPORT_HOME]" in top


def test_help_paragraphs_wrap_at_the_terminal_not_at_the_docstring(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A docstring's own line breaks cut sentences mid-line at any other width."""
    monkeypatch.setenv("COLUMNS", "200")
    text = cli(capsys, "serve", "--help").out
    assert "a new version is loaded and warmed beside the old one, then traffic" in text
    listed = cli(capsys, "convert", "--help").out
    assert "on rows drawn from its reference profile" in listed


def test_every_command_summary_is_one_line() -> None:
    """The first paragraph of a command's help is its line in ``modelport --help``."""
    group = get_command(app)

    def walk(command: object, prefix: str) -> list[str]:
        found = []
        for name, sub in getattr(command, "commands", {}).items():
            first = (sub.help or "").strip().split("\n\n")[0]
            if "\n" in first or len(first) > 90:
                found.append(f"{prefix}{name}: {first!r}")
            found += walk(sub, f"{prefix}{name} ")
        return found

    assert walk(group, "") == []


def test_runs_fits_80_columns(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        registry.runs.record_run(
            BatchRun(
                run_id="r1",
                model="churn",
                version=3,
                source="/data/warehouse/exports/customers-2026-12-01.parquet",
                sink="/data/warehouse/scores/customers-2026-12-01.parquet",
                engine="local",
                status="succeeded",
                rows=1_000_000,
                scored=999_988,
                rejected=12,
                started_at=started,
                finished_at=started + timedelta(seconds=4.2),
            )
        )
    lines = cli(capsys, "runs").out.splitlines()
    assert lines[0] == (
        "2026-12-01 08:30 churn/3 succeeded: 1,000,000 rows, 12 rejected, 4.2 s, local"
    )
    assert len(lines[0]) <= 80
    assert lines[1] == (
        "  /data/warehouse/exports/customers-2026-12-01.parquet -> "
        "/data/warehouse/scores/customers-2026-12-01.parquet"
    )


def test_older_than_is_a_duration_everywhere(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "cleanup", "--older-than", "90m").code == 0
    assert cli(capsys, "prune-log", "--older-than", "30d").code == 0
    refused = cli(capsys, "cleanup", "--older-than", "60")
    assert refused.code == 2
    assert "window '60' is not a duration such as 30m, 1h or 7d" in refused.err
