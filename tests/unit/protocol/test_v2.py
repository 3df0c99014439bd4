"""V2 (Open Inference Protocol) codec: round trips, binary extension, every malformed case."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import InvalidInput, ModelportError
from modelport.protocol import v2, v2_binary, v2_client

NUMERIC = [d for d in v2.DATATYPES if d != "str"]


def _sample(dtype: str) -> np.ndarray:
    if dtype == "str":
        return np.array([["a", "é"], ["", "long text"]], dtype=object)
    if dtype == "bool":
        return np.array([[True, False], [False, True]])
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
    return np.array([[info.min, 0], [1, info.max]], dtype=dtype)


def _roundtrip(arrays: dict[str, np.ndarray], binary: bool) -> dict[str, np.ndarray]:
    body, headers = v2_client.encode_request(arrays, binary=binary)
    length = headers.get(v2_binary.HEADER_LENGTH)
    return v2.decode_request(body, int(length) if length else None).inputs


def _body(*inputs: object, **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def _decode(*inputs: dict[str, Any], **extra: Any) -> v2.V2Request:
    return v2.decode_request(_body(*inputs, **extra), None)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("dtype", list(v2.DATATYPES))
def test_every_datatype_round_trips(dtype: str, binary: bool) -> None:
    arr = _sample(dtype)
    got = _roundtrip({"t": arr}, binary)["t"]
    assert got.dtype == arr.dtype
    assert got.shape == arr.shape
    np.testing.assert_array_equal(got, arr)


def test_datatype_names_and_inverse() -> None:
    assert v2.DATATYPES["float32"] == "FP32"
    assert v2.DATATYPES["str"] == "BYTES"
    assert all(v2.to_dtype(dt) == name for name, dt in v2.DATATYPES.items())
    with pytest.raises(InvalidInput, match="unknown datatype 'FP8'"):
        v2.to_dtype("FP8")


def test_binary_wire_format_matches_triton() -> None:
    body, headers = v2_client.encode_request(
        {"x": np.array([1, 2], dtype=np.uint32), "s": np.array(["ab"], dtype=object)},
        binary=True,
    )
    length = int(headers[v2_binary.HEADER_LENGTH])
    assert headers["Content-Type"] == "application/octet-stream"
    doc = orjson.loads(body[:length])
    assert doc["inputs"][0]["parameters"] == {"binary_data_size": 8}
    assert "data" not in doc["inputs"][0]
    assert body[length:] == b"\x01\0\0\0\x02\0\0\0" + struct.pack("<I", 2) + b"ab"


def test_nested_and_flat_json_data_are_both_row_major() -> None:
    flat = _decode({"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]})
    nested = _decode({"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [[1, 2], [3, 4]]})
    np.testing.assert_array_equal(flat.inputs["x"], [[1, 2], [3, 4]])
    np.testing.assert_array_equal(nested.inputs["x"], flat.inputs["x"])
    assert flat.inputs["x"].dtype == np.int32


def test_fp16_and_null_as_nan() -> None:
    got = _decode({"name": "h", "shape": [3], "datatype": "FP16", "data": [1.5, None, 2]})
    assert got.inputs["h"].dtype == np.float16
    np.testing.assert_array_equal(got.inputs["h"], np.array([1.5, np.nan, 2], dtype=np.float16))


def test_nonfinite_outputs_are_null_in_json_and_exact_in_binary() -> None:
    out = {"y": np.array([np.nan, np.inf, -np.inf, 1.0], dtype=np.float32)}
    body, _ = v2.encode_response("m", None, out, None)
    assert orjson.loads(body)["outputs"][0]["data"] == [None, None, None, 1.0]
    request = _decode(
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},
        parameters={"binary_data_output": True},
    )
    body, headers = v2.encode_response("m", None, out, request)
    got, _ = v2_client.decode_response(body, int(headers[v2_binary.HEADER_LENGTH]))
    np.testing.assert_array_equal(got["y"], out["y"])


def test_response_fields_id_echo_and_version() -> None:
    request = _decode({"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}, id="42")
    body, headers = v2.encode_response("m", "3", {"y": np.array([[0.5, 1.5]])}, request)
    assert headers == {"Content-Type": "application/json"}
    assert orjson.loads(body) == {
        "model_name": "m",
        "model_version": "3",
        "id": "42",
        "outputs": [{"name": "y", "datatype": "FP64", "shape": [1, 2], "data": [0.5, 1.5]}],
    }
    body, _ = v2.encode_response("m", None, {"y": np.array([1])}, None)
    assert set(orjson.loads(body)) == {"model_name", "outputs"}


def test_requested_outputs_and_binary_flags() -> None:
    request = _decode(
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},
        parameters={"binary_data_output": True},
        outputs=[{"name": "b"}, {"name": "a", "parameters": {"binary_data": False}}],
    )
    assert request.outputs == ["b", "a"]
    assert request.binary_outputs == {"a": False}
    assert request.binary_default is True
    outputs = {
        "a": np.array([1, 2], dtype=np.int64),
        "b": np.array(["x", "yz"], dtype=object),
        "c": np.array([0.0]),
    }
    body, headers = v2.encode_response("m", None, outputs, request)
    length = int(headers[v2_binary.HEADER_LENGTH])
    doc = orjson.loads(body[:length])
    assert [o["name"] for o in doc["outputs"]] == ["b", "a"]
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 4 + 1 + 4 + 2}
    assert doc["outputs"][1]["data"] == [1, 2]
    got, rest = v2_client.decode_response(body, length)
    assert list(got) == ["b", "a"]
    assert got["b"].tolist() == ["x", "yz"]
    assert rest == {"model_name": "m"}


def test_unknown_requested_output() -> None:
    request = _decode(
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}, outputs=[{"name": "z"}]
    )
    with pytest.raises(InvalidInput, match=r"model has no output 'z' \(outputs: y\)"):
        v2.encode_response("m", None, {"y": np.array([1])}, request)


def test_client_request_options() -> None:
    body, headers = v2_client.encode_request(
        {"x": np.array([1.0])}, outputs=["y"], binary_outputs=True, request_id="7"
    )
    assert headers == {"Content-Type": "application/json"}
    request = v2.decode_request(body, None)
    assert (request.id, request.outputs, request.binary_default) == ("7", ["y"], True)
    assert request.wants_binary("y")


def test_metadata_documents() -> None:
    signature = Signature(
        "tensors", (TensorSpec("x", "float32", (-1, 4)),), (TensorSpec("label", "str"),)
    )
    assert v2.model_metadata("iris", ["1", "2"], "sklearn", signature) == {
        "name": "iris",
        "versions": ["1", "2"],
        "platform": "sklearn",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]}],
    }
    assert v2.server_metadata("modelport", "0.1.0", ["binary_tensor_data"]) == {
        "name": "modelport",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }
    assert orjson.loads(v2.encode_error("boom")) == {"error": "boom", "code": "internal"}
    assert orjson.loads(v2.encode_error("gone", "model_not_found"))["code"] == "model_not_found"


X = {"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}

MALFORMED: list[tuple[bytes, int | None, str]] = [
    (b"{", None, r"^invalid JSON: "),
    (b"[]", None, "must be a JSON object"),
    (_body(X, id=5), None, "'id' must be a string"),
    (orjson.dumps({}), None, "'inputs' must be a non-empty list"),
    (_body(), None, "'inputs' must be a non-empty list"),
    (_body("x"), None, "'inputs' item 0 must be an object"),
    (_body({"shape": [1]}), None, "'inputs' item 0 needs a 'name' string"),
    (_body(X, X), None, "input 'x' appears more than once"),
    (_body({**X, "datatype": "FP8"}), None, "input 'x': unknown datatype 'FP8'"),
    (_body({**X, "shape": "2"}), None, r"input 'x': 'shape' must be a list of integers"),
    (_body({**X, "shape": [True]}), None, r"'shape' must be a list of integers"),
    (_body({**X, "shape": [-1, 2]}), None, r"shape \[-1, 2\] has a negative dimension"),
    (_body({**X, "data": None} | {"data": None}), None, "needs 2 elements, got 1"),
    (_body({k: v for k, v in X.items() if k != "data"}), None, "has neither 'data' nor binary"),
    (
        _body({**X, "shape": [2, 3], "data": [1, 2, 3, 4, 5]}),
        None,
        r"input 'x': shape \[2, 3\] needs 6 elements, got 5",
    ),
    (_body({**X, "shape": [10**9, 10**9], "data": [1]}), None, "needs 1000000000000000000"),
    (_body({**X, "data": [[1, 2], [3]]}), None, "nested lists have different lengths"),
    (_body({**X, "data": ["1", "2"]}), None, "FP32 data must be numbers"),
    (_body({**X, "data": [1, "a"]}), None, "FP32 data must be numbers"),
    (_body({**X, "data": [True, False]}), None, "FP32 data must be numbers"),
    (_body({**X, "datatype": "INT8", "data": [1, 300]}), None, "out of range for INT8"),
    (_body({**X, "datatype": "UINT8", "data": [-1, 3]}), None, "out of range for UINT8, got -1"),
    (_body({**X, "datatype": "UINT64", "data": [-1, 2**64 - 1]}), None, "out of range for UINT64"),
    (_body({**X, "datatype": "INT64", "data": [1, 2**64 - 1]}), None, "out of range for INT64"),
    (_body({**X, "datatype": "INT32", "data": [2.0, 1.5]}), None, "must be integers, got 1.5"),
    (
        _body({**X, "datatype": "INT64", "data": [1e20, 1]}),
        None,
        "out of range for INT64, got 100000000000000000000",
    ),
    (_body({**X, "datatype": "INT32", "data": [None, 2]}), None, "must be integers"),
    (_body({**X, "datatype": "BOOL", "data": [1, 0]}), None, "BOOL data must be true/false"),
    (_body({**X, "datatype": "BYTES", "data": [1, 2]}), None, "BYTES data must be strings"),
    (_body({**X, "datatype": "BYTES", "data": ["a"]}), None, "needs 2 elements, got 1"),
    (_body({**X, "parameters": []}), None, "input 'x': 'parameters' must be an object"),
    (_body(X, parameters={"binary_data_output": 1}), None, "must be true or false"),
    (_body(X, outputs={}), None, "'outputs' must be a list of objects"),
    (_body(X, outputs=[{"name": "y"}, {"name": "y"}]), None, "'y' is requested more than once"),
    (
        _body(X, outputs=[{"name": "y", "parameters": {"binary_data": "yes"}}]),
        None,
        "output 'y': parameter 'binary_data' must be true or false",
    ),
    (_body(X), 10_000, "Inference-Header-Content-Length is 10000 but the body has"),
    (_body(X), -1, "Inference-Header-Content-Length is -1"),
    (_body(X) + b"junk", len(_body(X)), "4 bytes of binary data follow the last tensor"),
]


def _binary(item: dict[str, Any], tail: bytes) -> tuple[bytes, int]:
    header = _body(item)
    return header + tail, len(header)


B = {"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}


@pytest.mark.parametrize(("body", "length", "message"), MALFORMED)
def test_malformed_requests(body: bytes, length: int | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        v2.decode_request(body, length)


@pytest.mark.parametrize(
    ("item", "tail", "message"),
    [
        (B, b"\0" * 4, "binary_data_size 8 runs past the end of the body"),
        ({**B, "parameters": {"binary_data_size": -8}}, b"", "must be a non-negative integer"),
        ({**B, "parameters": {"binary_data_size": 4}}, b"\0" * 4, "needs 8 bytes, got 4"),
        ({**B, "shape": [10**12], "parameters": {"binary_data_size": 0}}, b"", "needs 4000000"),
        (
            {**B, "datatype": "BOOL", "parameters": {"binary_data_size": 2}},
            b"\x01\x02",
            "BOOL bytes must be 0 or 1",
        ),
        (
            {**B, "datatype": "BYTES", "shape": [10**12], "parameters": {"binary_data_size": 4}},
            b"\0" * 4,
            r"needs 1000000000000 elements, got 4 bytes",
        ),
        (
            {**B, "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}},
            struct.pack("<I", 9) + b"ab",
            "element 0 runs past its binary data",
        ),
        (
            {**B, "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 9}},
            struct.pack("<I", 3) + b"abc" + b"\0\0",
            "binary data ends inside element 1",
        ),
        (
            {**B, "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}},
            struct.pack("<I", 1) + b"a" + b"!",
            "1 bytes left after 1 elements",
        ),
        (
            {**B, "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 5}},
            struct.pack("<I", 1) + b"\xff",
            "element 0 is not UTF-8 text",
        ),
    ],
)
def test_malformed_binary_inputs(item: dict[str, Any], tail: bytes, message: str) -> None:
    body, length = _binary(item, tail)
    with pytest.raises(InvalidInput, match=message):
        v2.decode_request(body, length)


def test_binary_size_without_header_length_says_so() -> None:
    with pytest.raises(InvalidInput, match="was Inference-Header-Content-Length sent"):
        v2.decode_request(_body(B), None)


def test_binary_inputs_are_zero_copy_views() -> None:
    body, length = _binary(B, np.array([1, 2], dtype="<f4").tobytes())
    x = v2.decode_request(body, length).inputs["x"]
    assert x.tolist() == [1.0, 2.0]
    assert not x.flags.writeable


def test_zero_sized_tensors() -> None:
    got = _decode({"name": "x", "shape": [0, 3], "datatype": "INT16", "data": []})
    assert got.inputs["x"].shape == (0, 3)
    assert got.inputs["x"].dtype == np.int16
    assert _roundtrip({"x": np.zeros((0, 2), dtype=np.float32)}, True)["x"].shape == (0, 2)


_DTYPES = st.sampled_from(NUMERIC)


@st.composite
def _tensors(draw: st.DrawFn) -> dict[str, np.ndarray]:
    count = draw(st.integers(1, 3))
    out = {}
    for i in range(count):
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
        if draw(st.booleans()):
            out[f"t{i}"] = draw(hnp.arrays(np.dtype(draw(_DTYPES)), shape))
        else:
            texts = draw(st.lists(st.text(max_size=5), min_size=1, max_size=1))
            out[f"t{i}"] = np.full(shape, texts[0], dtype=object)
    return out


@settings(max_examples=150, deadline=None)
@given(arrays=_tensors(), binary=st.booleans())
def test_encode_then_decode_is_identity(arrays: dict[str, np.ndarray], binary: bool) -> None:
    got = _roundtrip(arrays, binary)
    assert list(got) == list(arrays)
    for name, arr in arrays.items():
        assert got[name].shape == arr.shape
        assert got[name].dtype == arr.dtype
        if binary or arr.dtype.kind != "f":
            np.testing.assert_array_equal(got[name], arr)
        else:  # JSON has no NaN/inf: they come back as NaN (see the module docstring)
            np.testing.assert_array_equal(got[name], np.where(np.isfinite(arr), arr, np.nan))


def test_outputs_of_any_layout_and_text_type() -> None:
    out = {
        "t": np.arange(6, dtype=">i4").reshape(2, 3).T,
        "s": np.array([b"ab", "c"], dtype=object),
    }
    body, _ = v2.encode_response("m", None, out, None)
    doc = orjson.loads(body)
    assert doc["outputs"][0]["data"] == [0, 3, 1, 4, 2, 5]
    assert doc["outputs"][1]["data"] == ["ab", "c"]


def test_outputs_v2_cannot_carry() -> None:
    with pytest.raises(ModelportError, match="tensor 'd' has dtype datetime64"):
        v2.encode_response("m", None, {"d": np.array(["2024-01-01"], dtype="datetime64[D]")}, None)


def test_whole_floats_are_integers_losslessly() -> None:
    """2005.0 for an INT64 tensor is 2005, by the same rule as every other input."""
    got = v2.decode_request(_body({**X, "datatype": "INT64", "data": [2005.0, 7]}), None)
    assert got.inputs["x"].dtype == np.int64
    assert got.inputs["x"].tolist() == [2005, 7]
