"""Signatures: the named inputs and outputs of a model, inferred from an example and enforced.

A signature is either ``tensors`` (named arrays with a dtype and a shape, ``-1`` on the batch
axis) or ``columns`` (a table: each column is a 1-D tensor of shape ``[-1]``). Both become the
same canonical form before a flavor sees them: ``dict[str, np.ndarray]``, batch axis first,
strings as object arrays of ``str``.

Casts that cannot lose meaning are applied silently: bool/int -> float, narrower -> wider,
float64 -> float32 (what numpy users pass by default), and int -> narrower int when every value
fits. Anything else (str -> number, float -> int, null in an int column) is a
:class:`~modelport.errors.SignatureError` naming the input, what was expected and what came.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

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


def _np_dtype(name: str) -> np.dtype[Any]:
    """numpy's dtype for a signature dtype name (parsing the name costs more than the lookup)."""
    return _NUMPY_DTYPES.get(name) or np.dtype(name)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One named input or output: dtype from :data:`DTYPES`, shape with ``-1`` for any size."""

    name: str
    dtype: str
    shape: tuple[int, ...] = (-1,)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["dtype"]), tuple(int(d) for d in data["shape"]))


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
        a pandas DataFrame, a list of records (dicts), a dict of arrays/lists, or nested lists.
        """
        raw = self._columns_of(data) if self.kind == "columns" else self._tensors_of(data)
        out = {spec.name: _conform(spec, raw[spec.name]) for spec in self.inputs}
        if len(out) == 1:
            return out
        lengths = {name: arr.shape[0] for name, arr in out.items() if arr.ndim > 0}
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{n}={size}" for n, size in lengths.items())
            raise SignatureError(f"inputs have different batch sizes: {sizes}")
        return out

    def _tensors_of(self, data: object) -> dict[str, object]:
        names = self.input_names
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

    def _columns_of(self, data: object) -> Mapping[str, object]:
        names = self.input_names
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
                        raise SignatureError(f"record {i} is missing input {missing[0]!r}")
                return {n: [row[n] for row in data] for n in names}
            return self._columns_of(_as_array("input", data))
        raise InvalidInput(f"cannot read {type(data).__name__} as a table of inputs")


def infer_signature(example: object) -> Signature:
    """Infer the input signature from an example of what the model takes.

    numpy array -> one tensor named ``input``; DataFrame or list of records -> columns;
    dict of arrays -> named tensors. The first axis is always the batch axis (``-1``).
    """
    if _is_frame(example):
        specs = tuple(
            TensorSpec(str(c), _dtype_name(example[c].to_numpy(), str(c))) for c in example.columns
        )
        return Signature("columns", specs)
    if isinstance(example, Mapping):
        return Signature(
            "tensors",
            tuple(_batched_spec(str(k), _as_array(str(k), v)) for k, v in example.items()),
        )
    if isinstance(example, Sequence) and example and all(isinstance(r, Mapping) for r in example):
        import pandas

        return infer_signature(pandas.DataFrame(list(example)))
    return Signature("tensors", (_batched_spec("input", _as_array("input", example)),))


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


def _require(names: Sequence[str], present: object) -> None:
    have = set(present)  # type: ignore[call-overload]
    missing = [n for n in names if n not in have]
    if missing:
        raise SignatureError(
            f"missing input {missing[0]!r} (expected: {', '.join(names)})"
            if len(missing) == 1
            else f"missing inputs {', '.join(repr(m) for m in missing)} "
            f"(expected: {', '.join(names)})"
        )


def _is_frame(data: object) -> TypeGuard[pd.DataFrame]:
    """A pandas DataFrame, without importing pandas: if it is not loaded, nothing is one."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


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
        types = sorted({type(v).__name__ for v in arr.flat if v is not None})
        return "/".join(types) or "null"
    return str(arr.dtype)


def _conform(spec: TensorSpec, value: object) -> np.ndarray:
    arr = _cast(spec, _as_array(spec.name, value))
    expected = spec.shape
    if arr.ndim != len(expected) or any(
        e != -1 and e != g for e, g in zip(expected, arr.shape, strict=False)
    ):
        raise SignatureError(
            f"input {spec.name!r}: expected shape {list(expected)}, got {list(arr.shape)}"
        )
    return arr


def _cast(spec: TensorSpec, arr: np.ndarray) -> np.ndarray:
    want, got = spec.dtype, arr.dtype
    if want == STRING_DTYPE:
        if got.kind == "U":
            return arr.astype(object)
        if got.kind == "O" and all(v is None or isinstance(v, str) for v in arr.flat):
            return arr
        raise SignatureError(f"input {spec.name!r}: expected str, got {_describe(arr)}")
    target = _np_dtype(want)
    if got == target:
        return arr
    if got.kind == "O":
        arr = _objects_to_numbers(spec, arr, target)
        got = arr.dtype
    if got.kind in "US":
        raise SignatureError(
            f"input {spec.name!r}: expected {want}, got str which cannot be safely cast"
        )
    if got == target:
        return arr
    integers = got.kind in "iub" and target.kind in "iu"
    if not integers and not np.can_cast(got, target, casting="same_kind"):
        raise SignatureError(
            f"input {spec.name!r}: expected {want}, got {got} which cannot be safely cast"
        )
    if target.kind in "iu" and arr.size:
        info = np.iinfo(target)
        if arr.min() < info.min or arr.max() > info.max:
            raise SignatureError(
                f"input {spec.name!r}: expected {want}, got {got} values outside its range"
            )
    return arr.astype(target)


def _objects_to_numbers(spec: TensorSpec, arr: np.ndarray, target: np.dtype[Any]) -> np.ndarray:
    flat = arr.ravel().tolist()
    if any(isinstance(v, str | bytes) for v in flat):
        raise SignatureError(
            f"input {spec.name!r}: expected {spec.dtype}, got str which cannot be safely cast"
        )
    has_null = any(v is None for v in flat)
    if has_null and target.kind != "f":
        raise SignatureError(f"input {spec.name!r}: expected {spec.dtype}, got null values")
    if all(isinstance(v, bool | np.bool_) for v in flat if v is not None):
        probe: type = bool
    elif all(isinstance(v, int | np.integer) for v in flat if v is not None):
        probe = int
    else:
        probe = float
    dtype = np.float64 if has_null or probe is float else (np.bool_ if probe is bool else np.int64)
    try:
        values = [np.nan if v is None else v for v in flat]
        return np.asarray(values, dtype=dtype).reshape(arr.shape)
    except (TypeError, ValueError, OverflowError):
        raise SignatureError(
            f"input {spec.name!r}: expected {spec.dtype}, got {_describe(arr)}"
        ) from None
