"""One rule for data types, whichever way a file comes in: ``modelport predict``, the server
and ``modelport batch`` read the same file alike, and refuse the same values with the same
reason (issue 14, items 6 and 9)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import modelport
from modelport import batch
from modelport.errors import InvalidInput, SignatureError

from ._cli import cli
from ._server import Server, serving

CODES = ["007", "010", "123"]


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    """``year`` an integer, ``code`` a code of digits with leading zeros (text)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"year": rng.integers(1990, 2020, n).astype(np.int64), "code": rng.choice(CODES, n)}
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``codes``: a pipeline over an int ``year`` and a text ``code`` (an unknown code is an
    error of the encoder), registered with a DataFrame example."""
    root = tmp_path_factory.mktemp("types")
    x = frame(400)
    y = ((x["year"] > 2005).to_numpy() ^ (x["code"] == "007").to_numpy()).astype(np.int64)
    prep = ColumnTransformer([("code", OneHotEncoder(), ["code"])], remainder="passthrough")
    model = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=1000))]).fit(x, y)
    with modelport.Registry(modelport.Settings(home=root)) as registry:
        registry.register("codes", model, input_example=x[:5])
    return root


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    with serving(home, "codes") as srv:
        yield srv


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    return home


def expected(home: Path, rows: pd.DataFrame) -> list[object]:
    loaded = modelport.load("codes", settings=modelport.Settings(home=home))
    return list(loaded.predict(rows).tolist())


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


GOOD_CSV = "year,code\n2005.0,007\n1999,010\n2011,123\n"
GOOD_ROWS = pd.DataFrame({"year": [2005, 1999, 2011], "code": ["007", "010", "123"]})


def test_the_same_file_is_read_alike_by_predict_the_server_and_batch(
    env: Path, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An integer written as ``2005.0`` is 2005 and the code ``007`` stays text, for all
    three (predict read it as the integer 7; the server and predict refused 2005.0)."""
    source = write_csv(tmp_path / "rows.csv", GOOD_CSV)
    want = expected(env, GOOD_ROWS)

    done = cli(capsys, "predict", "codes", "--input", str(source))
    assert done.code == 0, done.err
    assert json.loads(done.out)["predictions"] == want

    body = source.read_bytes()
    mlflow = httpx.post(
        f"{server.url}/invocations", content=body, headers={"Content-Type": "text/csv"}
    )
    assert mlflow.status_code == 200, mlflow.text
    assert mlflow.json()["predictions"]["predictions"] == want  # columns: two outputs
    records = GOOD_ROWS.astype({"year": float}).to_dict("records")  # 2005.0 in JSON
    tf = httpx.post(f"{server.url}/v1/models/codes:predict", json={"instances": records})
    assert tf.status_code == 200, tf.text
    assert [row["predictions"] for row in tf.json()["predictions"]] == want

    result = batch.score(
        "codes", source, tmp_path / "out.parquet", settings=modelport.Settings(home=env)
    )
    assert (result.scored, result.rejected) == (3, 0)
    assert pd.read_parquet(tmp_path / "out.parquet")["predictions"].tolist() == want


def test_a_lossy_value_is_refused_by_all_three_with_one_reason(
    env: Path, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """2001.5 in an integer column: refused everywhere, the value shown as written."""
    source = write_csv(tmp_path / "bad.csv", "year,code\n2001.5,007\n2003,010\n")
    reason = "expected int64, got 2001.5 which is not a whole number"

    done = cli(capsys, "predict", "codes", "--input", str(source))
    assert done.code == 2
    assert f"input 'year': {reason}" in done.err

    r = httpx.post(
        f"{server.url}/invocations",
        content=source.read_bytes(),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 400
    assert f"input 'year': {reason}" in r.json()["message"]
    r = httpx.post(
        f"{server.url}/v1/models/codes:predict",
        json={"instances": [{"year": 2001.5, "code": "007"}]},
    )
    assert r.status_code == 400
    assert r.json()["error"] == f"input 'year': {reason}"

    sink = tmp_path / "out.parquet"
    result = batch.score(
        "codes", source, sink, max_reject_fraction=1.0, settings=modelport.Settings(home=env)
    )
    assert (result.scored, result.rejected) == (1, 1)
    [line] = (sink / "_rejects" / "part-00000.jsonl").read_text().splitlines()
    reject = json.loads(line)
    assert reject["reason"] == f"column 'year': {reason}"  # not np.float64(2001.5)
    assert reject["values"] == {"year": "2001.5", "code": "007"}


def test_a_huge_integer_is_named_as_out_of_range(server: Server) -> None:
    """It was reported as 'got float64' (JSON parsers read it as a float)."""
    big = 10**20
    r = httpx.post(
        f"{server.url}/v1/models/codes:predict",
        content=json.dumps({"instances": [{"year": big, "code": "007"}]}),
    )
    assert r.status_code == 400
    assert (
        r.json()["error"] == f"input 'year': expected int64, got {big} which is outside its range"
    )


def test_a_misspelled_column_is_named_with_the_close_match(
    env: Path, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"Year": 2005, "code": "007"}]))
    done = cli(capsys, "predict", "codes", "--input", str(rows))
    assert done.code == 2
    assert "the input has 'Year' (did you mean 'year'?)" in done.err
    r = httpx.post(
        f"{server.url}/invocations",
        json={"dataframe_split": {"columns": ["yaer", "code"], "data": [[2005, "007"]]}},
    )
    assert r.status_code == 400
    assert "missing input 'year'" in r.json()["message"]
    assert "the input has 'yaer' (did you mean 'year'?)" in r.json()["message"]
    source = write_csv(tmp_path / "rows.csv", "YEAR,code\n2005,007\n")
    with pytest.raises(InvalidInput, match="it has 'YEAR': did you mean 'year'"):
        batch.score("codes", source, tmp_path / "o.parquet", settings=modelport.Settings(home=env))


def test_a_single_record_is_one_row(
    env: Path, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One dict of values was 'expected shape [-1], got []'."""
    want = expected(env, GOOD_ROWS[:1])
    record = tmp_path / "one.json"
    record.write_text(json.dumps({"year": 2005, "code": "007"}))
    done = cli(capsys, "predict", "codes", "--input", str(record))
    assert done.code == 0, done.err
    assert json.loads(done.out)["predictions"] == want
    r = httpx.post(
        f"{server.url}/v1/models/codes:predict", json={"inputs": {"year": 2005, "code": "007"}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"]["predictions"] == want


def test_no_rows_is_refused_before_the_model(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty DataFrame reached scikit-learn's own error."""
    loaded = modelport.load("codes", settings=modelport.Settings(home=env))
    with pytest.raises(SignatureError, match=r"^the input has no rows: nothing to predict$"):
        loaded.predict(GOOD_ROWS[:0])
    header = write_csv(tmp_path / "empty.csv", "year,code\n")
    done = cli(capsys, "predict", "codes", "--input", str(header))
    assert done.code == 2
    assert "the input has no rows" in done.err


def test_a_pickled_dict_is_refused_at_registration(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was registered (or failed with AttributeError when an example made it predict)."""
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    example = write_csv(tmp_path / "example.csv", "year,code\n2005,007\n")
    for extra in ([], ["--example", str(example)]):
        done = cli(capsys, "register", str(path), "--name", "notamodel", *extra)
        assert done.code == 5, done.err
        assert "a dict read from 'model.pkl': it is not a model" in done.err
