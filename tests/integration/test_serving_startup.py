"""Starting the server and what its log says: a ref that names nothing, or a port in use,
stops it at once with one line and its own exit code; loads are logged, a failing one once;
a client never sees the server's file paths."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelport

from ._cli import cli
from ._server import free_port, serving


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    home = tmp_path / "home"
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        registry.register("churn", model, input_example=x[:2])
        registry.register("churn", model, input_example=x[:2])
        registry.set_alias("churn", "production", 1)
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    return home


def test_a_misspelled_model_stops_the_start_with_a_suggestion(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for ref, message in [
        ("chrun", "error: model 'chrun' not found; did you mean 'churn'?"),
        ("Churn@production", "error: model 'Churn' not found; did you mean 'churn'?"),
        ("churn@prod", "error: model 'churn' has no alias 'prod'"),
        ("churn/9", "error: model 'churn' has no version 9"),
        ("./nowhere", "error: no modelport artifact at nowhere"),
    ]:
        result = cli(capsys, "serve", ref, "--port", str(free_port()))
        assert result.code == 3, (ref, result.err)
        assert result.err.strip() == message, ref


def test_a_port_in_use_is_its_own_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(capsys, "serve", "churn", "--port", str(port))
    assert result.code == 7, result.err
    assert result.err.startswith(
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def _swapped_pickle(folder: Path) -> Path:
    """An artifact folder whose joblib file was swapped for one naming ``os.system``, its
    checksum updated: refused at load with a message naming the file's absolute path."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    options = {"serialization": "joblib"}
    modelport.save(model, folder, input_example=x[:2], flavor_options=options)
    (folder / "model.joblib").write_bytes(
        b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x8c\x06system\x93."
    )
    manifest = json.loads((folder / "modelport.json").read_text())
    manifest["files"]["model.joblib"] = hashlib.sha256(
        (folder / "model.joblib").read_bytes()
    ).hexdigest()
    (folder / "modelport.json").write_text(json.dumps(manifest))
    return folder


def test_loads_are_logged_a_failing_swap_once_and_clients_see_no_paths(
    home: Path, tmp_path: Path
) -> None:
    evil = _swapped_pickle(tmp_path / "deep" / "evil")
    env = {"MODELPORT_SERVING__POLL_INTERVAL_S": "0.2"}
    with serving(home, "churn@production", str(evil), env=env) as server:
        refused = httpx.post(f"{server.url}/v2/models/evil/infer", json={"inputs": []})
        assert refused.status_code == 503
        assert "global 'posix.system' is not allowed" in refused.text
        assert str(tmp_path) not in refused.text, "the server's paths stay in its log"
        assert "'model.joblib'" in refused.text
        assert str(tmp_path) in server.logs()
        assert "model churn: serving version 1" in server.logs()
        # Version 2's file is changed in the store (checksum left as it was): moving the
        # alias makes every poll try and fail to load it.
        with modelport.Registry(modelport.Settings(home=home)) as registry:
            folder = registry.artifact_path("churn/2")
            manifest = json.loads((folder / "modelport.json").read_text())
            target = folder / manifest["flavor_options"]["file"]
            target.write_bytes(target.read_bytes() + b"tampered")
            assert hashlib.sha256(target.read_bytes()).hexdigest() != manifest["files"][target.name]
            registry.set_alias("churn", "production", 2)
        time.sleep(2.0)  # about ten polls
        lines = server.logs().splitlines()
        failures = [line for line in lines if "model churn: " in line and "failed: " in line]
        assert len(failures) == 1, failures
        index = httpx.post(f"{server.url}/v2/repository/index").json()
        assert str(tmp_path) not in json.dumps(index)
        reason = next(m for m in index if m["name"] == "churn")["reason"]
        assert "is corrupted" in reason
        assert str(home) not in reason
        assert "/" not in reason.split("failed: ", 1)[1]
        # still serving version 1 meanwhile
        body = {
            "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [0, 0, 0]}]
        }
        answer = httpx.post(f"{server.url}/v2/models/churn/infer", json=body)
        assert answer.status_code == 200
        assert answer.json()["model_version"] == "1"


def test_gauges_of_a_swapped_out_version_leave_metrics(home: Path) -> None:
    env = {"MODELPORT_SERVING__POLL_INTERVAL_S": "0.2"}
    with serving(home, "churn@production", env=env) as server:
        body = {
            "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [0, 0, 0]}]
        }
        assert httpx.post(f"{server.url}/v2/models/churn/infer", json=body).status_code == 200
        text = httpx.get(f"{server.url}/metrics").text
        assert 'modelport_model_load_seconds{model="churn",version="1"}' in text
        with modelport.Registry(modelport.Settings(home=home)) as registry:
            registry.set_alias("churn", "production", 2)
        deadline = time.monotonic() + 30
        while "serving version 2" not in server.logs():
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.1)
        text = httpx.get(f"{server.url}/metrics").text
        assert 'modelport_model_load_seconds{model="churn",version="2"}' in text
        assert 'modelport_model_load_seconds{model="churn",version="1"}' not in text
        # Counters keep their history: version 1's requests are still counted.
        assert (
            'modelport_requests_total{code="200",model="churn",protocol="v2",version="1"}' in text
        )


def test_an_out_of_range_flag_is_exit_2_naming_the_setting(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(capsys, "serve", "churn", "--workers", "0")
    assert result.code == 2, result.err
    assert result.err == (
        "error: setting serving.workers = 0: must be greater than or equal to 1 "
        "(MODELPORT_SERVING__WORKERS)\n"
    )
