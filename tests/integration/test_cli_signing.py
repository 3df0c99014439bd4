"""``modelport keygen`` / ``sign`` / ``verify`` as a user runs them (in this process): real
files, exit codes, stdout and stderr."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.artifact.manifest import MANIFEST_FILE, SIGNATURE_FILE

from ._cli import cli

FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The registry home the commands use (MODELPORT_HOME), at 200 columns."""
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "home"


@pytest.fixture(scope="module")
def trained() -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    return LogisticRegression().fit(frame, (frame["a"] > frame["b"]).astype(int)), frame


def _keygen(capsys: pytest.CaptureFixture[str], folder: Path) -> tuple[Path, Path, str]:
    private, public = folder / "signing.pem", folder / "signing.pub"
    r = cli(capsys, "keygen", "--private", str(private), "--public", str(public))
    assert r.code == 0, r.err
    found = FINGERPRINT.search(r.out)
    assert found is not None, r.out
    return private, public, found.group()


def test_keygen_sign_verify(
    trained: tuple[LogisticRegression, pd.DataFrame],
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, frame = trained
    private, public, fingerprint = _keygen(capsys, tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600

    r = cli(capsys, "keygen", "--private", str(private), "--public", str(tmp_path / "new.pub"))
    assert r.code == 4
    assert "already exists; keygen never overwrites a key file" in r.err
    assert not (tmp_path / "new.pub").exists()

    art = tmp_path / "art" / "churn"
    modelport.save(model, art, input_example=frame.head(3))
    r = cli(capsys, "verify", str(art), "--public-key", str(public))
    assert r.code == 5
    assert "is not signed (it has no modelport.sig)" in r.err

    r = cli(capsys, "sign", str(art), "--key", str(private))
    assert r.code == 0, r.err
    assert f"with key {fingerprint}" in r.out
    assert (art / SIGNATURE_FILE).is_file()
    r = cli(capsys, "verify", str(art), "--public-key", str(public))
    assert r.code == 0, r.err
    assert f"signed by key {fingerprint}" in r.out

    bundle = tmp_path / "churn.tar"
    assert cli(capsys, "pack", str(art), str(bundle)).code == 0
    r = cli(capsys, "verify", str(bundle), "--public-key", str(public))
    assert r.code == 0, r.err
    assert f"signed by key {fingerprint}" in r.out
    r = cli(capsys, "sign", str(bundle), "--key", str(private))
    assert r.code == 2
    assert "sign the artifact folder, then pack it" in r.err

    # A registered version gets its own manifest, so it is signed in the registry's store.
    assert cli(capsys, "register", str(art), "--name", "churn", "--alias", "prod").code == 0
    r = cli(capsys, "verify", "churn@prod", "--public-key", str(public))
    assert r.code == 5
    assert "is not signed" in r.err
    r = cli(capsys, "sign", "churn/1", "--key", str(private))
    assert r.code == 0, r.err
    r = cli(capsys, "verify", "churn@prod", "--public-key", str(public))
    assert r.code == 0, r.err
    assert "verified churn@prod" in r.out

    with modelport.Registry(modelport.Settings(home=home)) as registry:
        stored = registry.artifact_path("churn/1")
    victim = stored / "model.skops"
    victim.write_bytes(victim.read_bytes() + b"x")
    r = cli(capsys, "verify", "churn/1", "--public-key", str(public))
    assert r.code == 5
    assert "artifact file 'model.skops' is corrupted" in r.err


@pytest.mark.parametrize(
    ("tamper", "key", "code", "message"),
    [
        ("manifest", "trusted", 5, "modelport.json was changed after it was signed"),
        ("none", "other", 5, "not by the trusted key"),
        ("none", "private", 2, "it holds a private key, pass the public one"),
        ("none", "missing", 2, "file not found"),
    ],
)
@pytest.mark.usefixtures("home")
def test_verify_refusals_say_why(
    trained: tuple[LogisticRegression, pd.DataFrame],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tamper: str,
    key: str,
    code: int,
    message: str,
) -> None:
    model, frame = trained
    private, public, _ = _keygen(capsys, tmp_path / "ours")
    art = tmp_path / "churn"
    modelport.save(model, art, input_example=frame.head(3))
    assert cli(capsys, "sign", str(art), "--key", str(private)).code == 0
    if tamper == "manifest":
        text = (art / MANIFEST_FILE).read_text()
        (art / MANIFEST_FILE).write_text(text.replace('"description": ""', '"description": "x"'))
    keys = {
        "trusted": public,
        "other": _keygen(capsys, tmp_path / "theirs")[1] if key == "other" else public,
        "private": private,
        "missing": tmp_path / "nope.pub",
    }
    r = cli(capsys, "verify", str(art), "--public-key", str(keys[key]))
    assert r.code == code, (r.out, r.err)
    assert r.err.startswith("error: ")
    assert message in r.err
    assert "Traceback" not in r.err


@pytest.mark.usefixtures("home")
def test_help_explains_signing(capsys: pytest.CaptureFixture[str]) -> None:
    r = cli(capsys, "--help")
    for command in ("keygen", "sign", "verify"):
        assert command in r.out
    r = cli(capsys, "sign", "--help")
    assert r.code == 0
    assert "pack" in r.out
    assert "--key" in r.out
    r = cli(capsys, "verify", "--help")
    assert "--public-key" in r.out
    assert "exit 5" in r.out
