"""Reference profile: a per-feature summary of the training data, kept for drift detection.

Numeric features keep summary statistics, 101 quantiles (a sketch of the distribution good
enough for a Kolmogorov-Smirnov statistic) and decile bins with counts (for PSI). Categorical
features (strings, booleans) keep value frequencies: the ``MAX_CATEGORIES`` most common values
and one ``other`` count. Tensor inputs of shape ``[-1, k]`` give one feature per position,
named ``input[3]``; higher-rank tensors (images, sequences) are summarized as one flattened
numeric feature, which is all a tabular drift test can say about them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelport.artifact.signature import STRING_DTYPE, Signature

PROFILE_VERSION = 1
N_BINS = 10
N_QUANTILES = 101
MAX_CATEGORIES = 100


def build_profile(signature: Signature, data: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Summarize canonical input arrays (already checked by ``signature.coerce``)."""
    features: dict[str, Any] = {}
    rows = 0
    for spec in signature.inputs:
        arr = data[spec.name]
        rows = int(arr.shape[0]) if arr.ndim else 1
        categorical = spec.dtype in (STRING_DTYPE, "bool")
        if arr.ndim == 2:
            for j in range(arr.shape[1]):
                features[f"{spec.name}[{j}]"] = _feature(arr[:, j], categorical)
        else:
            features[spec.name] = _feature(arr.reshape(-1), categorical)
    return {"version": PROFILE_VERSION, "rows": rows, "features": features}


def _feature(values: np.ndarray, categorical: bool) -> dict[str, Any]:
    return _categorical(values) if categorical else _numeric(values)


def _numeric(values: np.ndarray) -> dict[str, Any]:
    x = values.astype(np.float64)
    finite = x[np.isfinite(x)]
    missing = int(x.size - finite.size)
    if finite.size == 0:
        return {"type": "numeric", "count": 0, "missing": missing}
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, N_BINS + 1)))
    # Inner edges only: bins are (-inf, e1], (e1, e2], ..., (ek, inf) so live data always lands.
    inner = edges[1:-1]
    counts = np.bincount(np.searchsorted(inner, finite, side="left"), minlength=inner.size + 1)
    return {
        "type": "numeric",
        "count": int(finite.size),
        "missing": missing,
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "quantiles": [float(q) for q in np.quantile(finite, np.linspace(0, 1, N_QUANTILES))],
        "bin_edges": [float(e) for e in inner],
        "bin_counts": [int(c) for c in counts],
    }


def _categorical(values: np.ndarray) -> dict[str, Any]:
    present = [str(v) for v in values.tolist() if v is not None]
    counts = Counter(present)
    top = dict(counts.most_common(MAX_CATEGORIES))
    return {
        "type": "categorical",
        "count": len(present),
        "missing": int(values.size - len(present)),
        "frequencies": top,
        "other": len(present) - sum(top.values()),
    }
