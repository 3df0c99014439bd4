"""Signatures: the named inputs and outputs of a model, inferred from an example and enforced.

A signature is either ``tensors`` (named arrays with a dtype and a shape, ``-1`` on the batch
axis) or ``columns`` (a table: each column is a 1-D tensor of shape ``[-1]``). Both become the
same canonical form before a flavor sees them: ``dict[str, np.ndarray]``, batch axis first,
strings as object arrays of ``str`` (``None`` where a value is missing).

Each input is a :class:`~modelport.artifact.tensor_spec.TensorSpec`; what values fit it, and
how they are cast to its dtype, is decided by one rule in :mod:`modelport.artifact.casting`.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypeGuard

import numpy as np

from modelport.artifact.casting import as_array, conform, dtype_name, parse_cells, text_dtype
from modelport.artifact.tensor_spec import DTYPES, NUMERIC_DTYPES, STRING_DTYPE, TensorSpec
from modelport.errors import InvalidInput, SignatureError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [  # TensorSpec and the dtypes live in tensor_spec; importers keep finding them here
    "DTYPES",
    "NUMERIC_DTYPES",
    "STRING_DTYPE",
    "Kind",
    "Signature",
    "TensorSpec",
    "TextTable",
    "categorical_spec",
    "closest_name",
    "example_from_json",
    "example_to_json",
    "infer_signature",
    "with_names_of",
]

Kind = Literal["tensors", "columns"]


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
        out = {spec.name: conform(spec, raw[spec.name]) for spec in self.inputs}
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
            parsed = [parse_cells(spec, table.columns[n]) for n in table.names]
            if not parsed:
                raise SignatureError(f"input {spec.name!r}: the table has no columns")
            return {spec.name: np.stack(parsed, axis=1)}
        if len(self.inputs) == 1 and len(table.names) == 1:
            return {spec.name: parse_cells(spec, table.columns[table.names[0]])}
        _require(self.input_names, table.names)
        return {s.name: parse_cells(s, table.columns[s.name]) for s in self.inputs}

    def _columns_of(self, data: object) -> Mapping[str, object]:
        names = self.input_names
        if isinstance(data, TextTable):
            _require(names, data.names)
            return {s.name: parse_cells(s, data.columns[s.name]) for s in self.inputs}
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
            return self._columns_of(as_array("input", data))
        raise InvalidInput(f"cannot read {type(data).__name__} as a table of inputs")


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
            "columns", tuple(TensorSpec(n, text_dtype(example.columns[n])) for n in example.names)
        )
    if isinstance(example, Mapping):
        return Signature(
            "tensors",
            tuple(_batched_spec(str(k), as_array(str(k), v)) for k, v in example.items()),
        )
    if isinstance(example, Sequence) and example and all(isinstance(r, Mapping) for r in example):
        import pandas

        return infer_signature(pandas.DataFrame(list(example)))
    return Signature("tensors", (_batched_spec("input", as_array("input", example)),))


def _column_spec(name: str, column: pd.Series) -> TensorSpec:
    """A DataFrame column's spec; a ``category`` column records its categories."""
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        return categorical_spec(name, column.cat.categories.tolist())
    return TensorSpec(name, dtype_name(column.to_numpy(), name))


def categorical_spec(name: str, categories: Sequence[Any]) -> TensorSpec:
    """A categorical column taking ``categories`` (in the model's category order); its dtype
    is theirs: ``str``, ``int64`` or ``float64``. Any: JSON scalar values."""
    values = [c.item() if isinstance(c, np.generic) else c for c in categories]
    dtype = dtype_name(np.asarray(values) if values else np.asarray([], dtype=object), name)
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


def _spec_of(name: str, arr: np.ndarray) -> TensorSpec:
    return _batched_spec(name, np.asarray(arr))


def _batched_spec(name: str, arr: np.ndarray) -> TensorSpec:
    shape = (-1, *arr.shape[1:]) if arr.ndim >= 1 else ()
    return TensorSpec(name, dtype_name(arr, name), tuple(int(d) for d in shape))
