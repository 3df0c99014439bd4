"""The local artifact store: atomic placement and keys that can never leave the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelport.errors import ArtifactNotFound, StoreError
from modelport.registry.artifact_store import TEMP_DIR, ArtifactStore, LocalArtifactStore


@pytest.fixture
def artifacts(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "root")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "modelport.json").write_text("{}")
    (src / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    return src


def test_put_read_delete(artifacts: LocalArtifactStore, source: Path) -> None:
    assert isinstance(artifacts, ArtifactStore)
    artifacts.put_dir("models/1/v1", source)
    assert artifacts.exists("models/1/v1")
    path = artifacts.local_path("models/1/v1")
    assert (path / "sub" / "weights.bin").read_bytes() == b"\x00\x01"
    artifacts.delete("models/1/v1")
    assert not artifacts.exists("models/1/v1")
    artifacts.delete("models/1/v1")  # deleting nothing is fine
    assert os.listdir(artifacts.root / TEMP_DIR) == []


def test_a_taken_key_is_never_overwritten(artifacts: LocalArtifactStore, source: Path) -> None:
    artifacts.put_dir("models/1/v1", source)
    with pytest.raises(StoreError, match="already taken"):
        artifacts.put_dir("models/1/v1", source)


def test_a_failed_copy_leaves_nothing_behind(artifacts: LocalArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot store artifact"):
        artifacts.put_dir("models/1/v1", tmp_path / "missing")
    assert not artifacts.exists("models/1/v1")
    assert os.listdir(artifacts.root / TEMP_DIR) == []


def test_missing_artifacts_are_not_found(artifacts: LocalArtifactStore) -> None:
    with pytest.raises(ArtifactNotFound, match="models/9/v9"):
        artifacts.local_path("models/9/v9")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("../outside", "invalid artifact key"),
        ("models/../../outside", "escapes the store root"),
        ("/etc", "invalid artifact key"),
        (".tmp/x", "invalid artifact key"),
        ("", "invalid artifact key"),
        ("a\x00b", "invalid artifact key"),
        ("models/..", "escapes the store root"),
    ],
)
def test_keys_cannot_escape_the_root(
    artifacts: LocalArtifactStore, source: Path, key: str, reason: str
) -> None:
    for call in (
        lambda: artifacts.put_dir(key, source),
        lambda: artifacts.local_path(key),
        lambda: artifacts.delete(key),
        lambda: artifacts.exists(key),
    ):
        with pytest.raises(StoreError, match=reason):
            call()


def test_symlinks_out_of_the_root_are_refused(
    artifacts: LocalArtifactStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (artifacts.root / "models").mkdir()
    (artifacts.root / "models" / "7").symlink_to(outside)
    with pytest.raises(StoreError, match="escapes the store root"):
        artifacts.local_path("models/7/v1")


def test_file_uris_and_plain_paths_name_the_same_root(tmp_path: Path) -> None:
    root = tmp_path / "r"
    assert LocalArtifactStore(root.as_uri()).root == LocalArtifactStore(str(root)).root
    with pytest.raises(StoreError, match="remote host"):
        LocalArtifactStore("file://elsewhere/r")
