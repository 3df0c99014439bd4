"""Registering the plain model files users already have, and flavors from other packages."""

from __future__ import annotations

import pickle
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelport
from modelport import flavors


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, 0] - x[:, 3] > 0).astype(np.int64)
    return x[:250], y[:250], x[250:]


def onnx_file(tmp: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y, test = _data()
    model = LogisticRegression().fit(x, y)
    path = tmp / "model.onnx"
    path.write_bytes(to_onnx(model, x[:1], target_opset=17).SerializeToString())
    return path, test, model.predict(test)


def xgboost_json(tmp: Path, suffix: str = ".json") -> tuple[Path, np.ndarray, np.ndarray]:
    import xgboost

    x, y, test = _data()
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=2).fit(x, y)
    path = tmp / f"model{suffix}"
    model.save_model(str(path))
    return path, test, model.predict(test)


def xgboost_ubj(tmp: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    return xgboost_json(tmp, ".ubj")


def lightgbm_txt(tmp: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    import lightgbm

    x, y, test = _data()
    model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, y)
    path = tmp / "model.txt"
    model.booster_.save_model(str(path))
    return path, test, np.asarray(model.predict(test))


def sklearn_pickle(tmp: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    from sklearn.ensemble import GradientBoostingClassifier

    x, y, test = _data()
    model = GradientBoostingClassifier(n_estimators=10).fit(x, y)
    path = tmp / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    return path, test, model.predict(test)


FILES: dict[str, Callable[[Path], tuple[Path, np.ndarray, np.ndarray]]] = {
    f.__name__: f for f in (onnx_file, xgboost_json, xgboost_ubj, lightgbm_txt, sklearn_pickle)
}


@pytest.mark.parametrize("kind", list(FILES))
def test_register_a_plain_model_file(
    kind: str, registry: modelport.Registry, tmp_path: Path
) -> None:
    path, test, expected = FILES[kind](tmp_path)
    version = registry.register("plain", path)
    assert version.status == "ready"
    loaded = registry.load("plain")
    assert loaded.manifest.lineage["source"] == path.name
    got = loaded.predict(test)
    np.testing.assert_array_equal(np.asarray(got).astype(np.int64), expected)


PLUGIN_FLAVOR = textwrap.dedent(
    '''
    """A third-party flavor: models that always predict one constant."""
    import json
    from pathlib import Path

    import numpy as np

    from modelport.artifact.signature import Signature, TensorSpec
    from modelport.flavors import SavedFlavor

    NAME = "constant"
    FILE_SUFFIXES = (".const",)


    class ConstantModel:
        def __init__(self, value):
            self.value = value


    def handles(model):
        return isinstance(model, ConstantModel)


    def save(model, path, options):
        (path / "value.json").write_text(json.dumps(model.value))
        return SavedFlavor(framework="constant", framework_version="1.0")


    class _Predictor:
        def __init__(self, value):
            self.value = value

        def predict(self, inputs, outputs=None):
            n = next(iter(inputs.values())).shape[0]
            return {"predictions": np.full(n, self.value)}


    def load(path, options, signature):
        return _Predictor(json.loads((path / "value.json").read_text()))


    def infer_signature(model):
        return Signature("tensors", (TensorSpec("input", "float64", (-1, 2)),))


    def read_file(path):
        return ConstantModel(float(Path(path).read_text()))
    '''
)


@pytest.fixture
def plugin_on_path(tmp_path: Path) -> Iterator[Any]:
    """Install a flavor the way a package would: a module plus dist-info entry points."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "constant_flavor.py").write_text(PLUGIN_FLAVOR)
    dist = site / "constant_flavor-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: constant-flavor\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[modelport.flavors]\nconstant = constant_flavor\n")
    sys.path.insert(0, str(site))
    flavors._plugins = None  # the registry reads entry points on first lookup
    try:
        yield __import__("constant_flavor")
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("constant_flavor", None)
        flavors._plugins = None
        flavors._loaded.pop("constant", None)


def test_a_flavor_from_another_package_plugs_in(plugin_on_path: Any, tmp_path: Path) -> None:
    assert "constant" in flavors.flavor_names()
    modelport.save(plugin_on_path.ConstantModel(7.0), tmp_path / "c")
    loaded = modelport.load(tmp_path / "c")
    assert loaded.manifest.flavor == "constant"
    np.testing.assert_array_equal(loaded.predict(np.zeros((3, 2))), [7.0, 7.0, 7.0])
    plain = tmp_path / "weights.const"
    plain.write_text("2.5")
    with modelport.Registry(modelport.Settings(home=tmp_path / "home")) as registry:
        registry.register("c", plain)
        np.testing.assert_array_equal(registry.load("c").predict(np.ones((1, 2))), [2.5])
