"""Each built-in flavor claims its own models and files, and only those."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from modelport.errors import UnsupportedModel
from modelport.flavors import flavor_for_file, flavor_for_model, get_flavor
from modelport.flavors.pyfunc import PythonModel


class Echo(PythonModel):
    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return inputs["x"]


def test_flavor_for_model(arrays: dict[str, np.ndarray]) -> None:
    x, y = arrays["x_train"], arrays["y_binary"]
    logistic = LogisticRegression().fit(x, y)
    xgb_model = xgb.XGBClassifier(n_estimators=2, n_jobs=1).fit(x, y)
    lgb_model = lgb.LGBMClassifier(n_estimators=2, verbose=-1, n_jobs=1).fit(x, y)
    proto = to_onnx(logistic, x[:1].astype(np.float32), target_opset=17)
    assert flavor_for_model(logistic).NAME == "sklearn"
    assert flavor_for_model(xgb_model).NAME == "xgboost"
    assert flavor_for_model(xgb_model.get_booster()).NAME == "xgboost"
    assert flavor_for_model(lgb_model).NAME == "lightgbm"
    assert flavor_for_model(lgb_model.booster_).NAME == "lightgbm"
    assert flavor_for_model(proto).NAME == "onnx"
    assert flavor_for_model(proto.SerializeToString()).NAME == "onnx"
    assert flavor_for_model(Echo()).NAME == "pyfunc"
    with pytest.raises(UnsupportedModel, match="no flavor can handle"):
        flavor_for_model(object())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("m.pkl", "sklearn"),
        ("m.PICKLE", "sklearn"),
        ("m.joblib", "sklearn"),
        ("m.json", "xgboost"),
        ("m.ubj", "xgboost"),
        ("m.txt", "lightgbm"),
        ("m.onnx", "onnx"),
    ],
)
def test_flavor_for_file(name: str, expected: str) -> None:
    assert flavor_for_file(Path(name)) is get_flavor(expected)


def test_handles_imports_no_framework_for_foreign_models() -> None:
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from modelport.flavors import flavor_names, get_flavor

        for name in flavor_names():
            assert not get_flavor(name).handles(np.zeros(3)), name
        heavy = {"sklearn", "xgboost", "lightgbm", "onnx", "onnxruntime", "skops", "joblib"}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
