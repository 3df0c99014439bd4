"""One batch job on this machine: chunks in, part files out, resumable, with a run record.

The sink is a folder (``scores.parquet/`` holding ``part-00000.parquet``, ... as Spark and
pyarrow datasets do; readers skip the ``_``-prefixed files beside them):

- ``_job.json``: what the job is (model version and manifest digest, source files with sizes
  and times, chunk size, options). A second run with the same job resumes; a different job
  is refused unless ``overwrite``.
- ``part-NNNNN.<fmt>``: the scored rows of chunk N, made visible by a rename once whole.
- ``_rejects/part-NNNNN.jsonl``: the rows of chunk N that could not be scored, one JSON
  object each: ``{"row": <0-based row in the source>, "reason": ..., "values": {...}}``.
- ``_stats/part-NNNNN.json``: rows in, scored, rejected; written before the part itself.
- ``_SUCCESS``: the summary, once every part is there and the reject share is acceptable.

Chunk N is always the same rows of the source, and parts are written deterministically, so
a job killed at any moment and run again skips the finished parts and ends with the same
bytes as an uninterrupted run. Reading, scoring and writing overlap: a thread reads the next
chunk and another writes the previous part while this one is scored.

The local engine writes through a :class:`Sink`: a local folder (:class:`FolderSink`, the
functions below) or an S3 prefix (:class:`modelport.batch.s3.S3Sink`), with the same layout,
the same bytes and the same order of writes.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from modelport.batch import formats
from modelport.batch.rows import feature_columns, score_chunk
from modelport.errors import InvalidInput
from modelport.packaging import LoadedModel

_PREFETCH = 1  # chunks read ahead, parts waiting to be written: one hides the latency
_RUN_ONLY = (
    "seconds",
    "rows_per_second",
    "run_id",
    "resumed_parts",
    "status",
    "error",
    "sink",
)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a running job stands (passed to the ``on_progress`` callback)."""

    rows: int
    rejected: int
    fraction: float | None
    """Share of the source read so far, when it can be known."""
    seconds: float


