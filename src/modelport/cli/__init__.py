"""The ``modelport`` command line: parses flags, calls the library, prints the result.

Every error modelport raises on purpose is printed as one line, ``error: <message>``, and the
process exits with that error's ``exit_code`` (2 bad input or name, 3 not found, 4 conflict,
5 unusable artifact, 6 store failure, 7 server unavailable, 1 anything else). ``drift`` exits
:data:`DRIFT_FOUND` when a feature drifts, a code no error uses, so that an alerting script
can tell drift from a misspelled model.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Annotated, Any

import typer

from modelport._arrow_allocator import set_defaults as set_allocator_defaults
from modelport.cli import batch, convert, db, k8s, keys, monitoring, registry, serving, signing
from modelport.cli._shared import err, out, state
from modelport.cli.monitoring import DRIFT_FOUND
from modelport.config import Settings
from modelport.errors import ModelportError

__all__ = ["DRIFT_FOUND", "app", "main"]


app = typer.Typer(
    help="Package, version and run machine-learning models.\n\n"
    "Refs name a model everywhere: NAME (latest ready version), NAME/3, NAME@ALIAS, or a path "
    "to an artifact folder or .tar bundle. A path starts with ./, / or ~, ends in .tar, or has "
    "folders (out/churn): a plain NAME is always the registry's, whatever is in the current "
    "directory.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"modelport {_dist_version('modelport')}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    home: Annotated[
        Path | None, typer.Option(help="Registry home folder \\[env: MODELPORT_HOME]")
    ] = None,
    registry_uri: Annotated[
        str | None,
        typer.Option(help="sqlite:///... or postgresql://... \\[env: MODELPORT_REGISTRY_URI]"),
    ] = None,
    artifact_uri: Annotated[
        str | None, typer.Option(help="Artifact folder \\[env: MODELPORT_ARTIFACT_URI]")
    ] = None,
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option(
            help="Public key (PEM) you trust, repeatable: a folder or bundle signed by it may "
            "run its own code (pyfunc) and load its pickles as they are "
            "\\[env: MODELPORT_TRUSTED_KEYS, a JSON list]"
        ),
    ] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Read settings: flags first, then MODELPORT_* environment variables, then defaults."""
    given: dict[str, Any] = {
        "home": home,
        "registry_uri": registry_uri,
        "artifact_uri": artifact_uri,
        "trusted_keys": trusted_key or None,
    }
    state.settings = Settings(**{k: v for k, v in given.items() if v is not None})
    state.debug = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr)


# The commands, in the order `modelport --help` lists them (each named after its function:
# prune_log is prune-log); the groups come after them.
_COMMANDS: tuple[Callable[..., None], ...] = (
    registry.register,
    registry.models,
    registry.versions,
    registry.info,
    serving.predict,
    registry.delete,
    registry.edit,
    registry.pack,
    registry.unpack,
    convert.convert,
    convert.export,
    signing.keygen,
    signing.sign,
    signing.verify,
    registry.cleanup,
    serving.serve,
    k8s.k8s,
    monitoring.drift,
    monitoring.feedback,
    monitoring.prune_log,
    monitoring.quality,
    batch.batch,
    batch.runs,
)
for _command in _COMMANDS:
    app.command()(_command)
app.add_typer(registry.alias_app, name="alias")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(db.db_app, name="db")


def _reflowed(doc: str) -> str:
    """A docstring as ``--help`` text: each paragraph's lines joined, so the terminal wraps
    them (rich keeps a docstring's own line breaks, which broke sentences mid-line); a
    paragraph that is a list or an example keeps its lines."""
    paragraphs = []
    for paragraph in inspect.cleandoc(doc).split("\n\n"):
        lines = paragraph.splitlines()
        if any(line.startswith((" ", "-", "*", ">>>", "$")) for line in lines):
            paragraphs.append(paragraph)
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


for _app in (app, registry.alias_app, keys.keys_app, db.db_app):
    for _info in _app.registered_commands:
        if _info.help is None and _info.callback is not None and _info.callback.__doc__:
            _info.help = _reflowed(_info.callback.__doc__)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning ModelportError into one line and an exit code."""
    # The process is the command's own, so it may set Arrow's allocator up for batch jobs
    # (and their Ray workers); nothing has imported pyarrow yet.
    set_allocator_defaults()
    try:
        app(args=argv)
    except ModelportError as exc:
        if state.debug:
            raise
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        sys.exit(exc.exit_code)
