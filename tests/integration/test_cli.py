"""The CLI end to end, as a user runs it: real files, checked exit codes, stdout and stderr.

The commands run in this process (:func:`cli`); one test runs the installed console script as
a real process, to prove its wiring: exit codes, stdout and stderr through a real process.
"""

from __future__ import annotations

import copy
import getpass
import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import modelport

from ._cli import cli, run_console


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The registry home the in-process commands use (MODELPORT_HOME), at 200 columns."""
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "home"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (frame["a"] > frame["b"]).astype(int)
    return LogisticRegression().fit(frame, y), frame


@pytest.mark.usefixtures("home")
def test_full_workflow(
    trained: tuple[LogisticRegression, pd.DataFrame],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, frame = trained
    art = tmp_path / "art" / "churn"
    modelport.save(model, art, input_example=frame.head(5))

    r = cli(capsys, "register", str(art), "--name", "churn", "--metric", "auc=0.91")
    assert r.code == 0, r.err
    assert "registered churn/1 flavor=sklearn" in r.out

    pkl = tmp_path / "model.joblib"
    joblib.dump(model, pkl)
    r = cli(capsys, "register", str(pkl), "--name", "churn", "--alias", "staging")
    assert r.code == 0, r.err
    assert "registered churn/2 flavor=sklearn (alias staging)" in r.out

    bundle = tmp_path / "churn.tar"
    r = cli(capsys, "pack", "churn/1", str(bundle))
    assert r.code == 0, r.err
    r = cli(capsys, "register", str(bundle), "--name", "churn")
    assert "registered churn/3" in r.out, r.err

    assert cli(capsys, "alias", "set", "churn", "production", "1").code == 0
    assert cli(capsys, "alias", "set", "churn", "production", "3").code == 0

    r = cli(capsys, "models", "--json")
    listed = json.loads(r.out)
    assert listed[0]["name"] == "churn"
    assert listed[0]["latest_version"] == 3
    assert listed[0]["aliases"] == {"production": 3, "staging": 2}

    r = cli(capsys, "versions", "churn", "--json")
    rows = json.loads(r.out)
    assert [v["version"] for v in rows] == [3, 2, 1]
    assert all(v["status"] == "ready" for v in rows)
    assert rows[2]["metrics"] == {"auc": 0.91}

    r = cli(capsys, "alias", "history", "churn", "production", "--json")
    history = [(c["previous_version"], c["version"]) for c in json.loads(r.out)]
    assert history == [(1, 3), (None, 1)]
    r = cli(capsys, "alias", "history", "churn", "production")
    assert "changed" in r.out

    r = cli(capsys, "info", "churn@production")
    info = json.loads(r.out)
    assert info["flavor"] == "sklearn"
    assert [i["name"] for i in info["signature"]["inputs"]] == ["a", "b"]

    rows_csv = tmp_path / "rows.csv"
    frame.head(4).to_csv(rows_csv, index=False)
    r = cli(capsys, "predict", "churn@production", "--input", str(rows_csv))
    assert r.code == 0, r.err
    got = json.loads(r.out)
    assert got["predictions"] == model.predict(frame.head(4)).tolist()
    np.testing.assert_allclose(got["probabilities"], model.predict_proba(frame.head(4)))

    rows_json = tmp_path / "rows.json"
    rows_json.write_text(json.dumps(frame.head(2).to_dict(orient="records")))
    r = cli(capsys, "predict", "churn/2", "--input", str(rows_json))
    assert json.loads(r.out)["predictions"] == model.predict(frame.head(2)).tolist()

    r = cli(capsys, "delete", "churn/3")
    assert r.code == 4
    assert "version 3 is still the target of alias 'production'" in r.err

    r = cli(capsys, "delete", "churn/1")
    assert r.code == 0, r.err
    r = cli(capsys, "predict", "churn/1", "--input", str(rows_csv))
    assert r.code == 3
    assert "model 'churn' has no version 1" in r.err


@pytest.mark.slow  # the installed console script, as a process
def test_the_console_script_end_to_end(
    trained: tuple[LogisticRegression, pd.DataFrame], tmp_path: Path
) -> None:
    """The installed ``modelport`` as a real process: the entry point's wiring, its exit
    codes, and stdout kept apart from stderr (the other tests run the commands in process)."""
    model, frame = trained
    home = tmp_path / "home"
    pkl = tmp_path / "model.joblib"
    joblib.dump(model, pkl)
    r = run_console(home, "register", str(pkl), "--name", "churn", "--alias", "production")
    assert r.code == 0, r.err
    assert "registered churn/1 flavor=sklearn (alias production)" in r.out

    rows_csv = tmp_path / "rows.csv"
    frame.head(4).to_csv(rows_csv, index=False)
    r = run_console(home, "predict", "churn@production", "--input", str(rows_csv))
    assert r.code == 0, r.err
    assert json.loads(r.out)["predictions"] == model.predict(frame.head(4)).tolist()

    r = run_console(home, "predict", "churn/9", "--input", str(rows_csv))
    assert r.code == 3
    assert r.out == ""
    assert r.err == "error: model 'churn' has no version 9\n"


def test_each_in_process_call_reads_the_environment_again(
    trained: tuple[LogisticRegression, pd.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What the in-process helper relies on: a command sees the MODELPORT_HOME of its call,
    not the one the first call saw."""
    pkl = tmp_path / "model.joblib"
    joblib.dump(trained[0], pkl)
    for name in ("first", "second"):
        monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / name))
        assert cli(capsys, "register", str(pkl), "--name", name).code == 0
        listed = json.loads(cli(capsys, "models", "--json").out)
        assert [m["name"] for m in listed] == [name]


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
@pytest.mark.usefixtures("home")
def test_errors_are_one_line_with_exit_codes(
    trained: tuple[LogisticRegression, pd.DataFrame],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    model, frame = trained
    art = tmp_path / "churn"
    modelport.save(model, art, input_example=frame.head(5))
    assert cli(capsys, "register", str(art), "--name", "churn").code == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"a": 1.0, "b": "high"}]))
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"a": [1.0]}))
    filled = [a.format(art=art, bad_rows=bad, missing_rows=missing) for a in args]
    r = cli(capsys, *filled)
    assert r.code == code, (r.out, r.err)
    assert r.err.startswith("error: ")
    assert message in r.err
    assert "Traceback" not in r.err


