"""The Ray engine: the same job on Ray Data, locally (``ray.init()``) or on a cluster.

A pool of actors, each loading the model once (from the artifact folder, checked against its
manifest digest as everywhere else), scores the source with ``map_batches``:

- **Parquet** (a file or a folder of parts): the footers say where every chunk's rows are, so
  the driver hands out runs of chunk numbers and each actor reads its chunks itself and writes
  their parts exactly as the local engine does (:func:`modelport.batch.job.score_part`): the
  same part names, the same bytes, rejects with their row numbers, and a rerun after an
  interruption skips the finished parts.
- **CSV and JSON Lines**: where a chunk starts cannot be known without reading everything
  before it, so Ray Data reads the files in blocks and its writers write the parts. The rows
  and predictions equal the local engine's, but Ray names the part files (their names do not
  sort in row order), a reject's ``row`` is unknown (it carries its values, ids included), and
  an interrupted job starts over.

On a cluster the source and the sink must be on storage every node sees (a shared
filesystem today; object storage with the S3 store).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelport import _arrow_allocator
from modelport._extras import require
from modelport.batch import formats
from modelport.batch.job import (
    BatchResult,
    JobSpec,
    Progress,
    count_part,
    done_part,
    finish,
    output_table,
    plan_columns,
    prepare_sink,
    reject_lines,
    score_part,
    write_part,
)
from modelport.batch.rows import score_chunk
from modelport.errors import InvalidInput
from modelport.packaging import LoadedModel, load_artifact


class _ChunkScorer:
    """A Ray actor for a Parquet source: loads the model once, then scores and writes the
    runs of chunks it is given (``first``, ``count``), reading their rows itself."""

    def __init__(
        self,
        artifact: str,
        digest: str | None,
        trust_unsafe: bool,
        source: str,
        spec: JobSpec,
        features: list[str],
        passthrough: list[str],
        sink: str,
    ) -> None:
        self.model = load_artifact(
            Path(artifact), manifest_sha256=digest, trust_unsafe=trust_unsafe
        )
        self.source = formats.Source.open(Path(source), "parquet")
        self.spec = spec
        self.features = features
        self.passthrough = passthrough
        self.sink = Path(sink)

    def __call__(self, runs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self.spec
        fmt: formats.Format = spec.output_format  # type: ignore[assignment]
        counts: dict[str, list[int]] = {"rows": [], "scored": [], "rejected": []}
        for first, count in zip(runs["first"].tolist(), runs["count"].tolist(), strict=True):
            chunks = self.source.chunks(spec.chunk_rows, self.features, first=first)
            for index, chunk in zip(range(first, first + count), chunks, strict=False):
                part = score_part(
                    self.model,
                    chunk,
                    self.features,
                    spec.outputs or None,
                    self.passthrough,
                    spec.columns,
                )
                write_part(self.sink, index, part, fmt)
                for key, values in counts.items():
                    values.append(part.stats[key])
        return {key: np.array(values, dtype=np.int64) for key, values in counts.items()}


class _StreamScorer:
    """A Ray actor for CSV and JSON Lines: loads the model once, scores the batches Ray Data
    reads, writes their rejects and returns the scored rows for Ray's writers."""

    def __init__(
        self,
        artifact: str,
        digest: str | None,
        trust_unsafe: bool,
        features: list[str],
        outputs: list[str] | None,
        passthrough: list[str],
        rejects: str,
        columns: dict[str, list[str]] | None = None,
    ) -> None:
        self.model = load_artifact(
            Path(artifact), manifest_sha256=digest, trust_unsafe=trust_unsafe
        )
        self.features = features
        self.outputs = outputs
        self.passthrough = passthrough
        self.rejects = Path(rejects)
        self.columns = columns or {}

    def __call__(self, batch: pa.Table) -> pa.Table:
        scored = score_chunk(self.model, batch, self.features, self.outputs)
        if scored.rejected:
            name = self.rejects / f"ray-{uuid.uuid4().hex}.jsonl"
            tmp = name.with_name(f".{name.name}.tmp")
            tmp.write_bytes(reject_lines(batch, scored.rejected, None))
            tmp.replace(name)
        return output_table(batch, scored.kept, scored.outputs, self.passthrough, self.columns)


