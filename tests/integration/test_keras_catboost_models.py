"""A Keras and a CatBoost model end to end: register, load in a fresh process, serve over V2
and TF-style HTTP, batch-score a file through the CLI; and registering their plain files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Keras reads its backend once, at first import: these models run on torch, as modelport
# loads them.
os.environ["KERAS_BACKEND"] = "torch"

import catboost as cb
import httpx
import keras
import numpy as np
import pandas as pd
import pytest
import torch

import modelport

from ._cli import cli
from ._server import serving

assert keras.backend.backend() == "torch", "Keras was imported with another backend first"

# Keras's torch backend reads weights with np.array(tensor) when it fits or saves; numpy 2
# warns about torch's __array__.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


@dataclass
class Case:
    """A fitted model, an example, rows to score and what the framework itself predicts."""

    name: str
    model: Any
    example: Any
    rows: Any  # JSON-able rows (records or nested lists) for the fresh process
    expected: dict[str, np.ndarray]
    v2_inputs: list[dict[str, Any]]  # the same rows as V2 tensors
    v2_wrong: list[dict[str, Any]]  # one input of the wrong shape
    wrong_message: str
    frame: pd.DataFrame  # the same rows as a table for batch scoring (with row_id)


def keras_regressor() -> Case:
    """A functional model with one named input, trained one epoch on 64 rows."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    features = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(features)
    model = keras.Model(features, keras.layers.Dense(1, name="score")(hidden))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, x[:, :1] * 2 - x[:, 1:2], epochs=1, batch_size=16, verbose=0)
    test = rng.normal(size=(6, 4)).astype(np.float32)
    with torch.no_grad():
        expected = model(test, training=False).numpy()
    frame = pd.DataFrame(test, columns=[f"f{i}" for i in range(4)])
    frame.insert(0, "row_id", np.arange(6))
    return Case(
        name="scorer",
        model=model,
        example=x[:5],
        rows={"features": test.tolist()},
        expected={"predictions": expected},
        v2_inputs=[
            {"name": "features", "shape": [6, 4], "datatype": "FP32", "data": test.ravel().tolist()}
        ],
        v2_wrong=[{"name": "features", "shape": [2, 3], "datatype": "FP32", "data": [0.0] * 6}],
        wrong_message="input 'features': expected shape [-1, 4], got [2, 3]",
        frame=frame,
    )


def catboost_classifier() -> Case:
    """Three plans as a categorical feature beside two numbers, trained on a DataFrame."""
    rng = np.random.default_rng(1)

    def table(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "spend": rng.normal(size=n),
                "plan": rng.choice(["basic", "pro", "max"], n),
                "calls": rng.integers(0, 5, n).astype(np.float64),
            }
        )

    train, test = table(64), table(6)
    y = ((train["spend"] > 0) ^ (train["plan"] == "pro")).astype(np.int64)
    model = cb.CatBoostClassifier(
        iterations=10, depth=3, thread_count=1, verbose=False, allow_writing_files=False
    )
    model.fit(train, y, cat_features=["plan"])
    v2 = [
        {"name": "spend", "shape": [6], "datatype": "FP64", "data": test["spend"].tolist()},
        {"name": "plan", "shape": [6], "datatype": "BYTES", "data": test["plan"].tolist()},
        {"name": "calls", "shape": [6], "datatype": "FP64", "data": test["calls"].tolist()},
    ]
    wrong = [dict(v2[0], shape=[3, 2]), *v2[1:]]
    return Case(
        name="churn",
        model=model,
        example=train[:5],
        rows=test.to_dict("records"),
        expected={
            "predictions": model.predict(test),
            "probabilities": model.predict_proba(test),
        },
        v2_inputs=v2,
        v2_wrong=wrong,
        wrong_message="input 'spend': expected shape [-1], got [3, 2]",
        frame=test.assign(row_id=np.arange(6))[["row_id", *test.columns]],
    )


CASES: dict[str, Callable[[], Case]] = {
    f.__name__: f for f in (keras_regressor, catboost_classifier)
}

FRESH_PROCESS = """
import json, os, sys
import modelport
model = modelport.load(sys.argv[1])
outputs = model.predict_outputs(json.loads(sys.argv[2]))
print(json.dumps({
    "flavor": model.manifest.flavor,
    "backend": os.environ.get("KERAS_BACKEND"),
    "outputs": {name: array.tolist() for name, array in outputs.items()},
}))
"""


def _check(outputs: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
    assert list(outputs) == list(expected)
    for name, want in expected.items():
        np.testing.assert_allclose(np.asarray(outputs[name]), want, rtol=1e-5, atol=1e-6)


def _register(case: Case, home: Path) -> None:
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        version = registry.register(case.name, case.model, input_example=case.example)
    assert version.status == "ready"


def _fresh_load(home: Path, case: Case, env: dict[str, str]) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MODELPORT_", "KERAS_"))}
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, case.name, json.dumps(case.rows)],
        capture_output=True,
        text=True,
        env={**environ, "MODELPORT_HOME": str(home), **env},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow  # a fresh interpreter per load
