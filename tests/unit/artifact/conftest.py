"""Fixtures for the framework-free artifact layer: hand-made artifact folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.artifact.checksums import checksum_tree
from modelport.artifact.manifest import MANIFEST_FILE, Manifest
from modelport.artifact.signature import Signature, TensorSpec


@pytest.fixture
def artifact_dir(tmp_path: Path) -> Path:
    """A minimal valid artifact folder with two files, one of them nested."""
    root = tmp_path / "src" / "churn"
    (root / "sub").mkdir(parents=True)
    (root / "weights.bin").write_bytes(b"\x00\x01weights")
    (root / "sub" / "vocab.txt").write_text("a\nb\n")
    manifest = Manifest(
        name="churn",
        flavor="sklearn",
        signature=Signature("tensors", (TensorSpec("input", "float64", (-1, 2)),)),
        files=checksum_tree(root),
    )
    (root / MANIFEST_FILE).write_text(manifest.to_json())
    return root
