"""Run the ``modelport`` command line in this process (faster than a subprocess)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from modelport.cli import main


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """``modelport ARGS``: its exit code, stdout and stderr (MODELPORT_* from the test's env)."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)
