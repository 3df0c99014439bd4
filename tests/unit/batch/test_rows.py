"""From a chunk of rows to predictions: each value judged by the one rule every input follows,
bad rows set aside with a reason that shows the value as it was written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import modelport
from modelport.batch.rows import feature_columns, score_chunk
from modelport.errors import InvalidInput
from modelport.packaging import LoadedModel


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """``year`` (int64) and ``code`` (text), one-hot encoded: an unknown code is an error."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {"year": rng.integers(1990, 2020, 200), "code": rng.choice(["007", "010"], 200)}
    )
    y = (x["year"] > 2005).astype(int)
    prep = ColumnTransformer([("c", OneHotEncoder(), ["code"])], remainder="passthrough")
    pipe = Pipeline([("p", prep), ("m", LogisticRegression(max_iter=500))]).fit(x, y)
    path = tmp_path_factory.mktemp("rows") / "codes"
    modelport.save(pipe, path, input_example=x[:5])
    return modelport.load(str(path))


def test_text_columns_follow_the_one_rule(model: LoadedModel) -> None:
    """As a CSV chunk arrives: every feature column as text."""
    table = pa.table(
        {
            "year": ["2005.0", "2001.5", "", "lots", "1999", "2003"],
            "code": ["007", "010", "007", "007", None, "999"],
        }
    )
    scored = score_chunk(model, table, ["year", "code"], None)
    reasons = dict(scored.rejected)
    assert reasons[1] == "column 'year': expected int64, got 2001.5 which is not a whole number"
    assert reasons[2] == "column 'year': expected int64, got null"
    assert reasons[3] == "column 'year': 'lots' is not a number"
    assert reasons[4].startswith("column 'code': missing value the model cannot take (")
    assert reasons[5].startswith("model error: ")
    assert scored.kept.tolist() == [0]
    want = model.predict(pd.DataFrame({"year": [2005], "code": ["007"]}))
    np.testing.assert_array_equal(scored.outputs["predictions"], want)


def test_typed_columns_show_plain_values(model: LoadedModel) -> None:
    """As Parquet gives them: floats for an int column, nulls, huge values."""
    table = pa.table(
        {
            "year": pa.array([2005.0, 2001.5, None, 1e20], pa.float64()),
            "code": ["007"] * 4,
        }
    )
    reasons = dict(score_chunk(model, table, ["year", "code"], None).rejected)
    assert reasons == {
        1: "column 'year': expected int64, got 2001.5 which is not a whole number",
        2: "column 'year': expected int64, got null",
        3: "column 'year': expected int64, got 100000000000000000000 which is outside its range",
    }
    ints = pa.table({"year": pa.array([2005, None], pa.int64()), "code": ["007", "007"]})
    assert dict(score_chunk(model, ints, ["year", "code"], None).rejected) == {
        1: "column 'year': expected int64, got null"
    }


def test_numbers_for_a_text_column_fail_the_job(model: LoadedModel) -> None:
    table = pa.table({"year": [2005], "code": pa.array([7], pa.int64())})
    with pytest.raises(InvalidInput, match=r"^column 'code' holds int64: expected str, got int64"):
        score_chunk(model, table, ["year", "code"], None)


def test_a_misnamed_column_is_named(model: LoadedModel) -> None:
    with pytest.raises(InvalidInput, match=r"it has 'Year': did you mean 'year'\?$"):
        feature_columns(model.signature, ["Year", "code"], set())


def test_a_chunk_with_no_good_row_is_not_predicted(model: LoadedModel) -> None:
    table = pa.table({"year": ["x", "y"], "code": ["007", "007"]})
    scored = score_chunk(model, table, ["year", "code"], None)
    assert scored.kept.tolist() == []
    assert [r for _, r in scored.rejected] == [
        "column 'year': 'x' is not a number",
        "column 'year': 'y' is not a number",
    ]
