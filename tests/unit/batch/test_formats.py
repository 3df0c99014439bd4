"""Reading a source in chunks: the chunks a Parquet source yields from a later chunk on are
the ones a read from the top yields (the Ray engine's actors start there)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.batch import formats


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    """Two files of uneven row groups, so chunks straddle groups and files."""
    folder = tmp_path / "rows"
    folder.mkdir()
    table = pa.table({"id": np.arange(2_000), "x": np.linspace(0, 1, 2_000)})
    pq.write_table(table.slice(0, 1_300), folder / "part-0.parquet", row_group_size=500)
    pq.write_table(table.slice(1_300), folder / "part-1.parquet", row_group_size=300)
    return folder


def test_a_parquet_source_starts_at_any_chunk(parts: Path) -> None:
    source = formats.Source.open(parts)
    whole = list(source.chunks(170))
    assert sum(c.table.num_rows for c in whole) == 2_000
    for first in range(len(whole)):
        later = list(source.chunks(170, first=first))
        assert [c.start for c in later] == [c.start for c in whole[first:]]
        assert all(a.table.equals(b.table) for a, b in zip(later, whole[first:], strict=True))
    assert list(source.chunks(170, first=len(whole))) == []


def test_a_text_source_cannot_start_later(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("id,x\n1,2\n3,4\n")
    source = formats.Source.open(tmp_path / "rows.csv")
    with pytest.raises(ValueError, match="only a Parquet source"):
        list(source.chunks(1, first=1))
