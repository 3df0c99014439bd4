"""Run the ``modelport`` command line: in this process (fast, the default), or as the real
console script in a child process (only where the process itself is the point).

In process, every command reads its settings afresh: the app's callback builds a new
``Settings`` from the flags and the MODELPORT_* environment on each call, so a test sets
MODELPORT_HOME with ``monkeypatch.setenv`` before calling :func:`cli`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelport.cli import _shared, main


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """``modelport ARGS``: its exit code, stdout and stderr (MODELPORT_* from the test's env)."""
    capsys.readouterr()
    # A console takes its width from COLUMNS when it is made, once per process; a fresh
    # process per command would read the test's COLUMNS, so each call here does too.
    columns = os.environ.get("COLUMNS", "")
    for console in (_shared.out, _shared.err):
        console.width = int(columns) if columns.isdigit() else 80
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def console_command(*args: str) -> list[str]:
    """The installed ``modelport`` console script with ARGS, for a child process."""
    return [str(Path(sys.executable).with_name("modelport")), *args]


def console_env(home: Path) -> dict[str, str]:
    """This environment without MODELPORT_*, but MODELPORT_HOME=home and 200 columns."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    env["MODELPORT_HOME"] = str(home)
    env["COLUMNS"] = "200"
    return env


def run_console(home: Path, *args: str) -> CliResult:
    """``modelport ARGS`` as a real process (about 2.5 s of imports: use :func:`cli`)."""
    done = subprocess.run(
        console_command(*args),
        capture_output=True,
        text=True,
        env=console_env(home),
        timeout=300,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)
