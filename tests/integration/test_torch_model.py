"""One PyTorch model down the whole user path: register with an example, load by ref in a
fresh process, serve it over V2 and TF-Serving routes, batch-score a file through the CLI,
and register a ``.pt2`` file from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import modelport

from ._cli import cli
from ._fresh import predict_in_fresh_process
from ._server import serving

FEATURES = 6


def _module() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU(), nn.Linear(8, 2)).eval()


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype(np.float32)


def _own(module: nn.Module, rows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(rows)).numpy())


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``mlp``: a 2-layer MLP registered with a five-row example; MODELPORT_HOME for the CLI."""
    with modelport.Registry(modelport.Settings(home=tmp_path)) as registry:
        version = registry.register("mlp", _module(), input_example=_rows(5, seed=1))
    assert (version.flavor, version.status) == ("torch", "ready")
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path))
    return tmp_path


@pytest.mark.slow  # a fresh interpreter imports torch
def test_a_fresh_process_loads_by_ref_and_predicts_as_the_module(home: Path) -> None:
    rows = _rows(9, seed=2)
    answer = predict_in_fresh_process(home, "mlp", rows)
    assert answer["flavor"] == "torch"
    np.testing.assert_allclose(answer["predictions"], _own(_module(), rows), rtol=1e-6, atol=1e-7)


def test_served_over_v2_and_tf_serving_routes(home: Path) -> None:
    rows = _rows(7, seed=3)
    expected = _own(_module(), rows)
    with serving(home, "mlp") as server:
        meta = httpx.get(f"{server.url}/v2/models/mlp").json()
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, FEATURES]}]
        body = {
            "inputs": [
                {"name": "input", "shape": [7, FEATURES], "datatype": "FP32",
                 "data": rows.ravel().tolist()}
            ]
        }  # fmt: skip
        v2 = httpx.post(f"{server.url}/v2/models/mlp/infer", json=body, timeout=60)
        assert v2.status_code == 200, v2.text
        [output] = v2.json()["outputs"]
        assert (output["name"], output["datatype"], output["shape"]) == (
            "predictions",
            "FP32",
            [7, 2],
        )
        np.testing.assert_allclose(np.reshape(output["data"], (7, 2)), expected, rtol=1e-6)

        tf = httpx.post(
            f"{server.url}/v1/models/mlp:predict", json={"instances": rows.tolist()}, timeout=60
        )
        assert tf.status_code == 200, tf.text
        np.testing.assert_allclose(tf.json()["predictions"], expected, rtol=1e-6)

        wrong = dict(body, inputs=[dict(body["inputs"][0], shape=[7, 3], data=[0.0] * 21)])
        bad = httpx.post(f"{server.url}/v2/models/mlp/infer", json=wrong, timeout=60)
        assert bad.status_code in (400, 422), bad.text
        assert "input 'input': expected shape [-1, 6], got [7, 3]" in bad.json()["error"]
        bad_tf = httpx.post(
            f"{server.url}/v1/models/mlp:predict", json={"instances": [[1.0, 2.0]]}, timeout=60
        )
        assert bad_tf.status_code in (400, 422), bad_tf.text
        assert "expected shape [-1, 6], got [1, 2]" in bad_tf.json()["error"]


def test_batch_scores_a_parquet_file_through_the_cli(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rows(500, seed=4)
    frame = pd.DataFrame(rows, columns=[f"f{i}" for i in range(FEATURES)])
    frame.insert(0, "row_id", np.arange(len(frame)))
    source, sink = tmp_path / "rows.parquet", tmp_path / "scores.parquet"
    frame.to_parquet(source)
    done = cli(capsys, "batch", "mlp", str(source), str(sink), "--id-column", "row_id",
               "--chunk-rows", "128")  # fmt: skip
    assert done.code == 0, done.err
    out = pd.read_parquet(sink)
    assert out["row_id"].tolist() == frame["row_id"].tolist()
    scores = out.drop(columns="row_id").to_numpy()
    np.testing.assert_allclose(scores, _own(_module(), rows), rtol=1e-6)


def test_register_a_pt2_file_from_the_command_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _module()
    batch = torch.export.Dim("batch")
    program = torch.export.export(module, (torch.randn(3, FEATURES),), dynamic_shapes=({0: batch},))
    file = tmp_path / "model.pt2"
    torch.export.save(program, file)
    done = cli(capsys, "register", str(file), "--name", "fromfile")
    assert done.code == 0, done.err
    assert "registered fromfile/1 flavor=torch" in done.out
    loaded = modelport.load("fromfile", settings=modelport.Settings(home=home))
    rows = _rows(4, seed=5)
    np.testing.assert_allclose(loaded.predict(rows), _own(module, rows), rtol=1e-6)


def test_registering_a_state_dict_file_from_the_command_line_points_at_pyfunc(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save(_module().state_dict(), tmp_path / "weights.pt")
    done = cli(capsys, "register", str(tmp_path / "weights.pt"), "--name", "weights")
    assert done.code != 0
    assert "a PyTorch state_dict" in done.err
    assert "docs/pyfunc.md" in done.err


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # torch 2.13's, on purpose
def test_a_torchscript_file_registers_only_when_trusted(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _module()
    file = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(module), file)
    example = tmp_path / "example.json"
    example.write_text(json.dumps(_rows(3, seed=6).astype(np.float64).tolist()))
    refused = cli(capsys, "register", str(file), "--name", "ts", "--example", str(example))
    assert refused.code != 0
    assert "'scripted.pt': TorchScript is a program that runs when loaded" in refused.err
    assert refused.err.count("trust_unsafe=True") == 1, refused.err
    done = cli(capsys, "register", str(file), "--name", "ts", "--example", str(example),
               "--trust-unsafe")  # fmt: skip
    assert done.code == 0, done.err
    assert "flavor=torch (trusted by " in done.out  # ts/2: the refused try left ts/1 failed
    loaded = modelport.load("ts", settings=modelport.Settings(home=home))
    assert loaded.trusted_by is not None
    rows = _rows(4, seed=7).astype(np.float64)  # the example's dtype; the module's is float32
    np.testing.assert_allclose(
        loaded.predict(rows), _own(module, rows.astype(np.float32)), rtol=1e-6
    )
