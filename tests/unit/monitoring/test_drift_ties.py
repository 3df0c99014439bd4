"""Drift on real data with ties and discrete features: a resample of the training data is not
drift, a real shift still is, and profiles written by the first profile format still work.

The data sets are the ones scikit-learn ships (no download). They have what synthetic normal
data lacks: values repeated many times, two-valued features (diabetes ``sex``), pixel counts
0-16 (digits), measurements recorded to one decimal (iris). Every profile goes through JSON,
as it does on disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import datasets

from modelport.artifact.profile import MAX_DISCRETE, build_profile
from modelport.artifact.signature import Signature, infer_signature
from modelport.monitoring.drift import (
    DriftReport,
    DriftThresholds,
    drift_report,
    feature_drift,
    live_features,
    prediction_drift,
)

ALPHA = DriftThresholds().alpha
LOADERS: dict[str, Callable[..., Any]] = {
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "diabetes": datasets.load_diabetes,
    "iris": datasets.load_iris,
    "digits": datasets.load_digits,
}
RESAMPLES = 30
MAX_FALSE_ALARMS = 0.03
"""Share of feature checks allowed to reject on pure resamples (alpha is 0.01)."""


@dataclass(frozen=True)
class Reference:
    frame: pd.DataFrame
    signature: Signature
    profile: dict[str, Any]


def json_round_trip(profile: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(profile, allow_nan=False))
    return loaded


def reference_for(frame: pd.DataFrame) -> Reference:
    signature = infer_signature(frame)
    profile = build_profile(signature, signature.coerce(frame))
    return Reference(frame, signature, json_round_trip(profile))


@pytest.fixture(scope="module", params=list(LOADERS))
def reference(request: pytest.FixtureRequest) -> Reference:
    frame = LOADERS[request.param](as_frame=True).frame.drop(columns=["target"])
    return reference_for(frame.astype(np.float64))


def report_for(
    ref: Reference, live: pd.DataFrame, profile: dict[str, Any] | None = None
) -> DriftReport:
    features = live_features(ref.signature, ref.signature.coerce(live))
    return drift_report(profile or ref.profile, features)


def resample(
    ref: Reference, rng: np.random.Generator, weights: np.ndarray | None = None
) -> pd.DataFrame:
    n = len(ref.frame)
    p = None if weights is None else weights / weights.sum()
    return ref.frame.iloc[rng.choice(n, n, replace=True, p=p)].reset_index(drop=True)


def false_alarms(
    ref: Reference,
    seed: int,
    rounding: type[np.floating[Any]] | None,
    profile: dict[str, Any] | None = None,
) -> tuple[float, float, dict[str, int]]:
    """Over ``RESAMPLES`` bootstrap resamples: the share of feature checks whose test rejects,
    the share flagged as drifting, and per feature how many resamples rejected."""
    rng = np.random.default_rng(seed)
    rejected: dict[str, int] = dict.fromkeys(ref.frame.columns, 0)
    checks = flagged = 0
    for _ in range(RESAMPLES):
        live = resample(ref, rng)
        if rounding is not None:  # the values as a float32 transport delivers them
            live = live.astype(rounding).astype(np.float64)
        report = report_for(ref, live, profile)
        assert report.enough_data
        assert len(report.features) == ref.frame.shape[1]
        for f in report.features:
            rejected[f.feature] += f.p_value < ALPHA
        checks += len(report.features)
        flagged += len(report.drifted)
    return sum(rejected.values()) / checks, flagged / checks, rejected


@pytest.mark.parametrize("rounding", [None, np.float32], ids=["exact", "float32"])
def test_bootstrap_resamples_are_not_drift(
    reference: Reference, rounding: type[np.floating[Any]] | None
) -> None:
    rejected, flagged, per_feature = false_alarms(reference, 11, rounding)
    assert rejected < MAX_FALSE_ALARMS, per_feature
    assert flagged < MAX_FALSE_ALARMS, per_feature
    # and no single feature is a repeat offender (the old KS rejected ``s4`` in half of them)
    assert max(per_feature.values()) <= 3, per_feature


def distinct_counts(ref: Reference) -> pd.Series:
    return ref.frame.nunique()


def test_a_shifted_feature_is_flagged_and_nearly_only_it(reference: Reference) -> None:
    distinct = distinct_counts(reference)
    name = str(distinct.idxmax())  # digits has none past MAX_DISCRETE: chi-squared there
    expected_test = "ks" if distinct[name] > MAX_DISCRETE else "chi2"
    rng = np.random.default_rng(21)
    others = 0
    for _ in range(5):
        live = resample(reference, rng)
        live[name] += reference.frame[name].std()
        report = report_for(reference, live)
        assert name in report.drifted
        found = next(f for f in report.features if f.feature == name)
        assert found.test == expected_test
        others += len(report.drifted) - 1
    assert others <= 1


@pytest.mark.parametrize("reference", ["diabetes", "digits"], indirect=True)
def test_a_discrete_feature_whose_frequencies_change_is_flagged(reference: Reference) -> None:
    distinct = distinct_counts(reference)
    discrete = distinct[(distinct >= 2) & (distinct <= MAX_DISCRETE)]
    # the one whose most common value is least dominant: a pixel that is 0 in 99.9 % of the
    # images cannot lose much of its mode's share
    shares = {c: reference.frame[c].value_counts(normalize=True).iloc[0] for c in discrete.index}
    name = str(min(shares, key=lambda c: shares[c]))
    column = reference.frame[name].to_numpy()
    mode = pd.Series(column).mode().iloc[0]
    rng = np.random.default_rng(22)
    others = 0
    for _ in range(5):
        # rows holding the most common value drawn a third as often: its share drops
        live = resample(reference, rng, np.where(column == mode, 1 / 3, 1.0))
        report = report_for(reference, live)
        assert name in report.drifted, [(f.feature, f.p_value, f.psi) for f in report.features]
        found = next(f for f in report.features if f.feature == name)
        assert found.test == "chi2"
        others += len(report.drifted) - 1
    assert others <= 1


def test_a_two_valued_feature_is_tested_on_its_counts() -> None:
    frame = datasets.load_diabetes(as_frame=True).frame[["sex", "bmi"]]
    ref = reference_for(frame)
    sex = ref.profile["features"]["sex"]
    assert sex["discrete"] is True
    live = resample(ref, np.random.default_rng(3)).astype(np.float32).astype(np.float64)
    found = next(f for f in report_for(ref, live).features if f.feature == "sex")
    assert found.test == "chi2"
    assert len(found.bins) == 3  # the two values and ``other``
    assert found.live[-1] == 0.0  # float32 rounding did not make the values unseen
    assert found.p_value > ALPHA
    assert found.psi < 0.01
    # an unseen value is drift
    live.loc[: len(live) // 3, "sex"] = 0.5
    assert "sex" in report_for(ref, live).drifted


def test_bin_edges_lie_between_distinct_values_and_survive_json(reference: Reference) -> None:
    for name, feature in reference.profile["features"].items():
        values = np.unique(reference.frame[name].to_numpy())
        edges = np.asarray(feature["bin_edges"])
        assert not np.isin(edges, values).any(), name
        assert np.all((edges > values.min()) & (edges < values.max())), name
        # full precision: the profile reads back exactly as it was built
        assert json_round_trip(feature) == feature
        # float32 rounding moves no row across an edge: same bins, PSI zero
        rounded = values.astype(np.float32).astype(np.float64)
        assert np.array_equal(
            np.searchsorted(edges, values, side="left"),
            np.searchsorted(edges, rounded, side="left"),
        ), name


def test_ks_on_tied_data_agrees_with_scipy() -> None:
    frame = datasets.load_diabetes(as_frame=True).frame
    rng = np.random.default_rng(5)
    for name in ("s4", "s3", "age", "bmi"):  # 66 distinct values in 442 rows, and three more
        column = frame[name].to_numpy()
        assert 20 < np.unique(column).size < 200
        reference = reference_for(frame[[name]]).profile["features"][name]
        for _ in range(5):
            live = rng.choice(column, 300)
            found = feature_drift(name, reference, live)
            expected = stats.ks_2samp(column, live, method="asymp")
            assert found.test == "ks"
            assert found.statistic == pytest.approx(expected.statistic, abs=1e-12)
            assert found.p_value == pytest.approx(expected.pvalue, rel=1e-6)


def tied_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    zero_inflated = np.where(rng.random(n) < 0.3, 0.0, rng.lognormal(3, 1, n))
    return pd.DataFrame(
        {
            "binary": (rng.random(n) < 0.2).astype(np.float64),
            "counts": rng.poisson(4, n).astype(np.float64),
            "one_decimal": np.round(rng.normal(5, 1, n), 1),
            "zero_inflated": zero_inflated,
            "integers": rng.integers(0, 60, n).astype(np.float64),
        }
    )


def test_independent_samples_with_ties_reject_at_about_alpha() -> None:
    """Reference and live drawn independently from the same tied distributions: each test on
    its own rejects at about alpha (a conservative test may reject less, never much more)."""
    rng = np.random.default_rng(8)
    rejected = checks = 0
    for _ in range(120):
        ref = reference_for(tied_frame(rng, 1500))
        report = report_for(ref, tied_frame(rng, 500))
        rejected += sum(f.p_value < ALPHA for f in report.features)
        checks += len(report.features)
    assert checks == 600
    assert rejected / checks < 0.025, rejected


def test_tied_features_still_see_a_shift() -> None:
    rng = np.random.default_rng(9)
    ref = reference_for(tied_frame(rng, 1500))
    live = tied_frame(rng, 500)
    live["counts"] += 1.0
    live["one_decimal"] += 0.5
    live["zero_inflated"] = np.where(live["zero_inflated"] > 0, live["zero_inflated"] * 2, 0.0)
    report = report_for(ref, live)
    assert sorted(report.drifted) == ["counts", "one_decimal", "zero_inflated"]
    tests = {f.feature: f.test for f in report.features}
    assert tests["counts"] == tests["binary"] == "chi2"
    assert tests["one_decimal"] == tests["zero_inflated"] == "ks"


def test_integer_predictions_are_compared_as_labels() -> None:
    rng = np.random.default_rng(10)
    base = rng.choice(3, 2000, p=[0.6, 0.3, 0.1])
    same = prediction_drift(base, rng.choice(3, 1000, p=[0.6, 0.3, 0.1]))
    moved = prediction_drift(base, rng.choice(3, 1000, p=[0.4, 0.3, 0.3]))
    assert same.test == moved.test == "chi2"
    assert not same.drifted
    assert moved.drifted


# --- profiles written by the first format (version 1) -------------------------------------


def version_1_feature(values: np.ndarray) -> dict[str, Any]:
    """A numeric feature exactly as the first profile format wrote it: decile edges on data
    values, 101 quantiles, no table of values."""
    finite = values[np.isfinite(values)].astype(np.float64)
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, 11)))[1:-1]
    counts = np.bincount(np.searchsorted(edges, finite, side="left"), minlength=edges.size + 1)
    return {
        "type": "numeric",
        "count": int(finite.size),
        "missing": int(values.size - finite.size),
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "quantiles": np.quantile(finite, np.linspace(0, 1, 101)).tolist(),
        "bin_edges": edges.tolist(),
        "bin_counts": counts.tolist(),
    }


def version_1_profile(frame: pd.DataFrame) -> dict[str, Any]:
    features = {str(c): version_1_feature(frame[c].to_numpy()) for c in frame.columns}
    return json_round_trip({"version": 1, "rows": len(frame), "features": features})


@pytest.mark.parametrize("rounding", [None, np.float32], ids=["exact", "float32"])
def test_a_version_1_profile_still_gives_a_sound_report(
    reference: Reference, rounding: type[np.floating[Any]] | None
) -> None:
    old = version_1_profile(reference.frame)
    rejected, flagged, per_feature = false_alarms(reference, 12, rounding, old)
    assert rejected < MAX_FALSE_ALARMS, per_feature
    assert flagged < MAX_FALSE_ALARMS, per_feature
    name = str(distinct_counts(reference).idxmax())
    live = resample(reference, np.random.default_rng(13))
    live[name] += reference.frame[name].std()
    report = report_for(reference, live, old)
    assert name in report.drifted
    assert len(report.drifted) <= 2


def test_a_version_1_profile_with_categories_loads() -> None:
    rng = np.random.default_rng(14)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=400),
            "plan": rng.choice(["a", "b"], 400),
            "k": rng.integers(0, 3, 400),
        }
    )
    signature = infer_signature(frame)
    old = {
        "version": 1,
        "rows": 400,
        "features": {
            "x": version_1_feature(frame["x"].to_numpy()),
            "k": version_1_feature(frame["k"].to_numpy()),
            "plan": {
                "type": "categorical",
                "count": 400,
                "missing": 0,
                "frequencies": frame["plan"].value_counts().to_dict(),
                "other": 0,
            },
        },
    }
    report = drift_report(json_round_trip(old), live_features(signature, signature.coerce(frame)))
    assert report.enough_data
    assert {f.feature for f in report.features} == {"x", "k", "plan"}
    assert report.drifted == []
