"""Avro object container files as a batch source and sink, read and written with fastavro.

An Avro file is a header (the magic ``Obj\\x01``, metadata holding the writer's schema and the
codec, and a 16-byte sync marker), then blocks: a record count, a byte size, that many bytes
of records (compressed together by the codec), and the sync marker again. The counts and
sizes let a reader count the rows, or reach row N, by seeking from block to block without
decompressing or decoding a record; :func:`count_rows` and :func:`read_batches` (``skip``) do.

The file's schema must be a record of flat fields. Avro types read as Arrow types:

======================================  ======================================================
Avro                                    Arrow
======================================  ======================================================
boolean, int, long, float, double       bool, int32, int64, float32, float64
string, enum; bytes, fixed              string; binary
``["null", T]`` (either order)          T, nullable
date; time-millis, time-micros          date32; time32[ms], time64[us]
timestamp-millis, timestamp-micros      timestamp[ms] / timestamp[us], UTC
local-timestamp-millis / -micros        timestamp[ms] / timestamp[us], no time zone
decimal (bytes or fixed)                float64, the nearest double (models take floats)
uuid                                    string
======================================  ======================================================

Any other union, a record, map or array field is refused (:class:`InvalidInput` naming the
field and its type); an unknown logical type reads as its underlying type, as the Avro
specification says. Parts are written with the Arrow schema mapped back (every Arrow field
is nullable, so every Avro field is ``["null", T]``; a list column is an Avro array), the
deflate codec, and a sync marker derived from the part's name, so that the same rows always
give the same bytes (a resumed job matches an uninterrupted one).
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa

from modelport.errors import InvalidInput, MissingDependency

if TYPE_CHECKING:
    from modelport.batch.formats import ByteCounter

_ROWS = 8_192  # records decoded per Arrow batch: as Python objects, they are the costly part
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _fastavro() -> Any:  # Any: the module, imported on first use (it is optional)
    try:
        import fastavro
    except ImportError:
        raise MissingDependency("fastavro", "avro") from None
    return fastavro


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    type: pa.DataType
    convert: Callable[[Any], Any] | None = None
    """Applied to each non-null value fastavro gives (a Decimal to a float, a UUID to text)."""


@dataclass(frozen=True, slots=True)
class _Header:
    fields: tuple[_Field, ...]
    schema: pa.Schema
    end: int
    """Where the first block starts."""
    sync: bytes


_PRIMITIVES: dict[str, pa.DataType] = {
    "null": pa.null(),
    "boolean": pa.bool_(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "bytes": pa.binary(),
    "string": pa.string(),
}
_LOGICAL: dict[tuple[str, str], pa.DataType] = {
    ("int", "date"): pa.date32(),
    ("int", "time-millis"): pa.time32("ms"),
    ("long", "time-micros"): pa.time64("us"),
    ("long", "timestamp-millis"): pa.timestamp("ms", tz="UTC"),
    ("long", "timestamp-micros"): pa.timestamp("us", tz="UTC"),
    ("long", "local-timestamp-millis"): pa.timestamp("ms"),
    ("long", "local-timestamp-micros"): pa.timestamp("us"),
}


def _field(file: Path, name: str, avro: Any, named: dict[str, Any]) -> _Field:
    """One top-level field of the file's record as an Arrow type (``avro``: its JSON)."""

    def refuse(why: str) -> InvalidInput:
        shown = str(avro) if len(str(avro)) <= 120 else str(avro)[:117] + "..."
        return InvalidInput(
            f"cannot read {str(file)!r} as avro: field {name!r} has type {shown}; {why}"
        )

    kind = avro
    if isinstance(kind, list):  # a union: only ["null", T] is a column
        others = [t for t in kind if t != "null"]
        if len(others) != 1 or len(kind) != 2:
            raise refuse('only a single type or ["null", type] can be a column')
        kind = others[0]
    if isinstance(kind, str) and kind not in _PRIMITIVES:
        kind = named.get(kind, kind)
    if isinstance(kind, str):
        if kind not in _PRIMITIVES:
            raise refuse("that type is not defined in the file's schema")
        return _Field(name, _PRIMITIVES[kind])
    if not isinstance(kind, dict):
        raise refuse("not a type")
    base, logical = kind.get("type"), kind.get("logicalType")
    if isinstance(kind.get("name"), str):  # a named type, which later fields may refer to
        named[kind["name"]] = kind
        if isinstance(kind.get("namespace"), str):
            named[f"{kind['namespace']}.{kind['name']}"] = kind
    if logical == "decimal" and base in ("bytes", "fixed"):
        return _Field(name, pa.float64(), float)
    if logical == "uuid" and base == "string":
        return _Field(name, pa.string(), str)
    if isinstance(base, str) and isinstance(logical, str) and (base, logical) in _LOGICAL:
        return _Field(name, _LOGICAL[base, logical])
    if base == "enum":
        return _Field(name, pa.string())
    if base == "fixed":
        return _Field(name, pa.binary())
    if base in ("record", "map", "array"):
        raise refuse(f"a nested {base} cannot be a column (flatten it into top-level fields)")
    if isinstance(base, str) and base in _PRIMITIVES:  # an unknown logical type is ignored
        return _Field(name, _PRIMITIVES[base])
    raise refuse("not a type a column can have")