@pytest.mark.parametrize("case_name", list(CASES))
def test_a_fresh_process_loads_by_ref_and_predicts_as_the_framework(
    case_name: str, tmp_path: Path
) -> None:
    case = CASES[case_name]()
    _register(case, tmp_path)
    result = _fresh_load(tmp_path, case, {"KERAS_BACKEND": "torch"})
    assert result["flavor"] == ("keras" if case_name.startswith("keras") else "catboost")
    _check(result["outputs"], case.expected)
    if case_name.startswith("keras"):  # no KERAS_BACKEND: the flavor sets torch itself
        unset = _fresh_load(tmp_path, case, {})
        assert unset["backend"] == "torch"
        _check(unset["outputs"], case.expected)


@pytest.mark.parametrize("case_name", list(CASES))
def test_served_over_v2_and_tf_style(case_name: str, tmp_path: Path) -> None:
    case = CASES[case_name]()
    home = tmp_path / "home"
    _register(case, home)
    with serving(home, case.name) as server:
        v2 = httpx.post(
            f"{server.url}/v2/models/{case.name}/infer", json={"inputs": case.v2_inputs}
        )
        assert v2.status_code == 200, v2.text
        outputs = {o["name"]: np.reshape(o["data"], o["shape"]) for o in v2.json()["outputs"]}
        _check(outputs, case.expected)

        rows = case.rows["features"] if isinstance(case.rows, dict) else case.rows
        tf = httpx.post(f"{server.url}/v1/models/{case.name}:predict", json={"instances": rows})
        assert tf.status_code == 200, tf.text
        predictions = tf.json()["predictions"]
        if len(case.expected) == 1:
            _check({"predictions": predictions}, case.expected)
        else:
            _check({n: [p[n] for p in predictions] for n in case.expected}, case.expected)

        wrong = httpx.post(
            f"{server.url}/v2/models/{case.name}/infer", json={"inputs": case.v2_wrong}
        )
        assert wrong.status_code == 400, wrong.text
        assert case.wrong_message in wrong.json()["error"]


@pytest.mark.parametrize("case_name", list(CASES))
def test_batch_scored_through_the_cli(
    case_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    case = CASES[case_name]()
    home = tmp_path / "home"
    _register(case, home)
    source, sink = tmp_path / "rows.csv", tmp_path / "scores.parquet"
    case.frame.to_csv(source, index=False)
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    done = cli(capsys, "batch", case.name, str(source), str(sink), "--id-column", "row_id")
    assert done.code == 0, done.err
    scored = pd.read_parquet(sink).sort_values("row_id")
    assert scored["row_id"].tolist() == list(range(6))
    want = case.expected["predictions"]
    column = "predictions" if want.ndim == 1 else "predictions_0"  # an [N, 1] output
    np.testing.assert_allclose(scored[column].to_numpy(), want[:, 0] if want.ndim > 1 else want)


def _legacy_cnn(path: Path, with_lambda: bool = False) -> keras.Model:
    """A tiny 1-D convolution net saved as a legacy HDF5 file, as older projects kept them."""
    keras.utils.set_random_seed(0)
    signal = keras.Input((8, 1), name="signal")
    hidden = keras.layers.Conv1D(2, 3, activation="relu")(signal)
    if with_lambda:
        hidden = keras.layers.Lambda(lambda t: t * 0.5, name="halve")(hidden)
    flat = keras.layers.GlobalAveragePooling1D()(hidden)
    model = keras.Model(signal, keras.layers.Dense(2, activation="softmax")(flat))
    model.save(path)
    return model


def test_register_a_legacy_h5_file_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    model = _legacy_cnn(tmp_path / "legacy.h5")
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    done = cli(capsys, "register", str(tmp_path / "legacy.h5"), "--name", "old-cnn")
    assert done.code == 0, done.err
    loaded = modelport.load("old-cnn", settings=modelport.Settings(home=tmp_path / "home"))
    assert loaded.manifest.flavor == "keras"
    assert loaded.signature.input_names == ["signal"]  # the model's own, with no example
    x = np.random.default_rng(2).normal(size=(3, 8, 1)).astype(np.float32)
    with torch.no_grad():
        want = model(x, training=False).numpy()
    np.testing.assert_allclose(loaded.predict(x), want, rtol=1e-6)


def test_a_legacy_h5_file_with_a_lambda_needs_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _legacy_cnn(tmp_path / "lambda.h5", with_lambda=True)
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    refused = cli(capsys, "register", str(tmp_path / "lambda.h5"), "--name", "old-cnn")
    assert refused.code == 5, refused.err
    assert "Lambda layer 'halve' holds Python bytecode" in refused.err
    assert "--trust-unsafe" in refused.err
    trusted = cli(
        capsys, "register", str(tmp_path / "lambda.h5"), "--name", "old-cnn", "--trust-unsafe"
    )
    assert trusted.code == 0, trusted.err
    loaded = modelport.load("old-cnn", settings=modelport.Settings(home=tmp_path / "home"))
    assert loaded.trusted_by is not None
    assert loaded.predict(np.zeros((1, 8, 1), dtype=np.float32)).shape == (1, 2)


def test_register_a_cbm_file_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    case = catboost_classifier()
    case.model.save_model(str(tmp_path / "model.cbm"))
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    done = cli(capsys, "register", str(tmp_path / "model.cbm"), "--name", "cb")
    assert done.code == 0, done.err
    loaded = modelport.load("cb", settings=modelport.Settings(home=tmp_path / "home"))
    assert loaded.manifest.flavor_options["kind"] == "classifier"
    assert loaded.signature.input_names == ["spend", "plan", "calls"]
    _check(loaded.predict_outputs(case.rows), case.expected)
