"""``modelport export REF --edge DIR``: a folder that runs an ONNX version without modelport,
checked against ``modelport.load(ref).predict`` in a fresh virtual environment."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version as dist_version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.convert import convert
from modelport.edge import export_edge

from ._cli import cli

RNG = np.random.default_rng(3)
X = RNG.normal(size=(200, 4)).astype(np.float32)
Y = (X[:, 0] + X[:, 3] > 0).astype(np.int64)
FRAME = pd.DataFrame(X.astype(np.float64), columns=["tenure", "spend", "visits", "age"])
FILES = {"model.onnx", "signature.json", "predict.py", "README.txt", "SHA256SUMS"}


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[modelport.Registry]:
    """``churn/1`` (scikit-learn on one [N, 4] input) and ``churn/2``, its ONNX conversion;
    ``table/1`` (columns) and ``table/2``."""
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    with modelport.Registry(modelport.Settings(home=tmp_path / "home")) as reg:
        reg.register("churn", LogisticRegression().fit(X, Y), input_example=X[:5])
        convert(reg, "churn/1")
        reg.register("table", LogisticRegression().fit(FRAME, Y), input_example=FRAME.iloc[:5])
        convert(reg, "table/1")
        yield reg


def _predict(
    python: str, bundle: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MODELPORT_"))}
    return subprocess.run(
        [python, str(bundle / "predict.py"), *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        cwd=bundle.parent,
        timeout=120,
        check=False,
    )


def _assert_matches(printed: str, expected: dict[str, np.ndarray]) -> None:
    got = json.loads(printed)
    assert list(got) == list(expected)
    np.testing.assert_array_equal(np.asarray(got["predictions"]), expected["predictions"])
    np.testing.assert_allclose(
        np.asarray(got["probabilities"]), expected["probabilities"], rtol=1e-6, atol=1e-7
    )


def test_bundle_holds_the_graph_its_signature_and_checksums(
    registry: modelport.Registry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "edge"
    target.mkdir()  # an empty folder is taken

    done = cli(capsys, "export", "churn/2", "--edge", str(target))

    assert done.code == 0, done.err
    assert "wrote" in done.out
    assert "(churn/2)" in done.out
    assert {p.name for p in target.iterdir()} == FILES
    loaded = registry.load("churn/2")
    assert (target / "model.onnx").read_bytes() == (loaded.path / "model.onnx").read_bytes()
    signature = json.loads((target / "signature.json").read_text())
    assert (signature["model"], signature["version"]) == ("churn", 2)
    assert signature["inputs"] == [{"name": "input", "dtype": "float32", "shape": [-1, 4]}]
    assert [o["name"] for o in signature["outputs"]] == ["predictions", "probabilities"]
    lines = (target / "SHA256SUMS").read_text().splitlines()
    listed = {name: digest for digest, name in (line.split("  ", 1) for line in lines)}
    assert set(listed) == FILES - {"SHA256SUMS"}
    for name, digest in listed.items():
        assert hashlib.sha256((target / name).read_bytes()).hexdigest() == digest
    assert "pip install numpy onnxruntime==" in (target / "README.txt").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_a_version_of_another_flavor_is_refused_pointing_at_convert(
    registry: modelport.Registry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    done = cli(capsys, "export", "churn/1", "--edge", str(tmp_path / "edge"))

    assert done.code == 2
    assert "churn/1 is a sklearn model" in done.err
    assert "run `modelport convert churn/1 --to onnx` first" in done.err
    assert not (tmp_path / "edge").exists()


def test_a_non_empty_folder_is_refused(
    registry: modelport.Registry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "edge"
    target.mkdir()
    (target / "notes.txt").write_text("mine")

    done = cli(capsys, "export", "churn/2", "--edge", str(target))

    assert done.code == 4
    assert "exists and is not an empty folder" in done.err
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_unknown_ref_is_not_found(
    registry: modelport.Registry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    done = cli(capsys, "export", "nothing/1", "--edge", str(tmp_path / "edge"))
    assert done.code == 3
    assert not (tmp_path / "edge").exists()


@pytest.mark.slow
def test_predict_py_refuses_a_changed_bundle_and_bad_rows(
    registry: modelport.Registry, tmp_path: Path
) -> None:
    bundle = tmp_path / "edge"
    export_edge(registry, "churn/2", bundle)
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(X[:3].tolist()))
    assert _predict(sys.executable, bundle, str(rows)).returncode == 0

    narrow = _predict(sys.executable, bundle, "-", stdin=json.dumps(X[:2, :3].tolist()))
    assert narrow.returncode == 2
    assert "input 'input' has shape [2, 3]; expected [-1, 4]" in narrow.stderr
    text = _predict(sys.executable, bundle, "-", stdin='[["a", "b", "c", "d"]]')
    assert text.returncode == 2
    assert "input 'input' is not float32" in text.stderr

    signature = bundle / "signature.json"
    original = signature.read_bytes()
    signature.write_text(original.decode().replace("-1,", "-1, ", 1))
    changed = _predict(sys.executable, bundle, str(rows))
    assert changed.returncode == 3
    assert "checksum mismatch for signature.json" in changed.stderr
    assert changed.stdout == ""
    signature.write_bytes(original)

    model = bundle / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    tampered = _predict(sys.executable, bundle, str(rows))
    assert tampered.returncode == 3
    assert "checksum mismatch for model.onnx: the bundle was changed; refusing" in tampered.stderr


@pytest.mark.slow
def test_bundle_runs_in_a_fresh_venv_with_only_numpy_and_onnxruntime(
    registry: modelport.Registry, tmp_path: Path
) -> None:
    """A clean venv (its own pip), the exact numpy and onnxruntime of this environment from
    pip's local wheel cache and indexes, and nothing else: modelport cannot be imported there."""
    churn, table = tmp_path / "churn-edge", tmp_path / "table-edge"
    export_edge(registry, "churn/2", churn)
    export_edge(registry, "table/2", table)
    venv = tmp_path / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    pins = [f"numpy=={dist_version('numpy')}", f"onnxruntime=={dist_version('onnxruntime')}"]
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", *pins],
        check=True,
        timeout=600,
    )
    print(f"edge venv ready in {time.monotonic() - started:.1f} s")  # noqa: T201 (measurement)
    bare = subprocess.run([python, "-c", "import modelport"], capture_output=True, check=False)
    assert bare.returncode != 0

    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(X[:25].tolist()))
    expected = registry.load("churn/2").predict_outputs(X[:25])
    from_json = _predict(python, churn, str(rows))
    assert from_json.returncode == 0, from_json.stderr
    _assert_matches(from_json.stdout, expected)
    np.testing.assert_array_equal(
        np.asarray(json.loads(from_json.stdout)["predictions"]),
        registry.load("churn/1").predict(X[:25]),
    )
    array = tmp_path / "rows.npy"
    np.save(array, X[:25].astype(np.float64))  # cast to the signature's float32
    from_npy = _predict(python, churn, str(array))
    assert from_npy.returncode == 0, from_npy.stderr
    _assert_matches(from_npy.stdout, expected)

    records = FRAME.iloc[:25].to_dict(orient="records")
    from_stdin = _predict(python, table, "-", stdin=json.dumps(records))
    assert from_stdin.returncode == 0, from_stdin.stderr
    _assert_matches(from_stdin.stdout, registry.load("table/2").predict_outputs(FRAME.iloc[:25]))
