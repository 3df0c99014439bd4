"""A model converted with skl2onnx (graph input ``X``) registered with a bare array as its
example: the array maps onto the graph's single input (issue 14, item 8)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

import modelport

from ._cli import cli
from ._server import serving


def test_a_bare_array_example_maps_onto_the_single_graph_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It failed with "the ONNX graph needs input 'X'", while the .onnx file registered."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] - x[:, 2] > 0).astype(np.int64))
    graph = to_onnx(model, x[:1])
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path))
    with modelport.Registry(modelport.Settings(home=tmp_path)) as registry:
        registry.register("converted", graph, input_example=x[:5])
    loaded = modelport.load("converted", settings=modelport.Settings(home=tmp_path))
    assert loaded.signature.input_names == ["X"]
    test = x[:7]
    np.testing.assert_array_equal(loaded.predict(test), model.predict(test))

    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(test.tolist()))
    done = cli(capsys, "predict", "converted", "--input", str(rows))
    assert done.code == 0, done.err
    assert json.loads(done.out)["output_label"] == model.predict(test).tolist()

    with serving(tmp_path, "converted") as server:
        meta = httpx.get(f"{server.url}/v2/models/converted").json()
        assert [i["name"] for i in meta["inputs"]] == ["X"]
        body = {
            "inputs": [
                {"name": "X", "shape": [7, 4], "datatype": "FP32", "data": test.ravel().tolist()}
            ]
        }
        r = httpx.post(f"{server.url}/v2/models/converted/infer", json=body)
        assert r.status_code == 200, r.text
        [label] = [o for o in r.json()["outputs"] if o["name"] == "output_label"]
        assert label["data"] == model.predict(test).tolist()
