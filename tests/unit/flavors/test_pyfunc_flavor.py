"""The pyfunc flavor: user classes saved as source plus artifact files, never pickled."""

from __future__ import annotations

import importlib
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError
from modelport.flavors import pyfunc as flavor
from modelport.flavors.pyfunc import PythonModel

SIGNATURE = Signature("tensors", (TensorSpec("x", "float64", (-1, 2)),))

MODEL_SOURCE = """
    import json

    import numpy as np
    import {helper}

    from modelport.flavors.pyfunc import PythonModel


    class ScaleModel(PythonModel):
        def load(self, context):
            with open(context.artifacts["config"]) as f:
                self.factor = json.load(f)["factor"]

        def predict(self, inputs):
            return {helper}.scale(inputs["x"], self.factor).sum(axis=1)


    class NoLoad(PythonModel):
        def predict(self, inputs):
            return {{"doubled": inputs["x"] * 2, "count": np.array([len(inputs["x"])])}}


    class NeedsArgs(PythonModel):
        def __init__(self, factor):
            self.factor = factor

        def predict(self, inputs):
            return inputs["x"]
"""


@pytest.fixture
def user_code(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A user's module and helper module written to a folder on sys.path, with unique names."""
    src = tmp_path / "src"
    src.mkdir()
    suffix = request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    module, helper = f"usermodel_{suffix}", f"userhelper_{suffix}"
    (src / f"{module}.py").write_text(textwrap.dedent(MODEL_SOURCE.format(helper=helper)))
    (src / f"{helper}.py").write_text("def scale(x, factor):\n    return x * factor\n")
    (tmp_path / "config.json").write_text('{"factor": 3}')
    sys.path.insert(0, str(src))
    try:
        yield {
            "module": importlib.import_module(module),
            "helper": src / f"{helper}.py",
            "config": tmp_path / "config.json",
            "src": src,
        }
    finally:
        sys.path.remove(str(src))
        for name in (module, helper):
            sys.modules.pop(name, None)


def _forget_original(code: dict[str, Any]) -> None:
    """Delete the user's files and modules, so load can only use the artifact's copies."""
    shutil.rmtree(code["src"])
    code["config"].unlink()
    for name in [code["module"].__name__, code["helper"].stem]:
        sys.modules.pop(name, None)


def test_round_trip_with_artifact_and_code_path(user_code: dict[str, Any], tmp_path: Path) -> None:
    model = user_code["module"].ScaleModel()
    assert flavor.handles(model)
    out_dir = tmp_path / "artifact"
    out_dir.mkdir()
    options = {
        "artifacts": {"config": str(user_code["config"])},
        "code_paths": [str(user_code["helper"])],
    }
    saved = flavor.save(model, out_dir, options)
    assert saved.options == {
        "module": user_code["module"].__name__,
        "class": "ScaleModel",
        "artifacts": {"config": "artifacts/config/config.json"},
    }
    assert saved.framework == "python"
    _forget_original(user_code)
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = flavor.load(out_dir, saved.options, SIGNATURE).predict({"x": x})
    assert list(out) == ["predictions"]
    np.testing.assert_allclose(out["predictions"], [9.0, 21.0])


def test_dict_outputs_are_kept_by_name(user_code: dict[str, Any], tmp_path: Path) -> None:
    saved = flavor.save(user_code["module"].NoLoad(), tmp_path, {})
    out = flavor.load(tmp_path, saved.options, SIGNATURE).predict({"x": np.ones((3, 2))})
    assert list(out) == ["doubled", "count"]
    np.testing.assert_array_equal(out["count"], [3])


def test_two_versions_of_one_module_load_side_by_side(
    user_code: dict[str, Any], tmp_path: Path
) -> None:
    model = user_code["module"].ScaleModel()
    options = {
        "artifacts": {"config": str(user_code["config"])},
        "code_paths": [str(user_code["helper"])],
    }
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir()
    second.mkdir()
    saved = flavor.save(model, first, options)
    flavor.save(model, second, options)
    (second / "artifacts" / "config" / "config.json").write_text('{"factor": 10}')
    ones = {"x": np.ones((1, 2))}
    assert flavor.load(first, saved.options, SIGNATURE).predict(ones)["predictions"][0] == 6
    assert flavor.load(second, saved.options, SIGNATURE).predict(ones)["predictions"][0] == 20


class MainModel(PythonModel):
    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return inputs["x"]


def test_class_in_main_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MainModel, "__module__", "__main__")
    with pytest.raises(FlavorError, match="move it into a module"):
        flavor.save(MainModel(), tmp_path, {})


def test_class_needing_arguments_is_refused(user_code: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(FlavorError, match="constructible with no arguments"):
        flavor.save(user_code["module"].NeedsArgs(2), tmp_path, {})


def test_missing_artifact_is_refused(user_code: dict[str, Any], tmp_path: Path) -> None:
    options = {"artifacts": {"config": str(tmp_path / "nope.json")}}
    with pytest.raises(FlavorError, match="artifact 'config': no file at"):
        flavor.save(user_code["module"].NoLoad(), tmp_path, options)


def test_bad_artifact_name_is_refused(user_code: dict[str, Any], tmp_path: Path) -> None:
    options = {"artifacts": {"../escape": str(user_code["config"])}}
    with pytest.raises(FlavorError, match="invalid artifact name"):
        flavor.save(user_code["module"].NoLoad(), tmp_path, options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"module": "os; import sys", "class": "X"}, "invalid pyfunc module name"),
        ({"module": "m", "class": "A.B"}, "top level of its module"),
        ({"module": "nowhere", "class": "X"}, "module 'nowhere' is missing"),
        ({"module": "m", "class": "X", "artifacts": {"a": "../../etc/passwd"}}, "points outside"),
    ],
)
def test_load_validates_options(options: dict[str, Any], message: str, tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    with pytest.raises(FlavorError, match=message):
        flavor.load(tmp_path, options, SIGNATURE)


def test_load_refuses_a_class_that_is_not_a_python_model(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "plain.py").write_text("class Thing:\n    pass\n")
    with pytest.raises(FlavorError, match=r"plain\.Thing is not a PythonModel subclass"):
        flavor.load(tmp_path, {"module": "plain", "class": "Thing"}, SIGNATURE)


def test_import_errors_become_flavor_errors(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(FlavorError, match="importing pyfunc module 'broken' failed"):
        flavor.load(tmp_path, {"module": "broken", "class": "X"}, SIGNATURE)


def test_no_files_and_no_signature(tmp_path: Path) -> None:
    assert flavor.FILE_SUFFIXES == ()
    assert flavor.infer_signature(MainModel()) is None
    assert not flavor.handles(object())
    with pytest.raises(FlavorError, match="does not read model files"):
        flavor.read_file(tmp_path / "model.py")
