"""SHA-256 checksums of artifact files: computed when written, verified before loading."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from modelport.errors import ArtifactCorrupted

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large weights do not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_tree(root: Path, exclude: frozenset[str] = frozenset()) -> dict[str, str]:
    """``{relative posix path: sha256}`` for every regular file under ``root``.

    Links are refused: an artifact is plain files, so a link can only be a trick.
    """
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise ArtifactCorrupted(rel, "artifacts may not contain links")
        if path.is_file() and rel not in exclude:
            out[rel] = sha256_file(path)
    return out


def verify_files(root: Path, expected: Mapping[str, str]) -> None:
    """Raise ArtifactCorrupted naming the first file that is missing, a link, or changed."""
    resolved_root = root.resolve()
    for rel, want in sorted(expected.items()):
        path = root / rel
        if path.is_symlink():
            raise ArtifactCorrupted(rel, "is a link")
        if not path.resolve().is_relative_to(resolved_root):
            raise ArtifactCorrupted(rel, "points outside the artifact")
        if not path.is_file():
            raise ArtifactCorrupted(rel, "file is missing")
        got = sha256_file(path)
        if got != want:
            raise ArtifactCorrupted(rel, f"sha256 is {got[:12]}…, expected {want[:12]}…")
