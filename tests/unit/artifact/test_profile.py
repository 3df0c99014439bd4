"""Reference profiles: bins and frequencies that reproduce the data they summarize."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelport.artifact.profile import MAX_CATEGORIES, N_QUANTILES, build_profile
from modelport.artifact.signature import infer_signature


def test_numeric_and_categorical_features() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(10, 2, 1000), "plan": rng.choice(["a", "b", "c"], 1000, p=[0.5, 0.3, 0.2])}
    )
    sig = infer_signature(frame)
    profile = build_profile(sig, sig.coerce(frame))
    x = profile["features"]["x"]
    assert profile["rows"] == 1000
    assert x["type"] == "numeric"
    assert sum(x["bin_counts"]) == 1000
    assert len(x["bin_counts"]) == len(x["bin_edges"]) + 1
    assert len(x["quantiles"]) == N_QUANTILES
    assert abs(x["mean"] - frame["x"].mean()) < 1e-9
    # deciles: every bin holds about a tenth of the data
    assert max(x["bin_counts"]) <= 101
    plan = profile["features"]["plan"]
    assert plan["type"] == "categorical"
    assert plan["frequencies"] == frame["plan"].value_counts().to_dict()
    assert plan["other"] == 0


def test_tensor_columns_are_features_and_missing_is_counted() -> None:
    arr = np.arange(20, dtype=np.float64).reshape(10, 2)
    arr[0, 1] = np.nan
    sig = infer_signature(arr)
    profile = build_profile(sig, sig.coerce(arr))
    assert set(profile["features"]) == {"input[0]", "input[1]"}
    assert profile["features"]["input[1]"]["missing"] == 1
    assert profile["features"]["input[1]"]["count"] == 9


def test_many_categories_are_capped() -> None:
    values = [f"v{i}" for i in range(MAX_CATEGORIES + 50)]
    frame = pd.DataFrame({"c": values})
    sig = infer_signature(frame)
    c = build_profile(sig, sig.coerce(frame))["features"]["c"]
    assert len(c["frequencies"]) == MAX_CATEGORIES
    assert c["other"] == 50


def test_constant_feature_has_one_bin() -> None:
    arr = np.ones((50, 1))
    sig = infer_signature(arr)
    f = build_profile(sig, sig.coerce(arr))["features"]["input[0]"]
    assert f["bin_counts"] == [50]
    assert f["std"] == 0.0