@dataclass(slots=True)
class BatchResult:
    """What a job did."""

    run_id: str
    model: str
    version: int | None
    source: str
    sink: str
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    parts: int = 0
    resumed_parts: int = 0
    seconds: float = 0.0
    status: str = "running"
    error: str | None = None
    outputs: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 1)}


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything that decides the output bytes; a resumed job must match it exactly."""

    model: str
    version: int | None
    manifest_sha256: str | None
    source: list[list[object]]
    chunk_rows: int
    id_columns: list[str]
    keep: list[str]
    outputs: list[str]
    output_format: str
    columns: dict[str, list[str]] = field(default_factory=dict)
    """The output columns of each 2-D output whose columns have labels (a classifier's
    ``probabilities``: one per class, see :func:`labelled_columns`)."""


class Sink(Protocol):
    """Where a job's parts go: a local folder (:class:`FolderSink`) or an S3 prefix
    (:class:`modelport.batch.s3.S3Sink`). Either keeps the layout above."""

    def prepare(self, spec: JobSpec, overwrite: bool) -> None:
        """Start or resume ``spec``'s job here; refuse another job's output unless
        ``overwrite``, which clears it."""

    def done_part(self, index: int, fmt: formats.Format) -> dict[str, int] | None:
        """The counts of part ``index`` if an earlier run finished it."""

    def write_part(self, index: int, part: ScoredPart, fmt: formats.Format) -> None:
        """Rejects and stats first, the part last, each visible only once whole."""

    def write_summary(self, summary: Mapping[str, object]) -> None:
        """``_SUCCESS``."""

    def location(self, name: str) -> str:
        """Where ``name`` (e.g. ``_rejects``) is, for messages."""


@dataclass(frozen=True, slots=True)
class FolderSink:
    """A sink in a local folder (the functions :func:`prepare_sink`, :func:`done_part` and
    :func:`write_part`, which the Ray engine calls directly)."""

    path: Path

    def prepare(self, spec: JobSpec, overwrite: bool) -> None:
        prepare_sink(self.path, spec, overwrite)

    def done_part(self, index: int, fmt: formats.Format) -> dict[str, int] | None:
        return done_part(self.path, index, fmt)

    def write_part(self, index: int, part: ScoredPart, fmt: formats.Format) -> None:
        write_part(self.path, index, part, fmt)

    def write_summary(self, summary: Mapping[str, object]) -> None:
        formats.write_json(self.path / "_SUCCESS", summary)

    def location(self, name: str) -> str:
        return str(self.path / name)


def as_sink(sink: Path | Sink) -> Sink:
    """A folder path as a :class:`FolderSink`; a sink as it is."""
    return FolderSink(sink) if isinstance(sink, Path) else sink


def run_local(
    model: LoadedModel,
    spec: JobSpec,
    source: formats.Source,
    sink: Path | Sink,
    result: BatchResult,
    *,
    overwrite: bool,
    max_reject_fraction: float,
    on_progress: Callable[[Progress], None] | None = None,
) -> BatchResult:
    """Score ``source`` into ``sink`` (a folder, or a :class:`Sink`); fills and returns
    ``result``."""
    fmt: formats.Format = spec.output_format  # type: ignore[assignment]
    started = time.monotonic()
    sink = as_sink(sink)
    sink.prepare(spec, overwrite)
    passthrough, features = plan_columns(model, spec, source)
    outputs = spec.outputs or None  # a model saved without an example: whatever it returns
    counter = formats.ByteCounter(source.total_bytes)
    total_rows = source.total_rows()
    first = 0
    if source.random_access:  # parts a killed run finished: not even read again
        while (stats := sink.done_part(first, fmt)) is not None:
            count_part(result, stats)
            result.resumed_parts += 1
            first += 1
    chunks = _prefetch(source.chunks(spec.chunk_rows, features, counter, first))
    writes: list[Future[None]] = []
    with (
        ThreadPoolExecutor(1, thread_name_prefix="modelport-batch-write") as writer,
        _blas_beside_io(),
    ):
        for index, chunk in enumerate(chunks, start=first):
            stats = sink.done_part(index, fmt)
            if stats is not None:
                result.resumed_parts += 1
            else:
                part = score_part(model, chunk, features, outputs, passthrough, spec.columns)
                stats = part.stats
                writes = [w for w in writes if not w.done()] + [
                    writer.submit(sink.write_part, index, part, fmt)
                ]
                while len(writes) > _PREFETCH:  # bounded: parts waiting for the disk
                    writes.pop(0).result()
            count_part(result, stats)
            if on_progress is not None:
                fraction = result.rows / total_rows if total_rows else counter.fraction
                on_progress(
                    Progress(result.rows, result.rejected, fraction, time.monotonic() - started)
                )
        for w in writes:
            w.result()
    result.seconds = time.monotonic() - started
    return finish(result, sink, max_reject_fraction)


@dataclass(frozen=True, slots=True)
class ScoredPart:
    """One chunk scored: the output rows, the rejects as JSON Lines, and the counts."""

    table: pa.Table
    rejects: bytes
    stats: dict[str, int]


def score_part(
    model: LoadedModel,
    chunk: formats.Chunk,
    features: Sequence[str],
    outputs: Sequence[str] | None,
    passthrough: Sequence[str],
    columns: Mapping[str, Sequence[str]] | None = None,
) -> ScoredPart:
    """Score chunk ``chunk`` into its part; both engines make every part with this."""
    scored = score_chunk(model, chunk.table, features, outputs, chunk.broken)
    table = output_table(chunk.table, scored.kept, scored.outputs, passthrough, columns)
    stats = {
        "rows": chunk.table.num_rows,
        "scored": table.num_rows,
        "rejected": len(scored.rejected),
    }
    return ScoredPart(table, reject_lines(chunk.table, scored.rejected, chunk.start), stats)


def done_part(sink: Path, index: int, fmt: formats.Format) -> dict[str, int] | None:
    """The counts of part ``index`` if an earlier run finished it (a resumed job skips it)."""
    stats_path = sink / "_stats" / f"part-{index:05d}.json"
    if (sink / formats.part_name(index, fmt)).exists() and stats_path.exists():
        stats: dict[str, int] = orjson.loads(stats_path.read_bytes())
        return stats
    return None


def count_part(result: BatchResult, stats: dict[str, int]) -> None:
    """Add one part's counts to the job's (both engines)."""
    result.parts += 1
    result.rows += stats["rows"]
    result.scored += stats["scored"]
    result.rejected += stats["rejected"]


def finish(result: BatchResult, sink: Path | Sink, max_reject_fraction: float) -> BatchResult:
    """Judge the reject share; on success write ``_SUCCESS``. Shared by both engines."""
    sink = as_sink(sink)
    share = result.rejected / result.rows if result.rows else 0.0
    if share > max_reject_fraction:
        result.status = "failed"
        result.error = (
            f"{result.rejected} of {result.rows} rows ({share:.1%}) were rejected, more than "
            f"the {max_reject_fraction:.1%} allowed; see {sink.location('_rejects')}"
        )
        return result
    result.status = "succeeded"
    # Only what the rows decide: a resumed run writes the same bytes as an uninterrupted one.
    summary = {k: v for k, v in result.to_dict().items() if k not in _RUN_ONLY}
    sink.write_summary(summary)
    return result


def plan_columns(
    model: LoadedModel, spec: JobSpec, source: formats.Source
) -> tuple[list[str], list[str]]:
    """The columns copied through (ids first) and the columns fed to the model; the
    engines share it so they refuse a missing column alike."""
    header = input_columns(source)
    passthrough = [*spec.id_columns, *[c for c in spec.keep if c not in spec.id_columns]]
    missing = [c for c in passthrough if c not in header]
    if missing:
        raise InvalidInput(f"the input has no column {missing[0]!r} (columns: {', '.join(header)})")
    written = [*spec.outputs, *(c for names in spec.columns.values() for c in names)]
    clash = [c for c in passthrough if c in written]
    if clash:
        raise InvalidInput(
            f"the output would have two columns named {clash[0]!r}: an input column kept "
            "beside the predictions, and a model output"
        )
    return passthrough, feature_columns(model.signature, header, set(passthrough))


def class_columns(model: LoadedModel, outputs: Sequence[str] | None) -> dict[str, list[str]]:
    """Column names for a classifier's ``probabilities`` (when it is written): one per class
    the model records, in its order (``probabilities_churn``, ``probabilities_stay``)."""
    classes = model.manifest.flavor_options.get("classes")
    if not isinstance(classes, list) or not classes:
        return {}
    if outputs is not None and "probabilities" not in outputs:
        return {}
    specs = {s.name: s for s in model.signature.outputs}
    spec = specs.get("probabilities")
    if spec is not None and (len(spec.shape) != 2 or spec.shape[1] not in (-1, len(classes))):
        return {}
    return {"probabilities": labelled_columns("probabilities", classes)}


def labelled_columns(output: str, labels: Sequence[object]) -> list[str]:
    """``{output}_{label}`` for each label, made safe as a column name in any engine (runs
    of characters other than ASCII letters, digits and ``_`` become one ``_``; a whole
    float is written as an integer). If a label comes out empty, or two come out alike
    (``"a b"`` and ``"a-b"``), every column is named by position instead
    (``probabilities_0``, ...), so no name can be mistaken for another label's. The same
    labels always give the same names."""
    names = [f"{output}_{safe}" if (safe := _safe_label(v)) else "" for v in labels]
    if "" in names or len(set(names)) != len(names):
        return [f"{output}_{j}" for j in range(len(labels))]
    return names


def _safe_label(label: object) -> str:
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return re.sub(r"[^0-9A-Za-z_]+", "_", str(label)).rstrip("_")


def job_document(spec: JobSpec) -> dict[str, Any]:
    """What ``_job.json`` holds for ``spec`` (as JSON reads it back)."""
    job: dict[str, Any] = orjson.loads(orjson.dumps(asdict(spec)))
    if not job["columns"]:  # as a job without labelled columns was written before them
        del job["columns"]
    return job


def prepare_sink(sink: Path, spec: JobSpec, overwrite: bool) -> None:
    job = job_document(spec)
    if sink.exists() and not sink.is_dir():
        raise InvalidInput(f"output {str(sink)!r} is a file; batch output is a folder of parts")
    if sink.exists() and any(sink.iterdir()):
        found = sink / "_job.json"
        same = found.exists() and orjson.loads(found.read_bytes()) == job
        if not same:
            if not overwrite:
                what = "another job's output" if found.exists() else "other files"
                raise InvalidInput(
                    f"output folder {str(sink)!r} holds {what}; choose another folder or "
                    "pass --overwrite (a rerun of the same job resumes instead)"
                )
            shutil.rmtree(sink)
    (sink / "_rejects").mkdir(parents=True, exist_ok=True)
    (sink / "_stats").mkdir(exist_ok=True)
    if not (sink / "_job.json").exists():
        formats.write_json(sink / "_job.json", job)
    for stale in sink.rglob(".*.tmp"):  # a part a killed run did not finish
        stale.unlink(missing_ok=True)


def input_columns(source: formats.Source) -> list[str]:
    if source.format == "parquet":  # the footers say; no rows need decoding
        if any(pq.ParquetFile(f).metadata.num_rows for f in source.files):
            return list(pq.read_schema(source.files[0]).names)
        raise InvalidInput(f"{str(source.path)!r} holds no rows")
    first = next(iter(source.chunks(1)), None)
    if first is None:
        raise InvalidInput(f"{str(source.path)!r} holds no rows")
    return list(first.table.column_names)


def _blas_beside_io() -> threadpool_limits:
    """Leave a core to the reading and writing threads while the model runs.

    A BLAS call on a chunk is short, and a BLAS thread that waits its turn behind the reader
    stalls the whole call: a LogisticRegression job spent 0.14 s in 20 matrix products that
    take 0.01 s alone, and ran 25% faster with one core fewer (benchmarks/batch.py). Only
    BLAS is capped; OpenMP models (gradient boosting) keep every core.
    """
    return threadpool_limits(max(1, (os.cpu_count() or 1) - 1), user_api="blas")


def _prefetch(chunks: Iterator[formats.Chunk]) -> Iterator[formats.Chunk]:
    """Read the next chunks in a thread while the current one is scored."""
    ahead: queue.Queue[object] = queue.Queue(maxsize=_PREFETCH)
    done = object()

    def read() -> None:
        try:
            for chunk in chunks:
                ahead.put(chunk)
        except BaseException as exc:  # handed to the consumer, raised there
            ahead.put(exc)
        ahead.put(done)

    threading.Thread(target=read, name="modelport-batch-read", daemon=True).start()
    while True:
        item = ahead.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, formats.Chunk)
        yield item


def output_table(
    table: pa.Table,
    kept: np.ndarray,
    outputs: dict[str, np.ndarray],
    passthrough: Sequence[str],
    labels: Mapping[str, Sequence[str]] | None = None,
) -> pa.Table:
    """The kept rows' passthrough columns, then one column per output; a 2-D output is one
    column per position, named from ``labels`` (by class) or ``{output}_{j}``."""
    rows = table.select(list(passthrough))
    if len(kept) != table.num_rows:
        rows = rows.take(pa.array(kept, type=pa.int64()))
    columns = {name: rows.column(name) for name in passthrough}
    for name, values in outputs.items():
        if values.ndim == 1:
            columns[name] = _arrow(values)
        else:
            flat = values.reshape(len(values), -1)
            names = (labels or {}).get(name)
            if names is None or len(names) != flat.shape[1]:
                names = [f"{name}_{j}" for j in range(flat.shape[1])]
            for j, column in enumerate(names):
                columns[column] = _arrow(flat[:, j])
    return pa.table(columns)


def _arrow(values: np.ndarray) -> pa.Array:
    if values.dtype.kind == "O":
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
    return pa.array(values)


def reject_lines(table: pa.Table, rejected: list[tuple[int, str]], start: int | None) -> bytes:
    """JSON Lines for the rejected rows of ``table``: ``row`` is ``start`` + position in the
    table, or None when the offset in the source is not known (Ray batches)."""
    lines = []
    for position, reason in rejected:
        values = table.slice(position, 1).to_pylist()[0]
        row = None if start is None else start + position
        record = {"row": row, "reason": reason, "values": values}
        lines.append(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY, default=str))
    return b"\n".join(lines) + (b"\n" if lines else b"")


def write_part(sink: Path, index: int, part: ScoredPart, fmt: formats.Format) -> None:
    """Rejects and stats first, the part last: the part's presence means all three are in."""
    rejects_path = sink / "_rejects" / f"part-{index:05d}.jsonl"
    tmp = rejects_path.with_name(f".{rejects_path.name}.tmp")
    tmp.write_bytes(part.rejects)
    tmp.replace(rejects_path)
    formats.write_json(sink / "_stats" / f"part-{index:05d}.json", part.stats)
    formats.write_part(part.table, sink / formats.part_name(index, fmt), fmt)


def new_run_id() -> str:
    return uuid.uuid4().hex