def test_tampered_artifact_exit_code(
    trained: tuple[LogisticRegression, pd.DataFrame],
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, frame = trained
    art = tmp_path / "churn"
    modelport.save(model, art, input_example=frame.head(5))
    assert cli(capsys, "register", str(art), "--name", "churn").code == 0
    registry = modelport.Registry(modelport.Settings(home=home))
    try:
        folder = registry.artifact_path("churn/1")
    finally:
        registry.close()
    victim = folder / "model.skops"
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes() + b"x")
    r = cli(capsys, "info", "churn/1")
    assert r.code == 0, "info reads only the manifest"
    rows = tmp_path / "rows.csv"
    frame.head(1).to_csv(rows, index=False)
    r = cli(capsys, "predict", "churn/1", "--input", str(rows))
    assert r.code == 5
    assert f"artifact file '{victim.name}' is corrupted" in r.err


@pytest.mark.usefixtures("home")
def test_help_explains_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    r = cli(capsys, "--help")
    assert r.code == 0
    for command in ("register", "models", "versions", "alias", "info", "predict", "delete", "pack"):
        assert command in r.out
    r = cli(capsys, "alias", "--help")
    assert "history" in r.out
    r = cli(capsys, "register", "--help")
    assert ".onnx" in r.out


def test_api_keys_end_to_end(
    trained: tuple[LogisticRegression, pd.DataFrame],
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    r = cli(capsys, "keys", "create", "--name", "ci", "--scope", "predict", "--model", "churn")
    assert r.code == 3, "a key for a model that is not registered is refused"
    assert "model 'churn' not found" in r.err
    assert r.out == ""
    joblib.dump(trained[0], tmp_path / "model.joblib")
    assert cli(capsys, "register", str(tmp_path / "model.joblib"), "--name", "churn").code == 0
    r = cli(capsys, "keys", "create", "--name", "ci", "--scope", "predict", "--model", "churn")
    assert r.code == 0, r.err
    token = r.out.strip()
    assert re.fullmatch(r"mp_[0-9a-f]{16}_[0-9a-f]{64}", token), r.out
    assert r.err.startswith("warning: ")
    assert r.err.count("\n") == 1
    assert "will not be shown again" in r.err
    assert token not in r.err
    secret = token.rsplit("_", 1)[1]
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        key = registry.keys.authenticate(token)
    assert (key.name, key.scope, key.model) == ("ci", "predict", "churn")

    r = cli(capsys, "keys", "create", "--name", "ci", "--scope", "read")
    assert r.code == 4
    assert "an API key named 'ci' already exists" in r.err
    r = cli(capsys, "keys", "create", "--name", "x", "--scope", "write")
    assert r.code == 2, "typer refuses an unknown scope"
    ops = ("keys", "create", "--name", "ops", "--scope", "admin")
    r = cli(capsys, *ops, "--rate-limit", "0")
    assert r.code == 2
    assert "rate limit must be a positive number per second, got 0.0" in r.err
    assert cli(capsys, *ops, "--rate-limit", "2.5").code == 0

    r = cli(capsys, "keys", "list", "--json")
    assert r.code == 0, r.err
    listed = json.loads(r.out)
    assert [(k["name"], k["scope"], k["model"]) for k in listed] == [
        ("ci", "predict", "churn"),
        ("ops", "admin", None),
    ]
    assert listed[0]["key_id"] == key.key_id
    assert listed[0]["revoked_at"] is None
    assert [k["rate_limit"] for k in listed] == [None, 2.5]
    r = cli(capsys, "keys", "list")
    assert "ci" in r.out
    assert "2.5/s" in r.out
    assert key.key_id in r.out
    for shown in (json.dumps(listed), r.out):
        assert secret not in shown

    r = cli(capsys, "keys", "revoke", "ci")
    assert r.code == 0, r.err
    assert f"revoked key 'ci' (id {key.key_id})" in r.out
    with (
        modelport.Registry(modelport.Settings(home=home)) as registry,
        pytest.raises(modelport.errors.Unauthenticated, match="invalid or revoked API key"),
    ):
        registry.keys.authenticate(token)
    revoked = json.loads(cli(capsys, "keys", "list", "--json").out)
    assert revoked[0]["revoked_at"] is not None
    assert revoked[1]["revoked_at"] is None

    r = cli(capsys, "keys", "revoke", "nope")
    assert r.code == 3
    assert r.err == "error: no API key named 'nope'\n"
    r = cli(capsys, "keys", "--help")
    assert all(command in r.out for command in ("create", "list", "revoke"))


class _Payload:
    """Unpickling this runs ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return os.system, (self.command,)


@pytest.mark.usefixtures("home")
def test_register_trust_unsafe_and_info(
    trained: tuple[LogisticRegression, pd.DataFrame],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, frame = trained
    marker = tmp_path / "MARKER"
    trapped = copy.deepcopy(model)
    trapped.hook_ = _Payload(f"touch {marker}")
    evil = tmp_path / "evil.pkl"
    joblib.dump(trapped, evil)
    system = f"{os.system.__module__}.system"

    r = cli(capsys, "register", str(evil), "--name", "evil")
    assert r.code == 5, (r.out, r.err)
    assert f"global '{system}' is not allowed" in r.err
    assert "--trust-unsafe" in r.err
    assert "Traceback" not in r.err
    assert not marker.exists()

    r = cli(capsys, "register", str(evil), "--name", "evil", "--trust-unsafe")
    assert r.code == 0, r.err
    assert f"registered evil/2 flavor=sklearn (trusted by {getpass.getuser()}" in r.out
    assert marker.exists(), "a trusted pickle is read as it is (expected here)"
    info = json.loads(cli(capsys, "info", "evil/2").out)
    assert info["trusted_unsafe"]["by"] == getpass.getuser()
    assert datetime.fromisoformat(info["trusted_unsafe"]["at"]).tzinfo is not None

    art = tmp_path / "churn"
    modelport.save(model, art, input_example=frame.head(5))
    assert cli(capsys, "register", str(art), "--name", "churn").code == 0
    assert json.loads(cli(capsys, "info", "churn").out)["trusted_unsafe"] is None
    assert "trusted_unsafe" not in json.loads(cli(capsys, "info", str(art)).out)
    r = cli(capsys, "register", "--help")
    assert "--trust-unsafe" in r.out


@pytest.mark.usefixtures("home")
def test_predict_prints_json_whatever_the_labels_look_like(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labels such as [true, false] or ["[bold]"] are data: the console must not read them
    as its markup (it once printed ``"predictions": ,`` for boolean labels)."""
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    for name, y in (("flags", x["a"] > 0), ("tags", np.where(x["a"] > 0, "[bold]", "[/]"))):
        model = LogisticRegression().fit(x, y)
        modelport.save(model, tmp_path / name, input_example=x.head(3))
        x.head(4).to_csv(tmp_path / "rows.csv", index=False)
        r = cli(capsys, "predict", str(tmp_path / name), "--input", str(tmp_path / "rows.csv"))
        assert r.code == 0, r.err
        got = json.loads(r.out)
        assert got["predictions"] == model.predict(x.head(4)).tolist()
