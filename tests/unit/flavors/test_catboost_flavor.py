"""The catboost flavor: native ``.cbm`` files; classifiers keep labels and probabilities,
categorical features are served from their values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import catboost as cb
import numpy as np
import pandas as pd
import pytest

import modelport
from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError, SignatureError
from modelport.flavors import catboost as flavor

from ._helpers import canonical, round_trip

# allow_writing_files=False: no catboost_info folder of training logs in the working directory.
PARAMS: dict[str, Any] = {
    "iterations": 10,
    "depth": 3,
    "thread_count": 1,
    "verbose": False,
    "allow_writing_files": False,
}


@pytest.fixture
def classifier(arrays: dict[str, np.ndarray]) -> cb.CatBoostClassifier:
    """Three classes on a bare array: CatBoost predicts their labels as an [N, 1] column."""
    return cb.CatBoostClassifier(**PARAMS).fit(arrays["x_train"], arrays["y_multi"])


def _plans(n: int = 64, seed: int = 5) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "spend": rng.normal(size=n),
            "plan": rng.choice(["basic", "pro", "max"], n),
            "calls": rng.integers(0, 5, n).astype(np.float64),
        }
    )
    y = frame["spend"] * 2 + (frame["plan"] == "pro") * 3.0
    return frame, y.to_numpy()


@pytest.fixture
def regressor() -> cb.CatBoostRegressor:
    frame, y = _plans()
    return cb.CatBoostRegressor(**PARAMS).fit(frame, y, cat_features=["plan"])


def test_classifier_round_trip(
    classifier: cb.CatBoostClassifier, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    signature = flavor.infer_signature(classifier)
    assert signature == Signature("tensors", (TensorSpec("input", "float64", (-1, 4)),))
    predictor = round_trip(flavor, classifier, tmp_path, {}, signature)
    assert (tmp_path / "flavor-0" / "model.cbm").is_file()
    assert predictor.model.classes_.tolist() == [0, 1, 2]  # type: ignore[attr-defined]
    out = predictor.predict(canonical(signature, arrays["x_test"]))
    assert list(out) == ["predictions", "probabilities"]
    assert out["predictions"].shape == (len(arrays["x_test"]),)  # labels, not a column
    np.testing.assert_array_equal(out["predictions"], classifier.predict(arrays["x_test"])[:, 0])
    np.testing.assert_allclose(out["probabilities"], classifier.predict_proba(arrays["x_test"]))


def test_saved_options_record_kind_and_classes(
    classifier: cb.CatBoostClassifier, tmp_path: Path
) -> None:
    saved = flavor.save(classifier, tmp_path, {})
    assert saved.options == {"file": "model.cbm", "kind": "classifier", "classes": [0, 1, 2]}
    assert saved.requirements == [f"catboost=={cb.__version__}"]


def test_string_labels_come_back_as_strings(arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    y = np.where(arrays["y_binary"] == 1, "churn", "stay")
    model = cb.CatBoostClassifier(**PARAMS).fit(arrays["x_train"], y)
    signature = flavor.infer_signature(model)
    assert signature is not None
    out = round_trip(flavor, model, tmp_path, {}, signature).predict({"input": arrays["x_test"]})
    assert out["predictions"].dtype == object
    assert out["predictions"].tolist() == model.predict(arrays["x_test"]).tolist()
    assert set(out["predictions"]) <= {"churn", "stay"}


def test_categorical_columns_from_the_model_alone(
    regressor: cb.CatBoostRegressor, tmp_path: Path
) -> None:
    """No example: the cat feature is a ``str`` column, the others float64, in model order;
    plain records (in any key order) predict as the training frame does."""
    signature = flavor.infer_signature(regressor)
    assert signature == Signature(
        "columns",
        (TensorSpec("spend", "float64"), TensorSpec("plan", "str"), TensorSpec("calls", "float64")),
    )
    frame, _ = _plans(10, seed=9)
    records = [
        {"plan": r["plan"], "calls": r["calls"], "spend": r["spend"]} for _, r in frame.iterrows()
    ]
    out = round_trip(flavor, regressor, tmp_path, {}, signature).predict(
        canonical(signature, records)
    )
    assert list(out) == ["predictions"]
    np.testing.assert_allclose(out["predictions"], regressor.predict(frame))


def test_example_columns_in_another_order_are_put_in_the_models_order(
    regressor: cb.CatBoostRegressor, tmp_path: Path
) -> None:
    """CatBoost reads a table by position: an example with its columns in another order
    (the signature's order) must still reach the model in training order."""
    frame, _ = _plans(10, seed=9)
    shuffled = frame[["plan", "calls", "spend"]]
    manifest = modelport.save(regressor, tmp_path / "m", input_example=shuffled)
    assert manifest.signature.input_names == ["plan", "calls", "spend"]
    got = modelport.load(tmp_path / "m").predict(shuffled)
    np.testing.assert_allclose(got, regressor.predict(frame))


def test_pandas_category_example_records_the_categories(
    regressor: cb.CatBoostRegressor, tmp_path: Path
) -> None:
    frame, _ = _plans(10, seed=9)
    categorical = frame.astype({"plan": "category"})
    manifest = modelport.save(regressor, tmp_path / "m", input_example=categorical)
    assert manifest.signature.inputs[1] == TensorSpec("plan", "str", (-1,), ("basic", "max", "pro"))
    got = modelport.load(tmp_path / "m").predict(frame.to_dict("records"))
    np.testing.assert_allclose(got, regressor.predict(frame))


def test_plain_catboost_round_trip(arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    model = cb.CatBoost({**PARAMS, "loss_function": "RMSE"})
    model.fit(arrays["x_train"], arrays["y_reg"])
    signature = flavor.infer_signature(model)
    assert signature is not None
    saved = flavor.save(model, tmp_path, {})
    assert saved.options["kind"] == "booster"
    out = round_trip(flavor, model, tmp_path, {}, signature).predict({"input": arrays["x_test"]})
    np.testing.assert_allclose(out["predictions"], model.predict(arrays["x_test"]))


@pytest.mark.parametrize(
    ("loss", "kind"),
    [("Logloss", cb.CatBoostClassifier), ("RMSE", cb.CatBoostRegressor), ("YetiRank", cb.CatBoost)],
)
def test_read_file_restores_the_kind_from_the_loss(
    loss: str, kind: type, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    model = cb.CatBoost({**PARAMS, "loss_function": loss})
    y = arrays["y_binary"] if loss != "RMSE" else arrays["y_reg"]
    group = np.repeat(np.arange(6), 10) if loss == "YetiRank" else None
    model.fit(cb.Pool(arrays["x_train"], y, group_id=group))
    model.save_model(str(tmp_path / "user.cbm"))
    read = flavor.read_file(tmp_path / "user.cbm")
    assert type(read) is kind
    signature = flavor.infer_signature(read)
    assert signature is not None
    out = round_trip(flavor, read, tmp_path, {}, signature).predict({"input": arrays["x_test"]})
    if loss == "Logloss":
        assert out["probabilities"].shape == (len(arrays["x_test"]), 2)
        np.testing.assert_allclose(
            out["probabilities"], model.predict(arrays["x_test"], prediction_type="Probability")
        )
    else:
        np.testing.assert_allclose(out["predictions"], model.predict(arrays["x_test"]))


def test_read_file_of_garbage_is_a_flavor_error(tmp_path: Path) -> None:
    (tmp_path / "junk.cbm").write_bytes(b"not a model")
    with pytest.raises(FlavorError, match=r"cannot read CatBoost model 'junk\.cbm'"):
        flavor.read_file(tmp_path / "junk.cbm")


def test_wrong_shape_and_dtype_get_the_signatures_message(
    classifier: cb.CatBoostClassifier, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    modelport.save(classifier, tmp_path / "m")  # no example: the model's own signature
    loaded = modelport.load(tmp_path / "m")
    with pytest.raises(
        SignatureError, match=r"input 'input': expected shape \[-1, 4\], got \[2, 3\]"
    ):
        loaded.predict(arrays["x_test"][:2, :3])
    with pytest.raises(SignatureError, match="input 'input': expected float64, got str"):
        loaded.predict([["a", "b", "c", "d"]])


def test_unfitted_and_foreign_models(classifier: cb.CatBoostClassifier, tmp_path: Path) -> None:
    assert flavor.handles(classifier)
    assert not flavor.handles(np.zeros(2))
    assert flavor.infer_signature(cb.CatBoostRegressor()) is None
    with pytest.raises(FlavorError, match="the CatBoost model is not fitted"):
        flavor.save(cb.CatBoostRegressor(), tmp_path, {})