def _read_header(stream: IO[bytes], file: Path) -> _Header:
    """The file's columns, and where its blocks start; ``stream`` is left after the header."""
    fastavro = _fastavro()
    try:
        reader = fastavro.reader(stream)
    except Exception as exc:  # not Avro, or a broken header: fastavro's own wording
        raise InvalidInput(f"cannot read {str(file)!r} as avro: {exc}") from None
    end = stream.tell()
    stream.seek(end - 16)
    sync = stream.read(16)
    schema = reader.writer_schema
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise InvalidInput(
            f"cannot read {str(file)!r} as avro: its records must be records with fields, "
            f"not {schema}"
        )
    named: dict[str, Any] = {}
    fields = tuple(_field(file, f["name"], f["type"], named) for f in schema["fields"])
    arrow = pa.schema([pa.field(f.name, f.type) for f in fields])
    return _Header(fields, arrow, end, sync)


def arrow_schema(file: Path) -> pa.Schema:
    """The Arrow schema ``file``'s rows read as (from its header alone)."""
    with _open(file) as stream:
        return _read_header(stream, file).schema


def count_rows(file: Path) -> int:
    """The rows of ``file``, from its block counts (no record is decoded)."""
    with _open(file) as stream:
        header = _read_header(stream, file)
        return sum(count for _, count in _blocks(stream, header, file))


def read_batches(
    file: Path, rows: int, skip: int = 0, counter: ByteCounter | None = None
) -> Iterator[pa.RecordBatch]:
    """The rows of ``file`` from row ``skip`` on, as batches of at most ``rows`` rows (the
    blocks wholly before row ``skip`` are skipped by seeking, not read)."""
    rows = max(1, min(rows, _ROWS))
    with _open(file) as raw:
        header = _read_header(raw, file)
        stream: Any = raw  # Any: a file, or the spliced or counting stand-in for one
        if skip:
            found = _block_of(raw, header, file, skip)
            if found is None:
                return  # every row of this file comes before the wanted ones
            offset, skip = found
            raw.seek(0)
            head = raw.read(header.end)
            raw.seek(offset)
            stream = _Spliced(head, raw)  # the header, then the blocks from the wanted one on
        else:
            raw.seek(0)
        if counter is not None:
            stream = counter.wrap(stream)
        for records in _record_lists(stream, file, rows, skip):
            yield _batch(file, header, records)


def read_table(file: Path) -> pa.Table:
    """The whole of ``file`` as one table (``modelport predict``: a file of a few rows)."""
    if not file.is_file():
        raise InvalidInput(f"input file {str(file)!r} does not exist")
    schema = arrow_schema(file)
    return pa.Table.from_batches(list(read_batches(file, _ROWS)), schema=schema)


def _open(file: Path) -> IO[bytes]:
    try:
        return open(file, "rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {str(file)!r}: {exc.strerror}") from None


def _record_lists(stream: Any, file: Path, rows: int, skip: int) -> Iterator[list[dict[str, Any]]]:
    """fastavro's records, ``rows`` at a time, the first ``skip`` dropped. A corrupt or
    cut-off file raises whatever the decoder meets (EOFError, ValueError, IndexError,
    zlib.error, ...): each becomes one InvalidInput naming the file."""
    fastavro = _fastavro()
    try:
        records = iter(fastavro.reader(stream))
        deque(islice(records, skip), maxlen=0)
        while taken := list(islice(records, rows)):
            yield taken
    except Exception as exc:  # any decoder failure is a broken file, said in one line
        detail = str(exc) or type(exc).__name__
        raise InvalidInput(
            f"cannot read {str(file)!r} as avro (corrupt or cut short?): {detail}"
        ) from None


def _batch(file: Path, header: _Header, records: list[dict[str, Any]]) -> pa.RecordBatch:
    arrays = []
    for field in header.fields:
        values = list(map(itemgetter(field.name), records))  # the fastest way out of dicts
        if field.convert is not None:
            convert = field.convert
            values = [None if v is None else convert(v) for v in values]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise InvalidInput(
                f"cannot read {str(file)!r} as avro: field {field.name!r}: {exc}"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=header.schema)


def _blocks(stream: IO[bytes], header: _Header, file: Path) -> Iterator[tuple[int, int]]:
    """(offset, record count) of each block, found by seeking past each block's bytes and
    checking the sync marker that ends it."""
    size = stream.seek(0, 2)
    offset = header.end
    while offset < size:
        stream.seek(offset)
        count, length = _long(stream, file), _long(stream, file)
        if count < 0 or length < 0 or stream.seek(length, 1) + 16 > size:
            raise _cut_short(file, offset)
        if stream.read(16) != header.sync:
            raise _cut_short(file, offset)
        yield offset, count
        offset = stream.tell()


