"""The lightgbm flavor: native text files; labels come from the recorded classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError
from modelport.flavors import lightgbm as flavor

from ._helpers import canonical, round_trip

PARAMS: dict[str, Any] = {
    "n_estimators": 5,
    "num_leaves": 4,
    "min_child_samples": 5,
    "verbose": -1,
    "n_jobs": 1,
}


@pytest.fixture
def binary(arrays: dict[str, np.ndarray]) -> lgb.LGBMClassifier:
    return lgb.LGBMClassifier(**PARAMS).fit(arrays["x_train"], arrays["y_binary"])


@pytest.fixture
def string_labels(table: dict[str, Any]) -> lgb.LGBMClassifier:
    """Three string classes, fitted on a numeric DataFrame so feature names are real."""
    frame = table["train"][["age", "income"]]
    y = np.where(frame["age"] > 45, "old", np.where(frame["age"] < 35, "young", "mid"))
    return lgb.LGBMClassifier(**PARAMS).fit(frame, y)


def test_binary_classifier_round_trip(
    binary: lgb.LGBMClassifier, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    signature = flavor.infer_signature(binary)
    assert signature == Signature("tensors", (TensorSpec("input", "float64", (-1, 4)),))
    out = round_trip(flavor, binary, tmp_path, {}, signature).predict({"input": arrays["x_test"]})
    assert list(out) == ["predictions", "probabilities"]
    np.testing.assert_array_equal(out["predictions"], binary.predict(arrays["x_test"]))
    np.testing.assert_allclose(out["probabilities"], binary.predict_proba(arrays["x_test"]))


def test_multiclass_with_string_labels_and_columns(
    string_labels: lgb.LGBMClassifier, table: dict[str, Any], tmp_path: Path
) -> None:
    signature = flavor.infer_signature(string_labels)
    assert signature == Signature(
        "columns", (TensorSpec("age", "float64"), TensorSpec("income", "float64"))
    )
    test = table["test"][["age", "income"]]
    predictor = round_trip(flavor, string_labels, tmp_path, {}, signature)
    out = predictor.predict(canonical(signature, test))
    assert out["predictions"].dtype == object
    np.testing.assert_array_equal(out["predictions"], string_labels.predict(test))
    np.testing.assert_allclose(out["probabilities"], string_labels.predict_proba(test))


def test_saved_options(string_labels: lgb.LGBMClassifier, tmp_path: Path) -> None:
    saved = flavor.save(string_labels, tmp_path, {})
    assert saved.options == {
        "file": "model.txt",
        "kind": "classifier",
        "classes": ["mid", "old", "young"],
    }
    assert saved.requirements == [f"lightgbm=={lgb.__version__}"]


def test_regressor_round_trip(arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    model = lgb.LGBMRegressor(**PARAMS).fit(arrays["x_train"], arrays["y_reg"])
    signature = flavor.infer_signature(model)
    assert signature is not None
    out = round_trip(flavor, model, tmp_path, {}, signature).predict({"input": arrays["x_test"]})
    assert list(out) == ["predictions"]
    np.testing.assert_allclose(out["predictions"], model.predict(arrays["x_test"]))


def test_read_file_round_trip(
    binary: lgb.LGBMClassifier, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    assert flavor.FILE_SUFFIXES == (".txt",)
    binary.booster_.save_model(tmp_path / "user.txt")
    booster = flavor.read_file(tmp_path / "user.txt")
    assert isinstance(booster, lgb.Booster)
    signature = flavor.infer_signature(booster)
    assert signature is not None
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    saved = flavor.save(booster, out_dir, {})
    assert saved.options["kind"] == "classifier"  # from the booster's binary objective
    out = flavor.load(out_dir, saved.options, signature).predict({"input": arrays["x_test"]})
    np.testing.assert_array_equal(out["predictions"], binary.predict(arrays["x_test"]))
    np.testing.assert_allclose(out["probabilities"], binary.predict_proba(arrays["x_test"]))


def test_plain_regression_booster_predicts_raw_values(
    arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    data = lgb.Dataset(arrays["x_train"], label=arrays["y_reg"])
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 4}, data, 3)
    signature = flavor.infer_signature(booster)
    assert signature is not None
    out = round_trip(flavor, booster, tmp_path, {}, signature).predict({"input": arrays["x_test"]})
    np.testing.assert_allclose(out["predictions"], booster.predict(arrays["x_test"]))


def test_read_file_of_garbage_is_a_flavor_error(tmp_path: Path) -> None:
    (tmp_path / "junk.txt").write_text("hello")
    with pytest.raises(FlavorError, match=r"cannot read LightGBM model 'junk\.txt'"):
        flavor.read_file(tmp_path / "junk.txt")


def test_handles_and_unfitted(binary: lgb.LGBMClassifier) -> None:
    assert flavor.handles(binary)
    assert flavor.handles(binary.booster_)
    assert not flavor.handles(pd.DataFrame())
    assert flavor.infer_signature(lgb.LGBMClassifier()) is None


def test_category_columns_are_served_from_their_values(tmp_path: Path) -> None:
    """pandas ``category`` columns: the booster's ``pandas_categorical`` gives the signature
    its categories, and plain values predict as the categorical frame does."""
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "tier": pd.Categorical(rng.choice([1, 2, 3], 300)),
            "spend": rng.normal(size=300),
            "plan": pd.Categorical(rng.choice(["basic", "pro", "max"], 300)),
        }
    )
    y = ((frame["spend"] > 0) ^ (frame["plan"] == "pro")).to_numpy().astype(np.int64)
    model = lgb.LGBMClassifier(n_estimators=8, verbose=-1).fit(frame, y)
    expected = (
        TensorSpec("tier", "int64", (-1,), (1, 2, 3)),
        TensorSpec("spend", "float64"),
        TensorSpec("plan", "str", (-1,), ("basic", "max", "pro")),
    )
    read = flavor.infer_signature(lgb.Booster(model_str=model.booster_.model_to_string()))
    assert read is not None
    assert read.inputs == expected
    signature = flavor.infer_signature(model)
    assert signature is not None
    assert signature.inputs == expected
    predictor = round_trip(flavor, model, tmp_path, {}, signature)
    plain = frame.astype({"plan": str, "tier": np.int64}).to_dict("records")
    out = predictor.predict(canonical(signature, plain))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(frame))


def test_categories_it_cannot_place_need_an_example(tmp_path: Path) -> None:
    """Category columns beside int columns declared categorical: which is which is not in
    the model, so it says nothing rather than guess."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"plan": pd.Categorical(rng.choice(["a", "b"], 200)), "k": rng.integers(0, 4, 200)}
    )
    y = (frame["k"] > 1).to_numpy().astype(np.int64)
    model = lgb.LGBMClassifier(n_estimators=4, verbose=-1)
    model.fit(frame, y, categorical_feature=["plan", "k"])
    assert flavor.infer_signature(model) is None
