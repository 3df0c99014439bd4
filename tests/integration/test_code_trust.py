"""A pyfunc artifact is code: every way it can be loaded (predict, serve, batch, the Python
API, register, from a folder or a bundle) refuses it unless it is trusted, before any of its
code runs; trust is ``--trust-unsafe`` or a signature by a key the loader trusts. ``unpack``
only verifies, so it runs nothing.

The model's ``load`` writes a marker file: the marker must stay absent whenever the model is
refused, and appears when trust lets it load (which shows trust reached the loader).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

import modelport
from modelport.artifact import signing
from modelport.artifact.bundle import pack
from modelport.batch import score
from modelport.errors import CodeNotTrusted

from ._cli import cli
from ._server import serving
from ._usercode import user_module

MODEL = """
    import pathlib

    from modelport.flavors.pyfunc import PythonModel


    class Model(PythonModel):
        def load(self, context):
            pathlib.Path({marker!r}).write_text("ran")

        def predict(self, inputs):
            return inputs["x"].sum(axis=1)
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """A pyfunc artifact folder, its bundle, and the marker its code writes on load."""
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    marker = tmp_path / "MARKER"
    source = tmp_path / "src"
    source.mkdir()
    module = user_module(source, MODEL.format(marker=str(marker)))
    folder = tmp_path / "art" / "summer"
    modelport.save(module.Model(), folder, input_example={"x": np.ones((2, 2))})
    marker.unlink()  # saving proves the model loads: that ran the code once, in this process
    bundle = pack(folder, tmp_path / "summer.tar")
    return folder, bundle, marker


def _rows(tmp_path: Path) -> Path:
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"x": [[1.0, 2.0]]}))
    return rows


def test_predict_from_a_path_needs_trust(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, bundle, marker = setup
    for source in (folder, bundle):
        result = cli(capsys, "predict", str(source), "--input", str(_rows(tmp_path)))
        assert result.code == 5, result.err
        assert "is pyfunc code" in result.err
        assert "loads only when trusted" in result.err
        assert not marker.exists()
    rows = str(_rows(tmp_path))
    result = cli(capsys, "predict", str(folder), "--input", rows, "--trust-unsafe")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"predictions": [3.0]}
    assert marker.exists()


def test_the_python_api_and_batch_need_trust(
    setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    folder, bundle, marker = setup
    for source in (folder, bundle):
        with pytest.raises(CodeNotTrusted, match="'summer' is pyfunc code"):
            modelport.load(source)
    csv = tmp_path / "rows.csv"
    csv.write_text("x\n1.0\n")
    with pytest.raises(CodeNotTrusted, match="loads only when trusted"):
        score(folder, csv, tmp_path / "scores.parquet")
    assert not (tmp_path / "scores.parquet").exists()
    assert not marker.exists()
    model = modelport.load(bundle, trust_unsafe=True)
    assert model.trusted_by is not None
    assert model.trusted_by.startswith("trust_unsafe=True by ")
    np.testing.assert_array_equal(model.predict({"x": np.ones((1, 2))}), [2.0])
    assert marker.exists()


def test_unpack_verifies_and_runs_nothing(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bundle, marker = setup
    result = cli(capsys, "unpack", str(bundle), str(tmp_path / "out"))
    assert result.code == 0, result.err
    assert "checksums verified; nothing loaded" in result.out
    assert (tmp_path / "out" / "modelport.json").is_file()
    assert not marker.exists()


def test_register_needs_trust_or_a_trusted_signature(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, bundle, marker = setup
    for source in (folder, bundle):
        result = cli(capsys, "register", str(source), "--name", "summer")
        assert result.code == 5, result.err
        assert "loads only when trusted" in result.err
    keys, other = tmp_path / "keys", tmp_path / "other"
    fingerprint = signing.generate_keypair(keys / "signing.pem", keys / "signing.pub")
    signing.generate_keypair(other / "signing.pem", other / "signing.pub")
    signing.sign_artifact(folder, keys / "signing.pem")
    other_key = ("--trusted-key", str(other / "signing.pub"))
    result = cli(capsys, *other_key, "register", str(folder), "--name", "summer")
    assert result.code == 5, "signed, but by a key nobody trusts here"
    signed_bundle = pack(folder, tmp_path / "signed.tar")
    key = ("--trusted-key", str(keys / "signing.pub"))
    result = cli(capsys, *key, "register", str(signed_bundle), "--name", "summer")
    assert result.code == 0, result.err
    assert not marker.exists(), "registering a folder or bundle loads nothing"
    info = json.loads(cli(capsys, "info", "summer").out)
    assert info["trusted_unsafe"]["by"] == f"signature: {fingerprint}"
    model = modelport.load("summer")
    assert model.trusted_by == f"registry: signature: {fingerprint}"
    assert marker.exists()


def test_serve_refuses_a_path_model_that_is_code_unless_trusted(
    setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    folder, _, marker = setup
    home = tmp_path / "home"
    home.mkdir()
    with serving(home, str(folder)) as server:
        index = httpx.post(f"{server.url}/v2/repository/index").json()
        entry = next(m for m in index if m["name"] == "summer")
        assert entry["state"] != "READY", entry
        assert "loads only when trusted" in entry["reason"]
        r = httpx.post(
            f"{server.url}/v2/models/summer/infer",
            json={"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]},
        )
        assert r.status_code == 503, r.text
    assert not marker.exists()
    with serving(home, str(folder), "--trust-unsafe") as server:
        assert httpx.get(f"{server.url}/v2/models/summer/ready").status_code == 200
        assert "trusted (--trust-unsafe by" in server.logs()
    assert marker.exists()
