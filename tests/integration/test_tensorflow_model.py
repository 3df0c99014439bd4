"""A TensorFlow SavedModel folder down the whole user path: register it from the command line
(no example: the signature is the model's own), load it by ref in a fresh process, serve it
over V2, batch-score a file through the CLI; a folder whose graph writes files is refused
unless trusted.

TensorFlow (about 1.5 GB) is in no extra that [dev] installs, so CI skips this module; run
it in a venv made with ``pip install -e '.[dev,tensorflow]'`` (see README, "Formats")."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import numpy as np
import pandas as pd
import pytest

import modelport

from ._cli import cli
from ._fresh import predict_in_fresh_process
from ._server import serving

tf: Any = pytest.importorskip(  # Any: tensorflow is untyped
    "tensorflow", reason="TensorFlow is not installed: pip install -e '.[dev,tensorflow]'"
)
from absl import logging as absl_logging  # noqa: E402  # installed with tensorflow

_F = TypeVar("_F", bound=Callable[..., Any])


def traced(*specs: Any) -> Callable[[_F], _F]:
    """``tf.function`` with this input signature, typed so that mypy keeps the method's own
    type (tf is untyped)."""
    return cast("Callable[[_F], _F]", tf.function(input_signature=list(specs)))


FEATURES = 4


class Dense(tf.Module):  # type: ignore[misc]  # tf.Module is Any to mypy
    """One dense layer and a softmax over three classes, its weights as variables."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = tf.Variable(rng.normal(size=(FEATURES, 3)).astype(np.float32))
        self.b = tf.Variable(np.array([0.1, -0.2, 0.3], dtype=np.float32))

    @traced(tf.TensorSpec([None, FEATURES], tf.float32, name="features"))
    def __call__(self, features: Any) -> Any:
        return {"probabilities": tf.nn.softmax(tf.matmul(features, self.w) + self.b)}


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype(np.float32)


def _own(rows: np.ndarray) -> np.ndarray:
    """What the module itself answers, without modelport."""
    return np.asarray(Dense()(tf.constant(rows))["probabilities"].numpy())


@pytest.fixture
def home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """``tf-model``: a SavedModel folder exported by TensorFlow itself, registered through
    the CLI; MODELPORT_HOME for the commands."""
    exported = tmp_path / "exported"
    tf.saved_model.save(Dense(), str(exported))
    home = tmp_path / "home"
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    done = cli(capsys, "register", str(exported), "--name", "tf-model")
    assert done.code == 0, done.err
    assert "registered tf-model/1 flavor=tensorflow" in done.out
    return home


def test_registered_folder_records_its_source_and_signature(home: Path) -> None:
    loaded = modelport.load("tf-model", settings=modelport.Settings(home=home))
    assert loaded.manifest.flavor == "tensorflow"
    assert loaded.manifest.lineage == {
        "source": "exported",
        "conversion": "SavedModel folder -> tensorflow",
    }
    [spec] = loaded.signature.inputs
    assert (spec.name, spec.dtype, spec.shape) == ("features", "float32", (-1, FEATURES))
    [requirement] = loaded.manifest.requirements
    assert requirement.startswith("tensorflow")
    assert requirement.endswith(f"=={tf.__version__}")


@pytest.mark.slow  # a fresh interpreter imports tensorflow
def test_a_fresh_process_loads_by_ref_and_predicts_as_the_module(home: Path) -> None:
    rows = _rows(9, seed=2)
    answer = predict_in_fresh_process(home, "tf-model", rows)
    assert answer["flavor"] == "tensorflow"
    np.testing.assert_allclose(answer["predictions"], _own(rows), rtol=1e-6)


@pytest.fixture
def absl_on_real_stderr() -> Iterator[None]:
    """uvicorn's logging set-up closes every handler that logging knows of, absl's too (made
    when TensorFlow is imported), and absl's closes its stream unless that is sys.stderr at
    the time: under pytest it is a capture file that pytest still uses. Not so in a real
    ``modelport serve``, whose sys.stderr stays what absl took."""
    handler = absl_logging.get_absl_handler().python_handler
    previous = handler.setStream(sys.__stderr__)
    yield
    handler.setStream(previous)


