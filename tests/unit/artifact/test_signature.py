"""Signature inference and every class of signature error, with the message checked."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelport.artifact.casting import fit_values
from modelport.artifact.signature import (
    Signature,
    TensorSpec,
    TextTable,
    closest_name,
    example_from_json,
    example_to_json,
    infer_signature,
    with_names_of,
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


def test_a_fraction_for_an_int_is_refused_naming_it(table: Signature) -> None:
    with pytest.raises(
        SignatureError,
        match=r"^input 'seats': expected int64, got 1.5 which is not a whole number$",
    ):
        table.coerce({"age": [1.0], "plan": ["x"], "seats": np.array([2.0, 1.5])})


def test_null_in_int_column_is_refused(table: Signature) -> None:
    with pytest.raises(SignatureError, match=r"^input 'seats': expected int64, got null$"):
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
    with pytest.raises(SignatureError, match=r"expected int8, got 1000 which is outside its range"):
        sig.coerce(np.array([1000], dtype=np.int64))


def test_int_to_unsigned_checks_the_range() -> None:
    sig = Signature("tensors", (TensorSpec("input", "uint8", (-1,)),))
    assert sig.coerce([0, 255])["input"].dtype == np.uint8
    with pytest.raises(SignatureError, match=r"expected uint8, got -1 which is outside its range"):
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


# --- one rule for every way in (issue 14) ------------------------------------------------


def test_a_whole_float_is_an_int_losslessly(table: Signature) -> None:
    out = table.coerce([{"age": 1.0, "plan": "x", "seats": 2005.0}])
    assert out["seats"].dtype == np.int64
    assert out["seats"].tolist() == [2005]


@pytest.mark.parametrize(
    ("seats", "message"),
    [
        (np.array([np.inf]), "got inf which is not a whole number"),
        (np.array([np.nan]), "got NaN"),
        ([10**20], "got 100000000000000000000 which is outside its range"),
        ([1e20], "got 100000000000000000000 which is outside its range"),
        ([2**63], "got 9223372036854775808 which is outside its range"),
        ([2**64 - 1], "got 18446744073709551615 which is outside its range"),
    ],
)
def test_values_an_int_cannot_hold_are_named(
    table: Signature, seats: list[object], message: str
) -> None:
    n = len(seats)
    with pytest.raises(SignatureError, match=f"^input 'seats': expected int64, {message}$"):
        table.coerce({"age": [1.0] * n, "plan": ["x"] * n, "seats": seats})


def test_int64_bounds_are_exact() -> None:
    sig = Signature("tensors", (TensorSpec("input", "int64", (-1,)),))
    assert sig.coerce([2**63 - 1, -(2**63)])["input"].tolist() == [2**63 - 1, -(2**63)]
    assert sig.coerce(np.array([-(2.0**63)]))["input"].tolist() == [-(2**63)]
    with pytest.raises(SignatureError, match="outside its range"):
        sig.coerce(np.array([2.0**63]))


def test_fit_values_marks_each_value_that_does_not_fit() -> None:
    spec = TensorSpec("year", "int64")
    fitted = fit_values(spec, np.array([2005.0, 2001.5, np.nan, 1e30]))
    assert fitted.unfit is not None
    assert fitted.unfit.tolist() == [False, True, True, True]
    assert fitted.values[0] == 2005
    assert fitted.reason(1) == "expected int64, got 2001.5 which is not a whole number"
    assert fitted.reason(2) == "expected int64, got NaN"
    assert fitted.reason(3).endswith("which is outside its range")
    nulls = np.array([False, True])
    fitted = fit_values(spec, np.array([7, 0]), nulls)
    assert fitted.unfit is not None
    assert fitted.unfit.tolist() == [False, True]
    assert fitted.reason(1) == "expected int64, got null"
    floats = fit_values(TensorSpec("x", "float64"), np.array([1, 0]), nulls)
    assert floats.unfit is None
    assert np.isnan(floats.values[1])


def test_a_missing_string_is_none_whatever_pandas_writes(table: Signature) -> None:
    frame = pd.DataFrame({"age": [1.0, 2.0], "plan": pd.Series(["a", None], dtype="str")})
    out = table.coerce(frame.assign(seats=[1, 2]))
    assert out["plan"].tolist() == ["a", None]


def test_one_record_is_one_row(table: Signature) -> None:
    out = table.coerce({"age": 3.0, "plan": "pro", "seats": 2})
    assert {k: v.tolist() for k, v in out.items()} == {"age": [3.0], "plan": ["pro"], "seats": [2]}


@pytest.mark.parametrize(
    "data",
    [pd.DataFrame({"age": [], "plan": [], "seats": []}), [], {"age": [], "plan": [], "seats": []}],
)
def test_no_rows_is_refused(table: Signature, data: object) -> None:
    with pytest.raises(SignatureError, match=r"^the input has no rows: nothing to predict$"):
        table.coerce(data)


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        ("Plan", "the input has 'Plan' (did you mean 'plan'?)"),
        ("plam", "the input has 'plam' (did you mean 'plan'?)"),
        ("colour", "unknown: 'colour'"),
    ],
)
def test_a_misnamed_column_is_named(table: Signature, given: str, hint: str) -> None:
    frame = pd.DataFrame({"age": [1.0], given: ["x"], "seats": [1]})
    with pytest.raises(SignatureError, match=rf"^missing input 'plan' .*; {re.escape(hint)}$"):
        table.coerce(frame)
    with pytest.raises(
        SignatureError, match=rf"^record 0 is missing input 'plan'; {re.escape(hint)}$"
    ):
        table.coerce([{"age": 1.0, given: "x", "seats": 1}])


def test_closest_name() -> None:
    assert closest_name("year", ["Year", "code"]) == "Year"
    assert closest_name("year", ["yaer"]) == "yaer"
    assert closest_name("year", ["code", "id"]) is None


# --- text cells (CSV) ----------------------------------------------------------------------


def test_text_cells_are_read_as_the_signatures_dtypes(table: Signature) -> None:
    text = TextTable({"age": ["31", " 4.5"], "plan": ["007", ""], "seats": ["2005.0", "3"]})
    out = table.coerce(text)
    assert out["age"].tolist() == [31.0, 4.5]
    assert out["plan"].tolist() == ["007", None]  # text stays text; an empty cell is missing
    assert out["seats"].dtype == np.int64
    assert out["seats"].tolist() == [2005, 3]


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (["lots"], "expected int64, got 'lots' which is not a number"),
        (["2001.5"], "expected int64, got 2001.5 which is not a whole number"),
        ([""], "expected int64, got null"),
        (["123456789012345678901"], "expected int64, got 123456789012345678901 which is outside"),
    ],
)
def test_text_cells_follow_the_one_rule(table: Signature, cells: list[str], message: str) -> None:
    text = TextTable({"age": ["1"], "plan": ["x"], "seats": cells})
    with pytest.raises(SignatureError, match=f"^input 'seats': {message}"):
        table.coerce(text)


def test_a_large_integer_in_text_stays_exact() -> None:
    sig = Signature("columns", (TensorSpec("id", "int64"),))
    assert sig.coerce(TextTable({"id": ["9007199254740993"]}))["id"].tolist() == [2**53 + 1]


def test_text_cells_fill_a_tensor_in_file_order() -> None:
    sig = Signature("tensors", (TensorSpec("input", "float32", (-1, 2)),))
    out = sig.coerce(TextTable({"b": ["1", "2"], "a": ["3", "nan"]}))
    assert out["input"].dtype == np.float32
    np.testing.assert_array_equal(out["input"], [[1, 3], [2, np.nan]])


def test_read_csv_keeps_every_cell_as_text(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text('code,year,note\n007,2005.0,"a, b"\n010,,\n')
    table = TextTable.read_csv(path)
    assert table.columns == {
        "code": ["007", "010"],
        "year": ["2005.0", ""],
        "note": ["a, b", ""],
    }
    sig = infer_signature(table)  # no model to ask: codes with leading zeros stay text
    assert [(s.name, s.dtype) for s in sig.inputs] == [
        ("code", "str"),
        ("year", "float64"),
        ("note", "str"),
    ]


# --- categorical columns --------------------------------------------------------------------


@pytest.fixture
def categorical() -> Signature:
    frame = pd.DataFrame(
        {
            "plan": pd.Categorical(["pro", "basic"], categories=["pro", "basic", "max"]),
            "tier": pd.Categorical([1, 3]),
        }
    )
    return infer_signature(frame)


def test_a_category_column_records_its_categories(categorical: Signature) -> None:
    assert categorical.inputs == (
        TensorSpec("plan", "str", (-1,), ("pro", "basic", "max")),
        TensorSpec("tier", "int64", (-1,), (1, 3)),
    )
    assert Signature.from_dict(categorical.to_dict()) == categorical
    assert "categories" not in TensorSpec("x", "float64").to_dict()  # as before: unchanged


def test_categorical_values_are_plain_values_among_the_categories(
    categorical: Signature,
) -> None:
    out = categorical.coerce([{"plan": "max", "tier": 3}, {"plan": None, "tier": 1.0}])
    assert out["plan"].tolist() == ["max", None]
    assert out["tier"].tolist() == [3, 1]
    frame = pd.DataFrame({"plan": pd.Categorical(["pro"]), "tier": pd.Categorical([1])})
    assert categorical.coerce(frame)["plan"].tolist() == ["pro"]
    with pytest.raises(
        SignatureError,
        match=r"^input 'plan': 'platinum' is not one of its categories \('pro', 'basic', 'max'\)$",
    ):
        categorical.coerce([{"plan": "platinum", "tier": 1}])
    with pytest.raises(SignatureError, match=r"^input 'tier': 2 is not one of its categories"):
        categorical.coerce([{"plan": "pro", "tier": 2}])


def test_an_old_signature_without_categories_reads_as_before() -> None:
    old = {"kind": "columns", "inputs": [{"name": "a", "dtype": "str", "shape": [-1]}]}
    assert Signature.from_dict(old).inputs == (TensorSpec("a", "str"),)


def test_a_bare_array_example_takes_the_models_single_input_name() -> None:
    example = infer_signature(np.zeros((2, 4), dtype=np.float32))
    model = Signature("tensors", (TensorSpec("X", "float32", (-1, 4)),))
    assert with_names_of(example, model).input_names == ["X"]
    two = Signature("tensors", (TensorSpec("a", "float32"), TensorSpec("b", "float32")))
    assert with_names_of(example, two) == example
    assert with_names_of(example, None) == example
    table = Signature("columns", (TensorSpec("x", "float64"),))
    assert with_names_of(example, table) == example  # a column name is not a tensor's
