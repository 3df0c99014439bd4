"""Loading a skops model imports what the model needs, not all of scikit-learn (nor PyTorch).

skops builds its default trust list with ``sklearn.utils.all_estimators()``, which imports every
scikit-learn module and, through scikit-learn's bundled array-API package, PyTorch when it is
installed. The sklearn flavor gives skops a stand-in for that module
(:func:`modelport.flavors.sklearn.skops_defaults`): the same Python, numpy and scipy lists and no
scikit-learn lists, whose types the allow-list then decides by exact name. These tests run in
fresh interpreters, so that what this test process imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.flavors import sklearn as flavor

pytestmark = pytest.mark.slow

# Modules that all_estimators() imports and that loading a LogisticRegression does not need.
WALKED = (
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
    "sklearn.datasets",
    "sklearn.feature_extraction.text",
    "sklearn.cluster.tests",
    "sklearn.externals.array_api_compat.torch",
    "torch",
    "pytest",
)
OTHER_FRAMEWORKS = ("xgboost", "lightgbm", "onnx", "onnxruntime")


def _run(script: str) -> Any:  # Any: the JSON the script prints last
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LogisticRegression saved with skops (the default)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    path = tmp_path_factory.mktemp("imports") / "lr"
    modelport.save(model, path, input_example=x[:2])
    assert (path / "model.skops").is_file()
    return path


def test_loading_a_skops_model_does_not_walk_scikit_learn(artifact: Path) -> None:
    loaded = _run(
        f"""
        import json, sys
        import numpy as np
        import modelport

        model = modelport.load({str(artifact)!r})
        out = model.predict(np.zeros((2, 4)))  # the primary output: predictions
        defaults = sys.modules["skops.io._trusted_types"]
        print(json.dumps({{
            "predictions": out.tolist(),
            "imported": sorted(set({WALKED + OTHER_FRAMEWORKS!r}) & set(sys.modules)),
            "stand_in": not hasattr(defaults, "__file__"),
        }}))
        """
    )
    assert loaded["predictions"] == [0, 0]
    assert loaded["imported"] == []
    assert loaded["stand_in"]


def test_whoever_asks_for_skops_while_it_is_imported_gets_all_of_it(artifact: Path) -> None:
    """A server loads its models in threads: one that asks for skops while another is
    importing it waits for the import to finish (it got a half-initialized module, whose
    ``get_untrusted_types`` did not exist yet, and the model failed to load)."""
    seen = _run(
        f"""
        import json, threading, time
        import numpy as np
        import modelport
        from modelport.flavors import sklearn

        imported = threading.Event()
        partial = []

        def ask():  # asks until the import is over, as a second model's load would
            while not imported.is_set():
                if not hasattr(sklearn._skops_io(), "get_untrusted_types"):
                    partial.append(1)
                time.sleep(0.001)

        askers = [threading.Thread(target=ask) for _ in range(3)]
        for thread in askers:
            thread.start()
        try:
            out = modelport.load({str(artifact)!r}).predict(np.zeros((2, 4))).tolist()
        except Exception as error:
            out = repr(error)
        finally:
            imported.set()
        for thread in askers:
            thread.join()
        print(json.dumps({{"partial": len(partial), "out": out}}))
        """
    )
    assert seen == {"partial": 0, "out": [0, 0]}


def test_the_stand_in_trusts_what_skops_trusts() -> None:
    """Every list equals skops's own but the scikit-learn ones, whose every name is on the
    allow-list: what loads is what loaded with skops's own lists (plus the allow-list). The
    ufunc lists are found in one scan of ``sys.modules``: the same names as skops's scans."""
    compared = _run(
        """
        import json, warnings
        import numpy as np
        import scipy.special
        import skops.io._trusted_types as real  # skops's own module: walks scikit-learn
        from skops.io._utils import get_public_type_names
        import modelport.cli, modelport.serving.app  # a server's modules, before scipy's or not
        from modelport.flavors import _pickle_guard, sklearn

        stand_in = sklearn.skops_defaults()
        names = sorted(n for n in vars(real) if n.isupper() and not n.startswith("_"))
        differ, missing, refused = [], [], []
        for name in names:
            try:
                value = getattr(stand_in, name)
            except AttributeError:
                missing.append(name)
                continue
            if name in sklearn.SKOPS_SKLEARN_LISTS:
                differ += [name] if value != [] else []
                refused += _pickle_guard.untrusted_type_names(list(getattr(real, name)))
            elif value != getattr(real, name):
                differ.append(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for module in (scipy.special, np):
                if sklearn._public_type_names(module, np.ufunc) != get_public_type_names(
                    module=module, oftype=np.ufunc
                ):
                    differ.append(module.__name__)
        print(json.dumps({
            "names": names,
            "differ": differ,
            "missing": missing,
            "refused": refused,
            "estimators": len(real.SKLEARN_ESTIMATOR_TYPE_NAMES),
        }))
        """
    )
    assert set(compared["names"]) >= {"NUMPY_DTYPE_TYPE_NAMES", *flavor.SKOPS_SKLEARN_LISTS}
    assert compared["missing"] == []
    assert compared["differ"] == []
    assert compared["refused"] == []  # every estimator and internal type skops trusts
    assert compared["estimators"] > 150


