"""Has a feature drifted? Live inputs against the reference profile kept in the artifact.

Each feature gets two measures, and is flagged only when both agree:

- **PSI** (population stability index) over the profile's bins: decile bins for numeric
  features, the kept categories plus ``other`` for categorical ones. PSI says *how much* the
  distribution moved; empty bins get a proportion of ``EPSILON`` so the log stays finite.
- **A two-sample test** says whether the move is more than chance. Numeric: Kolmogorov-Smirnov.
  The reference is known only through its 101 quantiles, so its CDF is the piecewise-linear
  curve through them; the statistic is the largest gap between that curve and the live
  empirical CDF, and the p-value is the asymptotic two-sample one with the effective size
  ``n_ref * n_live / (n_ref + n_live)``. CDFs are compared at every live value and every
  reference quantile, so integer features are steps, not ramps. Categorical: chi-squared on
  the 2 x k table of reference and live counts (both are samples), categories expected fewer
  than 5 times merged into one column.

Why both: the test alone flags differences too small to matter once samples are large (and
the quantile sketch itself is off by up to ~1% of CDF, which a large enough sample would
"detect"); PSI alone has no notion of sample size, so small samples flag at random. Requiring
``p < alpha`` *and* ``psi > psi_threshold`` keeps the false-alarm rate under ``alpha`` per
feature (0.01 by default; measured in the tests) and flags shifts big enough to act on.
Below ``min_samples`` live rows there is no verdict at all.

Prediction drift compares two samples of model outputs (a baseline window of logged
predictions against the current one), because the training profile has no outputs.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelport.artifact.signature import Signature

EPSILON = 1e-4
"""Proportion given to an empty bin so PSI stays finite."""


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    """When a feature counts as drifted: ``p_value < alpha`` and ``psi > psi``."""

    alpha: float = 0.01
    psi: float = 0.1
    min_samples: int = 100


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's verdict, with both distributions over the same bins for drawing."""

    feature: str
    kind: str
    """``numeric`` or ``categorical``."""
    n_live: int
    psi: float
    test: str
    """``ks`` or ``chi2``."""
    statistic: float
    p_value: float
    drifted: bool
    bins: list[str]
    reference: list[float]
    """Reference proportion per bin."""
    live: list[float]
    """Live proportion per bin."""


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Every feature's verdict, drifting features first, then by PSI."""

    n_live: int
    enough_data: bool
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        """Names of the drifting features."""
        return [f.feature for f in self.features if f.drifted]


