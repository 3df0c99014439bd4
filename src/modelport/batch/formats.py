"""Reading inputs in fixed-size chunks and writing part files, for CSV, Parquet, JSON Lines
and Avro.

Readers stream (``ParquetFile.iter_batches``, ``pyarrow.csv.open_csv``, JSON Lines line by
line, Avro with fastavro: :mod:`modelport.batch.avro`), so memory holds a chunk or two, never
the file. Whatever sizes the format yields, rows are regrouped into chunks of exactly
``chunk_rows`` (the last one shorter): chunk ``i`` is always rows
``[i * chunk_rows, (i + 1) * chunk_rows)``, which is what lets an interrupted job find where
it stopped. A source is one file or a folder of part files
(read in name order, files starting with ``_`` or ``.`` skipped, as Spark and pyarrow do).

A part file is written under a temporary name beside its final one and renamed into place,
so a reader (or a resumed job) sees a part whole or not at all.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelport.batch import avro
from modelport.errors import InvalidInput

Format = Literal["csv", "parquet", "jsonl", "avro"]
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".avro": "avro",
}
_BLOCK = 8 << 20  # bytes per CSV / JSON read block


def format_of(path: Path, given: str | None = None) -> Format:
    """The format named by ``given``, else by the path's suffix (a folder: its files')."""
    if given is not None or path.suffix.lower() in _SUFFIXES:
        return format_named(str(path), given)
    if path.is_dir():
        kinds = {_SUFFIXES.get(f.suffix.lower()) for f in data_files(path)}
        kinds.discard(None)
        if len(kinds) == 1:
            return kinds.pop()  # type: ignore[return-value]
    return format_named(str(path), given)


def format_named(name: str, given: str | None = None) -> Format:
    """The format named by ``given``, else by the suffix of ``name`` (a path or a URI that
    is not looked at: an S3 sink's)."""
    if given is not None:
        if given not in ("csv", "parquet", "jsonl", "avro"):
            raise InvalidInput(f"unknown format {given!r} (csv, parquet, jsonl, avro)")
        return given  # type: ignore[return-value]
    suffix = os.path.splitext(name.rstrip("/"))[1].lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    raise InvalidInput(
        f"cannot tell the format of {name!r}: name it .csv, .parquet, .jsonl or .avro, "
        "or pass --input-format / --output-format"
    )


def data_files(folder: Path) -> list[Path]:
    """The part files of a folder dataset, in name order."""
    return sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith(("_", ".")))


