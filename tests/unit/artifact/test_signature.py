"""Signature inference and every class of signature error, with the message checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelport.artifact.signature import (
    Signature,
    TensorSpec,
    example_from_json,
    example_to_json,
    infer_signature,
)
from modelport.errors import InvalidInput, SignatureError


@pytest.fixture
def table() -> Signature:
    frame = pd.DataFrame({"age": [31.0, 45.0], "plan": ["basic", "pro"], "seats": [1, 3]})
    return infer_signature(frame)


def test_infer_numpy_uses_batch_axis() -> None:
    sig = infer_signature(np.zeros((5, 4), dtype=np.float32))
    assert sig == Signature("tensors", (TensorSpec("input", "float32", (-1, 4)),))
    assert sig.has_batch_axis


def test_infer_dataframe_gives_columns(table: Signature) -> None:
    assert table.kind == "columns"
    assert [(s.name, s.dtype, s.shape) for s in table.inputs] == [
        ("age", "float64", (-1,)),
        ("plan", "str", (-1,)),
        ("seats", "int64", (-1,)),
    ]


def test_infer_dict_of_arrays_gives_named_tensors() -> None:
    sig = infer_signature({"ids": np.zeros((2, 8), dtype=np.int32), "mask": np.ones((2, 8), bool)})
    assert sig.kind == "tensors"
    assert sig.inputs == (
        TensorSpec("ids", "int32", (-1, 8)),
        TensorSpec("mask", "bool", (-1, 8)),
    )


def test_infer_records_gives_columns() -> None:
    sig = infer_signature([{"a": 1.5, "b": "x"}, {"a": 2.0, "b": "y"}])
    assert sig.input_names == ["a", "b"]
    assert sig.kind == "columns"


def test_roundtrip_to_dict(table: Signature) -> None:
    full = table.with_outputs({"predictions": np.array([0, 1]), "p": np.zeros((2, 2))})
    assert Signature.from_dict(full.to_dict()) == full
    assert full.outputs[1] == TensorSpec("p", "float64", (-1, 2))


@pytest.mark.parametrize(
    "data",
    [
        pd.DataFrame({"seats": [2], "plan": ["pro"], "age": [20.0], "extra": [1]}),
        [{"age": 20.0, "plan": "pro", "seats": 2}],
        {"age": [20.0], "plan": ["pro"], "seats": [2]},
    ],
)
def test_columns_accept_frames_records_and_dicts(table: Signature, data: object) -> None:
    out = table.coerce(data)
    assert list(out) == ["age", "plan", "seats"]
    assert out["plan"].dtype == object
    assert out["plan"][0] == "pro"
    assert out["seats"].dtype == np.int64


def test_missing_column_is_named(table: Signature) -> None:
    with pytest.raises(
        SignatureError, match=r"missing input 'plan' \(expected: age, plan, seats\)"
    ):
        table.coerce(pd.DataFrame({"age": [1.0], "seats": [1]}))


def test_missing_field_in_a_record_names_the_record(table: Signature) -> None:
    rows = [{"age": 1.0, "plan": "a", "seats": 1}, {"age": 2.0, "plan": "b"}]
    with pytest.raises(SignatureError, match=r"record 1 is missing input 'seats'"):
        table.coerce(rows)


def test_string_where_number_expected(table: Signature) -> None:
    with pytest.raises(
        SignatureError, match=r"input 'age': expected float64, got str which cannot be safely cast"
    ):
        table.coerce({"age": ["old"], "plan": ["pro"], "seats": [1]})


def test_number_where_string_expected(table: Signature) -> None:
    with pytest.raises(SignatureError, match=r"input 'plan': expected str, got int"):
        table.coerce({"age": [1.0], "plan": [3], "seats": [1]})


def test_float_to_int_is_refused(table: Signature) -> None:
    with pytest.raises(
        SignatureError, match=r"input 'seats': expected int64, got float64 which cannot be safely"
    ):
        table.coerce({"age": [1.0], "plan": ["x"], "seats": np.array([1.5])})


def test_null_in_int_column_is_refused(table: Signature) -> None:
    with pytest.raises(SignatureError, match=r"input 'seats': expected int64, got null values"):
        table.coerce({"age": [1.0, 2.0], "plan": ["x", "y"], "seats": [1, None]})


def test_null_in_float_column_becomes_nan(table: Signature) -> None:
    out = table.coerce({"age": [None, 2], "plan": ["x", None], "seats": [1, 2]})
    assert np.isnan(out["age"][0])
    assert out["age"].dtype == np.float64
    assert out["plan"][1] is None


def test_int_to_float_is_a_safe_cast() -> None:
    sig = infer_signature(np.zeros((1, 3), dtype=np.float32))
    out = sig.coerce(np.array([[1, 2, 3]], dtype=np.int64))
    assert out["input"].dtype == np.float32
    np.testing.assert_array_equal(out["input"], [[1.0, 2.0, 3.0]])


def test_float64_to_float32_is_allowed() -> None:
    sig = infer_signature(np.zeros((1, 2), dtype=np.float32))
    assert sig.coerce([[0.5, 1.5]])["input"].dtype == np.float32


def test_int_narrowing_checks_the_range() -> None:
    sig = Signature("tensors", (TensorSpec("input", "int8", (-1,)),))
    assert sig.coerce(np.array([1, 2], dtype=np.int64))["input"].dtype == np.int8
    with pytest.raises(SignatureError, match=r"expected int8, got int64 values outside its range"):
        sig.coerce(np.array([1000], dtype=np.int64))


def test_int_to_unsigned_checks_the_range() -> None:
    sig = Signature("tensors", (TensorSpec("input", "uint8", (-1,)),))
    assert sig.coerce([0, 255])["input"].dtype == np.uint8
    with pytest.raises(SignatureError, match=r"expected uint8, got int64 values outside its range"):
        sig.coerce([-1, 3])


def test_wrong_trailing_shape() -> None:
    sig = infer_signature(np.zeros((2, 4)))
    with pytest.raises(
        SignatureError, match=r"input 'input': expected shape \[-1, 4\], got \[10, 3\]"
    ):
        sig.coerce(np.zeros((10, 3)))


def test_wrong_rank() -> None:
    sig = infer_signature(np.zeros((2, 4)))
    with pytest.raises(SignatureError, match=r"expected shape \[-1, 4\], got \[4\]"):
        sig.coerce(np.zeros(4))


def test_ragged_rows() -> None:
    sig = infer_signature(np.zeros((2, 2)))
    with pytest.raises(
        SignatureError, match=r"input 'input': (rows have different lengths|cannot)"
    ):
        sig.coerce([[1.0, 2.0], [3.0]])


def test_multi_input_needs_a_dict() -> None:
    sig = infer_signature({"a": np.zeros((1, 2)), "b": np.zeros((1, 2))})
    with pytest.raises(SignatureError, match=r"model takes 2 named inputs \(a, b\)"):
        sig.coerce(np.zeros((1, 2)))
    with pytest.raises(SignatureError, match=r"missing input 'b'"):
        sig.coerce({"a": np.zeros((1, 2))})


def test_batch_sizes_must_agree() -> None:
    sig = infer_signature({"a": np.zeros((1, 2)), "b": np.zeros((1, 2))})
    with pytest.raises(SignatureError, match=r"different batch sizes: a=2, b=3"):
        sig.coerce({"a": np.zeros((2, 2)), "b": np.zeros((3, 2))})


def test_positional_array_for_columns_checks_width(table: Signature) -> None:
    with pytest.raises(SignatureError, match=r"expected a table with columns age, plan, seats"):
        table.coerce(np.zeros((2, 2)))


def test_unreadable_input_type(table: Signature) -> None:
    with pytest.raises(InvalidInput, match=r"cannot read int as a table of inputs"):
        table.coerce(42)


def test_bool_is_not_silently_taken_from_ints() -> None:
    sig = Signature("tensors", (TensorSpec("input", "bool", (-1,)),))
    with pytest.raises(SignatureError, match=r"expected bool, got int64"):
        sig.coerce(np.array([0, 1]))


def test_example_json_roundtrip_keeps_nan(table: Signature) -> None:
    data = table.coerce({"age": [np.nan, 3.0], "plan": ["a", "b"], "seats": [1, 2]})
    back = example_from_json(table, example_to_json(table, data))
    np.testing.assert_array_equal(back["age"], data["age"])
    assert back["plan"].tolist() == ["a", "b"]
