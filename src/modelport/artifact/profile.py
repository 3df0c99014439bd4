"""Reference profile: a per-feature summary of the training data, kept for drift detection.

The profile is ``reference_profile.json`` in the artifact: ``{"version": 2, "rows": n,
"features": {name: feature}}``. Tensor inputs of shape ``[-1, k]`` give one feature per
position, named ``input[3]``; higher-rank tensors (images, sequences) are summarized as one
flattened numeric feature, which is all a tabular drift test can say about them.

A numeric feature (NaN and infinities counted in ``missing``, left out of the rest)::

    type        "numeric"
    count       finite values; missing: the others
    mean, std, min, max
    quantiles   101 quantiles (kept for readers of version 1)
    bin_edges   inner edges of about ten equal-count bins (-inf, e1], (e1, e2], ..., (ek, inf);
                each edge lies strictly between two distinct training values (their midpoint),
                never on a value, so a value that comes back slightly rounded stays in its bin
    bin_counts  training rows per bin
    discrete    true when the feature has at most MAX_DISCRETE distinct values: drift then
                compares the counts per value (chi-squared), as for a categorical feature
    ecdf        the empirical CDF at up to N_ECDF points: ``values`` (ascending),
                ``counts`` (rows equal to each value) and ``cum_counts`` (rows at or below
                it). With at most N_ECDF distinct values these are all of them, and the
                counts sum to ``count``: the training distribution exactly. Otherwise the
                points are the values at evenly spaced ranks, exact at each point, with at
                most about 1/N_ECDF of the rows between two points.

A categorical feature (strings, booleans, and a column with recorded categories, such as a
pandas ``category`` column of numbers): ``frequencies`` of the ``MAX_CATEGORIES`` most common
values (keyed by :func:`category_key`; missing values left out) and one ``other`` count.
Floats are written as Python floats, which JSON keeps exactly: nothing is rounded. Version 1
profiles (no ``discrete``, no ``ecdf``, edges on decile values) stay readable;
``modelport.monitoring.drift`` says what it does with them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelport.artifact.signature import STRING_DTYPE, Signature

PROFILE_VERSION = 2
N_BINS = 10
N_QUANTILES = 101
N_ECDF = 500
"""Points of the stored CDF: exact up to this many distinct values."""
MAX_DISCRETE = 20
"""Numeric features with at most this many distinct values are compared value by value."""
MAX_CATEGORIES = 100


def build_profile(signature: Signature, data: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Summarize canonical input arrays (already checked by ``signature.coerce``)."""
    features: dict[str, Any] = {}
    rows = 0
    for spec in signature.inputs:
        arr = data[spec.name]
        rows = int(arr.shape[0]) if arr.ndim else 1
        categorical = spec.dtype in (STRING_DTYPE, "bool") or spec.categories is not None
        if arr.ndim == 2:
            for j in range(arr.shape[1]):
                features[f"{spec.name}[{j}]"] = _feature(arr[:, j], categorical)
        else:
            features[spec.name] = _feature(arr.reshape(-1), categorical)
    return {"version": PROFILE_VERSION, "rows": rows, "features": features}


def _feature(values: np.ndarray, categorical: bool) -> dict[str, Any]:
    return _categorical(values) if categorical else summarize_numeric(values)


def summarize_numeric(values: np.ndarray) -> dict[str, Any]:
    """The profile entry of one numeric feature (see the module docstring)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = np.sort(x[np.isfinite(x)])
    missing = int(x.size - finite.size)
    if finite.size == 0:
        return {"type": "numeric", "count": 0, "missing": missing}
    distinct, counts = np.unique(finite, return_counts=True)
    inner = _bin_edges(distinct, counts)
    bin_counts = np.bincount(np.searchsorted(inner, finite, side="left"), minlength=inner.size + 1)
    return {
        "type": "numeric",
        "count": int(finite.size),
        "missing": missing,
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "min": float(finite[0]),
        "max": float(finite[-1]),
        "quantiles": np.quantile(finite, np.linspace(0, 1, N_QUANTILES)).tolist(),
        "bin_edges": inner.tolist(),
        "bin_counts": bin_counts.tolist(),
        "discrete": bool(distinct.size <= MAX_DISCRETE),
        "ecdf": _ecdf(finite, distinct, counts),
    }


def _bin_edges(distinct: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Inner edges of about ``N_BINS`` equal-count bins, each between two distinct values.

    Each decile target becomes the split between two neighbouring distinct values whose
    count below is nearest to it; a tie block is never cut, and splits that coincide (one
    value holding more than a bin's share) are merged.
    """
    if distinct.size < 2:
        return np.empty(0, dtype=np.float64)
    below = np.cumsum(counts)[:-1]  # rows at or below distinct[k], for a split after k
    targets = counts.sum() * np.arange(1, N_BINS) / N_BINS
    hi = np.clip(np.searchsorted(below, targets), 0, below.size - 1)
    lo = np.clip(hi - 1, 0, None)
    split = np.unique(np.where(np.abs(below[lo] - targets) <= np.abs(below[hi] - targets), lo, hi))
    return _between(distinct[split], distinct[split + 1])


def _between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A point strictly between ``a < b`` (the midpoint), or ``a`` itself when the two are
    neighbouring floats: bins are closed on the right, so ``a`` stays below and ``b`` above."""
    mid = a / 2 + b / 2
    return np.where((mid > a) & (mid < b), mid, a)


def _ecdf(finite: np.ndarray, distinct: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    cumulative = np.cumsum(counts)
    if distinct.size <= N_ECDF:
        keep = np.arange(distinct.size)
    else:
        ranks = np.round(np.linspace(0, finite.size - 1, N_ECDF)).astype(np.int64)
        keep = np.searchsorted(distinct, np.unique(finite[ranks]))
    return {
        "values": distinct[keep].tolist(),
        "counts": counts[keep].tolist(),
        "cum_counts": cumulative[keep].tolist(),
    }


def category_key(value: object) -> str:
    """How a categorical value is counted: its text, a whole float as the integer it is (a
    category ``3`` logged as ``3.0`` is still ``"3"``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def is_missing(value: object) -> bool:
    """None or NaN: not a category."""
    return value is None or (isinstance(value, float) and value != value)


def _categorical(values: np.ndarray) -> dict[str, Any]:
    present = [category_key(v) for v in values.tolist() if not is_missing(v)]
    counts = Counter(present)
    top = dict(counts.most_common(MAX_CATEGORIES))
    return {
        "type": "categorical",
        "count": len(present),
        "missing": int(values.size - len(present)),
        "frequencies": top,
        "other": len(present) - sum(top.values()),
    }
