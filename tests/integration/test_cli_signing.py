"""``modelport keygen`` / ``sign`` / ``verify`` as a user runs them: real subprocesses and files."""

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
from tests.integration.test_cli import run

pytestmark = pytest.mark.slow

FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")


@pytest.fixture(scope="module")
def trained() -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    return LogisticRegression().fit(frame, (frame["a"] > frame["b"]).astype(int)), frame


def _keygen(home: Path, folder: Path) -> tuple[Path, Path, str]:
    private, public = folder / "signing.pem", folder / "signing.pub"
    r = run(home, "keygen", "--private", str(private), "--public", str(public))
    assert r.returncode == 0, r.stderr
    found = FINGERPRINT.search(r.stdout)
    assert found is not None, r.stdout
    return private, public, found.group()


def test_keygen_sign_verify(
    trained: tuple[LogisticRegression, pd.DataFrame], tmp_path: Path
) -> None:
    model, frame = trained
    home = tmp_path / "home"
    private, public, fingerprint = _keygen(home, tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600

    r = run(home, "keygen", "--private", str(private), "--public", str(tmp_path / "new.pub"))
    assert r.returncode == 4
    assert "already exists; keygen never overwrites a key file" in r.stderr
    assert not (tmp_path / "new.pub").exists()

    art = tmp_path / "art" / "churn"
    modelport.save(model, art, input_example=frame.head(3))
    r = run(home, "verify", str(art), "--public-key", str(public))
    assert r.returncode == 5
    assert "is not signed (it has no modelport.sig)" in r.stderr

    r = run(home, "sign", str(art), "--key", str(private))
    assert r.returncode == 0, r.stderr
    assert f"with key {fingerprint}" in r.stdout
    assert (art / SIGNATURE_FILE).is_file()
    r = run(home, "verify", str(art), "--public-key", str(public))
    assert r.returncode == 0, r.stderr
    assert f"signed by key {fingerprint}" in r.stdout

    bundle = tmp_path / "churn.tar"
    assert run(home, "pack", str(art), str(bundle)).returncode == 0
    r = run(home, "verify", str(bundle), "--public-key", str(public))
    assert r.returncode == 0, r.stderr
    assert f"signed by key {fingerprint}" in r.stdout
    r = run(home, "sign", str(bundle), "--key", str(private))
    assert r.returncode == 2
    assert "sign the artifact folder, then pack it" in r.stderr

    # A registered version gets its own manifest, so it is signed in the registry's store.
    assert run(home, "register", str(art), "--name", "churn", "--alias", "prod").returncode == 0
    r = run(home, "verify", "churn@prod", "--public-key", str(public))
    assert r.returncode == 5
    assert "is not signed" in r.stderr
    r = run(home, "sign", "churn/1", "--key", str(private))
    assert r.returncode == 0, r.stderr
    r = run(home, "verify", "churn@prod", "--public-key", str(public))
    assert r.returncode == 0, r.stderr
    assert "verified churn@prod" in r.stdout

    with modelport.Registry(modelport.Settings(home=home)) as registry:
        stored = registry.artifact_path("churn/1")
    victim = stored / "model.skops"
    victim.write_bytes(victim.read_bytes() + b"x")
    r = run(home, "verify", "churn/1", "--public-key", str(public))
    assert r.returncode == 5
    assert "artifact file 'model.skops' is corrupted" in r.stderr


@pytest.mark.parametrize(
    ("tamper", "key", "code", "message"),
    [
        ("manifest", "trusted", 5, "modelport.json was changed after it was signed"),
        ("none", "other", 5, "not by the trusted key"),
        ("none", "private", 2, "it holds a private key, pass the public one"),
        ("none", "missing", 2, "file not found"),
    ],
)
def test_verify_refusals_say_why(
    trained: tuple[LogisticRegression, pd.DataFrame],
    tmp_path: Path,
    tamper: str,
    key: str,
    code: int,
    message: str,
) -> None:
    model, frame = trained
    home = tmp_path / "home"
    private, public, _ = _keygen(home, tmp_path / "ours")
    art = tmp_path / "churn"
    modelport.save(model, art, input_example=frame.head(3))
    assert run(home, "sign", str(art), "--key", str(private)).returncode == 0
    if tamper == "manifest":
        text = (art / MANIFEST_FILE).read_text()
        (art / MANIFEST_FILE).write_text(text.replace('"description": ""', '"description": "x"'))
    keys = {
        "trusted": public,
        "other": _keygen(home, tmp_path / "theirs")[1] if key == "other" else public,
        "private": private,
        "missing": tmp_path / "nope.pub",
    }
    r = run(home, "verify", str(art), "--public-key", str(keys[key]))
    assert r.returncode == code, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ")
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_help_explains_signing(tmp_path: Path) -> None:
    r = run(tmp_path, "--help")
    for command in ("keygen", "sign", "verify"):
        assert command in r.stdout
    r = run(tmp_path, "sign", "--help")
    assert r.returncode == 0
    assert "pack" in r.stdout
    assert "--key" in r.stdout
    r = run(tmp_path, "verify", "--help")
    assert "--public-key" in r.stdout
    assert "exit 5" in r.stdout
