"""The equivalence check: which rows a conversion is checked on, and how outputs compare.

Rows, in this order: the version's input example; the rows the user passes (``data``); and
rows drawn from the reference profile when one was recorded. The profile keeps a summary of
the training data, not the rows, so those rows are synthetic: each feature is drawn on its
own from its recorded quantiles (its training range and distribution, but not how features
go together). They exercise the model over the range it was trained on; only ``data``
checks real rows beyond the example.

Outputs: labels (a classifier's ``predictions``, and any integer, boolean or text output)
must match exactly; floating-point outputs may differ by ``atol + rtol * |original|``,
element by element (``numpy.isclose``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelport.artifact.signature import Signature
from modelport.errors import FlavorError, InvalidInput
from modelport.packaging import LoadedModel


@dataclass(frozen=True)
class CheckRows:
    """Canonical input arrays and how many rows came from where."""

    inputs: dict[str, np.ndarray]
    sources: dict[str, int]

    @property
    def count(self) -> int:
        return sum(self.sources.values())


@dataclass(frozen=True)
class Differences:
    """The largest differences between the original's and the graph's floating outputs."""

    max_abs_diff: float
    max_rel_diff: float
    """Largest ``|onnx - original| / |original|`` over values with ``|original| > atol``."""


def check_rows(loaded: LoadedModel, data: object, synthetic: int, seed: int) -> CheckRows:
    """The rows to check ``loaded``'s conversion on; InvalidInput if there are none."""
    signature = loaded.signature
    parts: list[dict[str, np.ndarray]] = []
    sources: dict[str, int] = {}
    example = loaded.input_example()
    if example is not None:
        parts.append(example)
        sources["example"] = _rows(example)
    if data is not None:
        try:
            given = signature.coerce(data)
        except InvalidInput as exc:
            raise InvalidInput(f"the rows to check on do not match the signature: {exc}") from None
        parts.append(given)
        sources["data"] = _rows(given)
    profile = loaded.reference_profile()
    if profile is not None and synthetic > 0:
        drawn = synthetic_rows(signature, profile, synthetic, np.random.default_rng(seed))
        if drawn is not None:
            parts.append(drawn)
            sources["profile"] = synthetic
    if not parts:
        raise InvalidInput(
            f"no rows to check the conversion of {loaded.name!r} on: the version has no input "
            "example and no reference profile; pass rows (--data FILE)"
        )
    inputs = {name: np.concatenate([p[name] for p in parts]) for name in signature.input_names}
    return CheckRows(inputs, sources)


def _rows(arrays: Mapping[str, np.ndarray]) -> int:
    return int(next(iter(arrays.values())).shape[0])


def synthetic_rows(
    signature: Signature, profile: Mapping[str, Any], n: int, rng: np.random.Generator
) -> dict[str, np.ndarray] | None:
    """``n`` rows drawn feature by feature from the profile's quantiles; None when a feature
    is not numeric or the inputs are not a table (images, sequences)."""
    features = profile.get("features", {})
    raw: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        if spec.shape == (-1,):
            column = _draw(features.get(spec.name), spec.dtype, n, rng)
            if column is None:
                return None
            raw[spec.name] = column
        elif len(spec.shape) == 2 and spec.shape[1] > 0:
            columns = [
                _draw(features.get(f"{spec.name}[{j}]"), spec.dtype, n, rng)
                for j in range(spec.shape[1])
            ]
            if any(c is None for c in columns):
                return None
            raw[spec.name] = np.stack([c for c in columns if c is not None], axis=1)
        else:
            return None
    try:
        return signature.coerce(raw)
    except InvalidInput:
        return None


def _draw(
    feature: Mapping[str, Any] | None, dtype: str, n: int, rng: np.random.Generator
) -> np.ndarray | None:
    if not feature or feature.get("type") != "numeric" or not feature.get("quantiles"):
        return None
    if dtype not in ("float16", "float32", "float64") and not dtype.startswith(("int", "uint")):
        return None
    quantiles = np.asarray(feature["quantiles"], dtype=np.float64)
    values = np.interp(rng.uniform(size=n), np.linspace(0.0, 1.0, len(quantiles)), quantiles)
    return np.rint(values) if not dtype.startswith("float") else values


def compare(
    expected: Mapping[str, np.ndarray],
    got: Mapping[str, np.ndarray],
    rtol: float,
    atol: float,
) -> Differences:
    """Check the graph's outputs against the original's; FlavorError naming the worst row."""
    labels = "probabilities" in expected
    max_abs = max_rel = 0.0
    exact = []
    for name, want in expected.items():
        have = got.get(name)
        if have is None:
            raise FlavorError(f"the ONNX graph returns no output {name!r}")
        have = np.asarray(have)
        if have.shape != want.shape:
            raise FlavorError(
                f"output {name!r} has shape {list(have.shape)} from ONNX and "
                f"{list(want.shape)} from the original"
            )
        if (labels and name == "predictions") or want.dtype.kind not in "fc":
            exact.append((name, want, have))  # after the scores, which say more
            continue
        a, b = want.astype(np.float64), have.astype(np.float64)
        diff = np.abs(a - b)
        both_nan = np.isnan(a) & np.isnan(b)
        diff[both_nan] = 0.0
        max_abs = max(max_abs, float(np.nanmax(diff, initial=0.0)))
        scale = np.abs(a)
        big = scale > atol
        if big.any():
            max_rel = max(max_rel, float(np.nanmax(diff[big] / scale[big])))
        excess = diff - (atol + rtol * scale)
        excess[np.isnan(excess)] = np.inf  # NaN on one side only
        if (excess > 0).any():
            raise FlavorError(_worst(name, a, b, excess, rtol, atol))
    for name, want, have in exact:
        _check_labels(name, want, have)
    return Differences(max_abs, max_rel)


def _check_labels(name: str, want: np.ndarray, have: np.ndarray) -> None:
    same = np.asarray(want == have)
    if want.dtype.kind == "f":
        same = same | (np.isnan(want) & np.isnan(have))
    rows = np.asarray(same.reshape(len(want), -1).all(axis=1))
    if rows.all():
        return
    row = int(np.argmin(rows))
    raise FlavorError(
        f"the ONNX graph's {name!r} differ from the original's ({int((~rows).sum())} of "
        f"{len(rows)} rows; labels must match exactly): row {row}: original "
        f"{_show(want[row])}, ONNX {_show(have[row])}; nothing was registered"
    )


def _worst(
    name: str, a: np.ndarray, b: np.ndarray, excess: np.ndarray, rtol: float, atol: float
) -> str:
    flat = excess.reshape(len(excess), -1)
    row = int(np.argmax(flat.max(axis=1)))
    col = int(np.argmax(flat[row]))
    where = f"row {row}" if a.ndim == 1 else f"row {row}, column {col}"
    va = float(a.reshape(len(a), -1)[row, col])
    vb = float(b.reshape(len(b), -1)[row, col])
    bad = int((flat > 0).any(axis=1).sum())
    return (
        f"the ONNX graph's {name!r} differ from the original's beyond rtol={rtol:g}, "
        f"atol={atol:g} in {bad} of {len(flat)} rows; worst at {where}: original {va!r}, "
        f"ONNX {vb!r}, difference {abs(va - vb):.3g}; nothing was registered"
    )


def _show(value: Any) -> str:
    arr = np.asarray(value)
    return repr(arr.tolist() if arr.ndim else arr.item())