def run_ray(
    model: LoadedModel,
    spec: JobSpec,
    source: formats.Source,
    sink: Path,
    result: BatchResult,
    *,
    trust_unsafe: bool,
    address: str | None,
    overwrite: bool,
    max_reject_fraction: float,
    on_progress: Callable[[Progress], None] | None = None,
) -> BatchResult:
    """Score ``source`` into ``sink`` with Ray Data; fills and returns ``result``.

    ``on_progress`` hears of every finished chunk of a Parquet source; Ray Data's own
    writers (CSV and JSON Lines) report nothing until the end."""
    if "avro" in (source.format, spec.output_format):
        raise InvalidInput(
            "the ray engine reads and writes Parquet, CSV and JSON Lines; "
            "score Avro files with the local engine (--engine local)"
        )
    try:
        import ray
        import ray.data
    except ImportError:
        require("ray")  # MissingDependency: names modelport[ray]
        raise
    started = time.monotonic()
    prepare_sink(sink, spec, overwrite)
    passthrough, features = plan_columns(model, spec, source)
    owns = not ray.is_initialized()
    if owns:
        # The workers' allocator settings (modelport._arrow_allocator); values this process
        # has, whoever set them, win over modelport's. A Ray the caller started is theirs.
        env_vars = _arrow_allocator.defaults(os.environ)
        ray.init(
            address=address,
            runtime_env={"env_vars": env_vars},
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        job = _Job(
            model, spec, source, sink, trust_unsafe, features, passthrough, started, on_progress
        )
        (_score_chunks if source.format == "parquet" else _score_stream)(ray, job, result)
    finally:
        if owns:
            ray.shutdown()
    result.seconds = time.monotonic() - started
    return finish(result, sink, max_reject_fraction)


@dataclass(frozen=True, slots=True)
class _Job:
    """What both Ray paths need to know about the job."""

    model: LoadedModel
    spec: JobSpec
    source: formats.Source
    sink: Path
    trust_unsafe: bool
    features: list[str]
    passthrough: list[str]
    started: float
    """``time.monotonic()`` when the job began (progress counts from there)."""
    on_progress: Callable[[Progress], None] | None


def _score_chunks(ray: Any, job: _Job, result: BatchResult) -> None:
    """Parquet: chunk N is the local engine's chunk N, scored by whichever actor gets it."""
    spec, sink = job.spec, job.sink
    fmt: formats.Format = spec.output_format  # type: ignore[assignment]
    total = job.source.total_rows() or 0
    todo = []
    for index in range(-(-total // spec.chunk_rows)):
        stats = done_part(sink, index, fmt)
        if stats is None:
            todo.append(index)
        else:
            result.resumed_parts += 1
            count_part(result, stats)
    runs = _runs(todo, _chunks_per_task(job.source, spec.chunk_rows))
    if not runs:
        return
    items = [{"first": first, "count": count} for first, count in runs]
    with _without_remote_args_warning():
        scored = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _ChunkScorer,
            fn_constructor_args=(
                str(job.model.path),
                spec.manifest_sha256,
                job.trust_unsafe,
                str(job.source.path),
                spec,
                job.features,
                job.passthrough,
                str(sink),
            ),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=_actors(ray)),
            **_NO_RESTARTS,
        )
    for counts in scored.iter_rows():
        count_part(result, {key: int(value) for key, value in counts.items()})
        if job.on_progress is not None:
            seconds = time.monotonic() - job.started
            job.on_progress(Progress(result.rows, result.rejected, result.rows / total, seconds))


def _runs(indexes: list[int], longest: int) -> list[tuple[int, int]]:
    """Consecutive chunk numbers grouped into (first, count) runs of at most ``longest``."""
    runs: list[tuple[int, int]] = []
    for index in indexes:
        if runs and runs[-1][0] + runs[-1][1] == index and runs[-1][1] < longest:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((index, 1))
    return runs


def _chunks_per_task(source: formats.Source, chunk_rows: int) -> int:
    """Enough chunks per task to cover a row group, so that no row group is decoded by
    more than two tasks (a task reads from the start of the group its first chunk is in)."""
    largest = max(
        (
            meta.row_group(g).num_rows
            for meta in (pq.ParquetFile(f).metadata for f in source.files)
            for g in range(meta.num_row_groups)
        ),
        default=chunk_rows,
    )
    return max(1, -(-largest // chunk_rows))


def _score_stream(ray: Any, job: _Job, result: BatchResult) -> None:
    """CSV and JSON Lines: Ray Data reads the blocks and writes the parts."""
    spec, sink = job.spec, job.sink
    with _without_remote_args_warning():
        scored = _read(ray.data, job.source, job.features).map_batches(
            _StreamScorer,
            fn_constructor_args=(
                str(job.model.path),
                spec.manifest_sha256,
                job.trust_unsafe,
                job.features,
                spec.outputs or None,
                job.passthrough,
                str(sink / "_rejects"),
                spec.columns,
            ),
            batch_format="pyarrow",
            batch_size=spec.chunk_rows,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=_actors(ray)),
            **_NO_RESTARTS,
        )
    fmt = spec.output_format
    if fmt == "parquet":
        scored.write_parquet(str(sink))
    elif fmt == "csv":
        scored.write_csv(str(sink))
    else:
        scored.write_json(str(sink))
    result.scored = _count_rows(sink, fmt)
    result.rejected = sum(
        len(f.read_bytes().splitlines()) for f in (sink / "_rejects").glob("ray-*.jsonl")
    )
    result.rows = result.scored + result.rejected
    result.parts = len(formats.data_files(sink))


def _read(data: Any, source: formats.Source, features: list[str]) -> Any:  # Any: ray.data
    paths = [str(f) for f in source.files]
    if source.format == "parquet":
        return data.read_parquet(paths)
    if source.format == "csv":
        convert = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in features}, strings_can_be_null=True
        )
        return data.read_csv(paths, convert_options=convert)
    return data.read_json(paths, lines=True)


# A dead actor fails the job rather than being restarted: a rerun resumes from the finished
# parts, and Ray logs an error-level line for every restartable actor whose constructor
# arguments sit in the object store (it did so on every successful job). Ray 2.60 deprecates
# passing actor options this way but has no named parameter for this one yet (pyproject caps
# ray below 2.64, which removes it), so that one warning is silenced where the options go in.
_NO_RESTARTS: dict[str, Any] = {"max_restarts": 0}
_REMOTE_ARGS_DEPRECATED = "`ray_remote_args` is deprecated"


@contextlib.contextmanager
def _without_remote_args_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape(_REMOTE_ARGS_DEPRECATED))
        yield


def _actors(ray: Any) -> int:
    """The most scoring actors: one CPU is left for the read and write tasks, since with
    every CPU held by an actor nothing would be left to read their input."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, cpus - 1)


def _count_rows(sink: Path, fmt: str) -> int:
    total = 0
    for part in formats.data_files(sink):
        if fmt == "parquet":
            total += pq.ParquetFile(part).metadata.num_rows
        elif fmt == "csv":
            total += max(0, len(part.read_bytes().splitlines()) - 1)
        else:
            total += len(part.read_bytes().splitlines())
    return total
