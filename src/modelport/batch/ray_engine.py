"""The Ray engine: the same job on Ray Data, locally (``ray.init()``) or on a cluster.

Ray Data reads the source in blocks, ``map_batches`` hands ``chunk_rows``-row batches to a
pool of actors that each load the model once (from the artifact folder, checked against its
manifest digest as everywhere else), and the scored rows are written by Ray's own writers
into the sink folder. Each actor scores a batch exactly as the local engine scores a chunk
(:func:`modelport.batch.rows.score_chunk`) and writes the batch's rejects to
``_rejects/ray-<id>.jsonl`` itself. Block order is preserved, so the rows and predictions equal
the local engine's; what differs is the layout (Ray names the part files, so their names do
not sort in row order), that a reject's
``row`` is unknown (Ray batches do not know their offset in the source: rejects carry their
values, ids included), and that an interrupted Ray job starts over rather than resuming.

On a cluster the source and the sink must be on storage every node sees (a shared
filesystem today; object storage with the S3 store).
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelport.batch import formats
from modelport.batch.job import (
    BatchResult,
    JobSpec,
    finish,
    output_table,
    plan_columns,
    prepare_sink,
    reject_lines,
)
from modelport.batch.rows import score_chunk
from modelport.errors import InvalidInput
from modelport.packaging import LoadedModel, load_artifact


class _Scorer:
    """A Ray actor: loads the model once, scores the batches it is given."""

    def __init__(
        self,
        artifact: str,
        digest: str | None,
        trust_unsafe: bool,
        features: list[str],
        outputs: list[str] | None,
        passthrough: list[str],
        rejects: str,
    ) -> None:
        self.model = load_artifact(
            Path(artifact), manifest_sha256=digest, trust_unsafe=trust_unsafe
        )
        self.features = features
        self.outputs = outputs
        self.passthrough = passthrough
        self.rejects = Path(rejects)

    def __call__(self, batch: pa.Table) -> pa.Table:
        scored = score_chunk(self.model, batch, self.features, self.outputs)
        if scored.rejected:
            name = self.rejects / f"ray-{uuid.uuid4().hex}.jsonl"
            tmp = name.with_name(f".{name.name}.tmp")
            tmp.write_bytes(reject_lines(batch, scored.rejected, None))
            tmp.replace(name)
        return output_table(batch, scored.kept, scored.outputs, self.passthrough)


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
) -> BatchResult:
    """Score ``source`` into ``sink`` with Ray Data; fills and returns ``result``."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise InvalidInput("the Ray engine needs Ray: pip install 'modelport[ray]'") from None
    started = time.monotonic()
    prepare_sink(sink, spec, overwrite)
    passthrough, features = plan_columns(model, spec, source)
    owns = not ray.is_initialized()
    if owns:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        dataset = _read(ray.data, source, features)
        scored = dataset.map_batches(
            _Scorer,
            fn_constructor_args=(
                str(model.path),
                spec.manifest_sha256,
                trust_unsafe,
                features,
                spec.outputs or None,
                passthrough,
                str(sink / "_rejects"),
            ),
            batch_format="pyarrow",
            batch_size=spec.chunk_rows,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=_actors(ray)),
        )
        fmt = spec.output_format
        if fmt == "parquet":
            scored.write_parquet(str(sink))
        elif fmt == "csv":
            scored.write_csv(str(sink))
        else:
            scored.write_json(str(sink))
    finally:
        if owns:
            ray.shutdown()
    result.scored = _count_rows(sink, fmt)
    result.rejected = sum(
        len(f.read_bytes().splitlines()) for f in (sink / "_rejects").glob("ray-*.jsonl")
    )
    result.rows = result.scored + result.rejected
    result.parts = len(formats.data_files(sink))
    result.seconds = time.monotonic() - started
    return finish(result, sink, max_reject_fraction)


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
