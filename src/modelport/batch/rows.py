"""From a chunk of input rows to predictions, setting aside the rows that cannot be scored.

A file is not a request: one bad row must not fail the other 99,999 of its chunk. So each
input column is converted on its own, by the rule every input follows
(:func:`modelport.artifact.casting.fit_values`: ``2005.0`` is an integer, ``2001.5`` is
not), and a value that does not fit (text in a number column, an empty value in an integer
column, a fraction in an integer column, a value outside a categorical column's categories)
rejects its row with the reason. Text columns (CSV, or strings in Parquet) are read as the
signature's dtypes. The rows that pass are predicted together; if the model still refuses the
chunk (a missing value it cannot take, a category it never saw), the rows with missing values
are tried apart first, then the chunk is split in halves until each failing row stands alone,
so only the rows the model refuses are rejected, each with the model's own message.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelport.artifact.casting import NUMBER_PATTERN, fit_values, parse_number
from modelport.artifact.signature import STRING_DTYPE, Signature, TensorSpec, closest_name
from modelport.batch.formats import is_text
from modelport.errors import InvalidInput, summarize
from modelport.packaging import LoadedModel

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class Scored:
    """The outcome of one chunk: outputs for the kept rows, reasons for the others."""

    kept: np.ndarray
    """Positions (within the chunk) of the rows that were scored, in order."""
    outputs: Arrays
    rejected: list[tuple[int, str]]
    """(position within the chunk, reason), in order."""


def feature_columns(
    signature: Signature, names: Sequence[str], exclude: Collection[str]
) -> list[str]:
    """The file columns that feed the model.

    A ``columns`` signature names them. A single ``[-1, k]`` tensor input takes the file's
    other columns (not ids or passthrough), in file order, and there must be exactly ``k``.
    """
    if signature.kind == "columns":
        missing = [spec.name for spec in signature.inputs if spec.name not in names]
        if missing:
            unknown = [n for n in names if n not in signature.input_names]
            like = closest_name(missing[0], unknown)
            hint = f"; it has {like!r}: did you mean {missing[0]!r}?" if like else ""
            raise InvalidInput(
                f"the input has no column {missing[0]!r} "
                f"(the model needs {', '.join(signature.input_names)}){hint}"
            )
        return signature.input_names
    if len(signature.inputs) != 1 or len(signature.inputs[0].shape) != 2:
        raise InvalidInput(
            "batch scoring reads tables: the model must take columns or one [-1, k] tensor"
        )
    width = signature.inputs[0].shape[1]
    features = [n for n in names if n not in exclude]
    if width != -1 and len(features) != width:
        raise InvalidInput(
            f"the model takes {width} features; the input has {len(features)} columns besides "
            f"ids and passthrough ({', '.join(features[:8])}{' ...' if len(features) > 8 else ''})"
        )
    return features


def score_chunk(
    model: LoadedModel,
    table: pa.Table,
    features: Sequence[str],
    outputs: Collection[str] | None,
    broken: Mapping[int, str] | None = None,
) -> Scored:
    """Convert, check and predict one chunk; ``broken`` rows (unparseable lines) are
    rejected as they are."""
    signature = model.signature
    bad: dict[int, str] = dict(broken or {})
    if signature.kind == "columns":
        columns = {
            spec.name: _column(spec, spec.name, table.column(spec.name), bad)
            for spec in signature.inputs
        }
    else:
        spec = signature.inputs[0]
        # Filled column by column and handed over transposed (Fortran order): a row-major
        # stack of 20 columns cost more than the prediction itself.
        stacked = np.empty((len(features), len(table)), dtype=_numpy_dtype(spec))
        for j, name in enumerate(features):
            column = table.column(name)
            if stacked.dtype.kind == "f" and pa.types.is_floating(column.type):
                _fill_floats(column, stacked[j])  # the common case, without a copy between
            else:
                stacked[j] = _column(spec, name, column, bad)
        columns = {spec.name: stacked.T}
    keep = np.ones(len(table), dtype=bool)
    if bad:
        keep[list(bad)] = False
    positions = np.flatnonzero(keep)
    inputs = {name: arr[keep] for name, arr in columns.items()} if bad else columns
    if len(positions):
        inputs = signature.coerce(inputs)  # every value already fits; this only canonicalizes
    predicted, refused = _predict(model, inputs, positions, outputs, _column_names(model, features))
    bad.update(refused)
    if refused:
        positions = np.array([p for p in positions if p not in refused], dtype=np.int64)
    return Scored(positions, predicted, sorted(bad.items()))


def _column_names(model: LoadedModel, features: Sequence[str]) -> dict[str, list[str]]:
    """The file column behind each position of each input (for naming a missing value)."""
    signature = model.signature
    if signature.kind == "columns":
        return {name: [name] for name in signature.input_names}
    return {signature.inputs[0].name: list(features)}


def _fill_floats(column: pa.ChunkedArray, out: np.ndarray) -> None:
    """Copy a float column into ``out`` piece by piece (nulls become NaN, as below)."""
    offset = 0
    for piece in column.chunks:
        out[offset : offset + len(piece)] = piece.to_numpy(zero_copy_only=False)
        offset += len(piece)


def _column(
    spec: TensorSpec, name: str, column: pa.ChunkedArray, bad: dict[int, str]
) -> np.ndarray:
    """One file column as the numpy dtype ``spec`` wants; unfit values go to ``bad``."""
    column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(column.type):  # a pandas category column written to Parquet
        column = column.dictionary_decode()
    nulls: np.ndarray | None = None
    if spec.dtype != STRING_DTYPE and is_text(column.type):
        parsed = _parse_numbers(column, name, bad)
        if np.dtype(spec.dtype).kind in "iu" and _past_float_precision(parsed):
            # Integers past 2**53 lose digits as floats: read those exactly, cell by cell.
            cells = column.to_pylist()
            values = np.array([None if c is None else parse_number(c) for c in cells], object)
            return _fit(spec, name, values, None, bad, column.type)
        column = parsed
    kind = column.type
    if is_text(kind) and spec.dtype == STRING_DTYPE:
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)  # None: missing
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        if column.null_count:
            nulls = column.is_null().to_numpy(zero_copy_only=False)
        if pa.types.is_floating(kind) or nulls is None:
            values = np.asarray(column.to_numpy(zero_copy_only=False))  # nulls become NaN
        else:  # filled, so large integers stay exact; ``nulls`` says where they were
            filler = False if pa.types.is_boolean(kind) else 0
            values = np.asarray(column.fill_null(filler).to_numpy(zero_copy_only=False))
    elif pa.types.is_null(kind):  # no value at all in this chunk
        values = np.full(len(column), None, dtype=object)
    else:
        raise InvalidInput(f"column {name!r} holds {column.type}, the model needs {spec.dtype}")
    return _fit(spec, name, values, nulls, bad, column.type)


def _fit(
    spec: TensorSpec,
    name: str,
    values: np.ndarray,
    nulls: np.ndarray | None,
    bad: dict[int, str],
    kind: pa.DataType,
) -> np.ndarray:
    """``values`` cast by the one rule every input follows; a value that does not fit
    rejects its row, with the reason."""
    try:
        fitted = fit_values(spec, values, nulls)
    except InvalidInput as exc:  # the whole column is of another kind (numbers for text)
        reason = str(exc).partition(": ")[2] or str(exc)
        raise InvalidInput(f"column {name!r} holds {kind}: {reason}") from None
    if fitted.unfit is not None:
        for i in np.flatnonzero(fitted.unfit):
            bad.setdefault(int(i), f"column {name!r}: {fitted.reason(int(i))}")
    return fitted.values


def _numpy_dtype(spec: TensorSpec) -> np.dtype[Any]:
    return np.dtype(object) if spec.dtype == STRING_DTYPE else np.dtype(spec.dtype)


def _parse_numbers(column: pa.Array, name: str, bad: dict[int, str]) -> pa.Array:
    """Text to float64, null where a cell is empty; a cell that is not a number is null
    too, and rejects its row."""
    trimmed = pc.utf8_trim_whitespace(column)
    ok = pc.match_substring_regex(trimmed, NUMBER_PATTERN)
    written = pc.and_(pc.invert(ok), pc.not_equal(trimmed, ""))
    if written.null_count:
        written = written.fill_null(False)
    for i in np.flatnonzero(written.to_numpy(zero_copy_only=False)):
        value = str(column[int(i)].as_py())
        shown = repr(value if len(value) <= 60 else value[:57] + "...")
        bad.setdefault(int(i), f"column {name!r}: {shown} is not a number")
    safe = pc.if_else(ok, trimmed, pa.scalar(None, pa.string()))
    return pc.cast(safe, pa.float64())


def _past_float_precision(numbers: pa.Array) -> bool:
    """Some finite value is at least 2**53, where a float64 no longer holds every integer."""
    finite = pc.filter(numbers, pc.is_finite(numbers).fill_null(False))
    largest = pc.max(pc.abs(finite)).as_py() if len(finite) else None
    return largest is not None and largest >= 2.0**53


def _predict(
    model: LoadedModel,
    inputs: Mapping[str, np.ndarray],
    positions: np.ndarray,
    outputs: Collection[str] | None,
    names: Mapping[str, Sequence[str]],
) -> tuple[Arrays, dict[int, str]]:
    """Predict ``inputs``; on failure, isolate the rows the model refuses. ``names``: the
    file column behind each position of each input, to say where a value is missing."""
    if len(positions) == 0:
        return _empty(model, outputs), {}
    try:
        return model.predict_arrays(inputs, outputs), {}
    except Exception as exc:  # the model's own refusal: find the rows behind it
        first_error = exc
    # Rows with a missing value are the usual culprits: try the others alone first.
    where = _missing_in(inputs, len(positions), names)
    missing = where != ""
    if missing.any() and not missing.all():
        try:
            result = model.predict_arrays(_take(inputs, ~missing), outputs)
        except Exception:
            pass
        else:
            return result, {
                int(p): _missing_reason(column, f"({summarize(first_error)})")
                for p, column in zip(positions[missing], where[missing], strict=True)
            }
    return _bisect(model, inputs, positions, outputs, first_error, names)


def _missing_in(
    inputs: Mapping[str, np.ndarray], rows: int, names: Mapping[str, Sequence[str]]
) -> np.ndarray:
    """Per row, the first file column holding a missing value (NaN, or None for text);
    "" where none does."""
    where = np.full(rows, "", dtype=object)
    for name, arr in inputs.items():
        if arr.dtype.kind == "f":
            gaps = np.isnan(arr)
        elif arr.dtype.kind == "O":
            gaps = np.frompyfunc(lambda v: v is None, 1, 1)(arr).astype(bool)
        else:
            continue
        gaps = gaps.reshape(rows, -1)
        columns = names.get(name) or [name]
        for j in range(gaps.shape[1]):
            fresh = gaps[:, j] & (where == "")
            where[fresh] = columns[j] if j < len(columns) else f"{name}[{j}]"
    return where


def _missing_reason(column: str, detail: str) -> str:
    return f"column {column!r}: missing value the model cannot take {detail}"


def _bisect(
    model: LoadedModel,
    inputs: Mapping[str, np.ndarray],
    positions: np.ndarray,
    outputs: Collection[str] | None,
    error: Exception,
    names: Mapping[str, Sequence[str]],
) -> tuple[Arrays, dict[int, str]]:
    if len(positions) == 1:
        reason = f"model error: {summarize(error)}"
        column = str(_missing_in(inputs, 1, names)[0])
        if column:
            reason = _missing_reason(column, f"({reason})")
        return _empty(model, outputs), {int(positions[0]): reason}
    half = len(positions) // 2
    results: list[Arrays] = []
    refused: dict[int, str] = {}
    for part in (slice(0, half), slice(half, None)):
        sub = {name: arr[part] for name, arr in inputs.items()}
        try:
            results.append(model.predict_arrays(sub, outputs))
        except Exception as exc:
            got, bad = _bisect(model, sub, positions[part], outputs, exc, names)
            results.append(got)
            refused.update(bad)
    merged = {name: np.concatenate([r[name] for r in results]) for name in results[0]}
    return merged, refused


def _take(inputs: Mapping[str, np.ndarray], mask: np.ndarray) -> Arrays:
    return {name: arr[mask] for name, arr in inputs.items()}


def _empty(model: LoadedModel, outputs: Collection[str] | None) -> Arrays:
    specs = [s for s in model.signature.outputs if outputs is None or s.name in outputs]
    empty: Arrays = {}
    for spec in specs:
        dtype = object if spec.dtype == STRING_DTYPE else np.dtype(spec.dtype)
        empty[spec.name] = np.empty((0, *[max(d, 0) for d in spec.shape[1:]]), dtype=dtype)
    return empty
