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
from modelport.errors import ArtifactCorrupted, CodeNotTrusted, FlavorError
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
    out = flavor.load(out_dir, saved.options, SIGNATURE, trust_unsafe=True).predict({"x": x})
    assert list(out) == ["predictions"]
    np.testing.assert_allclose(out["predictions"], [9.0, 21.0])


def test_dict_outputs_are_kept_by_name(user_code: dict[str, Any], tmp_path: Path) -> None:
    saved = flavor.save(user_code["module"].NoLoad(), tmp_path, {})
    out = flavor.load(tmp_path, saved.options, SIGNATURE, trust_unsafe=True).predict(
        {"x": np.ones((3, 2))}
    )
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
    assert (
        flavor.load(first, saved.options, SIGNATURE, trust_unsafe=True).predict(ones)[
            "predictions"
        ][0]
        == 6
    )
    assert (
        flavor.load(second, saved.options, SIGNATURE, trust_unsafe=True).predict(ones)[
            "predictions"
        ][0]
        == 20
    )


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
        flavor.load(tmp_path, options, SIGNATURE, trust_unsafe=True)


def test_load_refuses_a_class_that_is_not_a_python_model(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "plain.py").write_text("class Thing:\n    pass\n")
    with pytest.raises(FlavorError, match=r"plain\.Thing is not a PythonModel subclass"):
        flavor.load(tmp_path, {"module": "plain", "class": "Thing"}, SIGNATURE, trust_unsafe=True)


