"""Signatures: the named inputs and outputs of a model, inferred from an example and enforced.

A signature is either ``tensors`` (named arrays with a dtype and a shape, ``-1`` on the batch
axis) or ``columns`` (a table: each column is a 1-D tensor of shape ``[-1]``). Both become the
same canonical form before a flavor sees them: ``dict[str, np.ndarray]``, batch axis first,
strings as object arrays of ``str`` (``None`` where a value is missing).

One rule decides what fits, for every way in (the server, ``modelport predict``, batch
scoring, ``modelport.load``): :func:`fit_values`. Casts that lose nothing are applied
silently: bool/int -> float, narrower -> wider, float64 -> float32 (what numpy users pass by
default), int -> narrower int when the value fits, and a whole float -> int (``2005.0`` is
2005). A lossy one is refused, naming the value: a fraction or a null in an int column, a
value outside the dtype's range, a value outside a categorical input's categories. Values of
the wrong kind altogether (text where a number belongs, a number where text does) are
refused as well; text is never parsed, except where the values *are* text by their format:
the cells of a CSV file (:class:`TextTable`), read as their input's dtype (``"007"`` in a
``str`` column stays ``"007"``, in an int column it is 7). A categorical input (a pandas
``category`` column in the example) records its categories; its values are plain strings
or numbers, and must be among them.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypeGuard

import numpy as np

from modelport.errors import InvalidInput, SignatureError

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["tensors", "columns"]
NUMERIC_DTYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
)  # fmt: skip
STRING_DTYPE = "str"
DTYPES = (*NUMERIC_DTYPES, STRING_DTYPE)
_NUMPY_DTYPES = {name: np.dtype(name) for name in NUMERIC_DTYPES}
NUMBER_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^(?i:[+-]?(nan|inf|infinity))$"
"""What a number written as text looks like (anchored; Python ``re`` and Arrow's RE2 both
read it). Anything else in a number column of a text file is refused."""
_NUMBER = re.compile(NUMBER_PATTERN)
_INTEGER = re.compile(r"[+-]?\d+")
_LEADING_ZERO = re.compile(r"[+-]?0\d")
_SHOWN = 60  # characters of a value shown in a message


def _np_dtype(name: str) -> np.dtype[Any]:
    """numpy's dtype for a signature dtype name (parsing the name costs more than the lookup)."""
    return _NUMPY_DTYPES.get(name) or np.dtype(name)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One named input or output: dtype from :data:`DTYPES`, shape with ``-1`` for any size.

    ``categories``: for a categorical column (pandas ``category`` dtype in the example), the
    values it may take, in the category order the model was trained with; None otherwise.
    """

    name: str
    dtype: str
    shape: tuple[int, ...] = (-1,)
    categories: tuple[Any, ...] | None = None  # Any: str, int or float values

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.categories is not None:
            data["categories"] = list(self.categories)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        categories = data.get("categories")
        return cls(
            str(data["name"]),
            str(data["dtype"]),
            tuple(int(d) for d in data["shape"]),
            None if categories is None else tuple(categories),
        )


@dataclass(frozen=True, slots=True)
class TextTable:
    """A table whose cells are text, as a CSV file holds them: each column is read as its
    input's dtype when the table meets a signature. An empty cell (or None) is missing.

    >>> TextTable.read_csv("rows.csv")      # a path, an open binary file or bytes
    """

    columns: Mapping[str, Sequence[str | None]]

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()), ()))

    @classmethod
    def read_csv(cls, source: str | Path | IO[bytes]) -> TextTable:
        """The cells of a CSV document with a header row (quoting as pandas writes it).

        Raises ValueError (pandas' parser errors are ValueErrors) or UnicodeDecodeError.
        """
        import pandas as pd  # only here: most commands never read a CSV

        frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False)
        return cls({str(c): frame[c].tolist() for c in frame.columns})


@dataclass(frozen=True, slots=True)
class Signature:
    """What a model takes and returns. ``outputs`` may be empty when no example was given."""

    kind: Kind
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default=())

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def has_batch_axis(self) -> bool:
        """True when every input's first axis is ``-1``, so requests can be concatenated."""
        return all(spec.shape and spec.shape[0] == -1 for spec in self.inputs)

    def with_outputs(self, outputs: Mapping[str, np.ndarray]) -> Signature:
        """A copy whose outputs are inferred from one prediction."""
        return Signature(self.kind, self.inputs, tuple(_spec_of(n, a) for n, a in outputs.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        kind = data["kind"]
        if kind not in ("tensors", "columns"):
            raise ValueError(f"unknown signature kind {kind!r}")
        return cls(
            kind,
            tuple(TensorSpec.from_dict(s) for s in data["inputs"]),
            tuple(TensorSpec.from_dict(s) for s in data.get("outputs", [])),
        )

    def coerce(self, data: object) -> dict[str, np.ndarray]:
        """Turn user data into the canonical named arrays, or raise :class:`SignatureError`.

        Accepts a numpy array (single-input models, or a 2-D array as positional columns),
        a pandas DataFrame, a list of records (dicts), one record (a dict of single values),
        a dict of arrays/lists, nested lists, or a :class:`TextTable`.
        """
        raw = self._columns_of(data) if self.kind == "columns" else self._tensors_of(data)
        if all(s.shape == (-1,) and _is_scalar(raw[s.name]) for s in self.inputs):
            raw = {spec.name: [raw[spec.name]] for spec in self.inputs}  # one record
        out = {spec.name: _conform(spec, raw[spec.name]) for spec in self.inputs}
        if len(out) == 1:
            return out
        lengths = {name: arr.shape[0] for name, arr in out.items() if arr.ndim > 0}
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{n}={size}" for n, size in lengths.items())
            raise SignatureError(f"inputs have different batch sizes: {sizes}")
        return out

    def _tensors_of(self, data: object) -> Mapping[str, object]:
        names = self.input_names
        if isinstance(data, TextTable):
            return self._text_tensors(data)
        if type(data) is dict or isinstance(data, Mapping):  # the first test is the cheap one
            _require(names, data.keys())
            return {n: data[n] for n in names}
        if len(names) != 1:
            raise SignatureError(
                f"model takes {len(names)} named inputs ({', '.join(names)}); "
                "pass a dict of arrays keyed by input name"
            )
        if _is_frame(data):
            return {names[0]: data.to_numpy()}
        return {names[0]: data}

    def _text_tensors(self, table: TextTable) -> Mapping[str, object]:
        """A text table for tensor inputs: one ``[-1, k]`` input takes every column, in file
        order; otherwise each 1-D input takes the column of its name."""
        spec = self.inputs[0]
        if len(self.inputs) == 1 and len(spec.shape) == 2:
            parsed = [_parse_cells(spec, table.columns[n]) for n in table.names]
            if not parsed:
                raise SignatureError(f"input {spec.name!r}: the table has no columns")
            return {spec.name: np.stack(parsed, axis=1)}
        if len(self.inputs) == 1 and len(table.names) == 1:
            return {spec.name: _parse_cells(spec, table.columns[table.names[0]])}
        _require(self.input_names, table.names)
        return {s.name: _parse_cells(s, table.columns[s.name]) for s in self.inputs}

    def _columns_of(self, data: object) -> Mapping[str, object]:
        names = self.input_names
        if isinstance(data, TextTable):
            _require(names, data.names)
            return {s.name: _parse_cells(s, data.columns[s.name]) for s in self.inputs}
        if _is_frame(data):
            _require(names, [str(c) for c in data.columns])
            return {n: data[n].to_numpy() for n in names}
        if isinstance(data, Mapping):
            _require(names, data.keys())
            return data
        if isinstance(data, np.ndarray):
            if data.ndim != 2 or data.shape[1] != len(names):
                raise SignatureError(
                    f"expected a table with columns {', '.join(names)}; "
                    f"got an array of shape {list(data.shape)}"
                )
            return {n: data[:, i] for i, n in enumerate(names)}
        if isinstance(data, Sequence) and not isinstance(data, str | bytes):
            if all(isinstance(row, Mapping) for row in data):
                for i, row in enumerate(data):
                    missing = [n for n in names if n not in row]
                    if missing:
                        hint = _misnamed(missing, row.keys(), names)
                        raise SignatureError(f"record {i} is missing input {missing[0]!r}{hint}")
                return {n: [row[n] for row in data] for n in names}
            return self._columns_of(_as_array("input", data))
        raise InvalidInput(f"cannot read {type(data).__name__} as a table of inputs")


@dataclass(frozen=True, slots=True)
class Fitted:
    """Values cast to an input's dtype by :func:`fit_values`, and the ones that do not fit."""

    values: np.ndarray
    """In the spec's dtype; where a value does not fit, a placeholder."""
    unfit: np.ndarray | None
    """Booleans of ``values``' shape, True where a value does not fit; None when all do."""
    _why: Callable[[int], str]

    def reason(self, index: int) -> str:
        """Why the value at flat position ``index`` does not fit, e.g. ``expected int64,
        got 2001.5 which is not a whole number``."""
        return self._why(index)


def fit_values(spec: TensorSpec, values: np.ndarray, nulls: np.ndarray | None = None) -> Fitted:
    """Cast ``values`` to ``spec``'s dtype by the one rule (see the module docstring).

    Values of the wrong kind for the whole input (text for a number, numbers for text) raise
    :class:`SignatureError`; single values that do not fit are marked in
    :attr:`Fitted.unfit`, so a caller can refuse the request (``Signature.coerce``) or only
    the rows holding them (batch scoring). ``nulls`` marks values that are missing whatever
    ``values`` holds there (Arrow's null bitmap, with the values filled in).
    """
    bad: np.ndarray | None = None
    if spec.dtype == STRING_DTYPE:
        arr, missing = _strings(spec, values)
    else:
        arr, missing, bad = _numbers(spec, values, nulls)
    return _with_categories(spec, arr, missing, values, nulls, bad)


def _with_categories(
    spec: TensorSpec,
    arr: np.ndarray,
    missing: np.ndarray | None,
    source: np.ndarray,
    nulls: np.ndarray | None,
    bad: np.ndarray | None,
) -> Fitted:
    if spec.categories is not None:
        known = set(spec.categories)
        flat = arr.ravel().tolist()
        gaps = None if missing is None else missing.ravel()
        outside = np.fromiter(
            (v not in known and (gaps is None or not gaps[i]) for i, v in enumerate(flat)),
            dtype=bool,
            count=len(flat),
        ).reshape(arr.shape)
        if outside.any():
            bad = outside if bad is None else bad | outside
    return Fitted(arr, bad, lambda i: _why(spec, source, nulls, i))


def _strings(spec: TensorSpec, values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    kind = values.dtype.kind
    if kind == "U":
        return values.astype(object), None
    if kind == "O":
        flat = values.ravel().tolist()
        if all(type(v) is str for v in flat):  # the common case, one pass
            return values, None
        missing = [_is_missing(v) for v in flat]
        if all(m or isinstance(v, str) for v, m in zip(flat, missing, strict=True)):
            if not any(missing):
                return values, None
            clean = np.array(
                [None if m else v for v, m in zip(flat, missing, strict=True)], dtype=object
            )
            return clean.reshape(values.shape), np.array(missing).reshape(values.shape)
    raise SignatureError(f"input {spec.name!r}: expected str, got {_describe(values)}")


def _numbers(
    spec: TensorSpec, values: np.ndarray, nulls: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The numeric cast: (values in the spec's dtype, missing values, unfit values)."""
    want = spec.dtype
    target = _np_dtype(want)
    got = values.dtype
    if got.kind == "O":
        return _objects_to_numbers(spec, values, target)
    if got.kind in "US":
        raise SignatureError(
            f"input {spec.name!r}: expected {want}, got str which cannot be safely cast"
        )
    if got.kind not in "biuf" or (target.kind == "b" and got.kind != "b"):
        raise SignatureError(
            f"input {spec.name!r}: expected {want}, got {got} which cannot be safely cast"
        )
    if nulls is not None and not nulls.any():
        nulls = None
    if target.kind in "bf":
        out = values if got == target else values.astype(target)
        if nulls is not None:
            if target.kind == "b":
                return out, nulls, nulls
            out = out.copy() if out is values else out
            out[nulls] = np.nan
        return out, nulls, None
    bad: np.ndarray | None = None
    if got.kind == "f":
        info = np.iinfo(target)
        whole = np.isfinite(values) & (values == np.floor(values))
        # float(info.max) + 1 is a power of two: exact, unlike float(info.max) for 64 bits.
        bad = ~(whole & (values >= float(info.min)) & (values < float(info.max) + 1))
        values = np.where(bad, 0, values) if bad.any() else values
    elif got.kind in "iu" and not np.can_cast(got, target):
        info = np.iinfo(target)
        bad = (values < info.min) | (values > info.max)
        values = np.where(bad, 0, values) if bad.any() else values
    if nulls is not None:
        bad = nulls if bad is None else bad | nulls
    if bad is not None and not bad.any():
        bad = None
    return (values if got == target else values.astype(target)), nulls, bad


def _objects_to_numbers(
    spec: TensorSpec, arr: np.ndarray, target: np.dtype[Any]
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Python values (JSON lists with nulls or huge integers, pandas' objects) -> numbers."""
    flat = arr.ravel().tolist()
    missing = [_is_missing(v) for v in flat]
    present = [v for v, m in zip(flat, missing, strict=True) if not m]
    if any(isinstance(v, str | bytes) for v in present):
        raise SignatureError(
            f"input {spec.name!r}: expected {spec.dtype}, got str which cannot be safely cast"
        )
    if not all(isinstance(v, bool | int | float | np.bool_ | np.number) for v in present) or (
        target.kind == "b" and not all(isinstance(v, bool | np.bool_) for v in present)
    ):
        raise SignatureError(f"input {spec.name!r}: expected {spec.dtype}, got {_describe(arr)}")
    gaps = np.array(missing, dtype=bool).reshape(arr.shape)
    out = np.zeros(len(flat), dtype=target)
    bad = np.array(missing, dtype=bool)
    if target.kind == "f":
        for i, v in enumerate(flat):
            if missing[i]:
                out[i] = np.nan
                continue
            try:
                out[i] = float(v)
            except OverflowError:  # an integer past 1e308
                bad[i] = True
        bad[gaps.ravel()] = False  # missing is NaN in a float input, not a misfit
    elif target.kind == "b":
        for i, v in enumerate(flat):
            out[i] = bool(v) if not missing[i] else False
    else:
        info = np.iinfo(target)
        for i, v in enumerate(flat):
            if missing[i]:
                continue
            number = _whole(v)
            if number is None or not info.min <= number <= info.max:
                bad[i] = True
            else:
                out[i] = number
    return (
        out.reshape(arr.shape),
        gaps if gaps.any() else None,
        bad.reshape(arr.shape) if bad.any() else None,
    )


def _whole(value: object) -> int | None:
    """``value`` as an exact int when it is a whole number, else None."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    number = float(value)  # type: ignore[arg-type]  # checked numeric by the caller
    return int(number) if math.isfinite(number) and number.is_integer() else None


def _why(spec: TensorSpec, source: np.ndarray, nulls: np.ndarray | None, index: int) -> str:
    """The reason the value at flat ``index`` of ``source`` does not fit ``spec``."""
    want = spec.dtype
    if nulls is not None and nulls.ravel()[index]:
        return f"expected {want}, got null"
    value = source.ravel()[index]
    if isinstance(value, np.generic):
        value = value.item()
    if _is_missing(value):
        return f"expected {want}, got {'NaN' if isinstance(value, float) else 'null'}"
    if want.startswith(("int", "uint")):
        number = _whole(value)
        if number is None:
            return f"expected {want}, got {_plain(value)} which is not a whole number"
        info = np.iinfo(_np_dtype(want))
        if not info.min <= number <= info.max:
            return f"expected {want}, got {_plain(value)} which is outside its range"
    if spec.categories is None:
        return f"expected {want}, got {_plain(value)} which is outside its range"
    shown = ", ".join(_plain(c) for c in spec.categories[:10])
    more = ", ..." if len(spec.categories) > 10 else ""
    return f"{_plain(value)} is not one of its categories ({shown}{more})"


def _plain(value: object) -> str:
    """A value as a person writes it: 2001.5, 100000000000000000000, 'platinum'."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _is_missing(value: object) -> bool:
    """None, NaN, or pandas' NA / NaT."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(value != value)
    return type(value).__name__ in ("NAType", "NaTType")


def parse_number(text: str) -> int | float | None:
    """A number written as text (``"7"``, ``" 2005.0"``, ``"1e3"``, ``"nan"``), exactly:
    integers stay ints, however large. None when ``text`` is not a number."""
    stripped = text.strip()
    if not _NUMBER.match(stripped) or "\n" in stripped:
        return None
    return int(stripped) if _INTEGER.fullmatch(stripped) else float(stripped)


def _parse_cells(spec: TensorSpec, cells: Sequence[str | None]) -> np.ndarray:
    """A text column as the values ``spec`` takes: text kept for a ``str`` input, numbers
    parsed for the others; an empty cell is missing."""
    if spec.dtype == STRING_DTYPE:
        return np.array([c if c else None for c in cells] or [], dtype=object)
    out = np.empty(len(cells), dtype=object)
    for i, cell in enumerate(cells):
        if not cell:
            out[i] = None
            continue
        number = parse_number(cell)
        if number is None:
            raise SignatureError(
                f"input {spec.name!r}: expected {spec.dtype}, got {_plain(cell)} "
                "which is not a number"
            )
        out[i] = number
    return out


def _text_dtype(cells: Sequence[str | None]) -> str:
    """The dtype a text column reads as when no model says: int64 when every cell is an
    integer (and none is written with a leading zero, like a code ``007``), float64 when
    every cell is a number or empty, str otherwise."""
    present = [c.strip() for c in cells if c]
    if not present or any(_LEADING_ZERO.match(c) for c in present):
        return STRING_DTYPE
    numbers = [parse_number(c) for c in present]
    if any(n is None for n in numbers):
        return STRING_DTYPE
    if len(present) == len(cells) and all(isinstance(n, int) for n in numbers):
        return "int64"
    return "float64"


def infer_signature(example: object) -> Signature:
    """Infer the input signature from an example of what the model takes.

    numpy array -> one tensor named ``input``; DataFrame, list of records or
    :class:`TextTable` -> columns (a pandas ``category`` column is categorical); dict of
    arrays -> named tensors. The first axis is always the batch axis (``-1``).
    """
    if _is_frame(example):
        return Signature("columns", tuple(_column_spec(str(c), example[c]) for c in example))
    if isinstance(example, TextTable):
        return Signature(
            "columns", tuple(TensorSpec(n, _text_dtype(example.columns[n])) for n in example.names)
        )
    if isinstance(example, Mapping):
        return Signature(
            "tensors",
            tuple(_batched_spec(str(k), _as_array(str(k), v)) for k, v in example.items()),
        )
    if isinstance(example, Sequence) and example and all(isinstance(r, Mapping) for r in example):
        import pandas

        return infer_signature(pandas.DataFrame(list(example)))
    return Signature("tensors", (_batched_spec("input", _as_array("input", example)),))


def _column_spec(name: str, column: pd.Series) -> TensorSpec:
    """A DataFrame column's spec; a ``category`` column records its categories."""
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        return categorical_spec(name, column.cat.categories.tolist())
    return TensorSpec(name, _dtype_name(column.to_numpy(), name))


def categorical_spec(name: str, categories: Sequence[Any]) -> TensorSpec:
    """A categorical column taking ``categories`` (in the model's category order); its dtype
    is theirs: ``str``, ``int64`` or ``float64``. Any: JSON scalar values."""
    values = [c.item() if isinstance(c, np.generic) else c for c in categories]
    dtype = _dtype_name(np.asarray(values) if values else np.asarray([], dtype=object), name)
    if dtype not in (STRING_DTYPE, "int64", "float64", "bool"):
        dtype = "float64" if dtype.startswith("float") else "int64"
    return TensorSpec(name, dtype, (-1,), tuple(values))


def with_names_of(example_signature: Signature, model_signature: Signature | None) -> Signature:
    """The signature inferred from an example, with the model's input name when the example
    was one bare array and the model takes one input of another name (skl2onnx's ``X``):
    the example maps onto the model's single input."""
    if (
        model_signature is None
        or example_signature.kind != "tensors"
        or model_signature.kind != "tensors"
        or len(example_signature.inputs) != 1
        or len(model_signature.inputs) != 1
    ):
        return example_signature
    spec, wanted = example_signature.inputs[0], model_signature.inputs[0].name
    if spec.name == wanted:
        return example_signature
    renamed = TensorSpec(wanted, spec.dtype, spec.shape, spec.categories)
    return Signature("tensors", (renamed,), example_signature.outputs)


def example_to_json(signature: Signature, example: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Canonical arrays -> JSON-able ``{"inputs": {name: nested lists}}`` (NaN becomes null)."""
    return {"inputs": {n: _jsonable(example[n]) for n in signature.input_names}}


def example_from_json(signature: Signature, data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The inverse of :func:`example_to_json`, re-checked against the signature."""
    return signature.coerce(dict(data["inputs"]))


def _jsonable(arr: np.ndarray) -> Any:
    if arr.dtype.kind == "f":
        return (
            [None if v != v else v for v in arr.ravel().tolist()]
            if arr.ndim == 1
            else [_jsonable(row) for row in arr]
        )
    return arr.tolist()


def _require(names: Sequence[str], present: Iterable[object]) -> None:
    have = set(present)
    missing = [n for n in names if n not in have]
    if missing:
        listed = ", ".join(names)
        hint = _misnamed(missing, have, names)
        raise SignatureError(
            f"missing input {missing[0]!r} (expected: {listed}){hint}"
            if len(missing) == 1
            else f"missing inputs {', '.join(repr(m) for m in missing)} (expected: {listed}){hint}"
        )


def closest_name(name: str, candidates: Iterable[object]) -> str | None:
    """The candidate that was most likely meant as ``name``: the same but for case, or the
    closest spelling (difflib's ratio of at least 0.7, ignoring case); None when none is."""
    texts = [c for c in candidates if isinstance(c, str)]
    folded = {c.casefold(): c for c in reversed(texts)}  # the first of equal foldings wins
    if name.casefold() in folded:
        return folded[name.casefold()]
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.7)
    return folded[close[0]] if close else None


def _misnamed(missing: Sequence[str], present: Iterable[object], names: Sequence[str]) -> str:
    """``; the input has 'Year' (did you mean 'year'?)`` for given names that are not inputs
    but look like missing ones; else the unknown names given, if any (at most five)."""
    unknown = [p for p in present if p not in names]
    pairs = [(m, closest_name(m, unknown)) for m in missing]
    found = [(m, u) for m, u in pairs if u is not None]
    if found:
        return "; " + "; ".join(f"the input has {u!r} (did you mean {m!r}?)" for m, u in found)
    if not unknown:
        return ""
    shown = ", ".join(repr(str(u)) for u in unknown[:5])
    return f"; unknown: {shown}{', ...' if len(unknown) > 5 else ''}"


def _is_frame(data: object) -> TypeGuard[pd.DataFrame]:
    """A pandas DataFrame, without importing pandas: if it is not loaded, nothing is one."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


def _is_scalar(value: object) -> bool:
    """One value rather than a column of them (a str is one value)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0
    return isinstance(value, str | bytes | int | float | bool | np.generic) or value is None


def _as_array(name: str, value: object) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.Series | pandas.Index):
        return np.asarray(value.to_numpy())
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists, etc.
        raise SignatureError(f"input {name!r}: cannot be read as an array ({exc})") from None
    except OverflowError:  # integers past 64 bits beside negative ones: judged one by one
        arr = np.asarray(value, dtype=object)
    # Ragged or mixed nesting yields an object array of lists: say so precisely.
    if arr.dtype.kind == "O" and any(isinstance(x, list | tuple) for x in arr.flat):
        raise SignatureError(f"input {name!r}: rows have different lengths")
    return arr


def _dtype_name(arr: np.ndarray, name: str) -> str:
    kind = arr.dtype.kind
    if kind in "biuf":
        return str(arr.dtype)
    if kind in "USO":
        if kind == "O" and not all(v is None or isinstance(v, str) for v in arr.flat):
            values = arr.ravel().tolist()
            if any(isinstance(v, str) for v in values) and all(
                _is_missing(v) or isinstance(v, str) for v in values
            ):
                return STRING_DTYPE  # pandas writes a missing string as NaN
            try:
                return str(np.asarray(arr.tolist(), dtype=np.float64).dtype)
            except (TypeError, ValueError):
                raise SignatureError(f"input {name!r}: mixed types are not supported") from None
        return STRING_DTYPE
    raise SignatureError(f"input {name!r}: dtype {arr.dtype} is not supported")


def _spec_of(name: str, arr: np.ndarray) -> TensorSpec:
    return _batched_spec(name, np.asarray(arr))


def _batched_spec(name: str, arr: np.ndarray) -> TensorSpec:
    shape = (-1, *arr.shape[1:]) if arr.ndim >= 1 else ()
    return TensorSpec(name, _dtype_name(arr, name), tuple(int(d) for d in shape))


def _describe(arr: np.ndarray) -> str:
    if arr.dtype.kind in "USO":
        types = sorted({type(v).__name__ for v in arr.flat if not _is_missing(v)})
        return "/".join(types) or "null"
    return str(arr.dtype)


def _conform(spec: TensorSpec, value: object) -> np.ndarray:
    arr = _as_array(spec.name, value)
    if spec.shape and spec.shape[0] == -1 and arr.ndim >= 1 and arr.shape[0] == 0:
        raise SignatureError("the input has no rows: nothing to predict")
    fitted = fit_values(spec, arr)
    if fitted.unfit is not None:
        first = int(np.flatnonzero(fitted.unfit)[0])
        raise SignatureError(f"input {spec.name!r}: {fitted.reason(first)}")
    arr = fitted.values
    expected = spec.shape
    if arr.ndim != len(expected) or any(
        e != -1 and e != g for e, g in zip(expected, arr.shape, strict=False)
    ):
        raise SignatureError(
            f"input {spec.name!r}: expected shape {list(expected)}, got {list(arr.shape)}"
        )
    return arr