def live_features(signature: Signature, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Split canonical input arrays into the per-feature columns the reference profile names
    (``input[3]`` for column 3 of a ``[-1, k]`` tensor, the name itself otherwise)."""
    out: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        arr = np.asarray(inputs[spec.name])
        if arr.ndim == 2:
            for j in range(arr.shape[1]):
                out[f"{spec.name}[{j}]"] = arr[:, j]
        else:
            out[spec.name] = arr.reshape(-1)
    return out


def drift_report(
    profile: Mapping[str, Any],
    live: Mapping[str, np.ndarray],
    thresholds: DriftThresholds = DriftThresholds(),
) -> DriftReport:
    """Compare each profiled feature with its live values (see :func:`live_features`)."""
    n_live = min((len(v) for v in live.values()), default=0)
    if n_live < thresholds.min_samples:
        return DriftReport(n_live=n_live, enough_data=False)
    found = [
        feature_drift(name, reference, live[name], thresholds)
        for name, reference in profile.get("features", {}).items()
        if name in live and reference.get("count", 0) > 0
    ]
    found.sort(key=lambda f: (not f.drifted, -f.psi))
    return DriftReport(n_live=n_live, enough_data=True, features=found)


def feature_drift(
    name: str,
    reference: Mapping[str, Any],
    values: np.ndarray,
    thresholds: DriftThresholds = DriftThresholds(),
) -> FeatureDrift:
    """One feature against its profile entry (numeric or categorical, as profiled)."""
    if reference["type"] == "categorical":
        return _categorical(name, reference, values, thresholds)
    return _numeric(name, reference, values, thresholds)


def prediction_drift(
    baseline: np.ndarray,
    live: np.ndarray,
    thresholds: DriftThresholds = DriftThresholds(),
    name: str = "predictions",
) -> FeatureDrift:
    """Did the model's outputs move between two windows? Numbers (probabilities,
    regression values) use KS with deciles of the baseline; labels use chi-squared."""
    base = np.asarray(baseline).reshape(-1)
    if base.dtype.kind in "fiu":
        finite = base[np.isfinite(base.astype(np.float64))].astype(np.float64)
        return _numeric(name, _numeric_profile(finite), np.asarray(live), thresholds)
    counts = Counter(str(v) for v in base.tolist())
    reference = {"type": "categorical", "count": len(base), "frequencies": dict(counts), "other": 0}
    return _categorical(name, reference, np.asarray(live), thresholds)


def _numeric_profile(x: np.ndarray) -> dict[str, Any]:
    edges = np.unique(np.quantile(x, np.linspace(0, 1, 11)))[1:-1]
    counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
    return {
        "type": "numeric",
        "count": int(x.size),
        "quantiles": np.quantile(x, np.linspace(0, 1, 101)).tolist(),
        "bin_edges": edges.tolist(),
        "bin_counts": counts.tolist(),
    }


def _numeric(
    name: str, reference: Mapping[str, Any], values: np.ndarray, thresholds: DriftThresholds
) -> FeatureDrift:
    x = np.asarray(values, dtype=np.float64)
    x = np.sort(x[np.isfinite(x)])
    edges = np.asarray(reference["bin_edges"], dtype=np.float64)
    ref_counts = np.asarray(reference["bin_counts"], dtype=np.float64)
    live_counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
    ref_p, live_p = _proportions(ref_counts), _proportions(live_counts.astype(np.float64))
    statistic, p_value = _ks(x, np.asarray(reference["quantiles"]), int(reference["count"]))
    psi = _psi(ref_p, live_p)
    labels = _bin_labels(edges.tolist())
    return FeatureDrift(
        name, "numeric", int(x.size), psi, "ks", statistic, p_value,
        bool(p_value < thresholds.alpha and psi > thresholds.psi),
        labels, ref_p.tolist(), live_p.tolist(),
    )  # fmt: skip


def _categorical(
    name: str, reference: Mapping[str, Any], values: np.ndarray, thresholds: DriftThresholds
) -> FeatureDrift:
    from scipy import stats

    freq: dict[str, int] = {str(k): int(v) for k, v in reference["frequencies"].items()}
    bins = [*freq, "other"]
    ref_counts = np.array([*freq.values(), int(reference.get("other", 0))], dtype=np.float64)
    seen = Counter(str(v) for v in np.asarray(values).reshape(-1).tolist() if v is not None)
    live_counts = np.array(
        [seen.get(b, 0) for b in freq] + [sum(c for v, c in seen.items() if v not in freq)],
        dtype=np.float64,
    )
    ref_p, live_p = _proportions(ref_counts), _proportions(live_counts)
    n = live_counts.sum()
    # Both rows are samples (the reference too), so the test is a 2 x k contingency table;
    # categories with fewer than 5 expected live rows are merged into one column first.
    small = ref_p * n < 5
    table = np.array(
        [
            np.append(ref_counts[~small], ref_counts[small].sum()),
            np.append(live_counts[~small], live_counts[small].sum()),
        ]
    )
    table = table[:, table.sum(axis=0) > 0]
    if n == 0 or table.shape[1] < 2:
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.chi2_contingency(table, correction=False)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    psi = _psi(ref_p, live_p)
    return FeatureDrift(
        name, "categorical", int(n), psi, "chi2", statistic, p_value,
        bool(p_value < thresholds.alpha and psi > thresholds.psi),
        bins, ref_p.tolist(), live_p.tolist(),
    )  # fmt: skip


def _proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def _psi(ref: np.ndarray, live: np.ndarray) -> float:
    r, q = np.maximum(ref, EPSILON), np.maximum(live, EPSILON)
    return float(np.sum((q - r) * np.log(q / r)))


def _ks(x: np.ndarray, quantiles: np.ndarray, n_ref: int) -> tuple[float, float]:
    """KS statistic of sorted ``x`` against the piecewise-linear CDF through ``quantiles``."""
    from scipy import stats

    if x.size == 0 or quantiles.size < 2:
        return 0.0, 1.0
    probs = np.linspace(0, 1, quantiles.size)
    # Repeated quantiles (a discrete feature) are a jump in the CDF: keep its top.
    xs, last = np.unique(quantiles[::-1], return_index=True)
    ps = probs[::-1][last]
    # Compare right-continuous CDFs at every live value and every reference quantile: ties
    # (integer features) are then one step each, not a ramp of n separate points.
    n = x.size
    points = np.union1d(x, xs)
    live_cdf = np.searchsorted(x, points, side="right") / n
    ref_cdf = np.interp(points, xs, ps, left=0.0, right=1.0)
    statistic = float(np.abs(live_cdf - ref_cdf).max())
    effective = n_ref * n / (n_ref + n)
    return statistic, float(stats.kstwobign.sf(statistic * np.sqrt(effective)))


def _bin_labels(edges: Sequence[float]) -> list[str]:
    bounds = ["-inf", *(f"{e:.4g}" for e in edges), "inf"]
    return [f"({lo}, {hi}]" for lo, hi in itertools.pairwise(bounds)]
