"""The sklearn flavor: skops by default, joblib/pickle on request, same predictions after load."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError, UnsafeArtifact
from modelport.flavors import sklearn as flavor

from ._helpers import canonical, round_trip


@pytest.fixture
def pipeline(table: dict[str, Any]) -> Pipeline:
    """Scaling plus one-hot encoding of a string column, fitted on a DataFrame."""
    encode = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    model = Pipeline([("encode", encode), ("clf", LogisticRegression())])
    return model.fit(table["train"], table["y"])


@pytest.fixture
def forest(arrays: dict[str, np.ndarray]) -> RandomForestClassifier:
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)
    return model.fit(arrays["x_train"], arrays["y_multi"])


def double(x: np.ndarray) -> np.ndarray:
    """A user function outside scikit-learn: skops cannot trust it by default."""
    return x * 2


def test_pipeline_with_string_column_round_trips_via_skops(
    pipeline: Pipeline, table: dict[str, Any], tmp_path: Path
) -> None:
    signature = flavor.infer_signature(pipeline)
    assert signature == Signature(
        "columns",
        (TensorSpec("age", "float64"), TensorSpec("income", "float64"), TensorSpec("city", "str")),
    )
    predictor = round_trip(flavor, pipeline, tmp_path, {}, signature)
    out = predictor.predict(canonical(signature, table["test"]))
    assert list(out) == ["predictions", "probabilities"]
    assert out["predictions"].dtype == object
    np.testing.assert_array_equal(out["predictions"], pipeline.predict(table["test"]))
    np.testing.assert_allclose(out["probabilities"], pipeline.predict_proba(table["test"]))
    assert out["probabilities"].shape == (len(table["test"]), 2)
    assert (tmp_path / "flavor-0" / "model.skops").is_file()


@pytest.mark.parametrize(
    ("serialization", "file"), [("joblib", "model.joblib"), ("pickle", "model.pkl")]
)
def test_pickle_serializations_round_trip(
    serialization: str,
    file: str,
    forest: RandomForestClassifier,
    arrays: dict[str, np.ndarray],
    tmp_path: Path,
) -> None:
    saved = flavor.save(forest, tmp_path, {"serialization": serialization})
    assert saved.options == {"file": file, "serialization": serialization, "classes": [0, 1, 2]}
    assert saved.requirements[0].startswith("scikit-learn==")
    signature = flavor.infer_signature(forest)
    assert signature is not None
    out = flavor.load(tmp_path, saved.options, signature).predict({"input": arrays["x_test"]})
    np.testing.assert_array_equal(out["predictions"], forest.predict(arrays["x_test"]))
    np.testing.assert_allclose(out["probabilities"], forest.predict_proba(arrays["x_test"]))


def test_regressor_has_predictions_only(arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    model = LinearRegression().fit(arrays["x_train"], arrays["y_reg"])
    signature = flavor.infer_signature(model)
    assert signature == Signature("tensors", (TensorSpec("input", "float64", (-1, 4)),))
    out = round_trip(flavor, model, tmp_path, {}, signature).predict({"input": arrays["x_test"]})
    assert list(out) == ["predictions"]
    np.testing.assert_allclose(out["predictions"], model.predict(arrays["x_test"]))


def test_handles_only_sklearn_estimators(forest: RandomForestClassifier) -> None:
    assert flavor.handles(forest)
    assert flavor.handles(Pipeline([("clf", LogisticRegression())]))
    assert not flavor.handles(np.zeros(3))
    assert not flavor.handles(StandardScaler())  # a transformer cannot predict
    assert not flavor.handles("model.pkl")


def test_infer_signature_is_none_before_fitting() -> None:
    assert flavor.infer_signature(LogisticRegression()) is None


def test_unknown_serialization_is_refused(forest: RandomForestClassifier, tmp_path: Path) -> None:
    with pytest.raises(FlavorError, match="unknown sklearn serialization 'cloudpickle'"):
        flavor.save(forest, tmp_path, {"serialization": "cloudpickle"})


def test_skops_with_untrusted_function_is_refused_at_save(
    arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    model = Pipeline([("double", FunctionTransformer(double)), ("reg", LinearRegression())])
    model.fit(arrays["x_train"], arrays["y_reg"])
    with pytest.raises(FlavorError, match=r"cannot be saved safely: .*test_sklearn_flavor\.double"):
        flavor.save(model, tmp_path, {})


def test_skops_file_with_untrusted_type_is_refused_at_load(
    arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    import skops.io

    model = Pipeline([("double", FunctionTransformer(double)), ("reg", LinearRegression())])
    model.fit(arrays["x_train"], arrays["y_reg"])
    skops.io.dump(model, tmp_path / "model.skops")  # as if written by someone else
    signature = Signature("tensors", (TensorSpec("input", "float64", (-1, 4)),))
    options = {"file": "model.skops", "serialization": "skops"}
    with pytest.raises(UnsafeArtifact, match=r"double are not trusted"):
        flavor.load(tmp_path, options, signature)


def test_pickle_with_foreign_function_is_refused_at_save(
    arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    model = Pipeline([("double", FunctionTransformer(double)), ("reg", LinearRegression())])
    model.fit(arrays["x_train"], arrays["y_reg"])
    with pytest.raises(FlavorError, match=r"global '.*test_sklearn_flavor\.double' is not allowed"):
        flavor.save(model, tmp_path, {"serialization": "joblib"})


def test_options_cannot_point_outside_the_folder(tmp_path: Path) -> None:
    signature = Signature("tensors", (TensorSpec("input", "float64", (-1, 4)),))
    with pytest.raises(FlavorError, match="invalid sklearn flavor options"):
        flavor.load(tmp_path, {"serialization": "pickle", "file": "../x.pkl"}, signature)


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib"])
@pytest.mark.parametrize("compress", [0, 3])
def test_read_file_round_trip(
    suffix: str,
    compress: int,
    forest: RandomForestClassifier,
    arrays: dict[str, np.ndarray],
    tmp_path: Path,
) -> None:
    assert suffix in flavor.FILE_SUFFIXES
    user_file = tmp_path / f"user{suffix}"
    joblib.dump(forest, user_file, compress=compress)
    model = flavor.read_file(user_file)
    assert flavor.handles(model)
    signature = flavor.infer_signature(model)
    assert signature is not None
    out = round_trip(flavor, model, tmp_path, {}, signature).predict({"input": arrays["x_test"]})
    np.testing.assert_array_equal(out["predictions"], forest.predict(arrays["x_test"]))


def test_read_file_takes_plain_pickles(
    pipeline: Pipeline, table: dict[str, Any], tmp_path: Path
) -> None:
    user_file = tmp_path / "pipe.pkl"
    user_file.write_bytes(pickle.dumps(pipeline, protocol=2))
    model: Any = flavor.read_file(user_file)  # Any: an estimator read back
    np.testing.assert_array_equal(model.predict(table["test"]), pipeline.predict(table["test"]))


def test_read_file_of_garbage_is_a_flavor_error(tmp_path: Path) -> None:
    user_file = tmp_path / "junk.pkl"
    user_file.write_bytes(b"not a pickle at all")
    with pytest.raises(FlavorError, match=r"cannot read joblib file 'junk\.pkl'"):
        flavor.read_file(user_file)


def test_columns_are_passed_in_signature_order(
    pipeline: Pipeline, table: dict[str, Any], tmp_path: Path
) -> None:
    signature = flavor.infer_signature(pipeline)
    assert signature is not None
    predictor = round_trip(flavor, pipeline, tmp_path, {}, signature)
    shuffled = pd.DataFrame(table["test"])[["city", "income", "age"]]
    out = predictor.predict(canonical(signature, shuffled))
    np.testing.assert_array_equal(out["predictions"], pipeline.predict(table["test"]))