@dataclass(frozen=True, slots=True)
class Source:
    """A file or folder to read, and what can be known about its size up front."""

    path: Path
    format: Format
    files: tuple[Path, ...]

    @classmethod
    def open(cls, path: Path, given: str | None = None) -> Source:
        if not path.exists():
            raise InvalidInput(f"no such file or folder: {str(path)!r}")
        files = tuple(data_files(path)) if path.is_dir() else (path,)
        if not files:
            raise InvalidInput(f"folder {str(path)!r} holds no data files")
        fmt = format_of(path, given)
        if fmt == "avro":  # each header and block, so a file that is not Avro, or is cut
            for file in files:  # short, fails before any work (seeks: nothing is decoded)
                avro.count_rows(file)
        return cls(path, fmt, files)

    @property
    def total_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    @property
    def random_access(self) -> bool:
        """Whether a read can start at a later chunk without decoding the rows before it
        (Parquet's footers and Avro's block counts say where rows are)."""
        return self.format in ("parquet", "avro")

    def total_rows(self) -> int | None:
        """Known for Parquet (from the footers) and Avro (the block counts), not for text."""
        if self.format == "avro":
            return sum(avro.count_rows(f) for f in self.files)
        if self.format != "parquet":
            return None
        return int(sum(pq.ParquetFile(f).metadata.num_rows for f in self.files))

    def fingerprint(self) -> list[list[object]]:
        """Name, size and modification time of each file: a resumed job checks it."""
        return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in self.files]

    def chunks(
        self,
        chunk_rows: int,
        text_columns: Collection[str] = (),
        counter: ByteCounter | None = None,
        first: int = 0,
    ) -> Iterator[Chunk]:
        """Chunks of exactly ``chunk_rows`` rows (the last one shorter), in file order.

        ``text_columns`` are read as text from CSV, so one bad value in a number column
        rejects its row instead of failing the read (the row checks parse the numbers).
        ``first`` starts at that chunk (Parquet and Avro only: the footers or block counts
        say where its rows are, so the row groups or blocks before it are not read).
        """
        pending: list[pa.RecordBatch] = []
        broken: dict[int, str] = {}
        held = 0
        start = first * chunk_rows
        schema: pa.Schema | None = None
        if first:  # the first file's schema, as a read from the top
            if self.format == "avro":
                schema = avro.arrow_schema(self.files[0])
            elif self.format == "parquet":
                schema = pq.ParquetFile(self.files[0]).schema_arrow
            else:
                raise ValueError("only a Parquet source or an Avro one can start at a later chunk")
        rows = min(chunk_rows, 65_536)
        for batch, bad in self._batches(text_columns, counter, rows, start):
            if schema is None:
                schema = batch.schema
            elif batch.schema != schema:
                batch = _conform(batch, schema)
            offset = 0
            while offset < batch.num_rows:
                take = min(batch.num_rows - offset, chunk_rows - held)
                pending.append(batch.slice(offset, take))
                for row, reason in bad.items():
                    if offset <= row < offset + take:
                        broken[held + row - offset] = reason
                held += take
                offset += take
                if held == chunk_rows:
                    yield Chunk(start, _assemble(pending), broken)
                    start += held
                    pending, broken, held = [], {}, 0
        if held:
            yield Chunk(start, _assemble(pending), broken)

    def _batches(
        self, text_columns: Collection[str], counter: ByteCounter | None, rows: int, skip: int = 0
    ) -> Iterator[tuple[pa.RecordBatch, dict[int, str]]]:
        for file in self.files:
            try:
                if self.format == "jsonl":
                    yield from _jsonl_batches(file, counter)
                elif self.format == "avro":
                    for batch in avro.read_batches(file, rows, skip, counter):
                        yield batch, {}
                    if skip:
                        skip = max(0, skip - avro.count_rows(file))
                else:
                    for batch in self._arrow_batches(file, text_columns, counter, rows, skip):
                        yield batch, {}
                    if skip:
                        skip = max(0, skip - pq.ParquetFile(file).metadata.num_rows)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInput(f"cannot read {str(file)!r} as {self.format}: {exc}") from None

    def _arrow_batches(
        self,
        file: Path,
        text_columns: Collection[str],
        counter: ByteCounter | None,
        rows: int,
        skip: int = 0,
    ) -> Iterator[pa.RecordBatch]:
        if self.format == "parquet":
            # Without a bounded buffer and with pre-buffering, iter_batches reads the whole
            # file ahead (209 MB of Arrow memory for a 120 MB file). A 64 KiB buffer per
            # column, chunk-sized batches and one decoding thread keep it at 42 MB and leave
            # the other cores to the model: 1 MiB buffers and Arrow's thread pool cost 13 MB
            # more and 5-15% of a compute-bound model's rate (benchmarks/batch.py).
            handle = pq.ParquetFile(file, buffer_size=1 << 16, pre_buffer=False)
            groups, skip = _row_groups_from(handle.metadata, skip)
            if not groups:  # every row of this file comes before the wanted ones
                return
            for batch in handle.iter_batches(batch_size=rows, row_groups=groups, use_threads=False):
                if skip:  # rows of the first group that come before the wanted ones
                    dropped = min(skip, batch.num_rows)
                    batch, skip = batch.slice(dropped), skip - dropped
                    if not batch.num_rows:
                        continue
                if counter is not None:
                    counter.rows_bytes(file, handle.metadata.num_rows, batch.num_rows)
                yield batch
            return
        with open(file, "rb") as raw:
            stream = counter.wrap(raw) if counter is not None else raw
            names = _csv_header(file)
            convert = pacsv.ConvertOptions(
                column_types={c: pa.string() for c in text_columns if c in names},
                strings_can_be_null=True,
            )
            yield from pacsv.open_csv(
                stream, read_options=pacsv.ReadOptions(block_size=_BLOCK), convert_options=convert
            )


