"""The registry from the command line: failed versions show why, a whole model can be
deleted (with a confirmation while aliases point at it), ``info`` says which version a ref
resolved to, and ``--version`` answers."""

from __future__ import annotations

import json
from importlib.metadata import version as dist_version
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelport

from ._cli import cli


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """churn/1 ready and aliased production; churn/2 failed (a file that is no model)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    home = tmp_path / "home"
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        registry.register("churn", model, input_example=x[:2])
        registry.set_alias("churn", "production", 1)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    return home


def test_a_failed_registration_shows_its_reason(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = cli(capsys, "register", str(tmp_path / "broken.onnx"), "--name", "churn")
    assert failed.code != 0
    listed = cli(capsys, "versions", "churn")
    assert "failed" in listed.out
    assert "version 2: " in listed.out
    rows = json.loads(cli(capsys, "versions", "churn", "--json").out)
    assert rows[0]["status"] == "failed"
    assert rows[0]["error"]
    shown = json.loads(cli(capsys, "info", "churn/2").out)
    assert shown["registry"]["status"] == "failed"
    assert shown["registry"]["error"] == rows[0]["error"]


def test_info_says_which_version_an_alias_resolved_to(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = json.loads(cli(capsys, "info", "churn@production").out)
    assert shown["registry"]["version"] == 1
    assert shown["registry"]["aliases"] == ["production"]
    assert shown["registry"]["status"] == "ready"


def test_delete_a_whole_model_needs_force_while_aliased(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "register", str(tmp_path / "broken.onnx"), "--name", "churn")  # a failed one
    refused = cli(capsys, "delete", "churn")
    assert refused.code == 4, refused.err
    assert "aliases (production -> 1)" in refused.err
    assert "churn" in cli(capsys, "models").out
    done = cli(capsys, "delete", "churn", "--force")
    assert done.code == 0, done.err
    assert done.out.strip() == "deleted model churn (2 versions)"
    assert json.loads(cli(capsys, "models", "--json").out) == []
    assert cli(capsys, "delete", "churn@production").code == 2


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(capsys, "--version")
    assert result.code == 0
    assert result.out.strip() == f"modelport {dist_version('modelport')}"


def test_tags_and_description_can_be_edited_after_registering(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = cli(
        capsys, "edit", "churn/1", "--tag", "owner=risk", "--tag", "q=4", "--description", "Q4"
    )
    assert done.code == 0, done.err
    assert done.out.strip() == "churn/1: owner=risk q=4"
    assert cli(capsys, "edit", "churn/1", "--untag", "q").out.strip() == "churn/1: owner=risk"
    shown = json.loads(cli(capsys, "info", "churn/1").out)
    assert shown["registry"]["tags"] == {"owner": "risk"}
    assert shown["registry"]["description"] == "Q4"
    bad = cli(capsys, "edit", "churn/1", "--tag", "../x=1")
    assert bad.code == 2
    assert "invalid tag key" in bad.err
    assert cli(capsys, "edit", "churn/9", "--tag", "a=b").code == 3
