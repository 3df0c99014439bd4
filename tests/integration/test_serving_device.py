"""Where a model runs: the ``device`` setting (``cpu``, ``cuda``, ``cuda:N``) from the load
call, ``modelport serve --device`` and ``deployment.yaml``, and the GPU batching default.

No test needs a GPU (CI has none): these prove the setting reaches the flavor, that a flavor
that cannot honour it refuses with a clear reason instead of running on the CPU, and that a
GPU model gets a batching wait by default. The GPU path itself is measured by
``benchmarks/gpu.py`` on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import onnxruntime
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.config import GPU_BATCH_DELAY_MS, ServingSettings
from modelport.errors import FlavorError, InvalidInput
from modelport.serving.deployment import ModelSpec, load_deployment
from modelport.serving.manager import batch_delay_ms

from ._server import serving

HAS_CUDA_EP = "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An sklearn artifact and its ONNX conversion, saved as folders."""
    root = tmp_path_factory.mktemp("device")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(np.int64))
    modelport.save(model, root / "clf", input_example=x[:3])
    modelport.save(to_onnx(model, x[:1], target_opset=17), root / "graph", input_example=x[:3])
    return root / "clf", root / "graph"


def test_an_unknown_device_is_refused_before_anything_loads(models: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidInput, match=r"unknown device 'gpu'; use cpu, cuda or cuda:N"):
        modelport.load(str(models[0]), device="gpu")


def test_a_cpu_only_flavor_refuses_a_gpu_device(models: tuple[Path, Path]) -> None:
    with pytest.raises(FlavorError, match=r"sklearn flavor runs on the CPU only.*'cuda:1'"):
        modelport.load(str(models[0]), device="cuda:1")
    assert modelport.load(str(models[0]), device="cpu").predict(np.zeros((1, 4))).shape == (1,)


@pytest.mark.skipif(HAS_CUDA_EP, reason="this onnxruntime has the CUDA provider")
def test_onnx_on_cuda_needs_the_cuda_provider(models: tuple[Path, Path]) -> None:
    with pytest.raises(FlavorError, match=r"'cuda' needs onnxruntime-gpu.*CPUExecutionProvider"):
        modelport.load(str(models[1]), device="cuda")


def test_serve_device_reaches_the_model_and_a_refusal_is_its_reason(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    """``--device cuda``: the ONNX model cannot get it here and says why (503), and the
    server keeps serving; a deployment.yaml entry on the CPU overrides the flag."""
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text(f"models:\n  - ref: {models[0]}\n    name: clf\n    device: cpu\n")
    args = ("--config", str(deployment), str(models[1]), "--device", "cuda")
    with serving(tmp_path / "home", *args) as server:
        index = {m["name"]: m for m in httpx.post(f"{server.url}/v2/repository/index").json()}
        body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]}
        answer = httpx.post(f"{server.url}/v2/models/graph/infer", json=body)
        clf = httpx.post(
            f"{server.url}/v2/models/clf/infer",
            json={"inputs": [{**body["inputs"][0], "name": "input"}]},
        )
    assert clf.status_code == 200, clf.text
    if HAS_CUDA_EP:  # pragma: no cover - a GPU machine
        assert answer.status_code == 200
        return
    assert index["graph"]["state"] == "FAILED"
    assert "needs onnxruntime-gpu" in index["graph"]["reason"]
    assert answer.status_code == 503
    assert "needs onnxruntime-gpu" in answer.text


def test_deployment_device_is_validated(tmp_path: Path) -> None:
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text("models:\n  - ref: churn@production\n    device: gpu0\n")
    with pytest.raises(InvalidInput, match=r"models\.0\.device"):
        load_deployment(deployment)


def test_a_gpu_model_batches_with_a_small_wait_unless_one_is_chosen() -> None:
    default = ServingSettings()
    assert batch_delay_ms(ModelSpec(ref="m"), default) == 0.0
    assert batch_delay_ms(ModelSpec(ref="m", device="cuda"), default) == GPU_BATCH_DELAY_MS
    on_gpu = ServingSettings(device="cuda:0")
    assert batch_delay_ms(ModelSpec(ref="m"), on_gpu) == GPU_BATCH_DELAY_MS
    assert batch_delay_ms(ModelSpec(ref="m", device="cpu"), on_gpu) == 0.0
    chosen = ServingSettings(device="cuda", max_batch_delay_ms=0.0)
    assert batch_delay_ms(ModelSpec(ref="m"), chosen) == 0.0
    assert batch_delay_ms(ModelSpec(ref="m", device="cuda", max_batch_delay_ms=5), default) == 5
