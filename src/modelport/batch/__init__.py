"""Batch scoring: stream a file of any size through a model, on this machine or on Ray.

>>> from modelport import batch
>>> result = batch.score("churn@production", "customers.parquet", "scores.parquet",
...                      id_columns=["customer_id"])
>>> result.scored, result.rejected
(999_998, 2)

The sink is a folder of part files; see :mod:`modelport.batch.job` for its layout, how bad
rows are set aside and how an interrupted job resumes. Sources and sinks may also be
``s3://bucket/prefix`` URIs (:mod:`modelport.batch.s3`, local engine only).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from modelport._extras import require
from modelport._identity import current_user

try:
    from modelport.batch import formats, s3
    from modelport.batch.heartbeat import Heartbeat
    from modelport.batch.job import (
        BatchResult,
        JobSpec,
        Progress,
        Sink,
        class_columns,
        new_run_id,
        run_local,
    )
except ImportError:
    require("batch")  # names the missing package and modelport[batch]
    raise
from modelport.config import Settings
from modelport.errors import InvalidInput
from modelport.packaging import LoadedModel
from modelport.ref import ModelRef
from modelport.registry import BatchRun, Registry

__all__ = ["BatchResult", "Progress", "score"]

Engine = Literal["local", "ray"]


def score(
    ref: str | Path,
    source: str | Path,
    sink: str | Path,
    *,
    id_columns: Sequence[str] = (),
    keep: Sequence[str] = (),
    probabilities: bool = False,
    chunk_rows: int = 50_000,
    max_reject_fraction: float = 0.01,
    input_format: str | None = None,
    output_format: str | None = None,
    engine: Engine = "local",
    address: str | None = None,
    overwrite: bool = False,
    require_signed: str | Path | None = None,
    trust_unsafe: bool = False,
    settings: Settings | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> BatchResult:
    """Score every row of ``source`` with the model ``ref`` into the folder ``sink``.

    ``source`` and ``sink`` may be ``s3://bucket/prefix`` URIs (as strings), with the local
    engine: the source is staged to a temporary folder, each part is uploaded whole (see
    :mod:`modelport.batch.s3`).

    ``id_columns`` and ``keep`` are copied from the input to the output beside the
    prediction columns (one per model output, named after it; ``probabilities`` adds the
    classifier's class probabilities, one column per class named after it, e.g.
    ``probabilities_churn``, ``probabilities_stay``; see
    :func:`modelport.batch.job.labelled_columns`).
    Rows that cannot be scored go to ``sink/_rejects/``; if more than
    ``max_reject_fraction`` of all rows are rejected the result's status is ``failed``.
    Every run is recorded in the registry (``modelport runs NAME``).

    The model loads with every check (see :meth:`modelport.registry.Registry.load`), from
    one resolution of ``ref``: the run record names the version that scored even if an alias
    moves meanwhile. ``require_signed`` (a PEM Ed25519 public key file) refuses an artifact
    not signed by that key or changed since it was signed; ``trust_unsafe`` loads a folder or
    bundle ``ref`` as it is (its code runs), for code you trust.
    """
    if chunk_rows < 1:
        raise InvalidInput("chunk_rows must be at least 1")
    if not 0.0 <= max_reject_fraction <= 1.0:
        raise InvalidInput("max_reject_fraction must be between 0 and 1")
    if engine == "ray" and (s3.is_s3(source) or s3.is_s3(sink)):
        raise InvalidInput(
            "the ray engine reads and writes local or shared folders, not s3:// URIs; "
            "score them with the local engine (--engine local)"
        )
    settings = settings or Settings()
    with ExitStack() as stack:
        ends = _open(stack, source, sink, input_format, output_format, settings)
        src, out = ends.source, ends.sink
        registry = stack.enter_context(Registry(settings))
        parsed = ModelRef.parse(str(ref))
        model = registry.load(  # resolved once: the record names the version that scores
            parsed,
            require_signed=require_signed,
            trust_unsafe=trust_unsafe,
            trusted_by=f"--trust-unsafe by {current_user()}" if trust_unsafe else None,
        )
        name, version = parsed.name or model.name, model.version
        wanted = [
            s.name for s in model.signature.outputs if probabilities or s.name != "probabilities"
        ] or None
        spec = JobSpec(
            model=name,
            version=version,
            manifest_sha256=model.manifest_sha256,
            source=ends.fingerprint,
            chunk_rows=chunk_rows,
            id_columns=list(id_columns),
            keep=list(keep),
            outputs=wanted or [],
            output_format=ends.format,
            columns=class_columns(model, wanted),
        )
        result = BatchResult(new_run_id(), name, version, ends.shown, str(out))
        result.outputs = list(spec.outputs)
        started = datetime.now(UTC)
        registry.runs.record_run(_record(result, engine, started, heartbeat=started))
        try:
            with Heartbeat(
                registry.runs, lambda now: _record(result, engine, started, heartbeat=now)
            ):
                _run(
                    engine,
                    model,
                    spec,
                    src,
                    out,
                    result,
                    address=address,
                    overwrite=overwrite,
                    max_reject_fraction=max_reject_fraction,
                    on_progress=on_progress,
                )
        except BaseException as exc:
            result.status, result.error = "failed", str(exc) or type(exc).__name__
            registry.runs.record_run(_record(result, engine, started, datetime.now(UTC)))
            raise
        registry.runs.record_run(_record(result, engine, started, datetime.now(UTC)))
    return result


@dataclass(frozen=True, slots=True)
class _Ends:
    """A job's source and sink, opened."""

    source: formats.Source
    fingerprint: list[list[object]]
    """What the job record says of the source (a resumed job checks it)."""
    shown: str
    """The source as the run record and the summary name it."""
    sink: Path | Sink
    format: formats.Format
    """The sink's."""


