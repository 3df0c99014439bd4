"""MLflow /invocations codec: each JSON format, CSV, content types and MLflow's messages."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from modelport.artifact.signature import Signature, TextTable
from modelport.errors import InvalidInput, SignatureError
from modelport.protocol import mlflow

JSON = "application/json"


def _decode(doc: object, signature: Signature) -> object:
    return mlflow.decode_request(orjson.dumps(doc), JSON, signature)


def test_dataframe_split(table: Signature) -> None:
    split = {"columns": ["age", "city"], "data": [[3, "x"], [4, "y"]], "index": [7, 8]}
    data = _decode({"dataframe_split": split, "params": {"t": 1}}, table)
    assert isinstance(data, pd.DataFrame)
    assert list(data.index) == [7, 8]
    got = table.coerce(data)
    assert got["age"].tolist() == [3, 4]
    assert got["city"].tolist() == ["x", "y"]


def test_dataframe_records(table: Signature) -> None:
    data = _decode({"dataframe_records": [{"age": 3, "city": "x"}]}, table)
    assert isinstance(data, pd.DataFrame)
    assert table.coerce(data)["city"].tolist() == ["x"]


def test_dataframe_for_a_tensor_model_is_its_feature_matrix(single: Signature) -> None:
    data = _decode({"dataframe_split": {"columns": ["f0", "f1"], "data": [[1, 2]]}}, single)
    np.testing.assert_array_equal(single.coerce(data)["x"], [[1, 2]])


def test_instances_and_inputs(single: Signature, multi: Signature, table: Signature) -> None:
    assert single.coerce(_decode({"instances": [[1, 2]]}, single))["x"].shape == (1, 2)
    got = multi.coerce(_decode({"instances": [{"a": [1, 2], "b": "p"}]}, multi))
    assert got["b"].tolist() == ["p"]
    got = multi.coerce(_decode({"inputs": {"a": [[1, 2]], "b": ["p"]}}, multi))
    assert got["a"].shape == (1, 2)
    # Unlike TF Serving, MLflow lets bare rows reach a table as positional columns.
    assert table.coerce(_decode({"instances": [[3, "x"]]}, table))["city"].tolist() == ["x"]


def test_csv(table: Signature) -> None:
    body = b"age,city\n3,007\n4.0,y\n"
    data = mlflow.decode_request(body, "text/csv; charset=utf-8", table)
    assert isinstance(data, TextTable)
    got = table.coerce(data)
    assert got["age"].tolist() == [3, 4]  # 4.0 is a whole number: lossless for an int
    assert got["city"].tolist() == ["007", "y"]  # read as text, per the signature


def test_csv_cells_follow_the_one_rule(table: Signature) -> None:
    for body, message in [
        (b"age,city\n3.5,x\n", r"^input 'age': expected int64, got 3.5 which is not a whole"),
        (b"age,city\nold,x\n", r"^input 'age': expected int64, got 'old' which is not a number$"),
        (b"age,city\n,x\n", r"^input 'age': expected int64, got null$"),
    ]:
        with pytest.raises(SignatureError, match=message):
            table.coerce(mlflow.decode_request(body, "text/csv", table))


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{}", "text/plain", r"only supports the following content types.*Got 'text/plain'"),
        (b"{}", "application/json; charset=latin-1", "^The scoring server only supports UTF-8$"),
        (b"{", JSON, "^invalid JSON: "),
        (b"[1]", JSON, r"exactly one of the input fields .*\. Received a list\.$"),
        (b"3", JSON, "Received unexpected input type 'int'"),
        (
            b'{"data": []}',
            JSON,
            r"^The input must be a JSON dictionary with exactly one of the input fields "
            r"\{'dataframe_split', 'dataframe_records', 'instances', 'inputs'\}\. "
            r"Received dictionary with input fields: \['data'\]\.$",
        ),
        (
            b'{"instances": [], "inputs": []}',
            JSON,
            r"Received dictionary with input fields: \['instances', 'inputs'\]",
        ),
        (b'{"dataframe_split": [1]}', JSON, "'dataframe_split' must be an object with a 'data'"),
        (
            b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}',
            JSON,
            "Failed to read 'dataframe_split' as a DataFrame",
        ),
        (b'{"dataframe_records": [1]}', JSON, "'dataframe_records' must be a list of objects"),
        (b'{"instances": 5}', JSON, "'instances' must be a non-empty list"),
        (b"", "text/csv", "Failed to parse input as a Pandas DataFrame"),
        (b'a,b\n"1,2\n', "text/csv", "Failed to parse input as a Pandas DataFrame"),
        (b'{"instances": [[1, 2, 3]]}', JSON, r"Failed to read 'instances' as rows of \['age'"),
        (b"a\n\xff\n", "text/csv", "Failed to parse input as a Pandas DataFrame"),
    ],
)
def test_malformed_requests(table: Signature, body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        mlflow.decode_request(body, content_type, table)


def test_responses() -> None:
    one = {"y": np.array([1, 0])}
    assert orjson.loads(mlflow.encode_response(one)) == {"predictions": [1, 0]}
    two = {"label": np.array(["a"], dtype=object), "p": np.array([[0.25, 0.75]])}
    assert orjson.loads(mlflow.encode_response(two)) == {
        "predictions": {"label": ["a"], "p": [[0.25, 0.75]]}
    }
    assert (
        mlflow.encode_response({"y": np.array([np.nan, np.inf])}) == b'{"predictions":[null,null]}'
    )


def test_error_body() -> None:
    assert orjson.loads(mlflow.encode_error("bad", code="invalid_input")) == {
        "error_code": "BAD_REQUEST",
        "message": "bad",
        "code": "invalid_input",
    }
    assert orjson.loads(mlflow.encode_error("gone", "RESOURCE_DOES_NOT_EXIST"))["error_code"] == (
        "RESOURCE_DOES_NOT_EXIST"
    )
