"""The casting rules: what values fit an input's dtype, read as that dtype.

One rule decides what fits, for every way in (the server, ``modelport predict``, batch
scoring, ``modelport.load``): :func:`fit_values`. Casts that lose nothing are applied
silently: bool/int -> float, narrower -> wider, float64 -> float32 (what numpy users pass by
default), int -> narrower int when the value fits, and a whole float -> int (``2005.0`` is
2005). A lossy one is refused, naming the value: a fraction or a null in an int column, a
value outside the dtype's range, a value outside a categorical input's categories. Values of
the wrong kind altogether (text where a number belongs, a number where text does) are
refused as well; text is never parsed, except where the values *are* text by their format:
the cells of a CSV file (:class:`~modelport.artifact.signature.TextTable`), read as their
input's dtype (``"007"`` in a ``str`` column stays ``"007"``, in an int column it is 7). A
categorical input (a pandas ``category`` column in the example) records its categories; its
values are plain strings or numbers, and must be among them.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelport.artifact.tensor_spec import STRING_DTYPE, TensorSpec, np_dtype
from modelport.errors import SignatureError

NUMBER_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^(?i:[+-]?(nan|inf|infinity))$"
"""What a number written as text looks like (anchored; Python ``re`` and Arrow's RE2 both
read it). Anything else in a number column of a text file is refused."""
_NUMBER = re.compile(NUMBER_PATTERN)
_INTEGER = re.compile(r"[+-]?\d+")
_LEADING_ZERO = re.compile(r"[+-]?0\d")
_SHOWN = 60  # characters of a value shown in a message


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
    target = np_dtype(want)
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
        info = np.iinfo(np_dtype(want))
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


def parse_cells(spec: TensorSpec, cells: Sequence[str | None]) -> np.ndarray:
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


def text_dtype(cells: Sequence[str | None]) -> str:
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


def as_array(name: str, value: object) -> np.ndarray:
    """``value`` (an array, a pandas Series, nested lists) as a numpy array, as it is."""
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


def dtype_name(arr: np.ndarray, name: str) -> str:
    """The signature dtype of ``arr``'s values (text with missing values is ``str``)."""
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


def _describe(arr: np.ndarray) -> str:
    if arr.dtype.kind in "USO":
        types = sorted({type(v).__name__ for v in arr.flat if not _is_missing(v)})
        return "/".join(types) or "null"
    return str(arr.dtype)


def conform(spec: TensorSpec, value: object) -> np.ndarray:
    """``value`` fitted to ``spec``'s dtype and shape, or :class:`SignatureError` naming
    the first value that does not fit."""
    arr = as_array(spec.name, value)
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