def _row_groups_from(meta: pq.FileMetaData, skip: int) -> tuple[list[int], int]:
    """The row groups holding row ``skip`` onwards, and how many of their rows to drop."""
    for group in range(meta.num_row_groups):
        rows = meta.row_group(group).num_rows
        if skip < rows:
            return list(range(group, meta.num_row_groups)), skip
        skip -= rows
    return [], 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows ``[start, start + len(table))`` of the source, and rows that could not be parsed
    at all (position in the chunk -> reason; their values in ``table`` are null)."""

    start: int
    table: pa.Table
    broken: dict[int, str]


def _csv_header(file: Path) -> list[str]:
    with open(file, "rb") as raw:
        reader = pacsv.open_csv(
            raw,
            read_options=pacsv.ReadOptions(block_size=1 << 16),
            convert_options=pacsv.ConvertOptions(column_types={}),
        )
        return list(reader.schema.names)


def _jsonl_batches(
    file: Path, counter: ByteCounter | None, rows: int = 65_536
) -> Iterator[tuple[pa.RecordBatch, dict[int, str]]]:
    """JSON Lines, one object per line; a line that is not one is a broken row, not an
    error for the file. Columns whose values have mixed types come out as text."""
    with open(file, "rb") as stream:
        while True:
            records: list[dict[str, object]] = []
            bad: dict[int, str] = {}
            for line in stream:
                if counter is not None:
                    counter.done += len(line)
                if not line.strip():
                    continue
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    value, bad[len(records)] = {}, f"invalid JSON: {exc}"
                if not isinstance(value, dict):
                    value, bad[len(records)] = {}, "the line is not a JSON object"
                records.append(value)
                if len(records) == rows:
                    break
            if not records:
                return
            yield _records_batch(records), bad


def _records_batch(records: list[dict[str, object]]) -> pa.RecordBatch:
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    arrays = []
    for name in names:
        values = [r.get(name) for r in records]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else str(v) for v in values]))
    return pa.RecordBatch.from_arrays(arrays, names=list(names))


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A later file or block with columns in another order, or missing some: the first's
    columns, in its order (missing ones null). Types are unified by :func:`_assemble`."""
    arrays = [
        batch.column(f.name) if f.name in batch.schema.names else pa.nulls(batch.num_rows)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, names=schema.names)


def _assemble(batches: list[pa.RecordBatch]) -> pa.Table:
    """One table from ``batches``; a column whose type differs between them (ints then
    floats, numbers then text) is cast to the wider type, or to text so the row checks judge
    each value."""
    first = batches[0].schema
    if all(b.schema == first for b in batches):
        return pa.Table.from_batches(batches)
    columns = []
    for index in range(len(first)):
        parts = [b.column(index) for b in batches]
        types = {p.type for p in parts} - {pa.null()}
        if len(types) <= 1:
            target = types.pop() if types else pa.null()
        elif all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
            target = pa.float64()
        else:
            target = pa.string()
        columns.append(pa.chunked_array([p.cast(target) for p in parts], type=target))
    return pa.Table.from_arrays(columns, names=first.names)


class ByteCounter:
    """How far through the source a job is, for a progress bar with a time estimate."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done = 0

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total)

    def wrap(self, raw: IO[bytes]) -> IO[bytes]:
        counter = self

        class Counting:
            def read(self, size: int = -1) -> bytes:
                data = raw.read(size)
                counter.done += len(data)
                return data

            def readinto(self, buffer: bytearray) -> int:
                n = raw.readinto(buffer)  # type: ignore[attr-defined]
                counter.done += n or 0
                return int(n or 0)

            def __getattr__(self, name: str) -> object:
                return getattr(raw, name)

        return Counting()  # type: ignore[return-value]

    def rows_bytes(self, file: Path, file_rows: int, rows: int) -> None:
        self.done += int(file.stat().st_size * rows / max(file_rows, 1))


# -- writing -----------------------------------------------------------------------------


def part_name(index: int, fmt: Format) -> str:
    return f"part-{index:05d}.{fmt}"


def write_part(table: pa.Table, path: Path, fmt: Format) -> None:
    """Write ``table`` to ``path`` atomically (a temporary name, then a rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        # Dictionary encoding only for text (labels, categories), where it is small; on ids
        # and scores it buys nothing, and it was a third of a LogisticRegression job's time.
        text = [f.name for f in table.schema if is_text(f.type)]
        pq.write_table(table, tmp, compression="snappy", use_dictionary=text or False)
    elif fmt == "csv":
        pacsv.write_csv(table, tmp)
    elif fmt == "avro":
        avro.write(table, tmp, path.name)
    else:
        with open(tmp, "wb") as out:
            for row in table.to_pylist():
                out.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY))
                out.write(b"\n")
    _fsync(tmp)
    os.replace(tmp, path)


def is_text(kind: pa.DataType) -> bool:
    """A string column (either offset width)."""
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def write_json(path: Path, data: object) -> None:
    """A small JSON file, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(json_bytes(data))
    _fsync(tmp)
    os.replace(tmp, path)


def json_bytes(data: object) -> bytes:
    """The bytes :func:`write_json` writes (an S3 sink uploads the same ones)."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