@pytest.mark.usefixtures("absl_on_real_stderr")
def test_served_over_v2_and_tf_style(home: Path) -> None:
    rows = _rows(7, seed=3)
    with serving(home, "tf-model") as server:
        meta = httpx.get(f"{server.url}/v2/models/tf-model").json()
        assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, FEATURES]}]
        body = {
            "inputs": [
                {"name": "features", "shape": [7, FEATURES], "datatype": "FP32",
                 "data": rows.ravel().tolist()}
            ]
        }  # fmt: skip
        v2 = httpx.post(f"{server.url}/v2/models/tf-model/infer", json=body, timeout=60)
        assert v2.status_code == 200, v2.text
        [output] = v2.json()["outputs"]
        assert (output["name"], output["datatype"], output["shape"]) == (
            "probabilities",
            "FP32",
            [7, 3],
        )
        np.testing.assert_allclose(np.reshape(output["data"], (7, 3)), _own(rows), rtol=1e-6)
        tf_style = httpx.post(
            f"{server.url}/v1/models/tf-model:predict", json={"instances": rows.tolist()}
        )
        assert tf_style.status_code == 200, tf_style.text
        np.testing.assert_allclose(tf_style.json()["predictions"], _own(rows), rtol=1e-6)

        wrong = dict(body, inputs=[dict(body["inputs"][0], shape=[7, 3], data=[0.0] * 21)])
        bad = httpx.post(f"{server.url}/v2/models/tf-model/infer", json=wrong, timeout=60)
        assert bad.status_code in (400, 422), bad.text
        assert "input 'features': expected shape [-1, 4], got [7, 3]" in bad.json()["error"]


def test_batch_scores_a_parquet_file_through_the_cli(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rows(300, seed=4)
    frame = pd.DataFrame(rows, columns=[f"f{i}" for i in range(FEATURES)])
    frame.insert(0, "row_id", np.arange(len(frame)))
    source, sink = tmp_path / "rows.parquet", tmp_path / "scores.parquet"
    frame.to_parquet(source)
    done = cli(capsys, "batch", "tf-model", str(source), str(sink), "--id-column", "row_id",
               "--chunk-rows", "128")  # fmt: skip
    assert done.code == 0, done.err
    out = pd.read_parquet(sink)
    assert out["row_id"].tolist() == frame["row_id"].tolist()
    scores = out.drop(columns="row_id").to_numpy()
    np.testing.assert_allclose(scores, _own(rows), rtol=1e-6)


class WritesFile(tf.Module):  # type: ignore[misc]
    """Appends nothing to the answer, but writes the request to a file: a graph op."""

    def __init__(self, target: Path) -> None:
        super().__init__()
        self.target = str(target)

    @traced(tf.TensorSpec([None], tf.float32, name="x"))
    def __call__(self, x: Any) -> Any:
        tf.io.write_file(self.target, tf.strings.as_string(tf.reduce_sum(x)))
        return x * 2.0


def test_a_folder_whose_graph_writes_files_registers_only_when_trusted(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "written.txt"
    exported = tmp_path / "writes"
    tf.saved_model.save(WritesFile(target), str(exported))
    refused = cli(capsys, "register", str(exported), "--name", "writer")
    assert refused.code != 0
    assert "(WriteFile)" in refused.err
    assert "--trust-unsafe" in refused.err
    trusted = cli(capsys, "register", str(exported), "--name", "writer", "--trust-unsafe")
    assert trusted.code == 0, trusted.err
    assert not target.exists()  # registering ran nothing of the graph
    loaded = modelport.load("writer", settings=modelport.Settings(home=home))
    np.testing.assert_allclose(loaded.predict(np.array([1.0, 2.0], dtype=np.float32)), [2.0, 4.0])
    assert target.read_text() == "3.000000"  # the trusted graph did run its op
