"""``modelport serve DIR --name NAME`` and ``STORAGE_URI``: an artifact folder served with no
registry entry, as KServe's storage initializer hands a runtime its model (``/mnt/models``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.errors import InvalidInput, InvalidName
from modelport.serving.deployment import KSERVE_MODEL_DIR, command_line_specs, storage_uri_path

from ._cli import cli
from ._server import running_server, serving


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, LogisticRegression, np.ndarray]:
    """An artifact folder saved by ``modelport.save`` (no registry), its model, some rows."""
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int))
    path = tmp_path / "mnt" / "models"
    modelport.save(model, path, input_example=x[:2])
    return path, model, x[:4]


def _infer(url: str, name: str, rows: np.ndarray) -> httpx.Response:
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    return httpx.post(f"{url}/v2/models/{name}/infer", json=body, timeout=30)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/data/models/churn", Path("/data/models/churn")),
        ("file:///data/models/churn", Path("/data/models/churn")),
        ("relative/churn", Path("relative/churn")),
        ("s3://ml-models/prod/churn/3", KSERVE_MODEL_DIR),
        ("gs://bucket/churn", KSERVE_MODEL_DIR),
        ("pvc://models/churn", KSERVE_MODEL_DIR),
        ("https://example.com/churn.tar", KSERVE_MODEL_DIR),
    ],
)
def test_a_storage_uri_names_a_local_folder_or_the_initializers(uri: str, expected: Path) -> None:
    assert storage_uri_path(uri) == expected


def test_name_renames_exactly_one_model() -> None:
    assert [s.served_name for s in command_line_specs(["/m/models"], "churn", None)] == ["churn"]
    assert [s.ref for s in command_line_specs([], "churn", "s3://b/k")] == [str(KSERVE_MODEL_DIR)]
    assert [s.ref for s in command_line_specs(["a"], None, "s3://b/k")] == ["a"]  # refs win
    with pytest.raises(InvalidInput, match="--name names one model; 2 refs were given"):
        command_line_specs(["a", "b"], "churn", None)
    with pytest.raises(InvalidInput, match="STORAGE_URI is empty"):
        command_line_specs([], None, " ")
    with pytest.raises(InvalidName, match="invalid model name 'bad name!'"):
        command_line_specs(["a"], "bad name!", None)[0].served_name  # noqa: B018


def test_two_refs_and_one_name_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = cli(capsys, "serve", str(tmp_path / "a"), str(tmp_path / "b"), "--name", "churn")
    assert done.code == 2
    assert "--name names one model; 2 refs were given" in done.err


def test_a_folder_is_served_under_its_name_without_a_registry_entry(
    tmp_path: Path, folder: tuple[Path, LogisticRegression, np.ndarray]
) -> None:
    path, model, rows = folder
    with serving(tmp_path / "home", str(path), "--name", "churn") as server:
        answer = _infer(server.url, "churn", rows)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == model.predict(rows).tolist()
        assert httpx.get(f"{server.url}/v2/models/models/ready", timeout=10).status_code == 404
    with modelport.Registry(modelport.Settings(home=tmp_path / "home")) as registry:
        assert registry.list_models().items == []  # nothing was registered


@pytest.mark.slow  # a real process, configured only by its environment, as in a pod
def test_storage_uri_serves_the_folder_as_a_kserve_runtime_does(
    tmp_path: Path, folder: tuple[Path, LogisticRegression, np.ndarray]
) -> None:
    path, model, rows = folder
    env = {"STORAGE_URI": f"file://{path}"}
    with running_server(tmp_path, "--name", "churn", env=env) as server:
        ready = httpx.get(f"{server.url}/v2/health/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        answer = _infer(server.url, "churn", rows)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_name"] == "churn"
        assert answer.json()["outputs"][0]["data"] == model.predict(rows).tolist()
