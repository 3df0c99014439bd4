"""The CLI end to end, as a user runs it: real subprocesses, real files, checked exit codes."""

from __future__ import annotations

import copy
import getpass
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import modelport

pytestmark = pytest.mark.slow


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("modelport")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    env["MODELPORT_HOME"] = str(home)
    env["COLUMNS"] = "200"
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (frame["a"] > frame["b"]).astype(int)
    return LogisticRegression().fit(frame, y), frame


def test_full_workflow(trained: tuple[LogisticRegression, pd.DataFrame], tmp_path: Path) -> None:
    model, frame = trained
    home = tmp_path / "home"
    art = tmp_path / "art" / "churn"
    modelport.save(model, art, input_example=frame.head(5))

    r = run(home, "register", str(art), "--name", "churn", "--metric", "auc=0.91")
    assert r.returncode == 0, r.stderr
    assert "registered churn/1 flavor=sklearn" in r.stdout

    pkl = tmp_path / "model.joblib"
    joblib.dump(model, pkl)
    r = run(home, "register", str(pkl), "--name", "churn", "--alias", "staging")
    assert r.returncode == 0, r.stderr
    assert "registered churn/2 flavor=sklearn (alias staging)" in r.stdout

    bundle = tmp_path / "churn.tar"
    r = run(home, "pack", "churn/1", str(bundle))
    assert r.returncode == 0, r.stderr
    r = run(home, "register", str(bundle), "--name", "churn")
    assert "registered churn/3" in r.stdout, r.stderr

    assert run(home, "alias", "set", "churn", "production", "1").returncode == 0
    assert run(home, "alias", "set", "churn", "production", "3").returncode == 0

    r = run(home, "models", "--json")
    listed = json.loads(r.stdout)
    assert listed[0]["name"] == "churn"
    assert listed[0]["latest_version"] == 3
    assert listed[0]["aliases"] == {"production": 3, "staging": 2}

    r = run(home, "versions", "churn", "--json")
    rows = json.loads(r.stdout)
    assert [v["version"] for v in rows] == [3, 2, 1]
    assert all(v["status"] == "ready" for v in rows)
    assert rows[2]["metrics"] == {"auc": 0.91}

    r = run(home, "alias", "history", "churn", "production", "--json")
    history = [(c["previous_version"], c["version"]) for c in json.loads(r.stdout)]
    assert history == [(1, 3), (None, 1)]
    r = run(home, "alias", "history", "churn", "production")
    assert "changed" in r.stdout

    r = run(home, "info", "churn@production")
    info = json.loads(r.stdout)
    assert info["flavor"] == "sklearn"
    assert [i["name"] for i in info["signature"]["inputs"]] == ["a", "b"]

    rows_csv = tmp_path / "rows.csv"
    frame.head(4).to_csv(rows_csv, index=False)
    r = run(home, "predict", "churn@production", "--input", str(rows_csv))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["predictions"] == model.predict(frame.head(4)).tolist()
    np.testing.assert_allclose(got["probabilities"], model.predict_proba(frame.head(4)))

    rows_json = tmp_path / "rows.json"
    rows_json.write_text(json.dumps(frame.head(2).to_dict(orient="records")))
    r = run(home, "predict", "churn/2", "--input", str(rows_json))
    assert json.loads(r.stdout)["predictions"] == model.predict(frame.head(2)).tolist()

    r = run(home, "delete", "churn/3")
    assert r.returncode == 4
    assert "version 3 is still the target of alias 'production'" in r.stderr

    r = run(home, "delete", "churn/1")
    assert r.returncode == 0, r.stderr
    r = run(home, "predict", "churn/1", "--input", str(rows_csv))
    assert r.returncode == 3
    assert "model 'churn' has no version 1" in r.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("info", "nope"), 3, "model 'nope' not found"),
        (("info", "churn/0"), 2, "version '0' must be a positive integer"),
        (("info", "churn/x"), 3, "no modelport artifact at churn/x"),  # folders: a path
        (("alias", "set", "churn", "prod", "9"), 3, "model 'churn' has no version 9"),
        (("register", "/does/not/exist.onnx", "--name", "x"), 3, "no modelport artifact at"),
        (("register", "{art}", "--name", "../evil"), 2, "invalid model name '../evil'"),
        (
            ("predict", "churn/1", "--input", "{bad_rows}"),
            2,
            "input 'b': expected float64, got str",
        ),
        (("predict", "churn/1", "--input", "{missing_rows}"), 2, "missing input 'b'"),
        (("register", "{art}", "--name", "y", "--metric", "auc"), 2, "must look like key=value"),
    ],
)
def test_errors_are_one_line_with_exit_codes(
    trained: tuple[LogisticRegression, pd.DataFrame],
    tmp_path: Path,
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    model, frame = trained
    home = tmp_path / "home"
    art = tmp_path / "churn"
    modelport.save(model, art, input_example=frame.head(5))
    assert run(home, "register", str(art), "--name", "churn").returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"a": 1.0, "b": "high"}]))
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"a": [1.0]}))
    filled = [a.format(art=art, bad_rows=bad, missing_rows=missing) for a in args]
    r = run(home, *filled)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ")
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_tampered_artifact_exit_code(
    trained: tuple[LogisticRegression, pd.DataFrame], tmp_path: Path
) -> None:
    model, frame = trained
    home = tmp_path / "home"
    art = tmp_path / "churn"
    modelport.save(model, art, input_example=frame.head(5))
    assert run(home, "register", str(art), "--name", "churn").returncode == 0
    registry = modelport.Registry(modelport.Settings(home=home))
    try:
        folder = registry.artifact_path("churn/1")
    finally:
        registry.close()
    victim = folder / "model.skops"
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes() + b"x")
    r = run(home, "info", "churn/1")
    assert r.returncode == 0, "info reads only the manifest"
    rows = tmp_path / "rows.csv"
    frame.head(1).to_csv(rows, index=False)
    r = run(home, "predict", "churn/1", "--input", str(rows))
    assert r.returncode == 5
    assert f"artifact file '{victim.name}' is corrupted" in r.stderr


