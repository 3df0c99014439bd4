"""Artifact folders as files: find one behind a path, check its files, copy it.

A path ref names an artifact folder or a ``.tar`` bundle (:mod:`modelport.artifact.bundle`),
which is unpacked once into a cache. Checking means every file against the checksum the
manifest records (:mod:`modelport.artifact.checksums`); the manifest's own SHA-256 pins the
rest. Nothing here reads a model: loading one is :mod:`modelport.packaging`'s job.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping
from pathlib import Path

from modelport.artifact.bundle import unpack
from modelport.artifact.checksums import sha256_file, verify_files
from modelport.artifact.manifest import MANIFEST_FILE, Manifest, read_manifest
from modelport.artifact.staging import staging_dir
from modelport.config import BundleLimits
from modelport.errors import Conflict
from modelport.ref import validate_name

BUNDLE_SUFFIXES = (".tar",)


def local_artifact(path: str | Path, cache_dir: Path, limits: BundleLimits | None = None) -> Path:
    """The artifact folder behind a path ref: the folder itself, or a ``.tar`` bundle
    unpacked once (within ``limits``) into ``cache_dir`` under its SHA-256, so a changed
    bundle is unpacked anew.
    """
    source = Path(path)
    if source.suffix.lower() in BUNDLE_SUFFIXES and source.is_file():
        target = cache_dir / "bundles" / sha256_file(source)
        if not target.exists():
            # Conflict: another process unpacked the same bundle first, which is just as good.
            with contextlib.suppress(Conflict):
                unpack(source, target, limits)
        return target
    return source


def verify_artifact_files(path: str | Path) -> Manifest:
    """The manifest of the artifact folder at ``path``, after checking every file against
    its checksum; nothing is loaded."""
    root = Path(path)
    manifest = read_manifest(root)
    verify_files(root, manifest.files)
    return manifest


def manifest_sha256(path: str | Path) -> str:
    """SHA-256 of an artifact's ``modelport.json``, which pins everything else."""
    return sha256_file(Path(path) / MANIFEST_FILE)


def copy_artifact(
    src: Path,
    target: Path,
    name: str,
    metrics: Mapping[str, float] | None,
    tags: Mapping[str, str] | None,
    description: str,
) -> Manifest:
    """Copy the artifact folder ``src`` to a new folder ``target``, verified before and after,
    renamed ``name`` and with ``metrics``, ``tags`` and ``description`` added to its own."""
    manifest = read_manifest(src)
    verify_files(src, manifest.files)
    data = manifest.to_dict()
    data["name"] = validate_name(name)
    data["metrics"] = {**manifest.metrics, **{k: float(v) for k, v in (metrics or {}).items()}}
    data["tags"] = {
        **manifest.tags,
        **{validate_name(k, "tag key"): str(v) for k, v in (tags or {}).items()},
    }
    data["description"] = description or manifest.description
    updated = Manifest.from_dict(data)
    with staging_dir(target) as tmp:
        for rel in manifest.files:
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dest)
        verify_files(tmp, manifest.files)
        (tmp / MANIFEST_FILE).write_text(updated.to_json(), encoding="utf-8")
    return updated
