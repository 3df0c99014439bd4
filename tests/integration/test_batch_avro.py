"""Avro through ``modelport batch`` and ``modelport predict``, in this process: scores equal
the model's own, a kept timestamp survives, progress knows the row count, a resumed job
writes the same bytes, and a broken file is refused before anything is written."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any, cast

import fastavro
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelport
from modelport import batch

from ._churn import NUMERIC, churn_frame
from ._cli import cli

SCHEMA = {
    "type": "record",
    "name": "Event",
    "namespace": "shop",
    "fields": [
        {"name": "customer_id", "type": "long"},
        {"name": "signed_up", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tenure_months", "type": "double"},
        {"name": "monthly_spend", "type": ["null", "double"]},
        {"name": "support_calls", "type": "double"},
        {
            "name": "plan",
            "type": {"type": "enum", "name": "Plan", "symbols": ["basic", "plus", "pro"]},
        },
    ],
}
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    """``churn`` version 1 at ``production``; MODELPORT_HOME for the commands."""
    x, y = churn_frame(1_000, seed=1)
    prep = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(), ["plan"])]
    )
    fitted = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(x, y)
    with modelport.Registry(modelport.Settings(home=tmp_path)) as registry:
        registry.register("churn", fitted, input_example=x[:5])
        registry.set_alias("churn", "production", 1)
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path))
    return fitted


def events(path: Path, n: int, seed: int, missing: tuple[int, ...] = ()) -> pd.DataFrame:
    """``n`` customers as an Avro file (small blocks); ``missing`` rows lack monthly_spend."""
    frame, _ = churn_frame(n, seed)
    frame.insert(0, "customer_id", np.arange(n) + 1_000_000)
    frame.insert(1, "signed_up", [EPOCH + dt.timedelta(hours=i) for i in range(n)])
    frame = frame.astype({"monthly_spend": object})
    frame.loc[list(missing), "monthly_spend"] = None
    with open(path, "wb") as out:
        fastavro.writer(
            out,
            fastavro.parse_schema(SCHEMA),
            frame.to_dict("records"),
            codec="deflate",
            sync_interval=4_000,
        )
    return frame


def read_scores(sink: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for part in sorted(sink.glob("part-*.avro")):
        with open(part, "rb") as stream:
            rows.extend(cast(dict[str, Any], r) for r in fastavro.reader(stream))
    return rows


def files_of(sink: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(sink)): f.read_bytes() for f in sorted(sink.rglob("*")) if f.is_file()
    }


def test_batch_scores_an_avro_file_into_avro_parts(
    model: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = events(tmp_path / "events.avro", 3_000, seed=2, missing=(5, 2_500))
    sink = tmp_path / "scores.avro"
    args = ["--id-column", "customer_id", "--keep", "signed_up", "--probabilities",
            "--chunk-rows", "700"]  # fmt: skip
    done = cli(capsys, "batch", "churn@production", str(tmp_path / "events.avro"), str(sink), *args)
    assert done.code == 0, done.err
    assert "3000 rows, 2998 scored, 2 rejected, 5 parts" in done.out

    rows = read_scores(sink)
    good = frame.drop(index=[5, 2_500])
    assert [r["customer_id"] for r in rows] == good["customer_id"].tolist()  # input order
    assert list(rows[0]) == [
        "customer_id",
        "signed_up",
        "predictions",
        "probabilities_0",
        "probabilities_1",
    ]
    assert [r["signed_up"] for r in rows] == good["signed_up"].tolist()
    features = good.drop(columns=["customer_id", "signed_up"]).astype({"monthly_spend": float})
    np.testing.assert_array_equal([r["predictions"] for r in rows], model.predict(features))
    np.testing.assert_allclose(
        [r["probabilities_1"] for r in rows], model.predict_proba(features)[:, 1]
    )
    rejects = [
        json.loads(line)
        for part in sorted((sink / "_rejects").glob("*.jsonl"))
        for line in part.read_text().splitlines()
    ]
    assert [(r["row"], r["values"]["customer_id"]) for r in rejects] == [
        (5, 1_000_005),
        (2_500, 1_002_500),
    ]
    assert all("monthly_spend" in r["reason"] for r in rejects)

    # Resumed after parts 1 and 3 were lost (as if killed): the rest is kept, and the
    # folder ends byte for byte as the uninterrupted run left it.
    whole = files_of(sink)
    (sink / "part-00001.avro").unlink()
    (sink / "_stats" / "part-00003.json").unlink()
    (sink / "_SUCCESS").unlink()
    again = cli(
        capsys, "batch", "churn@production", str(tmp_path / "events.avro"), str(sink), *args
    )
    assert again.code == 0, again.err
    assert "(3 already done)" in again.out
    assert files_of(sink) == whole


def test_progress_knows_the_rows_of_an_avro_source(model: Pipeline, tmp_path: Path) -> None:
    events(tmp_path / "events.avro", 2_000, seed=3)
    heard: list[batch.Progress] = []
    result = batch.score(
        "churn",
        tmp_path / "events.avro",
        tmp_path / "scores.parquet",  # Avro in, Parquet out
        id_columns=["customer_id"],
        chunk_rows=500,
        settings=modelport.Settings(home=tmp_path),
        on_progress=heard.append,
    )
    assert (result.status, result.rows, result.scored) == ("succeeded", 2_000, 2_000)
    assert [(p.rows, p.fraction) for p in heard] == [(n * 500, n / 4) for n in range(1, 5)]
    out = pd.read_parquet(tmp_path / "scores.parquet")
    assert out["customer_id"].tolist() == list(range(1_000_000, 1_002_000))


def test_a_broken_avro_file_is_bad_input_and_writes_nothing(
    model: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events(tmp_path / "full.avro", 2_000, seed=4)
    data = (tmp_path / "full.avro").read_bytes()
    (tmp_path / "cut.avro").write_bytes(data[: len(data) // 2])
    sink = tmp_path / "scores.avro"
    done = cli(capsys, "batch", "churn", str(tmp_path / "cut.avro"), str(sink))
    assert done.code == 2, done.err
    assert "cut.avro" in done.err
    assert "corrupt or cut short" in done.err
    assert not sink.exists()
    # Damage inside a late block passes the structural check: the job fails where it meets
    # it, naming the file, and the parts written before it are whole Avro files.
    flipped = bytearray(data)
    flipped[len(data) * 4 // 5 : len(data) * 4 // 5 + 64] = b"\xff" * 64
    (tmp_path / "flipped.avro").write_bytes(bytes(flipped))
    done = cli(capsys, "batch", "churn", str(tmp_path / "flipped.avro"), str(sink),
               "--chunk-rows", "200")  # fmt: skip
    assert done.code == 2, done.err
    assert "flipped.avro" in done.err
    parts = sorted(sink.glob("part-*.avro"))
    assert 1 <= len(parts) < 10
    assert sum(1 for _ in read_scores(sink)) == 200 * len(parts)
    assert not list(sink.rglob(".*.tmp"))
    assert not (sink / "_SUCCESS").exists()
    shutil.rmtree(sink)

    nested = tmp_path / "nested.avro"
    schema = {
        "type": "record",
        "name": "Event",
        "fields": [{"name": "tags", "type": {"type": "array", "items": "string"}}],
    }
    with open(nested, "wb") as out:
        fastavro.writer(out, fastavro.parse_schema(schema), [{"tags": ["a"]}])
    done = cli(capsys, "batch", "churn", str(nested), str(sink))
    assert done.code == 2
    assert "field 'tags'" in done.err
    assert "nested array" in done.err
    assert not sink.exists()


def test_predict_reads_an_avro_file(
    model: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = events(tmp_path / "rows.avro", 25, seed=5)
    done = cli(capsys, "predict", "churn@production", "--input", str(tmp_path / "rows.avro"))
    assert done.code == 0, done.err
    predicted = json.loads(done.out)
    features = frame.drop(columns=["customer_id", "signed_up"]).astype({"monthly_spend": float})
    assert predicted["predictions"] == model.predict(features).tolist()
    np.testing.assert_allclose(predicted["probabilities"], model.predict_proba(features))
    (tmp_path / "broken.avro").write_bytes(b"Obj\x01")
    bad = cli(capsys, "predict", "churn", "--input", str(tmp_path / "broken.avro"))
    assert bad.code == 2
    assert "broken.avro" in bad.err


def test_avro_named_by_flags_rather_than_suffixes(
    model: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = events(tmp_path / "events.bin", 300, seed=6)
    sink = tmp_path / "scores"
    done = cli(capsys, "batch", "churn", str(tmp_path / "events.bin"), str(sink),
               "--input-format", "avro", "--output-format", "avro")  # fmt: skip
    assert done.code == 0, done.err
    assert [p.name for p in sink.glob("part-*")] == ["part-00000.avro"]
    features = frame.drop(columns=["customer_id", "signed_up"]).astype({"monthly_spend": float})
    assert [r["predictions"] for r in read_scores(sink)] == model.predict(features).tolist()


@pytest.mark.parametrize("direction", ["input", "output"])
def test_the_ray_engine_refuses_avro_and_names_the_local_engine(
    model: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str], direction: str
) -> None:
    """Ray Data has no Avro reader or writer here: refused before Ray starts or a file is
    written, instead of reading Avro as JSON or writing JSON into an .avro folder."""
    if direction == "input":
        events(tmp_path / "events.avro", 50, seed=3)
        source, sink = tmp_path / "events.avro", tmp_path / "scores.parquet"
    else:
        frame, _ = churn_frame(50, seed=3)
        frame.to_parquet(tmp_path / "events.parquet")
        source, sink = tmp_path / "events.parquet", tmp_path / "scores.avro"
    done = cli(capsys, "batch", "churn@production", str(source), str(sink), "--engine", "ray")
    assert done.code == 2, done.out
    assert "score Avro files with the local engine (--engine local)" in done.err
    assert not sink.exists()