def test_help_explains_every_command(tmp_path: Path) -> None:
    r = run(tmp_path, "--help")
    assert r.returncode == 0
    for command in ("register", "models", "versions", "alias", "info", "predict", "delete", "pack"):
        assert command in r.stdout
    r = run(tmp_path, "alias", "--help")
    assert "history" in r.stdout
    r = run(tmp_path, "register", "--help")
    assert ".onnx" in r.stdout


def test_api_keys_end_to_end(
    trained: tuple[LogisticRegression, pd.DataFrame], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    r = run(home, "keys", "create", "--name", "ci", "--scope", "predict", "--model", "churn")
    assert r.returncode == 3, "a key for a model that is not registered is refused"
    assert "model 'churn' not found" in r.stderr
    assert r.stdout == ""
    joblib.dump(trained[0], tmp_path / "model.joblib")
    assert run(home, "register", str(tmp_path / "model.joblib"), "--name", "churn").returncode == 0
    r = run(home, "keys", "create", "--name", "ci", "--scope", "predict", "--model", "churn")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert re.fullmatch(r"mp_[0-9a-f]{16}_[0-9a-f]{64}", token), r.stdout
    assert r.stderr.startswith("warning: ")
    assert r.stderr.count("\n") == 1
    assert "will not be shown again" in r.stderr
    assert token not in r.stderr
    secret = token.rsplit("_", 1)[1]
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        key = registry.authenticate(token)
    assert (key.name, key.scope, key.model) == ("ci", "predict", "churn")

    r = run(home, "keys", "create", "--name", "ci", "--scope", "read")
    assert r.returncode == 4
    assert "an API key named 'ci' already exists" in r.stderr
    r = run(home, "keys", "create", "--name", "x", "--scope", "write")
    assert r.returncode == 2, "typer refuses an unknown scope"
    ops = ("keys", "create", "--name", "ops", "--scope", "admin")
    r = run(home, *ops, "--rate-limit", "0")
    assert r.returncode == 2
    assert "rate limit must be a positive number per second, got 0.0" in r.stderr
    assert run(home, *ops, "--rate-limit", "2.5").returncode == 0

    r = run(home, "keys", "list", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert [(k["name"], k["scope"], k["model"]) for k in listed] == [
        ("ci", "predict", "churn"),
        ("ops", "admin", None),
    ]
    assert listed[0]["key_id"] == key.key_id
    assert listed[0]["revoked_at"] is None
    assert [k["rate_limit"] for k in listed] == [None, 2.5]
    r = run(home, "keys", "list")
    assert "ci" in r.stdout
    assert "2.5/s" in r.stdout
    assert key.key_id in r.stdout
    for shown in (json.dumps(listed), r.stdout):
        assert secret not in shown

    r = run(home, "keys", "revoke", "ci")
    assert r.returncode == 0, r.stderr
    assert f"revoked key 'ci' (id {key.key_id})" in r.stdout
    with (
        modelport.Registry(modelport.Settings(home=home)) as registry,
        pytest.raises(modelport.errors.Unauthenticated, match="invalid or revoked API key"),
    ):
        registry.authenticate(token)
    revoked = json.loads(run(home, "keys", "list", "--json").stdout)
    assert revoked[0]["revoked_at"] is not None
    assert revoked[1]["revoked_at"] is None

    r = run(home, "keys", "revoke", "nope")
    assert r.returncode == 3
    assert r.stderr == "error: no API key named 'nope'\n"
    r = run(home, "keys", "--help")
    assert all(command in r.stdout for command in ("create", "list", "revoke"))


class _Payload:
    """Unpickling this runs ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return os.system, (self.command,)


def test_register_trust_unsafe_and_info(
    trained: tuple[LogisticRegression, pd.DataFrame], tmp_path: Path
) -> None:
    model, frame = trained
    home = tmp_path / "home"
    marker = tmp_path / "MARKER"
    trapped = copy.deepcopy(model)
    trapped.hook_ = _Payload(f"touch {marker}")
    evil = tmp_path / "evil.pkl"
    joblib.dump(trapped, evil)
    system = f"{os.system.__module__}.system"

    r = run(home, "register", str(evil), "--name", "evil")
    assert r.returncode == 5, (r.stdout, r.stderr)
    assert f"global '{system}' is not allowed" in r.stderr
    assert "--trust-unsafe" in r.stderr
    assert "Traceback" not in r.stderr
    assert not marker.exists()

    r = run(home, "register", str(evil), "--name", "evil", "--trust-unsafe")
    assert r.returncode == 0, r.stderr
    assert f"registered evil/2 flavor=sklearn (trusted by {getpass.getuser()}" in r.stdout
    assert marker.exists(), "a trusted pickle is read as it is (expected here)"
    info = json.loads(run(home, "info", "evil/2").stdout)
    assert info["trusted_unsafe"]["by"] == getpass.getuser()
    assert datetime.fromisoformat(info["trusted_unsafe"]["at"]).tzinfo is not None

    art = tmp_path / "churn"
    modelport.save(model, art, input_example=frame.head(5))
    assert run(home, "register", str(art), "--name", "churn").returncode == 0
    assert json.loads(run(home, "info", "churn").stdout)["trusted_unsafe"] is None
    assert "trusted_unsafe" not in json.loads(run(home, "info", str(art)).stdout)
    r = run(home, "register", "--help")
    assert "--trust-unsafe" in r.stdout
