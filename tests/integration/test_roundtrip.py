"""Every flavor: save -> register -> load by ref -> the same predictions as the original model."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelport
from modelport.errors import ArtifactCorrupted, CodeNotTrusted, InvalidInput, PredictionFailed

from ._cli import cli


@dataclass
class Case:
    model: Any
    x_train: Any
    x_test: Any
    expected: dict[str, np.ndarray]
    options: dict[str, Any]
    flavor: str


def _xy(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(np.int64)
    return x[:300], y[:300], x[300:]


def sklearn_logreg(tmp: Path) -> Case:
    from sklearn.linear_model import LogisticRegression

    x, y, x_test = _xy()
    m = LogisticRegression().fit(x, y)
    expected = {"predictions": m.predict(x_test), "probabilities": m.predict_proba(x_test)}
    return Case(m, x, x_test, expected, {}, "sklearn")


def sklearn_pipeline_frame(tmp: Path) -> Case:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=300), "city": rng.choice(["x", "y", "z"], 300)})
    y = frame["a"] * 2 + (frame["city"] == "y")
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer([("c", OneHotEncoder(), ["city"])], remainder="passthrough"),
            ),
            ("reg", HistGradientBoostingRegressor(max_iter=20)),
        ]
    ).fit(frame[:250], y[:250])
    test = frame[250:]
    return Case(pipe, frame[:250], test, {"predictions": pipe.predict(test)}, {}, "sklearn")


def sklearn_joblib(tmp: Path) -> Case:
    from sklearn.ensemble import RandomForestClassifier

    x, y, x_test = _xy(2)
    m = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    expected = {"predictions": m.predict(x_test), "probabilities": m.predict_proba(x_test)}
    return Case(m, x, x_test, expected, {"serialization": "joblib"}, "sklearn")


def xgboost_classifier(tmp: Path) -> Case:
    import xgboost

    x, y, x_test = _xy(3)
    m = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(x, y)
    expected = {"predictions": m.predict(x_test), "probabilities": m.predict_proba(x_test)}
    return Case(m, x, x_test, expected, {}, "xgboost")


def lightgbm_regressor(tmp: Path) -> Case:
    import lightgbm

    x, _, x_test = _xy(4)
    y = x[:, 0] * 3 - x[:, 1]
    m = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1).fit(x, y)
    return Case(m, x, x_test, {"predictions": np.asarray(m.predict(x_test))}, {}, "lightgbm")


def lightgbm_classifier(tmp: Path) -> Case:
    import lightgbm

    x, y, x_test = _xy(5)
    m = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, y)
    expected = {
        "predictions": np.asarray(m.predict(x_test)),
        "probabilities": np.asarray(m.predict_proba(x_test)),
    }
    return Case(m, x, x_test, expected, {}, "lightgbm")


def onnx_logreg(tmp: Path) -> Case:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y, x_test = _xy(6)
    m = LogisticRegression().fit(x, y)
    proto = to_onnx(m, x[:1], options={"zipmap": False}, target_opset=17)
    expected = {"label": m.predict(x_test), "probabilities": m.predict_proba(x_test)}
    return Case(proto, {"X": x}, {"X": x_test}, expected, {}, "onnx")


SCORER_SOURCE = textwrap.dedent(
    """
    import json

    import numpy as np

    from modelport.flavors.pyfunc import PythonModel


    class WeightedScorer(PythonModel):
        def load(self, context):
            with open(context.artifacts["weights"]) as fh:
                self.weights = np.asarray(json.load(fh), dtype=np.float64)

        def predict(self, inputs):
            return inputs["input"] @ self.weights
    """
)


def pyfunc_scorer(tmp: Path) -> Case:
    """A user's own module with a custom class, importable the way a notebook would have it."""
    module_name = f"user_scorer_{uuid.uuid4().hex[:8]}"
    code = tmp / "user_code"
    code.mkdir()
    (code / f"{module_name}.py").write_text(SCORER_SOURCE)
    sys.path.insert(0, str(code))
    try:
        scorer = importlib.import_module(module_name).WeightedScorer()
    finally:
        sys.path.remove(str(code))
    weights = [0.5, -1.0, 2.0, 0.0, 1.0]
    file = tmp / "weights.json"
    file.write_text(json.dumps(weights))
    x, _, x_test = _xy(7)
    expected = {"predictions": x_test.astype(np.float64) @ np.asarray(weights)}
    options = {"artifacts": {"weights": str(file)}}
    return Case(scorer, x, x_test, expected, options, "pyfunc")


CASES: dict[str, Callable[[Path], Case]] = {
    f.__name__: f
    for f in (
        sklearn_logreg,
        sklearn_pipeline_frame,
        sklearn_joblib,
        xgboost_classifier,
        lightgbm_regressor,
        lightgbm_classifier,
        onnx_logreg,
        pyfunc_scorer,
    )
}


def _head(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: v[:5] for k, v in data.items()}
    return data[:5]