def _open(
    stack: ExitStack,
    source: str | Path,
    sink: str | Path,
    input_format: str | None,
    output_format: str | None,
    settings: Settings,
) -> _Ends:
    """Open a local source first (its errors come first, as before S3), then the sink (an
    S3 sink's bucket is checked before anything is downloaded), then stage an S3 source.
    What is staged is deleted when ``stack`` closes."""
    src = None if s3.is_s3(source) else formats.Source.open(Path(source), input_format)
    out = stack.enter_context(s3.S3Sink(str(sink), settings)) if s3.is_s3(sink) else Path(sink)
    if src is None:
        src, fingerprint = stack.enter_context(
            s3.staged_source(str(source), input_format, settings)
        )
        shown = str(source)
    else:
        fingerprint, shown = src.fingerprint(), str(src.path)
    return _Ends(src, fingerprint, shown, out, _sink_format(out, output_format, src.format))


def _sink_format(
    out: Path | Sink, given: str | None, source_format: formats.Format
) -> formats.Format:
    """``given``, else the sink's suffix (a local folder: its parts'), else the source's
    format (``s3://data/scores/``)."""
    try:
        if isinstance(out, Path):
            return formats.format_of(out, given)
        return formats.format_named(str(out), given)
    except InvalidInput:
        if given is not None:
            raise
        return source_format


def _run(
    engine: Engine,
    model: LoadedModel,
    spec: JobSpec,
    src: formats.Source,
    out: Path | Sink,
    result: BatchResult,
    *,
    address: str | None,
    overwrite: bool,
    max_reject_fraction: float,
    on_progress: Callable[[Progress], None] | None,
) -> None:
    """Run the job on ``engine``: ``src`` into the folder ``out``, filling in ``result``."""
    if engine == "local":
        run_local(
            model,
            spec,
            src,
            out,
            result,
            overwrite=overwrite,
            max_reject_fraction=max_reject_fraction,
            on_progress=on_progress,
        )
    elif engine == "ray":
        from modelport.batch.ray_engine import run_ray

        assert isinstance(out, Path)  # score refuses s3:// for Ray

        run_ray(
            model,
            spec,
            src,
            out,
            result,
            trust_unsafe=model.trusted_by is not None,  # as the driver decided
            address=address,
            overwrite=overwrite,
            max_reject_fraction=max_reject_fraction,
            on_progress=on_progress,
        )
    else:
        raise InvalidInput(f"unknown engine {engine!r} (local, ray)")


def _record(
    result: BatchResult,
    engine: str,
    started: datetime,
    finished: datetime | None = None,
    *,
    heartbeat: datetime | None = None,
) -> BatchRun:
    return BatchRun(
        run_id=result.run_id,
        model=result.model,
        version=result.version,
        source=result.source,
        sink=result.sink,
        engine=engine,
        status=result.status,
        rows=result.rows,
        scored=result.scored,
        rejected=result.rejected,
        started_at=started,
        finished_at=finished,
        error=result.error,
        heartbeat_at=heartbeat or finished,
        host=socket.gethostname(),
        pid=os.getpid(),
    )
