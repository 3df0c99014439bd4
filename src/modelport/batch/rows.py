"""From a chunk of input rows to predictions, setting aside the rows that cannot be scored.

A file is not a request: one bad row must not fail the other 99,999 of its chunk. So each
input column is converted on its own, and a value that does not fit the signature (text in a
number column, an empty value, a fraction in an integer column) rejects its row with the
reason. The rows that pass are predicted together; if the model still refuses the chunk (a
NaN it cannot take, a category it never saw), the rows with missing values are tried apart
first, then the chunk is split in halves until each failing row stands alone, so only the
rows the model refuses are rejected, each with the model's own message.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelport.artifact.signature import STRING_DTYPE, Signature, TensorSpec
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
            raise InvalidInput(
                f"the input has no column {missing[0]!r} "
                f"(the model needs {', '.join(signature.input_names)})"
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
    inputs = signature.coerce(inputs)  # every value already fits; this only canonicalizes
    predicted, refused = _predict(model, inputs, positions, outputs)
    bad.update(refused)
    if refused:
        positions = np.array([p for p in positions if p not in refused], dtype=np.int64)
    return Scored(positions, predicted, sorted(bad.items()))


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
    nulls = column.is_null() if column.null_count else pa.array(np.zeros(len(column), bool))
    if spec.dtype == STRING_DTYPE:
        _reject(bad, nulls, f"column {name!r} is empty")
        text = column if is_text(column.type) else pc.cast(column, pa.string())
        strings: np.ndarray = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
        return strings
    target = np.dtype(spec.dtype)
    if is_text(column.type):
        number = _parse_numbers(column)
        _reject(bad, pc.and_(pc.invert(nulls), number.is_null()), None, column, name)
        column = number
        nulls = column.is_null()
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise InvalidInput(f"column {name!r} holds {column.type}, the model needs {spec.dtype}")
    if target.kind in "iub":
        _reject(bad, nulls, f"column {name!r} is empty; the model needs {spec.dtype}")
        values = np.asarray(column.fill_null(0).to_numpy(zero_copy_only=False))
        if values.dtype.kind == "f":
            fractional = ~np.isfinite(values) | (values != np.round(values))
            for i in np.flatnonzero(fractional):
                bad.setdefault(int(i), f"column {name!r}: {values[i]!r} is not a whole number")
            values = np.where(fractional, 0, values)
        return values.astype(target)
    values = np.asarray(column.to_numpy(zero_copy_only=False))  # nulls become NaN
    return values.astype(target, copy=False)


def _numpy_dtype(spec: TensorSpec) -> np.dtype[Any]:
    return np.dtype(object) if spec.dtype == STRING_DTYPE else np.dtype(spec.dtype)


_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^(?i:[+-]?(nan|inf|infinity))$"


def _parse_numbers(column: pa.Array) -> pa.Array:
    """Text to float64; what does not parse becomes null (and is rejected by the caller)."""
    trimmed = pc.utf8_trim_whitespace(column)
    ok = pc.match_substring_regex(trimmed, _NUMBER)
    safe = pc.if_else(ok, trimmed, pa.scalar(None, pa.string()))
    return pc.cast(safe, pa.float64())


def _reject(
    bad: dict[int, str],
    mask: pa.Array,
    reason: str | None,
    column: pa.Array | None = None,
    name: str = "",
) -> None:
    hits = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    for i in hits:
        if reason is None:
            assert column is not None
            value = column[int(i)].as_py()
            bad.setdefault(int(i), f"column {name!r}: {str(value)[:60]!r} is not a number")
        else:
            bad.setdefault(int(i), reason)


def _predict(
    model: LoadedModel,
    inputs: Mapping[str, np.ndarray],
    positions: np.ndarray,
    outputs: Collection[str] | None,
) -> tuple[Arrays, dict[int, str]]:
    """Predict ``inputs``; on failure, isolate the rows the model refuses."""
    if len(positions) == 0:
        return _empty(model, outputs), {}
    try:
        return model.predict_arrays(inputs, outputs), {}
    except Exception as exc:  # the model's own refusal: find the rows behind it
        first_error = exc
    # Rows with a missing value are the usual culprits: try the others alone first.
    missing = np.zeros(len(positions), dtype=bool)
    for arr in inputs.values():
        if arr.dtype.kind == "f":
            missing |= np.isnan(arr).reshape(len(positions), -1).any(axis=1)
    if missing.any() and not missing.all():
        try:
            result = model.predict_arrays(_take(inputs, ~missing), outputs)
        except Exception:
            pass
        else:
            reason = f"missing value the model cannot take ({summarize(first_error)})"
            return result, {int(p): reason for p in positions[missing]}
    return _bisect(model, inputs, positions, outputs, first_error)


def _bisect(
    model: LoadedModel,
    inputs: Mapping[str, np.ndarray],
    positions: np.ndarray,
    outputs: Collection[str] | None,
    error: Exception,
) -> tuple[Arrays, dict[int, str]]:
    if len(positions) == 1:
        nan = any(a.dtype.kind == "f" and bool(np.isnan(a).any()) for a in inputs.values())
        reason = f"model error: {summarize(error)}"
        if nan:
            reason = f"missing value the model cannot take ({reason})"
        return _empty(model, outputs), {int(positions[0]): reason}
    half = len(positions) // 2
    results: list[Arrays] = []
    refused: dict[int, str] = {}
    for part in (slice(0, half), slice(half, None)):
        sub = {name: arr[part] for name, arr in inputs.items()}
        try:
            results.append(model.predict_arrays(sub, outputs))
        except Exception as exc:
            got, bad = _bisect(model, sub, positions[part], outputs, exc)
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
