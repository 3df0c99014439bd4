"""The scipy pickle that ran code at ``modelport register`` (a distribution object whose
``__setstate__`` executes a string from the file) is refused, naming the global, through every
way a file reaches the loader: ``register x.pkl``, ``x.joblib``, a ``.tar`` bundle, the Python
API, and a skops artifact folder. Its payload never runs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.artifact.bundle import pack
from modelport.errors import UnsafeArtifact
from modelport.flavors import sklearn as sklearn_flavor
from modelport.registry import Registry
from tests.integration._cli import cli
from tests.unit.flavors.test_pickle_crafted import SCIPY, _code, _skops_file, newobj_build

GLOBAL = r"scipy\.stats\._continuous_distns\.norm_gen"


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path / "MARKER"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _exploit(marker: Path) -> bytes:
    return newobj_build(*SCIPY, {"_parse_arg_template": _code(marker), "shapes": None})


def _artifact_with(model_file: Path, folder: Path, serialization: str) -> Path:
    """A real artifact folder whose model file was swapped for ``model_file``, checksum
    updated to match (a folder carries no signature: whoever writes it can do this)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 2))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    options = {"serialization": serialization}
    modelport.save(model, folder, input_example=x[:2], flavor_options=options)
    manifest = json.loads((folder / "modelport.json").read_text())
    target = folder / manifest["flavor_options"]["file"]
    shutil.copyfile(model_file, target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    manifest["files"][target.name] = digest
    (folder / "modelport.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_register_a_crafted_model_file_is_refused(
    suffix: str, marker: Path, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / f"x{suffix}"
    file.write_bytes(_exploit(marker))
    result = cli(capsys, "register", str(file), "--name", "x")
    assert result.code == 5, result.err
    assert "is not allowed" in result.err
    assert "scipy.stats._continuous_distns.norm_gen" in result.err
    assert not marker.exists()


@pytest.mark.parametrize("serialization", ["pickle", "joblib"])
def test_register_a_bundle_holding_a_crafted_pickle_is_refused(
    serialization: str,
    marker: Path,
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    crafted = tmp_path / "crafted.bin"
    crafted.write_bytes(_exploit(marker))
    folder = _artifact_with(crafted, tmp_path / "sent" / "x", serialization)
    bundle = pack(folder, tmp_path / "x.tar")
    for source in (folder, bundle):
        result = cli(capsys, "register", str(source), "--name", "x")
        assert result.code == 5, result.err
        assert "scipy.stats._continuous_distns.norm_gen" in result.err
    assert not marker.exists()


def test_register_a_skops_artifact_holding_the_scipy_type_is_refused(
    marker: Path, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """This registration used to exit 0: the skops type check took any scipy class."""
    crafted = _skops_file(
        tmp_path / "crafted.skops", *SCIPY, {"_parse_arg_template": _code(marker), "shapes": ""}
    )
    folder = _artifact_with(crafted, tmp_path / "sent" / "x", "skops")
    result = cli(capsys, "register", str(folder), "--name", "x")
    assert result.code == 5, result.err
    assert "scipy.stats._continuous_distns.norm_gen" in result.err
    result = cli(capsys, "predict", str(folder), "--input", str(_rows(tmp_path)))
    assert result.code == 5, result.err
    assert not marker.exists()


def _rows(tmp_path: Path) -> Path:
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([[0.0, 1.0]]))
    return rows


@pytest.mark.parametrize(
    "read",
    [
        lambda path: sklearn_flavor.read_file(path),
        lambda path: Registry(
            registry_uri=f"sqlite:///{path.parent / 'r.db'}", artifact_uri=str(path.parent / "a")
        ).register("x", path),
    ],
    ids=["read_file", "Registry.register"],
)
def test_the_python_api_refuses_it(
    read: Callable[[Path], object], marker: Path, tmp_path: Path
) -> None:
    file = tmp_path / "x.pkl"
    file.write_bytes(_exploit(marker))
    with pytest.raises(UnsafeArtifact, match=GLOBAL):
        read(file)
    assert not marker.exists()