def _check(outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    for name, want in expected.items():
        got = outputs[name] if name in outputs else outputs[next(iter(outputs))]
        if want.dtype.kind in "iub":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case_name", list(CASES))
def test_save_register_load_same_predictions(
    case_name: str, registry: modelport.Registry, tmp_path: Path
) -> None:
    case = CASES[case_name](tmp_path)
    example = _head(case.x_train)
    version = registry.register(
        "m",
        case.model,
        input_example=example,
        reference_data=case.x_train,
        metrics={"score": 0.5},
        flavor_options=case.options,
    )
    assert version.status == "ready"
    assert version.flavor == case.flavor
    registry.set_alias("m", "production", version.version)
    for ref in ("m", f"m/{version.version}", "m@production"):
        loaded = registry.load(ref)
        _check(loaded.predict_outputs(case.x_test), case.expected)
    manifest = registry.load("m@production").manifest
    assert manifest.metrics == {"score": 0.5}
    assert manifest.signature.outputs, "outputs are inferred from the example"


@pytest.mark.parametrize("case_name", ["sklearn_logreg", "onnx_logreg", "pyfunc_scorer"])
def test_save_to_folder_and_load_by_path(case_name: str, tmp_path: Path) -> None:
    case = CASES[case_name](tmp_path)
    example = (
        {k: v[:5] for k, v in case.x_train.items()}
        if isinstance(case.x_train, dict)
        else case.x_train[:5]
    )
    out = tmp_path / "artifact" / "m"
    modelport.save(case.model, out, input_example=example, flavor_options=case.options)
    code = case_name == "pyfunc_scorer"  # a folder that is code loads only when trusted
    if code:
        with pytest.raises(CodeNotTrusted, match="loads only when trusted"):
            modelport.load(out)
    _check(modelport.load(out, trust_unsafe=code).predict_outputs(case.x_test), case.expected)


def test_tampered_registered_artifact_is_refused(
    registry: modelport.Registry, tmp_path: Path
) -> None:
    case = sklearn_logreg(tmp_path)
    version = registry.register("m", case.model, input_example=case.x_train[:5])
    folder = registry.artifact_path(f"m/{version.version}")
    target = folder / "model.skops"
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorrupted, match=r"'model\.skops' is corrupted: sha256"):
        registry.load(f"m/{version.version}")


def test_edited_manifest_is_refused(registry: modelport.Registry, tmp_path: Path) -> None:
    case = sklearn_logreg(tmp_path)
    registry.register("m", case.model, input_example=case.x_train[:5])
    manifest = registry.artifact_path("m/1") / "modelport.json"
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace('"sklearn"', '"sklearn" '))
    with pytest.raises(ArtifactCorrupted, match="does not match the registry's record"):
        registry.load("m/1")


@pytest.mark.parametrize("case_name", ["sklearn_logreg", "xgboost_classifier", "onnx_logreg"])
def test_requested_outputs_only(case_name: str, tmp_path: Path) -> None:
    case = CASES[case_name](tmp_path)
    out = tmp_path / "m"
    modelport.save(case.model, out, input_example=_head(case.x_train))
    loaded = modelport.load(out)
    names = [spec.name for spec in loaded.signature.outputs]
    assert len(names) == 2
    only_second = loaded.predict_outputs(case.x_test, [names[1]])
    assert list(only_second) == [names[1]]
    primary, second = case.expected.values()
    _check({names[1]: only_second[names[1]]}, {names[1]: second})
    _check({"p": loaded.predict(case.x_test)}, {"p": primary})
    with pytest.raises(InvalidInput, match=rf"has no output 'nope' \(outputs: {names[0]}, "):
        loaded.predict_outputs(case.x_test, ["nope"])


def test_a_bundle_loads_by_path_and_through_the_registry(tmp_path: Path) -> None:
    from modelport.artifact.bundle import pack

    case = sklearn_logreg(tmp_path)
    folder = tmp_path / "m"
    modelport.save(case.model, folder, input_example=_head(case.x_train))
    bundle = pack(folder, tmp_path / "m.tar")
    settings = modelport.Settings(home=tmp_path / "home")
    _check(modelport.load(bundle, settings=settings).predict_outputs(case.x_test), case.expected)
    assert not (tmp_path / "home" / "registry.db").exists(), "a path never opens the registry"
    with modelport.Registry(settings) as registry:
        assert registry.manifest(bundle).name == "m"
        _check(registry.load(str(bundle)).predict_outputs(case.x_test), case.expected)
    unpacked = list((tmp_path / "home" / "cache" / "bundles").iterdir())
    assert len(unpacked) == 1, "the bundle is unpacked once and reused"


def test_a_model_refusing_a_value_is_one_line_in_process_and_on_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = sklearn_logreg(tmp_path)
    folder = tmp_path / "m"
    modelport.save(case.model, folder, input_example=case.x_train[:5])
    rows = np.array(case.x_train[:1], dtype=np.float64)
    rows[0, 0] = np.nan
    with pytest.raises(PredictionFailed, match="Input X contains NaN") as caught:
        modelport.load(folder).predict(rows)
    assert str(caught.value) == "model 'm' failed to predict: ValueError: Input X contains NaN."
    data = tmp_path / "rows.json"
    data.write_text(json.dumps([[None, *rows[0, 1:].tolist()]]))
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    result = cli(capsys, "predict", str(folder), "--input", str(data))
    assert result.code == 5, result.err
    assert result.err == "error: model 'm' failed to predict: ValueError: Input X contains NaN.\n"
