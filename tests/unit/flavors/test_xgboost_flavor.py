"""The xgboost flavor: native JSON/UBJ files, classifiers keep their probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError
from modelport.flavors import xgboost as flavor

from ._helpers import canonical, round_trip


@pytest.fixture
def classifier(arrays: dict[str, np.ndarray]) -> xgb.XGBClassifier:
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1)
    return model.fit(arrays["x_train"], arrays["y_multi"])


@pytest.fixture
def regressor(arrays: dict[str, np.ndarray]) -> xgb.XGBRegressor:
    frame = pd.DataFrame(arrays["x_train"], columns=["a", "b", "c", "d"])
    return xgb.XGBRegressor(n_estimators=5, max_depth=2, n_jobs=1).fit(frame, arrays["y_reg"])


@pytest.mark.parametrize("fmt", ["json", "ubj"])
def test_classifier_round_trip(
    fmt: str, classifier: xgb.XGBClassifier, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    signature = flavor.infer_signature(classifier)
    assert signature == Signature("tensors", (TensorSpec("input", "float32", (-1, 4)),))
    predictor = round_trip(flavor, classifier, tmp_path, {"format": fmt}, signature)
    assert (tmp_path / "flavor-0" / f"model.{fmt}").is_file()
    out = predictor.predict(canonical(signature, arrays["x_test"]))
    assert list(out) == ["predictions", "probabilities"]
    np.testing.assert_array_equal(out["predictions"], classifier.predict(arrays["x_test"]))
    np.testing.assert_allclose(out["probabilities"], classifier.predict_proba(arrays["x_test"]))
    assert out["probabilities"].shape == (len(arrays["x_test"]), 3)


def test_saved_options_record_kind_and_classes(
    classifier: xgb.XGBClassifier, tmp_path: Path
) -> None:
    saved = flavor.save(classifier, tmp_path, {})
    assert saved.options == {
        "file": "model.json",
        "format": "json",
        "kind": "classifier",
        "classes": [0, 1, 2],
    }
    assert saved.requirements == [f"xgboost=={xgb.__version__}"]


def test_regressor_on_dataframe_uses_columns(
    regressor: xgb.XGBRegressor, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    signature = flavor.infer_signature(regressor)
    assert signature is not None
    assert signature.kind == "columns"
    assert signature.input_names == ["a", "b", "c", "d"]
    test = pd.DataFrame(arrays["x_test"], columns=["a", "b", "c", "d"])
    out = round_trip(flavor, regressor, tmp_path, {}, signature).predict(canonical(signature, test))
    assert list(out) == ["predictions"]
    np.testing.assert_allclose(out["predictions"], regressor.predict(test), rtol=1e-6)


def test_booster_round_trip(
    classifier: xgb.XGBClassifier, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    booster = classifier.get_booster()
    signature = flavor.infer_signature(booster)
    assert signature is not None
    predictor = round_trip(flavor, booster, tmp_path, {}, signature)
    out = predictor.predict(canonical(signature, arrays["x_test"]))
    expected = booster.inplace_predict(arrays["x_test"].astype(np.float32))
    np.testing.assert_allclose(out["predictions"], expected)


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_read_file_round_trip(
    suffix: str, classifier: xgb.XGBClassifier, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    assert suffix in flavor.FILE_SUFFIXES
    classifier.save_model(tmp_path / f"user{suffix}")
    model = flavor.read_file(tmp_path / f"user{suffix}")
    assert isinstance(model, xgb.XGBClassifier)  # the file says it was a classifier
    signature = flavor.infer_signature(model)
    assert signature is not None
    out = round_trip(flavor, model, tmp_path, {}, signature).predict({"input": arrays["x_test"]})
    np.testing.assert_array_equal(out["predictions"], classifier.predict(arrays["x_test"]))


def test_read_file_of_a_plain_booster(arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    data = xgb.DMatrix(arrays["x_train"], label=arrays["y_reg"])
    booster = xgb.train({"max_depth": 2, "nthread": 1}, data, num_boost_round=3)
    booster.save_model(tmp_path / "plain.json")
    assert isinstance(flavor.read_file(tmp_path / "plain.json"), xgb.Booster)


def test_read_file_of_garbage_is_a_flavor_error(tmp_path: Path) -> None:
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(FlavorError, match=r"cannot read xgboost model 'junk\.json'"):
        flavor.read_file(tmp_path / "junk.json")


def test_handles(classifier: xgb.XGBClassifier) -> None:
    assert flavor.handles(classifier)
    assert flavor.handles(classifier.get_booster())
    assert not flavor.handles(np.zeros(2))


def test_unknown_format_is_refused(classifier: xgb.XGBClassifier, tmp_path: Path) -> None:
    with pytest.raises(FlavorError, match="unknown xgboost format 'pickle'"):
        flavor.save(classifier, tmp_path, {"format": "pickle"})


def test_infer_signature_is_none_before_fitting() -> None:
    assert flavor.infer_signature(xgb.XGBRegressor()) is None


def _categorical_frame(n: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "spend": rng.normal(size=n),
            "plan": pd.Categorical(rng.choice(["basic", "pro", "max"], n)),
            "tier": pd.Categorical(rng.choice([1, 2, 3], n)),
        }
    )
    y = ((frame["spend"] > 0) ^ (frame["plan"] == "pro")).to_numpy().astype(np.int64)
    return frame, y


@pytest.mark.parametrize("kind", ["classifier", "booster"])
def test_category_columns_are_served_from_their_values(kind: str, tmp_path: Path) -> None:
    """``enable_categorical=True`` on pandas ``category`` columns: the signature records the
    categories (from the model alone, no example), and plain values predict as the
    categorical frame does, whatever order of categories a client's frame has."""
    frame, y = _categorical_frame()
    model = xgb.XGBClassifier(n_estimators=8, enable_categorical=True, n_jobs=1).fit(frame, y)
    fitted: object = model if kind == "classifier" else model.get_booster()
    signature = flavor.infer_signature(fitted)
    assert signature is not None
    assert signature.inputs == (
        TensorSpec("spend", "float32"),
        TensorSpec("plan", "str", (-1,), ("basic", "max", "pro")),
        TensorSpec("tier", "int64", (-1,), (1, 2, 3)),
    )
    predictor = round_trip(flavor, fitted, tmp_path, {}, signature)
    plain = frame.astype({"plan": str, "tier": np.int64}).to_dict("records")
    out = predictor.predict(canonical(signature, plain))
    want = model.predict_proba(frame)[:, 1] if kind == "booster" else model.predict_proba(frame)
    got = out["predictions"] if kind == "booster" else out["probabilities"]
    np.testing.assert_allclose(got, want, rtol=1e-6)
