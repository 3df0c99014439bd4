"""Batch scoring: score a file in chunks, list the runs."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from modelport.cli._shared import err, open_registry, out, state


class _Engine(StrEnum):
    local = "local"
    ray = "ray"


def batch(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/3, NAME@ALIAS or a path.")],
    source: Annotated[
        str,
        typer.Argument(help="Input: .csv, .parquet, .jsonl, .avro, a folder, or s3://BUCKET/KEY."),
    ],
    sink: Annotated[
        str, typer.Argument(help="Output folder of part files (scores.parquet, s3://BUCKET/KEY).")
    ],
    id_column: Annotated[
        list[str] | None, typer.Option(help="Column copied to the output (repeatable).")
    ] = None,
    keep: Annotated[
        list[str] | None, typer.Option(help="More input columns to copy (repeatable).")
    ] = None,
    probabilities: Annotated[
        bool, typer.Option(help="Add a column per class (probabilities_churn, ...).")
    ] = False,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk and part file.")] = 50_000,
    max_reject_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fail when more rows than this are rejected.")
    ] = 0.01,
    input_format: Annotated[
        str | None, typer.Option(help="csv, parquet, jsonl or avro \\[default: from the name].")
    ] = None,
    output_format: Annotated[
        str | None, typer.Option(help="csv, parquet, jsonl or avro \\[default: from the name].")
    ] = None,
    engine: Annotated[_Engine, typer.Option(help="local, or ray (Ray Data).")] = _Engine.local,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (auto, ray://...) \\[default: local].")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an output folder that holds another job.")
    ] = False,
    require_signed: Annotated[
        Path | None,
        typer.Option(
            help="Ed25519 public key (see `modelport keygen`): refuse a model not signed with it."
        ),
    ] = None,
    trust_unsafe: Annotated[
        bool,
        typer.Option(
            help="Load a folder or bundle REF as it is: its code (pyfunc) runs and its "
            "pickles skip the allow-list. Only for code you trust."
        ),
    ] = False,
) -> None:
    """Score a file of any size in chunks; bad rows go to SINK/_rejects with the reason.

    Run the same command again after an interruption: finished parts are kept and the
    result is the same, byte for byte. Exit 1 when more than --max-reject-fraction of the
    rows are rejected. s3:// sources and sinks use the AWS credentials chain and
    AWS_ENDPOINT_URL (needs modelport[s3]; local engine only).
    """
    from modelport import batch as batching

    def run(on_progress: Callable[[batching.Progress], None] | None) -> batching.BatchResult:
        return batching.score(
            ref,
            source,
            sink,
            id_columns=id_column or [],
            keep=keep or [],
            probabilities=probabilities,
            chunk_rows=chunk_rows,
            max_reject_fraction=max_reject_fraction,
            input_format=input_format,
            output_format=output_format,
            engine="ray" if engine is _Engine.ray else "local",
            address=address,
            overwrite=overwrite,
            require_signed=require_signed,
            trust_unsafe=trust_unsafe,
            settings=state.settings,
            on_progress=on_progress,
        )

    result = _with_progress(run) if err.is_terminal else run(_progress_lines())
    line = (
        f"{result.status}: {result.rows} rows, {result.scored} scored, {result.rejected} "
        f"rejected, {result.parts} parts ({result.resumed_parts} already done) in "
        f"{result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s) -> {result.sink}"
    )
    out.print(line, markup=False, highlight=False)
    if result.status != "succeeded":
        err.print(f"error: {result.error}", markup=False, highlight=False)
        raise typer.Exit(1)


def _with_progress(run: Callable[[Any], Any]) -> Any:
    """A rich progress bar: rows done, rows/s, time left (when the size is known)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.fields[rows]:,} rows"),
        BarColumn(),
        TextColumn("{task.fields[rate]:,.0f} rows/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("scoring", total=1.0, rows=0, rate=0.0)

        def update(p: Any) -> None:
            rate = p.rows / p.seconds if p.seconds > 0 else 0.0
            bar.update(task, completed=p.fraction or 0.0, rows=p.rows, rate=rate)

        return run(update)


def _progress_lines() -> Callable[[Any], None]:
    """Not a terminal: a plain line every 10 seconds."""
    last = [0.0]

    def update(p: Any) -> None:
        if p.seconds - last[0] >= 10.0:
            last[0] = p.seconds
            done = f", {p.fraction:.0%}" if p.fraction is not None else ""
            line = f"{p.rows:,} rows scored ({p.rejected:,} rejected{done}) in {p.seconds:.0f} s"
            err.print(line, markup=False, highlight=False)

    return update


def runs(
    name: Annotated[str | None, typer.Argument(help="Model name \\[default: all].")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Batch runs: which model version scored which input, rows, rejects, duration.

    A run is running, succeeded, failed, or abandoned: still marked running, but its
    process is gone (killed, or not heard from for a minute)."""
    with open_registry() as reg:
        found = reg.runs.list_runs(name, limit)
    if as_json:
        out.print_json(
            data=[
                {
                    "run_id": r.run_id,
                    "model": r.model,
                    "version": r.version,
                    "source": r.source,
                    "sink": r.sink,
                    "engine": r.engine,
                    "status": r.status,
                    "rows": r.rows,
                    "scored": r.scored,
                    "rejected": r.rejected,
                    "started_at": r.started_at.isoformat(),
                    "seconds": r.seconds,
                    "error": r.error,
                    "heartbeat_at": r.heartbeat_at.isoformat() if r.heartbeat_at else None,
                    "host": r.host,
                    "pid": r.pid,
                }
                for r in found
            ]
        )
        return
    # Two lines a run, so that long paths never squeeze the figures at 80 columns.
    for r in found:
        ref = r.model if r.version is None else f"{r.model}/{r.version}"
        took = "" if r.seconds is None else f", {r.seconds:.1f} s"
        out.print(
            f"{r.started_at:%Y-%m-%d %H:%M} {ref} {r.status}: {r.rows:,} rows, "
            f"{r.rejected:,} rejected{took}, {r.engine}",
            markup=False,
            highlight=False,
        )
        out.print(f"  {r.source} -> {r.sink}", markup=False, highlight=False)
        if r.error:
            out.print(f"  error: {r.error}", markup=False, highlight=False)
        if r.status == "abandoned":
            heard = r.heartbeat_at or r.started_at
            where = f"process {r.pid} on {r.host}" if r.host else "its process"
            out.print(
                f"  not heard from since {heard:%Y-%m-%d %H:%M:%S}: {where} is gone; "
                "rerun the same command to resume from its finished parts",
                markup=False,
                highlight=False,
            )
