"""Drift: a shifted feature is flagged and only it; unshifted data flags at most alpha."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelport.artifact.profile import build_profile
from modelport.artifact.signature import Signature, infer_signature
from modelport.monitoring.drift import (
    DriftReport,
    DriftThresholds,
    drift_report,
    live_features,
    prediction_drift,
)

Reference = tuple[Signature, dict[str, Any]]
PLANS = np.array(["basic", "pro", "team", "enterprise"], dtype=object)
PLAN_P = [0.5, 0.3, 0.15, 0.05]


def frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "seats": rng.integers(1, 20, n).astype(np.int64),
            "plan": rng.choice(PLANS, n, p=PLAN_P),
        }
    )


@pytest.fixture(scope="module")
def reference() -> Reference:
    data = frame(np.random.default_rng(0), 5000)
    signature = infer_signature(data)
    return signature, build_profile(signature, signature.coerce(data))


def report_for(reference: Reference, data: pd.DataFrame) -> DriftReport:
    signature, profile = reference
    live = live_features(signature, signature.coerce(data))
    return drift_report(profile, live)


def test_one_shifted_numeric_feature_is_flagged_and_only_it(reference: Reference) -> None:
    data = frame(np.random.default_rng(1), 1000)
    data["age"] += 5  # half a standard deviation
    report = report_for(reference, data)
    assert report.enough_data
    assert report.drifted == ["age"]
    assert report.features[0].feature == "age"  # drifting first
    age = report.features[0]
    assert age.test == "ks"
    assert age.p_value < 1e-6
    assert len(age.bins) == len(age.reference) == len(age.live)


def test_one_shifted_categorical_feature_is_flagged_and_only_it(reference: Reference) -> None:
    rng = np.random.default_rng(2)
    data = frame(rng, 1000)
    data["plan"] = rng.choice(PLANS, 1000, p=[0.3, 0.3, 0.25, 0.15])
    report = report_for(reference, data)
    assert report.drifted == ["plan"]
    assert report.features[0].test == "chi2"


def test_an_unseen_category_is_drift(reference: Reference) -> None:
    rng = np.random.default_rng(3)
    data = frame(rng, 1000)
    data.loc[: len(data) // 3, "plan"] = "trial"
    assert report_for(reference, data).drifted == ["plan"]


def test_unshifted_data_flags_at_most_the_documented_rate(reference: Reference) -> None:
    flagged = checked = 0
    for seed in range(100, 150):
        report = report_for(reference, frame(np.random.default_rng(seed), 1000))
        flagged += len(report.drifted)
        checked += len(report.features)
    assert checked == 50 * 4
    # alpha is 0.01 per feature; 200 checks allow a handful at the most
    assert flagged / checked <= 0.02, flagged


def test_too_few_rows_give_no_verdict(reference: Reference) -> None:
    data = frame(np.random.default_rng(4), 50)
    data["age"] += 50
    report = report_for(reference, data)
    assert not report.enough_data
    assert report.drifted == []
    assert report.features == []


def test_tensor_features_are_named_by_position() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 3)).astype(np.float32)
    signature = infer_signature(x)
    profile = build_profile(signature, signature.coerce(x))
    live = rng.normal(size=(800, 3)).astype(np.float32)
    live[:, 2] *= 3  # wider, same mean
    report = drift_report(profile, live_features(signature, signature.coerce(live)))
    assert report.drifted == ["input[2]"]


def test_prediction_drift_on_probabilities_and_labels() -> None:
    rng = np.random.default_rng(6)
    base = rng.beta(2, 5, 2000)
    same = prediction_drift(base, rng.beta(2, 5, 1000))
    moved = prediction_drift(base, rng.beta(3, 3, 1000))
    assert not same.drifted
    assert moved.drifted
    labels = rng.choice(np.array(["no", "yes"], dtype=object), 2000, p=[0.8, 0.2])
    assert not prediction_drift(labels, rng.choice(labels, 1000)).drifted
    flipped = rng.choice(np.array(["no", "yes"], dtype=object), 1000, p=[0.5, 0.5])
    assert prediction_drift(labels, flipped).drifted


def test_thresholds_are_configurable(reference: Reference) -> None:
    signature, profile = reference
    data = frame(np.random.default_rng(7), 1000)
    data["age"] += 5
    live = live_features(signature, signature.coerce(data))
    assert drift_report(profile, live, DriftThresholds(psi=10.0)).drifted == []
    assert not drift_report(profile, live, DriftThresholds(min_samples=5000)).enough_data