def test_models_holding_internal_types_load_through_the_stand_in(tmp_path: Path) -> None:
    """Losses, links, binning, tree predictors, SGD losses, KD-trees and a DataFrame pipeline:
    scikit-learn types that skops trusted by default now pass by the allow-list."""
    same = _run(
        f"""
        import json, sys
        import numpy as np
        import pandas as pd
        from sklearn.compose import ColumnTransformer
        from sklearn.ensemble import (
            GradientBoostingRegressor, HistGradientBoostingClassifier, RandomForestClassifier,
        )
        from sklearn.linear_model import LogisticRegression, SGDClassifier
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler
        import modelport

        rng = np.random.default_rng(0)
        x = rng.normal(size=(80, 4))
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
        frame = pd.DataFrame({{"a": x[:, 0], "b": x[:, 1],
                              "city": np.array(["p", "l", "n"], dtype=object)[np.arange(80) % 3]}})
        encode = ColumnTransformer([("num", StandardScaler(), ["a", "b"]),
                                    ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])])
        models = {{
            "hist": (HistGradientBoostingClassifier(max_iter=5), x, y),
            "gb": (GradientBoostingRegressor(n_estimators=5), x, x[:, 0]),
            "forest": (RandomForestClassifier(n_estimators=3, random_state=0), x, y),
            "sgd": (SGDClassifier(loss="modified_huber", random_state=0), x, y),
            "knn": (KNeighborsClassifier(algorithm="kd_tree"), x, y),
            "pipeline": (Pipeline([("e", encode), ("m", LogisticRegression())]), frame, y),
        }}
        same = {{}}
        for name, (model, data, target) in models.items():
            model.fit(data, target)
            path = {str(tmp_path)!r} + "/" + name
            modelport.save(model, path, input_example=data[:3])
            loaded = modelport.load(path).predict(data)
            same[name] = bool(np.allclose(loaded, model.predict(data)))
        assert not hasattr(sys.modules["skops.io._trusted_types"], "__file__")
        print(json.dumps(same))
        """
    )
    assert same == dict.fromkeys(["hist", "gb", "forest", "sgd", "knn", "pipeline"], True)
    assert all((tmp_path / name / "model.skops").is_file() for name in same)


def test_a_skops_release_with_other_defaults_gets_its_own(artifact: Path) -> None:
    """If skops's module defines names the stand-in lacks, skops is imported as it is."""
    loaded = _run(
        f"""
        import json, sys
        import numpy as np
        import modelport
        from modelport.flavors import sklearn

        lists = sklearn._skops_default_lists
        sklearn._skops_default_lists = lambda: {{
            k: v for k, v in lists().items() if k != "NUMPY_DTYPE_TYPE_NAMES"
        }}
        out = modelport.load({str(artifact)!r}).predict(np.zeros((2, 4)))
        print(json.dumps({{
            "predictions": out.tolist(),
            "own": hasattr(sys.modules["skops.io._trusted_types"], "__file__"),
        }}))
        """
    )
    assert loaded == {"predictions": [0, 0], "own": True}
