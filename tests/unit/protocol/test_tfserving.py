"""TF Serving codec: row and columnar requests, both response shapes, b64, NaN in and out."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from modelport.artifact.signature import Signature
from modelport.errors import InvalidInput, ModelportError
from modelport.protocol import tfserving


def _decode(doc: object, signature: Signature) -> tuple[object, bool]:
    return tfserving.decode_request(orjson.dumps(doc), signature)


def test_instances_for_a_single_input_are_its_rows(single: Signature) -> None:
    data, rows = _decode({"instances": [[1, 2], [3, 4]], "signature_name": "x"}, single)
    assert rows is True
    np.testing.assert_array_equal(single.coerce(data)["x"], [[1, 2], [3, 4]])


def test_instances_may_name_the_single_input(single: Signature) -> None:
    data, _ = _decode({"instances": [{"x": [1, 2]}, {"x": [3, 4]}]}, single)
    assert single.coerce(data)["x"].shape == (2, 2)


def test_instances_for_several_inputs_are_objects(multi: Signature) -> None:
    instances = [{"a": [1, 2], "b": "p"}, {"a": [3, 4], "b": "q"}]
    data, rows = _decode({"instances": instances}, multi)
    got = multi.coerce(data)
    assert rows is True
    np.testing.assert_array_equal(got["a"], [[1, 2], [3, 4]])
    assert got["b"].tolist() == ["p", "q"]


def test_instances_for_a_table(table: Signature) -> None:
    data, _ = _decode({"instances": [{"age": 3, "city": "x"}, {"age": 4, "city": "y"}]}, table)
    assert table.coerce(data)["age"].tolist() == [3, 4]


def test_inputs_columnar(single: Signature, multi: Signature) -> None:
    data, rows = _decode({"inputs": [[1, 2]]}, single)
    assert rows is False
    assert single.coerce(data)["x"].shape == (1, 2)
    data, _ = _decode({"inputs": {"a": [[1, 2]], "b": ["p"]}}, multi)
    assert multi.coerce(data)["b"].tolist() == ["p"]


def test_b64_values_decode_to_text(multi: Signature) -> None:
    encoded = base64.b64encode("héllo".encode()).decode()
    data, _ = _decode({"instances": [{"a": [1, 2], "b": {"b64": encoded}}]}, multi)
    assert multi.coerce(data)["b"].tolist() == ["héllo"]


def test_nan_tokens_are_read(single: Signature) -> None:
    data, _ = tfserving.decode_request(b'{"instances": [[NaN, Infinity]]}', single)
    got = single.coerce(data)["x"]
    assert np.isnan(got[0, 0])
    assert got[0, 1] == np.inf


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "^invalid JSON: "),
        (b"[1]", "must be a JSON object with an 'instances' or 'inputs' key"),
        (b"{}", "^Missing 'inputs' or 'instances' key$"),
        (
            b'{"instances": [], "inputs": []}',
            "^Not formatted correctly expecting only one of 'inputs' or 'instances' keys",
        ),
        (b'{"instances": []}', "'instances' must be a non-empty list"),
        (b'{"instances": {"a": 1}}', "'instances' must be a non-empty list"),
        (b'{"instances": [[1, 2]]}', "expecting object but got list at item 0 of 'instances'"),
        (
            b'{"instances": [{"a": [1, 2], "b": "x"}, {"a": [1, 2]}]}',
            r"instance 1 must be an object with the same keys as instance 0 \(a, b\)",
        ),
        (b'{"instances": [{"a": [1, 2], "b": "x"}, 3]}', "instance 1 must be an object"),
        (b'{"inputs": [[1, 2]]}', "'inputs' must be an object keyed by input name"),
        (b'{"inputs": {"b": {"b64": "!!"}}}', "Unable to base64 decode"),
        (b'{"inputs": {"b": {"b64": 3}}}', "'b64' value must be a string"),
        (b'{"inputs": {"b": {"b64": "/w=="}}}', "'b64' value is not UTF-8 text"),
    ],
)
def test_malformed_requests(multi: Signature, body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        tfserving.decode_request(body, multi)


ONE = {"y": np.array([[0.5], [1.5]], dtype=np.float32)}
TWO = {"label": np.array(["a", "b"], dtype=object), "score": np.array([0.25, 0.75])}


def test_row_format_responses() -> None:
    assert orjson.loads(tfserving.encode_response(ONE, True)) == {"predictions": [[0.5], [1.5]]}
    assert orjson.loads(tfserving.encode_response(TWO, True)) == {
        "predictions": [{"label": "a", "score": 0.25}, {"label": "b", "score": 0.75}]
    }


def test_columnar_responses() -> None:
    assert orjson.loads(tfserving.encode_response(ONE, False)) == {"outputs": [[0.5], [1.5]]}
    assert orjson.loads(tfserving.encode_response(TWO, False)) == {
        "outputs": {"label": ["a", "b"], "score": [0.25, 0.75]}
    }


def test_nonfinite_outputs_are_standard_json_nulls() -> None:
    out = {"y": np.array([np.nan, np.inf, -np.inf, 1.0], dtype=np.float32)}
    assert tfserving.encode_response(out, True) == b'{"predictions":[null,null,null,1.0]}'
    two: dict[str, np.ndarray] = {"y": out["y"], "z": np.arange(4)}
    rows = orjson.loads(tfserving.encode_response(two, True))["predictions"]  # strict parser
    assert [row["y"] for row in rows] == [None, None, None, 1.0]


def test_rows_need_one_batch_size() -> None:
    with pytest.raises(ModelportError, match="outputs cannot be split into rows"):
        tfserving.encode_response({"a": np.arange(2), "b": np.arange(3)}, True)


def test_error_body() -> None:
    assert orjson.loads(tfserving.encode_error("bad")) == {"error": "bad"}


def test_outputs_of_any_layout_and_text_type() -> None:
    out = {"t": np.arange(4).reshape(2, 2).T, "s": np.array([b"ab", "c"], dtype=object)}
    assert orjson.loads(tfserving.encode_response(out, False)) == {
        "outputs": {"t": [[0, 2], [1, 3]], "s": ["ab", "c"]}
    }


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # deeper than Python's stack
        b'{"instances": [[' + b"9" * 5_000 + b"]]}",  # past Python's int digit limit
        b'{"instances": [[1, 2]]',  # cut short
        b'{"instances": [["\xff"]]}',  # not UTF-8
    ],
)
def test_hostile_json_is_invalid_input_not_a_crash(body: bytes) -> None:
    with pytest.raises(InvalidInput, match="invalid JSON"):
        tfserving.loads(body)
