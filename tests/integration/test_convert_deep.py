"""``modelport convert`` of torch, Keras (torch backend) and CatBoost versions: the graph
agrees with the original on the check rows, keeps its interface and takes any batch size."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Keras reads its backend once, at first import: these models run on torch.
os.environ["KERAS_BACKEND"] = "torch"

import catboost
import keras
import numpy as np
import pytest
import torch

import modelport
from modelport.convert import SYNTHETIC_ROWS, convert

assert keras.backend.backend() == "torch", "Keras was imported with another backend first"

# Keras's torch backend reads weights with np.array(tensor); numpy 2 warns about torch's
# __array__ (as in the keras flavor's tests).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

RNG = np.random.default_rng(11)
X = RNG.normal(size=(200, 4)).astype(np.float32)
Y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[modelport.Registry]:
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    with modelport.Registry(modelport.Settings(home=tmp_path / "home")) as reg:
        yield reg


class Scorer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.out(torch.relu(self.hidden(x))), dim=1)


class TwoInputs(torch.nn.Module):
    """Two named inputs (one float64 in the signature) and a dict of outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, features: torch.Tensor, offset: torch.Tensor) -> dict[str, torch.Tensor]:
        raw = self.linear(features.float())
        return {"score": raw.sum(dim=1) + offset, "raw": raw}


def _keras() -> Any:  # Any: keras.Model
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(X[:64], np.stack([X[:64, 0], X[:64, 1]], axis=1), epochs=1, verbose=0)
    return model


def _catboost(kind: str) -> Any:  # Any: a CatBoost estimator
    options: dict[str, Any] = {"iterations": 20, "depth": 3, "verbose": False}
    options["allow_writing_files"] = False  # no catboost_info/ folder in the working tree
    if kind == "classifier":
        return catboost.CatBoostClassifier(**options).fit(X, np.where(Y == 1, "churn", "stay"))
    return catboost.CatBoostRegressor(**options).fit(X, X[:, 2])


def _check(registry: modelport.Registry, name: str, rows: object, one: object) -> str:
    done = convert(registry, f"{name}/1")
    assert done.version.version == 2
    assert done.rows["example"] == 5
    assert done.max_abs_diff <= 1e-4
    original, converted = registry.load(f"{name}/1"), registry.load(f"{name}/2")
    assert converted.manifest.flavor == "onnx"
    assert converted.signature.inputs == original.signature.inputs
    assert [o.name for o in converted.signature.outputs] == [
        o.name for o in original.signature.outputs
    ]
    assert converted.manifest.lineage["parent"] == f"{name}/1"
    for data in (one, rows):  # one row and many: a free batch axis
        want, got = original.predict_outputs(data), converted.predict_outputs(data)
        assert list(got) == list(want)
        for output, arr in want.items():
            if arr.dtype.kind in "fc":
                np.testing.assert_allclose(got[output], arr, rtol=1e-4, atol=1e-5)
            else:
                np.testing.assert_array_equal(got[output], arr)
    return done.converter


def test_torch_program(registry: modelport.Registry) -> None:
    torch.manual_seed(0)
    registry.register("net", Scorer().eval(), input_example=X[:5], reference_data=X)
    converter = _check(registry, "net", X[:100], X[:1])
    assert converter.startswith("torch ")
    lineage = registry.load("net/2").manifest.lineage
    assert lineage["rows_checked"] == 5 + SYNTHETIC_ROWS


def test_torch_program_with_named_inputs_and_dict_outputs(registry: modelport.Registry) -> None:
    torch.manual_seed(0)
    example = {"features": X[:5].astype(np.float64), "offset": X[:5, 0]}
    registry.register("two", TwoInputs().eval(), input_example=example)
    rows = {"features": X[:100].astype(np.float64), "offset": X[:100, 0]}
    one = {"features": X[:1].astype(np.float64), "offset": X[:1, 0]}
    _check(registry, "two", rows, one)
    names = [o.name for o in registry.load("two/2").signature.outputs]
    assert names == ["score", "raw"]


def test_keras_on_the_torch_backend(registry: modelport.Registry) -> None:
    registry.register("k", _keras(), input_example=X[:5], reference_data=X)
    converter = _check(registry, "k", X[:100], X[:1])
    assert "keras" in converter


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_catboost(registry: modelport.Registry, kind: str) -> None:
    registry.register("cb", _catboost(kind), input_example=X[:5], reference_data=X)
    converter = _check(registry, "cb", X[:100], X[:1])
    assert converter.startswith("catboost ")
