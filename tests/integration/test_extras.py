"""The base install and its extras: ``pip install modelport`` registers, lists, predicts and
signs with none of the server, batch, client or Ray stacks; each of those, missing, is one
line naming the extra to install.

A fresh interpreter stands in for an environment without a package: a finder placed first
on ``sys.meta_path`` refuses the package, so importing it fails as if it were not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelport._extras import STACKS

pytestmark = pytest.mark.slow  # fresh interpreters

OPTIONAL = sorted(
    {module for extra in ("serve", "batch", "client", "ray") for module, _ in STACKS[extra]}
    - {"scipy", "threadpoolctl"}
)
"""All but what scikit-learn (the model here) needs itself, whatever modelport does."""

HIDE = """
import sys

class Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hidden())
"""

RUN = """
import contextlib, io, json, sys
from modelport.cli import main
results = []
for argv in COMMANDS:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
still_hidden = not any(name in sys.modules for name in HIDDEN)
print(json.dumps({"results": results, "still_hidden": still_hidden}))
"""


def _run(home: Path, hidden: list[str], commands: list[list[str]]) -> dict[str, Any]:
    code = f"HIDDEN = {hidden!r}\nCOMMANDS = {commands!r}\n{HIDE}\n{RUN}"
    env = {"MODELPORT_HOME": str(home), "COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_base_install_registers_lists_predicts_and_signs(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(40, 3))
    joblib.dump(LogisticRegression().fit(x, x[:, 0] > 0), tmp_path / "model.joblib")
    rows = tmp_path / "rows.csv"
    rows.write_text("0,1,2\n0.5,-1,2\n-3,0,1\n")
    key, pub = tmp_path / "signing.pem", tmp_path / "signing.pub"
    commands = [
        ["register", str(tmp_path / "model.joblib"), "--name", "churn", "--alias", "prod"],
        ["versions", "churn"],
        ["info", "churn@prod"],
        ["predict", "churn@prod", "--input", str(rows)],
        ["keygen", "--private", str(key), "--public", str(pub)],
        ["sign", "churn/1", "--key", str(key)],
        ["verify", "churn@prod", "--public-key", str(pub)],
        ["pack", "churn/1", str(tmp_path / "churn.tar")],
        ["drift", "churn", "--since", "1h"],
    ]
    got = _run(tmp_path, OPTIONAL, commands)
    results = got["results"]
    for argv, result in zip(commands, results, strict=True):
        assert result["code"] == 0, (argv, result)
    assert "registered churn/1" in results[0]["out"]
    assert "churn" in results[2]["out"]
    assert len(json.loads(results[3]["out"])["predictions"]) == 2  # a header, two rows
    assert "verified churn@prod" in results[6]["out"]
    assert (tmp_path / "churn.tar").is_file()
    assert got["still_hidden"] is True, "a base command imported an optional stack"


@pytest.mark.parametrize(
    ("extra", "argv"),
    [
        ("serve", ["serve", "churn"]),
        ("batch", ["batch", "churn", "in.csv", "out.csv"]),
    ],
)
def test_a_command_without_its_extra_names_the_extra(
    tmp_path: Path, extra: str, argv: list[str]
) -> None:
    hidden = [module for module, _ in STACKS[extra] if module not in ("scipy", "threadpoolctl")]
    (result,) = _run(tmp_path, hidden, [argv])["results"]
    assert result["code"] == 1, result
    assert result["err"].startswith("error: "), result
    assert f"pip install 'modelport[{extra}]'" in result["err"]
    assert result["err"].count("\n") == 1, "one line, no traceback"


def test_a_ray_job_without_ray_names_the_extra(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(40, 3))
    joblib.dump(LogisticRegression().fit(x, x[:, 0] > 0), tmp_path / "model.joblib")
    rows = tmp_path / "rows.csv"
    rows.write_text("0,1,2\n0.5,-1,2\n")
    commands = [
        ["register", str(tmp_path / "model.joblib"), "--name", "churn"],
        ["batch", "churn", str(rows), str(tmp_path / "out.csv"), "--engine", "ray"],
    ]
    registered, refused = _run(tmp_path, ["ray"], commands)["results"]
    assert registered["code"] == 0, registered
    assert refused["code"] == 1, refused
    assert refused["err"] == (
        "error: ray is not installed; install it with: pip install 'modelport[ray]'\n"
    )
    assert not (tmp_path / "out.csv").exists()


def test_the_client_and_drift_without_their_extras_name_them(tmp_path: Path) -> None:
    code = (
        'HIDDEN = ["httpx", "scipy"]\n'
        + HIDE
        + """
import numpy as np
from modelport.errors import MissingDependency
try:
    from modelport import Client
except MissingDependency as exc:
    print("client:", exc)
from modelport.monitoring import drift
try:
    drift.prediction_drift(np.arange(50.0), np.arange(50.0) + 5)
except MissingDependency as exc:
    print("drift:", exc)
"""
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        "client: httpx is not installed; install it with: pip install 'modelport[client]'" in lines
    )
    assert "drift: scipy is not installed; install it with: pip install 'modelport[drift]'" in lines