def test_import_errors_become_flavor_errors(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(FlavorError, match="importing pyfunc module 'broken' failed"):
        flavor.load(tmp_path, {"module": "broken", "class": "X"}, SIGNATURE, trust_unsafe=True)


def test_no_files_and_no_signature(tmp_path: Path) -> None:
    assert flavor.FILE_SUFFIXES == ()
    assert flavor.infer_signature(MainModel()) is None
    assert not flavor.handles(object())
    with pytest.raises(FlavorError, match="does not read model files"):
        flavor.read_file(tmp_path / "model.py")


# -- what runs is what was checksummed, and only when trusted -------------------------------

TRAP = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"
CLEAN_MODEL = """
from modelport.flavors.pyfunc import PythonModel
{imports}


class Model(PythonModel):
    def predict(self, inputs):
        return inputs["x"].sum(axis=1)
"""


def _code_artifact(folder: Path, files: dict[str, str | bytes]) -> dict[str, str]:
    """An artifact folder whose code/ holds ``files``, saved for the class ``model.Model``;
    returns its options."""
    code = folder / "code"
    for rel, content in files.items():
        target = code / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return {"module": "model", "class": "Model"}


def test_loading_without_trust_is_refused_before_any_code_runs(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    options = _code_artifact(
        tmp_path / "art",
        {"model.py": TRAP.format(marker=str(marker)) + CLEAN_MODEL.format(imports="")},
    )
    with pytest.raises(CodeNotTrusted, match="loads only when trusted"):
        flavor.load(tmp_path / "art", options, SIGNATURE)
    assert not marker.exists()


def test_a_sibling_present_only_as_pyc_is_never_imported(tmp_path: Path) -> None:
    """``import helper`` where only ``helper.pyc`` exists: Python's own importer would run the
    bytecode; the artifact importer reads ``.py`` sources only."""
    marker = tmp_path / "MARKER"
    helper = compile(TRAP.format(marker=str(marker)), "helper.py", "exec")
    import importlib.util
    import marshal

    pyc = importlib.util.MAGIC_NUMBER + b"\0" * 12 + marshal.dumps(helper)
    options = _code_artifact(
        tmp_path / "art",
        {"model.py": CLEAN_MODEL.format(imports="import helper"), "helper.pyc": pyc},
    )
    with pytest.raises(FlavorError, match="No module named 'helper'"):
        flavor.load(tmp_path / "art", options, SIGNATURE, trust_unsafe=True)
    assert not marker.exists()


def test_a_planted_pycache_file_is_ignored_and_the_checked_source_runs(tmp_path: Path) -> None:
    """A ``__pycache__`` entry compiled from other source, with the source's size and mtime
    (what Python's cache check compares): the artifact importer compiles the source."""
    marker = tmp_path / "MARKER"
    art = tmp_path / "art"
    options = _code_artifact(art, {"model.py": CLEAN_MODEL.format(imports="")})
    source = art / "code" / "model.py"
    evil = compile(TRAP.format(marker=str(marker)) + CLEAN_MODEL.format(imports=""), "m", "exec")
    import importlib.util
    import marshal
    import struct

    stat = source.stat()
    header = importlib.util.MAGIC_NUMBER + struct.pack("<III", 0, int(stat.st_mtime), stat.st_size)
    cache = Path(importlib.util.cache_from_source(str(source)))
    cache.parent.mkdir()
    cache.write_bytes(header + marshal.dumps(evil))
    predictor = flavor.load(art, options, SIGNATURE, trust_unsafe=True)
    np.testing.assert_array_equal(predictor.predict({"x": np.ones((2, 2))})["predictions"], [2, 2])
    assert not marker.exists()


def test_a_source_declaring_another_encoding_is_refused(tmp_path: Path) -> None:
    """UTF-7 can hide code from a UTF-8 reader (``+AAo-`` is a newline to Python)."""
    hidden = b"# coding: utf-7\nx = 1 #+AAo-import os+ADs- os.system('true')\n"
    options = _code_artifact(
        tmp_path / "art", {"model.py": hidden + CLEAN_MODEL.format(imports="").encode()}
    )
    with pytest.raises(FlavorError, match="declares the encoding 'utf-7'; use UTF-8"):
        flavor.load(tmp_path / "art", options, SIGNATURE, trust_unsafe=True)
    found = flavor.find_unsafe(tmp_path / "art", options)
    assert ("code/model.py", "line 1 declares the encoding 'utf-7'; use UTF-8") in found


def test_sources_are_compiled_only_if_they_match_the_manifest(tmp_path: Path) -> None:
    import hashlib

    art = tmp_path / "art"
    options = _code_artifact(art, {"model.py": CLEAN_MODEL.format(imports="")})
    data = (art / "code" / "model.py").read_bytes()
    good = {"code/model.py": hashlib.sha256(data).hexdigest()}
    flavor.load(art, options, SIGNATURE, trust_unsafe=True, checksums=good)
    (art / "code" / "model.py").write_bytes(data + b"\nimport os\n")
    with pytest.raises(ArtifactCorrupted, match=r"code/model\.py"):
        flavor.load(art, options, SIGNATURE, trust_unsafe=True, checksums=good)


def test_compiled_files_are_never_saved(user_code: dict[str, Any], tmp_path: Path) -> None:
    pycache = user_code["src"] / "__pycache__"
    pycache.mkdir(exist_ok=True)
    (pycache / "stray.cpython-311.pyc").write_bytes(b"junk")
    (user_code["src"] / "stray.pyc").write_bytes(b"junk")
    data = tmp_path / "data"
    (data / "__pycache__").mkdir(parents=True)
    (data / "__pycache__" / "x.pyc").write_bytes(b"junk")
    (data / "weights.txt").write_text("1")
    options = {"code_paths": [str(user_code["src"])], "artifacts": {"data": str(data)}}
    out = tmp_path / "out"
    out.mkdir()
    flavor.save(user_code["module"].NoLoad(), out, options)
    saved = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert not [p for p in saved if p.endswith(".pyc") or "__pycache__" in p], saved
    assert "artifacts/data/weights.txt" in saved


def test_the_artifacts_own_modules_win_over_same_named_files_on_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``import helpers`` in a saved model means the saved ``helpers.py``: a file of that
    name first on ``sys.path`` (the working directory, say) must not run instead."""
    marker = tmp_path / "MARKER"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "pkg").mkdir(parents=True)
    trap = TRAP.format(marker=str(marker)) + "def scale(x):\n    return x * 100\n"
    (elsewhere / "helpers.py").write_text(trap)
    (elsewhere / "pkg" / "__init__.py").write_text("")
    (elsewhere / "pkg" / "extra.py").write_text(trap)
    monkeypatch.syspath_prepend(str(elsewhere))
    model = """
import json
import helpers
from helpers import scale
from pkg.extra import scale as scale2
from modelport.flavors.pyfunc import PythonModel


class Model(PythonModel):
    def predict(self, inputs):
        assert json.loads("1") == 1  # a stdlib name still means the stdlib
        x = inputs["x"].sum(axis=1)
        return helpers.scale(x) + scale(x) + scale2(x)
"""
    options = _code_artifact(
        tmp_path / "art",
        {
            "model.py": model,
            "helpers.py": "def scale(x):\n    return x\n",
            "pkg/__init__.py": "",
            "pkg/extra.py": "def scale(x):\n    return x\n",
        },
    )
    predictor = flavor.load(tmp_path / "art", options, SIGNATURE, trust_unsafe=True)
    out = predictor.predict({"x": np.ones((2, 2))})["predictions"]
    np.testing.assert_array_equal(out, [6.0, 6.0])
    assert not marker.exists()
    assert "helpers" not in sys.modules