def _block_of(stream: IO[bytes], header: _Header, file: Path, row: int) -> tuple[int, int] | None:
    """The offset of the block holding row ``row`` and the rows of it before that row."""
    for offset, count in _blocks(stream, header, file):
        if row < count:
            return offset, row
        row -= count
    return None


def _long(stream: IO[bytes], file: Path) -> int:
    """An Avro long: a zig-zag varint."""
    shift = value = 0
    start = stream.tell()
    while True:
        byte = stream.read(1)
        if not byte or shift > 63:
            raise _cut_short(file, start)
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return (value >> 1) ^ -(value & 1)
        shift += 7


def _cut_short(file: Path, offset: int) -> InvalidInput:
    return InvalidInput(
        f"cannot read {str(file)!r} as avro: the block at byte {offset} is corrupt or cut short"
    )


class _Spliced:
    """The bytes of ``head`` then those of ``rest`` from where it stands, as one stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._at, self._rest = head, 0, rest

    def read(self, size: int = -1) -> bytes:
        if self._at < len(self._head):
            end = len(self._head) if size < 0 else min(len(self._head), self._at + size)
            data = self._head[self._at : end]
            self._at = end
            if size < 0:
                return data + self._rest.read()
            return data + self._rest.read(size - len(data)) if len(data) < size else data
        return self._rest.read(size)


# -- writing -----------------------------------------------------------------------------


def write(table: pa.Table, path: Path, name: str) -> None:
    """Write ``table`` to ``path`` as an Avro file; ``name`` (the part's final name) seeds
    the sync marker, so the same rows under the same name give the same bytes."""
    fastavro = _fastavro()
    table = _writable(table)
    fields = []
    for field in table.schema:
        if not _NAME.fullmatch(field.name):
            raise InvalidInput(
                f"column {field.name!r} cannot be an Avro field name (ASCII letters, digits "
                "and _, not starting with a digit): rename it, or write Parquet"
            )
        fields.append({"name": field.name, "type": _avro_type(field)})
    schema = fastavro.parse_schema(
        {"type": "record", "name": "Row", "namespace": "modelport", "fields": fields}
    )
    sync = hashlib.blake2b(name.encode(), digest_size=16).digest()
    try:
        with open(path, "wb") as out:
            fastavro.writer(out, schema, _rows(table), codec="deflate", sync_marker=sync)
    except BaseException:  # a value fastavro refused: no half-written file stays behind
        path.unlink(missing_ok=True)
        raise


def _rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    for batch in table.to_batches(max_chunksize=_ROWS):  # Python objects for a slice at a time
        yield from batch.to_pylist()


def _writable(table: pa.Table) -> pa.Table:
    """Columns whose values Avro holds only at a coarser unit, cast to it: nanosecond times
    to microseconds (the finest Avro has; the nanoseconds are dropped), float16 to float32,
    dictionaries to their values."""
    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            kind = pa.timestamp("us", tz=kind.tz)
        elif pa.types.is_time64(kind) and kind.unit == "ns":
            kind = pa.time64("us")
        elif pa.types.is_float16(kind):
            kind = pa.float32()
        columns.append(column if kind == column.type else column.cast(kind, safe=False))
    fields = [
        pa.field(f.name, c.type, f.nullable) for f, c in zip(table.schema, columns, strict=True)
    ]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _avro_type(field: pa.Field) -> Any:  # Any: an Avro schema is JSON
    kind = _avro_kind(field.name, field.type)
    return ["null", kind] if field.nullable and kind != "null" else kind


def _avro_kind(name: str, kind: pa.DataType) -> Any:  # Any: an Avro schema is JSON
    simple = _simple_kind(kind)
    if simple is not None:
        return simple
    if pa.types.is_timestamp(kind):
        unit = "millis" if kind.unit in ("s", "ms") else "micros"
        local = "" if kind.tz else "local-"
        return {"type": "long", "logicalType": f"{local}timestamp-{unit}"}
    if pa.types.is_decimal(kind):
        return {
            "type": "bytes",
            "logicalType": "decimal",
            "precision": kind.precision,
            "scale": kind.scale,
        }
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return {"type": "array", "items": _avro_type(kind.value_field)}
    raise InvalidInput(
        f"column {name!r} holds {kind}, which has no Avro type here: write Parquet instead"
    )


def _simple_kind(kind: pa.DataType) -> Any:  # Any: an Avro schema is JSON, or None
    if pa.types.is_null(kind):
        return "null"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_integer(kind):
        fits_int = kind.bit_width < 32 or (
            kind.bit_width == 32 and pa.types.is_signed_integer(kind)
        )
        return "int" if fits_int else "long"
    if pa.types.is_float32(kind):
        return "float"
    if pa.types.is_float64(kind):
        return "double"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "bytes"
    if pa.types.is_fixed_size_binary(kind):
        return "bytes"
    if pa.types.is_date(kind):
        return {"type": "int", "logicalType": "date"}
    if pa.types.is_time32(kind):
        return {"type": "int", "logicalType": "time-millis"}
    if pa.types.is_time64(kind):
        return {"type": "long", "logicalType": "time-micros"}
    return None
