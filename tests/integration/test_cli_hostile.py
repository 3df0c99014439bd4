"""Hostile names, bundles and pickles through the commands a user runs: each is refused with a
one-line reason and an exit code, and no file outside MODELPORT_HOME is read or written."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.errors import InvalidName, InvalidRef
from tests.unit.artifact.test_bundle import _bomb

from ._cli import cli
from ._server import serving
from .test_cli import _Payload

HOSTILE = ["../evil", "/tmp/evil", "a/b", "a\\..\\b", "..%2F..%2Fx", "x" * 300]


def snapshot(root: Path, skip: Path) -> dict[str, int]:
    """Every file under ``root`` outside ``skip``, with its size."""
    found = {}
    for path in root.rglob("*"):
        if skip not in path.parents and path != skip and path.is_file():
            found[str(path.relative_to(root))] = path.stat().st_size
    return found


@pytest.fixture
def setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Path]:
    """A home with churn/1 registered (production), and a saved artifact folder beside it."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    model = LogisticRegression().fit(frame, (frame["a"] > 0).astype(int))
    art = tmp_path / "art"
    modelport.save(model, art, input_example=frame.head(3))
    home = tmp_path / "home"
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    assert cli(capsys, "register", str(art), "--name", "churn").code == 0
    assert cli(capsys, "alias", "set", "churn", "production", "1").code == 0
    return home, art


def test_hostile_names_aliases_and_versions_are_refused(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, art = setup
    before = snapshot(tmp_path, home)
    for name in HOSTILE:
        for args in [
            ("register", str(art), "--name", name),
            ("alias", "set", "churn", name, "1"),
            ("alias", "set", name, "production", "1"),
            ("info", f"churn@{name}"),
            ("keys", "create", "--name", name, "--scope", "read"),
        ]:
            r = cli(capsys, *args)
            assert r.code in (2, 3), (args, r.code, r.out, r.err)
            assert r.err.startswith("error: "), (args, r.err)
            assert "Traceback" not in r.err
    for version in ("../1", "1/../../2", "-1", "1e9"):
        r = cli(capsys, "info", f"churn/{version}")
        assert r.code in (2, 3), (version, r.out, r.err)
    assert snapshot(tmp_path, home) == before
    listed = cli(capsys, "models", "--json")
    assert listed.code == 0
    assert [m["name"] for m in json.loads(listed.out)] == ["churn"]


def test_nul_bytes_in_names_are_refused_by_the_library(setup: tuple[Path, Path]) -> None:
    # a NUL cannot be passed on a command line; it can through the Python API and URLs
    home, art = setup
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        for name in ("churn\x00", "\x00../x"):
            with pytest.raises(InvalidName, match="invalid model name"):
                registry.register(name, art)
            with pytest.raises((InvalidName, InvalidRef), match="invalid"):
                registry.get_version(name, 1)
        with pytest.raises(InvalidName, match="invalid alias"):
            registry.set_alias("churn", "prod\x00", 1)


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _entry(name: str, data: bytes = b"pwned") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


def test_hostile_bundles_are_refused_by_register_and_serve(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, art = setup
    manifest = (art / "modelport.json").read_bytes()
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    bundles: dict[str, list[tuple[tarfile.TarInfo, bytes | None]]] = {
        "dotdot": [_entry("m/modelport.json", manifest), _entry("m/../../escape.txt")],
        "absolute": [_entry(str(tmp_path / "abs-escape.txt"))],
        "symlink": [_entry("m/modelport.json", manifest), _link("m/model.skops", str(victim))],
    }
    for label, members in bundles.items():
        bundle = _tar(tmp_path / f"{label}.tar", members)
        before = snapshot(tmp_path, home)
        r = cli(capsys, "register", str(bundle), "--name", f"evil-{label}")
        assert r.code == 5, (label, r.out, r.err)
        assert "refusing bundle" in r.err or "unsafe" in r.err.lower(), (label, r.err)
        r = cli(capsys, "info", str(bundle))
        assert r.code == 5, (label, r.out, r.err)
        assert snapshot(tmp_path, home) == before, label
    assert victim.read_text() == "untouched"
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "abs-escape.txt").exists()


def test_a_trapped_pickle_is_refused_when_served_unless_that_model_is_trusted(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, _ = setup
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    model = LogisticRegression().fit(frame, (frame["a"] > 0).astype(int))
    marker = tmp_path / "MARKER"
    trapped = copy.deepcopy(model)
    trapped.hook_ = _Payload(f"touch {marker}")

    # an artifact folder whose pickle was swapped for the trapped one, checksum updated to
    # match (a folder carries no signature: anyone who can write it can do this)
    folder = tmp_path / "swapped"
    options = {"serialization": "joblib"}
    modelport.save(model, folder, name="swapped", input_example=frame.head(3),
                   flavor_options=options)  # fmt: skip
    joblib.dump(trapped, folder / "model.joblib")
    manifest = json.loads((folder / "modelport.json").read_text())
    manifest["files"]["model.joblib"] = hashlib.sha256(
        (folder / "model.joblib").read_bytes()
    ).hexdigest()
    (folder / "modelport.json").write_text(json.dumps(manifest))

    with serving(home, str(folder), "churn") as server:
        index = httpx.post(f"{server.url}/v2/repository/index").json()
        refused = next(m for m in index if m["name"] == "swapped")
        assert refused["state"] != "READY", refused
        assert f"global '{os.system.__module__}.system' is not allowed" in refused["reason"]
        r = httpx.post(
            f"{server.url}/v1/models/swapped:predict", json={"instances": [{"a": 0.0, "b": 0.0}]}
        )
        assert r.status_code == 503, r.text
        ok = httpx.post(
            f"{server.url}/v1/models/churn:predict", json={"instances": [{"a": 0.0, "b": 0.0}]}
        )
        assert ok.status_code == 200, ok.text
    assert not marker.exists(), "serving an untrusted pickle ran its payload"

    # registering it is refused too, unless the user trusts this one model
    refused_cli = cli(capsys, "register", str(folder), "--name", "swapped")
    assert refused_cli.code == 5, (refused_cli.out, refused_cli.err)
    assert "--trust-unsafe" in refused_cli.err
    assert not marker.exists()
    trusted = cli(capsys, "register", str(folder), "--name", "swapped", "--trust-unsafe")
    assert trusted.code == 0, trusted.err
    with serving(home, "swapped") as server:
        ready = httpx.get(f"{server.url}/v2/models/swapped/ready")
        assert ready.status_code == 200, server.logs()
    assert marker.exists(), "the trusted version is loaded as it is (expected)"


def test_a_decompression_bomb_is_refused_in_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 300 MB member in a ~0.3 MB gzip bundle: unpack and register refuse it from its header
    (nothing is inflated or written) with one line, no traceback."""
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    bomb = _bomb(tmp_path / "bomb.tar", 300 * 1024 * 1024)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    for args in (
        ["unpack", str(bomb), str(tmp_path / "out")],
        ["register", str(bomb), "--name", "x"],
    ):
        result = cli(capsys, *args)
        assert result.code == 5, result.err
        assert result.err.startswith("error: refusing bundle entry 'bomb.tar': expands to at least")
        assert result.err.count("\n") == 1, result.err
        assert "Traceback" not in result.err
    assert not (tmp_path / "out").exists()
    leftovers = [  # staging folders, or anything in the store's scratch folder
        p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-") or p.parent.name == ".tmp"
    ]
    assert leftovers == []
