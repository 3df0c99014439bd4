"""``modelport convert REF --to onnx``: the graph is checked against the original on real
rows, registered as a new version with its lineage, and refused when it differs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelport
from modelport.convert import SYNTHETIC_ROWS, convert

from ._cli import cli
from ._usercode import user_module

RNG = np.random.default_rng(7)
X = RNG.normal(size=(300, 4)).astype(np.float32)
Y = (X[:, 0] - X[:, 2] > 0).astype(np.int64)
FRAME = pd.DataFrame(X.astype(np.float64), columns=["tenure", "spend", "visits", "age"])
FRAME["visits"] = np.rint(FRAME["visits"] * 3).astype(np.int64)  # an int column is cast too


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[modelport.Registry]:
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    with modelport.Registry(modelport.Settings(home=tmp_path / "home")) as reg:
        yield reg


def _lr() -> tuple[Any, Any]:  # Any: an estimator and its training rows
    return LogisticRegression().fit(X, Y), X


Case = Callable[[], tuple[Any, Any]]  # Any: a model and its rows (array or frame)
CASES: dict[str, Case] = {
    "sklearn-classifier": _lr,
    "sklearn-regressor": lambda: (
        make_pipeline(StandardScaler(), LinearRegression()).fit(X.astype(np.float64), X[:, 1]),
        X.astype(np.float64),
    ),
    "sklearn-forest": lambda: (
        RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, Y),
        X,
    ),
    "sklearn-columns": lambda: (LogisticRegression().fit(FRAME, Y), FRAME),
    "xgboost-classifier": lambda: (xgb.XGBClassifier(n_estimators=5, max_depth=3).fit(X, Y), X),
    "xgboost-regressor": lambda: (xgb.XGBRegressor(n_estimators=5).fit(X, X[:, 1]), X),
    "lightgbm-classifier": lambda: (
        lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, np.where(Y == 1, "churn", "stay")),
        X,
    ),
    "lightgbm-regressor": lambda: (
        lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, X[:, 1]),
        X,
    ),
}


def _assert_same(
    original: modelport.LoadedModel, converted: modelport.LoadedModel, rows: object
) -> None:
    want = original.predict_outputs(rows)
    got = converted.predict_outputs(rows)
    assert list(got) == list(want)
    for name, arr in want.items():
        assert got[name].shape == arr.shape, name
        if name == "predictions" and "probabilities" in want:
            np.testing.assert_array_equal(got[name], arr)
        else:
            np.testing.assert_allclose(got[name], arr, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_conversion_is_equivalent_and_registered_with_lineage(
    registry: modelport.Registry, case: str
) -> None:
    model, data = CASES[case]()
    example = data[:5] if isinstance(data, np.ndarray) else data.iloc[:5]
    registry.register("m", model, input_example=example, reference_data=data)

    done = convert(registry, "m/1")

    assert done.version.version == 2
    assert done.version.flavor == "onnx"
    assert done.rows == {"example": 5, "profile": SYNTHETIC_ROWS}
    assert done.max_abs_diff <= 1e-4
    original, converted = registry.load("m/1"), registry.load("m/2")
    # Clients need not change: same input names, dtypes and shapes, same output names.
    assert converted.signature.kind == original.signature.kind
    assert converted.signature.inputs == original.signature.inputs
    assert [o.name for o in converted.signature.outputs] == [
        o.name for o in original.signature.outputs
    ]
    lineage = converted.manifest.lineage
    assert lineage["parent"] == "m/1"
    assert lineage["converter"] == done.converter
    assert lineage["converter"].split()[0] in ("skl2onnx", "onnxmltools")
    assert lineage["rows_checked"] == 5 + SYNTHETIC_ROWS
    assert lineage["max_abs_diff"] == done.max_abs_diff
    assert converted.manifest.tags["converted_from"] == "m/1"
    assert registry.get_version("m", 2).tags["converted_from"] == "m/1"
    assert registry.get_version("m", 2).source == "modelport convert m/1 --to onnx"
    # A free batch axis: one row and a hundred rows.
    _assert_same(original, converted, example[:1])
    _assert_same(original, converted, data[:100])


def test_cli_prints_the_new_version_and_the_differences(
    registry: modelport.Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = _lr()
    registry.register("churn", model, input_example=X[:5], reference_data=X)

    done = cli(capsys, "convert", "churn", "--to", "onnx")

    assert done.code == 0, done.err
    assert "registered churn/2 (onnx, from churn/1 by skl2onnx" in done.out
    assert f"checked {5 + SYNTHETIC_ROWS} rows (example 5, profile {SYNTHETIC_ROWS})" in done.out
    assert "max abs diff" in done.out
    info = cli(capsys, "info", "churn/2")
    assert info.code == 0, info.err
    manifest = json.loads(info.out)
    assert manifest["flavor"] == "onnx"
    assert manifest["lineage"]["parent"] == "churn/1"
    assert manifest["lineage"]["rtol"] == 1e-4


def test_float16_weights_beyond_tolerance_are_refused_and_nothing_is_registered(
    registry: modelport.Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = _lr()
    registry.register("churn", model, input_example=X[:5], reference_data=X)

    done = cli(capsys, "convert", "churn", "--to", "onnx", "--float16-weights")

    assert done.code == 5, done.out
    assert "differ from the original's beyond rtol=0.0001, atol=1e-05" in done.err
    assert "worst at row" in done.err
    assert "original 0." in done.err
    assert "ONNX 0." in done.err
    assert "difference" in done.err
    assert "nothing was registered" in done.err
    versions = registry.list_versions("churn").items
    assert [v.version for v in versions] == [1]


def test_wider_tolerances_accept_the_float16_weights(registry: modelport.Registry) -> None:
    model, data = CASES["sklearn-regressor"]()
    registry.register("spend", model, input_example=data[:5], reference_data=data)
    with pytest.raises(modelport.errors.FlavorError, match=r"beyond rtol=0\.0001, atol=1e-05"):
        convert(registry, "spend", weights="float16")

    done = convert(registry, "spend", weights="float16", rtol=1e-2, atol=1e-2)

    assert done.version.version == 2
    assert done.max_abs_diff > 1e-5  # what the default tolerances refused
    lineage = registry.load("spend/2").manifest.lineage
    assert lineage["weights"] == "float16"
    assert (lineage["rtol"], lineage["atol"]) == (1e-2, 1e-2)


def test_float16_trees_change_labels_and_are_refused(registry: modelport.Registry) -> None:
    model = xgb.XGBClassifier(n_estimators=20, max_depth=4).fit(X, Y)
    registry.register("trees", model, input_example=X[:5], reference_data=X)

    with pytest.raises(modelport.errors.FlavorError, match=r"beyond rtol|labels must match"):
        convert(registry, "trees", weights="float16")
    assert [v.version for v in registry.list_versions("trees").items] == [1]


def test_a_version_without_example_or_profile_needs_rows(
    registry: modelport.Registry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model, _ = _lr()
    registry.register("bare", model)  # signature from n_features_in_: no rows recorded

    refused = cli(capsys, "convert", "bare", "--to", "onnx")
    assert refused.code == 2
    assert "no rows to check the conversion of 'bare' on" in refused.err
    assert "--data FILE" in refused.err

    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(X[:40].tolist()))
    done = cli(capsys, "convert", "bare", "--to", "onnx", "--data", str(rows))
    assert done.code == 0, done.err
    assert "checked 40 rows (data 40)" in done.out
    converted = registry.load("bare/2")
    assert converted.manifest.lineage["rows"] == {"data": 40}
    assert converted.input_example() is not None  # the first check rows
    np.testing.assert_array_equal(converted.predict(X[:100]), model.predict(X[:100]))


def test_unknown_ref_is_not_found(
    registry: modelport.Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    done = cli(capsys, "convert", "nothing", "--to", "onnx")
    assert done.code == 3
    assert "model 'nothing' not found" in done.err


def test_onnx_and_unknown_targets_are_usage_errors(
    registry: modelport.Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = _lr()
    registry.register("churn", model, input_example=X[:5])
    assert cli(capsys, "convert", "churn", "--to", "onnx").code == 0

    again = cli(capsys, "convert", "churn/2", "--to", "onnx")
    assert again.code == 2
    assert "churn/2 is already ONNX" in again.err
    other = cli(capsys, "convert", "churn/1", "--to", "tflite")
    assert other.code == 2
    assert "cannot convert to 'tflite'" in other.err


def test_a_flavor_without_converter_is_a_usage_error(
    registry: modelport.Registry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    module = user_module(
        tmp_path,
        """
        from modelport.flavors.pyfunc import PythonModel

        class Doubler(PythonModel):
            def predict(self, inputs):
                return inputs["input"] * 2
        """,
    )
    model: Any = module.Doubler()
    registry.register("code", model, input_example=X[:3])

    done = cli(capsys, "convert", "code", "--to", "onnx")

    assert done.code == 2
    assert "no converter for flavor pyfunc yet" in done.err
    assert [v.version for v in registry.list_versions("code").items] == [1]


def test_a_path_is_refused(
    registry: modelport.Registry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model, _ = _lr()
    modelport.save(model, tmp_path / "churn", input_example=X[:5])

    done = cli(capsys, "convert", str(tmp_path / "churn"), "--to", "onnx")

    assert done.code == 2
    assert "convert takes a registered version" in done.err
