"""A server imports what its model's flavor needs: serving a scikit-learn model (skops) imports
neither the other frameworks nor the rest of scikit-learn, nor PyTorch when it is installed;
serving an XGBoost model imports no deep-learning framework either.

The server is ``modelport serve`` run through the CLI's ``main`` in a fresh interpreter, which
answers one prediction, stops itself with SIGTERM and writes the names in ``sys.modules`` on
its way out. A stand-in ``torch`` package first on the path plays an installed PyTorch: it notes
each import in a file and then fails as a broken install would (``ImportError``, which
scikit-learn's module walk skips), so the test needs no PyTorch and still sees an import of it.
A control runs ``import skops.io`` itself (skops's own trust lists, built by the walk) to show
that the names checked are ones the walk imports, the stand-in ``torch`` included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelport

from ._server import free_port

pytestmark = pytest.mark.slow

# Imported by sklearn.utils.all_estimators(), which skops runs unless the flavor stops it;
# LogisticRegression needs none of them.
WALKED = (
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
    "sklearn.datasets",
    "sklearn.feature_extraction.text",
    "pytest",
)
# scikit-learn's array-API wrapper of PyTorch (the walk imports it, and it imports torch; with
# the stand-in torch its import fails, so the control sees torch's marker file instead).
TORCH = ("torch", "sklearn.externals.array_api_compat.torch")
# Frameworks that no tabular model needs (torch has its stand-in, above).
DEEP_LEARNING = ("keras", "tensorflow", "catboost")
OTHER_FLAVORS = (
    "xgboost",
    "lightgbm",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "ray",
    "modelport.flavors.xgboost",
    "modelport.flavors.lightgbm",
    "modelport.flavors.onnx",
    "modelport.flavors.pyfunc",
    *DEEP_LEARNING,
    "modelport.flavors.torch",
    "modelport.flavors.keras",
    "modelport.flavors.tensorflow",
    "modelport.flavors.catboost",
)

STAND_IN_TORCH = """
import os
with open(os.environ["TORCH_IMPORTS"], "a") as marker:
    marker.write("imported\\n")
raise ImportError("stand-in torch: noted, then refused")
"""

SERVER = """
import atexit, json, os, signal, sys, threading, time
import httpx
from modelport.cli import main

out, port, model = sys.argv[1], sys.argv[2], sys.argv[3]
name = os.path.basename(model)
answer = {}
atexit.register(
    lambda: open(out, "w").write(json.dumps({"modules": sorted(sys.modules), "answer": answer}))
)

def ask() -> None:
    # Asks until the server answers; the test's subprocess timeout bounds a server that never
    # does, and a server that fails to start ends the process (this thread is a daemon).
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64",
                        "data": [0.0, 0.0, 0.0, 0.0]}]}
    url = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
    while True:
        try:
            response = httpx.post(url, json=body, timeout=60)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        answer.update(status=response.status_code, body=response.json())
        break
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=ask, daemon=True).start()
main(["serve", model, "--port", port, *sys.argv[4:]])
"""

WALK = """
import json, sys
import skops.io  # skops's own trust lists: sklearn.utils.all_estimators()
print(json.dumps(sorted(sys.modules)))
"""


def _environment(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose ``torch`` is the stand-in, and the file it notes imports in."""
    stand_in = tmp_path / "stand_in" / "torch"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text(STAND_IN_TORCH)
    marker = tmp_path / "torch_imports.txt"
    path = os.pathsep.join(p for p in (str(stand_in.parent), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "TORCH_IMPORTS": str(marker),
        "MODELPORT_HOME": str(tmp_path / "home"),
    }
    return env, marker


def _served_modules(tmp_path: Path, model_dir: Path) -> tuple[set[str], bool]:
    """The modules a real server process holds after answering one request for the model
    at ``model_dir``, and whether it imported (the stand-in) torch."""
    env, torch_imports = _environment(tmp_path)
    out = tmp_path / "server.json"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SERVER), str(out), str(free_port()), str(model_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.is_file(), result.stderr
    seen = json.loads(out.read_text())
    assert seen["answer"]["status"] == 200, (seen["answer"], result.stderr)
    return set(seen["modules"]), torch_imports.exists()


def test_serving_a_skops_model_imports_only_its_flavor(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    model_dir = tmp_path / "lr"
    modelport.save(model, model_dir, input_example=x[:2])
    assert (model_dir / "model.skops").is_file()
    modules, torch_imported = _served_modules(tmp_path, model_dir)
    assert {"sklearn.linear_model", "skops.io", "modelport.flavors.sklearn"} <= modules
    assert sorted(modules & {*WALKED, *TORCH, *OTHER_FLAVORS}) == []
    assert not torch_imported, "the server imported torch"


def test_serving_an_xgboost_model_imports_no_deep_learning_framework(tmp_path: Path) -> None:
    import xgboost

    x = np.random.default_rng(0).normal(size=(60, 4))
    model = xgboost.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1)
    model_dir = tmp_path / "xgb"
    modelport.save(model.fit(x, x[:, 0] > 0), model_dir, input_example=x[:2])
    modules, torch_imported = _served_modules(tmp_path, model_dir)
    assert {"xgboost", "modelport.flavors.xgboost"} <= modules
    others = {*TORCH, *DEEP_LEARNING, "modelport.flavors.torch", "modelport.flavors.keras"}
    assert sorted(modules & others) == []
    assert not torch_imported, "the server imported torch"


def test_the_supervisor_of_workers_imports_no_model_and_no_app(tmp_path: Path) -> None:
    """With ``--workers 2`` the ``serve`` process only starts and watches the workers: it
    never loads a model, nor the app's modules (whose codecs import pandas and pyarrow; it
    held 212 MB where uvicorn's own supervisor of a FastAPI app holds 27 MB)."""
    x = np.random.default_rng(0).normal(size=(60, 4))
    model_dir = tmp_path / "lr"
    modelport.save(LogisticRegression().fit(x, x[:, 0] > 0), model_dir, input_example=x[:2])
    env, _ = _environment(tmp_path)
    out = tmp_path / "supervisor.json"
    port = str(free_port())
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SERVER), str(out), port, str(model_dir),
         "--workers", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert out.is_file(), result.stderr
    seen = json.loads(out.read_text())
    assert seen["answer"]["status"] == 200, (seen["answer"], result.stderr)  # a worker's
    modules = set(seen["modules"])
    assert "uvicorn" in modules
    left_out = {"pandas", "pyarrow", "sklearn", "skops", "modelport.serving.app"}
    assert sorted(modules & left_out) == []


def test_the_names_checked_are_ones_the_walk_imports(tmp_path: Path) -> None:
    """Control: skops's own trust lists import every name in WALKED, and torch."""
    env, torch_imports = _environment(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WALK)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    modules = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert sorted(set(WALKED) - modules) == []
    assert torch_imports.is_file(), "the walk did not reach the stand-in torch"
