"""Checksums catch every changed byte; staging publishes whole folders or nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelport.artifact.checksums import checksum_tree, verify_files
from modelport.artifact.manifest import read_manifest
from modelport.artifact.staging import staging_dir
from modelport.errors import ArtifactCorrupted, ArtifactNotFound, Conflict


def test_tampered_byte_names_the_file(artifact_dir: Path) -> None:
    manifest = read_manifest(artifact_dir)
    target = artifact_dir / "sub" / "vocab.txt"
    data = bytearray(target.read_bytes())
    data[0] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorrupted, match=r"'sub/vocab.txt' is corrupted: sha256 is"):
        verify_files(artifact_dir, manifest.files)


def test_missing_file(artifact_dir: Path) -> None:
    manifest = read_manifest(artifact_dir)
    (artifact_dir / "weights.bin").unlink()
    with pytest.raises(ArtifactCorrupted, match=r"'weights.bin' is corrupted: file is missing"):
        verify_files(artifact_dir, manifest.files)


def test_file_swapped_for_link(artifact_dir: Path, tmp_path: Path) -> None:
    manifest = read_manifest(artifact_dir)
    outside = tmp_path / "outside.bin"
    outside.write_bytes((artifact_dir / "weights.bin").read_bytes())
    (artifact_dir / "weights.bin").unlink()
    os.symlink(outside, artifact_dir / "weights.bin")
    with pytest.raises(ArtifactCorrupted, match=r"'weights.bin' is corrupted: is a link"):
        verify_files(artifact_dir, manifest.files)
    with pytest.raises(ArtifactCorrupted, match="artifacts may not contain links"):
        checksum_tree(artifact_dir)


def test_broken_manifest(artifact_dir: Path) -> None:
    (artifact_dir / "modelport.json").write_text("{not json")
    with pytest.raises(ArtifactCorrupted, match="not a valid manifest"):
        read_manifest(artifact_dir)


def test_no_manifest(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound, match="no modelport artifact at"):
        read_manifest(tmp_path)


def test_staging_publishes_on_success(tmp_path: Path) -> None:
    target = tmp_path / "a"
    with staging_dir(target) as tmp:
        (tmp / "f").write_text("x")
        assert not target.exists()
    assert (target / "f").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_staging_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a"

    def build() -> None:
        with staging_dir(target) as tmp:
            (tmp / "f").write_text("x")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        build()
    assert list(tmp_path.iterdir()) == []


def test_staging_refuses_existing_target(tmp_path: Path) -> None:
    with pytest.raises(Conflict, match="already exists"), staging_dir(tmp_path):
        pass
