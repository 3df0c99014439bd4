"""Avro as a batch source and sink: types as Arrow reads them, nested types refused, broken
files named, chunks bounded and startable anywhere, parts written whole and byte-stable."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa
import pytest

from modelport.batch import avro, formats
from modelport.errors import InvalidInput, MissingDependency

UTC = dt.UTC


def write_avro(
    path: Path, fields: list[Any], records: list[dict[str, Any]], **options: Any
) -> Path:
    schema = fastavro.parse_schema({"type": "record", "name": "Event", "fields": fields})
    with open(path, "wb") as out:
        fastavro.writer(out, schema, records, **options)
    return path


def numbers(path: Path, n: int, start: int = 0, block_bytes: int = 2_000) -> Path:
    """``id`` (long) and ``x`` (nullable double), in small blocks (about 130 rows each)."""
    fields = [{"name": "id", "type": "long"}, {"name": "x", "type": ["null", "double"]}]
    records = [{"id": i, "x": None if i % 7 == 0 else i / 2} for i in range(start, start + n)]
    return write_avro(path, fields, records, codec="deflate", sync_interval=block_bytes)


def test_avro_types_read_as_arrow_types(tmp_path: Path) -> None:
    fields = [
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "f32", "type": "float"},
        {"name": "f64", "type": ["double", "null"]},  # null second is nullable too
        {"name": "text", "type": ["null", "string"]},
        {"name": "raw", "type": "bytes"},
        {"name": "plan", "type": {"type": "enum", "name": "Plan", "symbols": ["basic", "pro"]}},
        {"name": "old_plan", "type": ["null", "Plan"]},  # a named type, referred to again
        {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 2}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "clock", "type": {"type": "int", "logicalType": "time-millis"}},
        {
            "name": "price",
            "type": [
                "null",
                {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            ],
        },
        {"name": "key", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "odd", "type": {"type": "long", "logicalType": "no-such-type"}},
    ]
    at = dt.datetime(2026, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)
    record = {
        "flag": True,
        "small": -3,
        "big": 2**40,
        "f32": 1.5,
        "f64": 2.25,
        "text": "hello",
        "raw": b"\x00\x01",
        "plan": "pro",
        "old_plan": "basic",
        "tag": b"ab",
        "day": dt.date(2026, 3, 1),
        "at_ms": at,
        "at_us": at,
        "local": at.replace(tzinfo=None),
        "clock": dt.time(8, 15, 30),
        "price": Decimal("12.34"),
        "key": uuid.UUID(int=7),
        "odd": 42,
    }
    empty = {**record, "f64": None, "text": None, "old_plan": None, "price": None}
    source = formats.Source.open(write_avro(tmp_path / "events.avro", fields, [record, empty]))
    [chunk] = list(source.chunks(10))
    table = chunk.table
    assert dict(zip(table.column_names, table.schema.types, strict=True)) == {
        "flag": pa.bool_(),
        "small": pa.int32(),
        "big": pa.int64(),
        "f32": pa.float32(),
        "f64": pa.float64(),
        "text": pa.string(),
        "raw": pa.binary(),
        "plan": pa.string(),
        "old_plan": pa.string(),
        "tag": pa.binary(),
        "day": pa.date32(),
        "at_ms": pa.timestamp("ms", tz="UTC"),
        "at_us": pa.timestamp("us", tz="UTC"),
        "local": pa.timestamp("us"),
        "clock": pa.time32("ms"),
        "price": pa.float64(),
        "key": pa.string(),
        "odd": pa.int64(),
    }
    first, second = table.to_pylist()
    assert first["price"] == 12.34
    assert first["key"] == str(uuid.UUID(int=7))
    assert first["at_ms"] == at.replace(microsecond=250_000)
    assert first["local"] == at.replace(tzinfo=None)
    assert (first["plan"], first["old_plan"], first["tag"]) == ("pro", "basic", b"ab")
    assert [second[c] for c in ("f64", "text", "old_plan", "price")] == [None] * 4
    assert source.total_rows() == 2


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        (
            {"type": "record", "name": "Address", "fields": [{"name": "city", "type": "string"}]},
            "record",
        ),
        ({"type": "map", "values": "long"}, "map"),
        (["null", {"type": "array", "items": "double"}], "array"),
        (["int", "string"], "union"),
    ],
)
def test_nested_types_are_refused_naming_the_field(
    tmp_path: Path, kind: object, shown: str
) -> None:
    fields = [{"name": "id", "type": "long"}, {"name": "extra", "type": kind}]
    values = {"record": {"city": "Oslo"}, "map": {"a": 1}, "array": [1.0], "union": 3}
    path = write_avro(tmp_path / "nested.avro", fields, [{"id": 1, "extra": values[shown]}])
    expected = "only a single type" if shown == "union" else f"a nested {shown} cannot be a column"
    with pytest.raises(InvalidInput, match=rf"nested\.avro.*field 'extra' has type .*{expected}"):
        formats.Source.open(path)


def test_a_file_that_is_not_a_record_of_fields_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "longs.avro"
    with open(path, "wb") as out:
        fastavro.writer(out, fastavro.parse_schema("long"), [1, 2, 3])
    with pytest.raises(InvalidInput, match=r"longs\.avro.*must be records with fields"):
        formats.Source.open(path)


def test_chunks_are_bounded_and_exact(tmp_path: Path) -> None:
    source = formats.Source.open(numbers(tmp_path / "rows.avro", 10_000))
    assert source.random_access
    assert source.total_rows() == 10_000
    chunks = list(source.chunks(1_000))
    assert [c.start for c in chunks] == list(range(0, 10_000, 1_000))
    assert {c.table.num_rows for c in chunks} == {1_000}
    ids = np.concatenate([c.table.column("id").to_numpy() for c in chunks])
    np.testing.assert_array_equal(ids, np.arange(10_000))
    assert chunks[0].table.column("x").null_count == 143  # every 7th of the first 1,000
    # The reader itself never holds more than it is asked for, whatever the file's blocks.
    batches = list(avro.read_batches(tmp_path / "rows.avro", 1_000))
    assert len(batches) >= 10
    assert max(b.num_rows for b in batches) <= 1_000
    big_block = numbers(tmp_path / "one-block.avro", 10_000, block_bytes=10_000_000)
    assert avro.count_rows(big_block) == 10_000
    batches = list(avro.read_batches(big_block, 1_000))
    assert [b.num_rows for b in batches] == [1_000] * 10


def test_an_avro_source_starts_at_any_chunk(tmp_path: Path) -> None:
    """As a Parquet source does: a resumed job reads from its first missing chunk on, across
    files whose blocks do not align with chunks."""
    folder = tmp_path / "rows"
    folder.mkdir()
    numbers(folder / "part-0.avro", 1_300)
    numbers(folder / "part-1.avro", 700, start=1_300, block_bytes=900)
    source = formats.Source.open(folder)
    assert source.format == "avro"
    assert source.total_rows() == 2_000
    whole = list(source.chunks(170))
    assert sum(c.table.num_rows for c in whole) == 2_000
    for first in range(len(whole)):
        later = list(source.chunks(170, first=first))
        assert [c.start for c in later] == [c.start for c in whole[first:]]
        assert all(a.table.equals(b.table) for a, b in zip(later, whole[first:], strict=True))
    assert list(source.chunks(170, first=len(whole))) == []


def test_a_cut_short_file_is_refused_by_name_before_any_work(tmp_path: Path) -> None:
    data = numbers(tmp_path / "full.avro", 5_000).read_bytes()
    cut = tmp_path / "cut.avro"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InvalidInput, match=r"cut\.avro.*corrupt or cut short"):
        formats.Source.open(cut)
    (tmp_path / "text.avro").write_text("id,x\n1,2\n")
    with pytest.raises(InvalidInput, match=r"cannot read .*text\.avro.* as avro"):
        formats.Source.open(tmp_path / "text.avro")


def test_a_corrupt_block_is_an_invalid_input_naming_the_file(tmp_path: Path) -> None:
    path = numbers(tmp_path / "flipped.avro", 5_000, block_bytes=1_000_000)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = b"\xff" * 8  # inside the one deflated block
    path.write_bytes(bytes(data))
    source = formats.Source.open(path)  # its structure is whole: the damage is inside
    with pytest.raises(InvalidInput, match=r"flipped\.avro.* as avro"):
        list(source.chunks(1_000))


def test_parts_round_trip_with_nullable_types(tmp_path: Path) -> None:
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    table = pa.table(
        {
            "customer_id": pa.array([1, 2, None], pa.int64()),
            "plan": pa.array(["basic", None, "pro"]),
            "churned": pa.array([True, False, None]),
            "score32": pa.array([0.5, 1.5, 2.5], pa.float32()),
            "predictions": pa.array([0.25, 0.75, 0.5], pa.float64()),
            "at": pa.array([at, at, None], pa.timestamp("ms", tz="UTC")),
            "day": pa.array([dt.date(2026, 1, 2)] * 3, pa.date32()),
            "price": pa.array([Decimal("1.50"), None, Decimal("2.25")], pa.decimal128(6, 2)),
            "probabilities": pa.array([[0.1, 0.9], [0.6, 0.4], None], pa.list_(pa.float64())),
        }
    )
    part = tmp_path / "part-00000.avro"
    formats.write_part(table, part, "avro")
    assert [p.name for p in tmp_path.iterdir()] == ["part-00000.avro"]  # no temporary left
    with open(part, "rb") as stream:
        reader = fastavro.reader(stream)
        written: Any = reader.writer_schema  # Any: JSON
        schema = {f["name"]: f["type"] for f in written["fields"]}
        rows: list[Any] = list(reader)
    assert schema["customer_id"] == ["null", "long"]
    assert schema["score32"] == ["null", "float"]
    assert schema["churned"] == ["null", "boolean"]
    assert schema["at"] == ["null", {"type": "long", "logicalType": "timestamp-millis"}]
    assert schema["probabilities"] == ["null", {"type": "array", "items": ["null", "double"]}]
    assert reader.metadata["avro.codec"] == "deflate"
    assert rows[0] == {
        "customer_id": 1,
        "plan": "basic",
        "churned": True,
        "score32": 0.5,
        "predictions": 0.25,
        "at": at,
        "day": dt.date(2026, 1, 2),
        "price": Decimal("1.50"),
        "probabilities": [0.1, 0.9],
    }
    assert (rows[1]["plan"], rows[2]["customer_id"], rows[2]["probabilities"]) == (None, None, None)
    # And back through the reader (lists aside, which a source refuses): the same values.
    with pytest.raises(InvalidInput, match=r"field 'probabilities'.*nested array"):
        formats.Source.open(part)
    flat = table.drop_columns(["probabilities"])
    flat_part = tmp_path / "flat.avro"
    formats.write_part(flat, flat_part, "avro")
    [chunk] = list(formats.Source.open(flat_part).chunks(10))
    assert chunk.table.column("customer_id").to_pylist() == [1, 2, None]
    assert chunk.table.column("price").to_pylist() == [1.5, None, 2.25]
    assert chunk.table.column("at").to_pylist()[0] == at


def test_the_same_rows_give_the_same_bytes(tmp_path: Path) -> None:
    """A resumed job rewrites a part byte for byte: the sync marker is not random."""
    table = pa.table({"id": np.arange(5_000), "p": np.linspace(0, 1, 5_000)})
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    formats.write_part(table, a / "part-00003.avro", "avro")
    formats.write_part(table, b / "part-00003.avro", "avro")
    assert (a / "part-00003.avro").read_bytes() == (b / "part-00003.avro").read_bytes()


def test_a_column_name_avro_cannot_hold_is_refused_and_nothing_written(tmp_path: Path) -> None:
    table = pa.table({"monthly spend": [1.0], "predictions": [0.5]})
    with pytest.raises(InvalidInput, match="'monthly spend' cannot be an Avro field name"):
        formats.write_part(table, tmp_path / "part-00000.avro", "avro")
    assert list(tmp_path.iterdir()) == []


def test_format_by_suffix_and_by_name(tmp_path: Path) -> None:
    assert formats.format_of(tmp_path / "scores.avro") == "avro"
    assert formats.format_of(tmp_path / "scores", "avro") == "avro"
    folder = tmp_path / "in"
    folder.mkdir()
    numbers(folder / "part-0.avro", 10)
    assert formats.format_of(folder) == "avro"


def test_a_missing_fastavro_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = numbers(tmp_path / "rows.avro", 10)
    monkeypatch.setitem(sys.modules, "fastavro", None)  # what `import fastavro` meets uninstalled
    with pytest.raises(MissingDependency, match=r"fastavro is not installed.*modelport\[avro\]"):
        formats.Source.open(path)
    with pytest.raises(MissingDependency, match=r"modelport\[avro\]"):
        formats.write_part(pa.table({"a": [1]}), tmp_path / "part-00000.avro", "avro")


@pytest.mark.slow  # a fresh interpreter
def test_batch_formats_do_not_import_fastavro() -> None:
    probe = "import sys, modelport.batch.formats; print('fastavro' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "False"
