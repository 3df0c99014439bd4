"""The load path: verify an artifact's files, then load them with the trust they carry.

A registered version loads with what its record says: the manifest SHA-256 the registry
recorded, and the trust (``trusted_unsafe_by``) it was registered with, or a signature by one
of the trusted keys (:func:`load_version`). A folder or bundle outside any registry gets
the same checks, and is trusted only when signed or with ``trust_unsafe``
(:func:`load_local`). Nothing here resolves a ref: the
:class:`~modelport.registry.Registry` facade does that once, then calls in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelport import packaging
from modelport._identity import current_user
from modelport.artifact import files
from modelport.artifact.manifest import MANIFEST_FILE, Manifest, read_manifest
from modelport.config import Settings
from modelport.errors import ArtifactCorrupted
from modelport.packaging import LoadedModel
from modelport.registry.artifact_cache import ArtifactCache
from modelport.registry.artifact_store import ArtifactStore
from modelport.registry.entities import ModelVersion


def load_version(
    artifacts: ArtifactStore,
    version: ModelVersion,
    *,
    require_signed: str | Path | None = None,
    trusted_keys: Sequence[Path] = (),
    device: str = "cpu",
) -> LoadedModel:
    """Load a resolved, ready version from the artifact store, checked against its record.

    A copy that fails the check is dropped from a remote store's host cache, so the next
    load downloads it again instead of meeting the same bad copy.
    """
    try:
        return packaging.load_artifact(
            artifacts.local_path(version.artifact_key),
            manifest_sha256=version.manifest_sha256,
            public_key=require_signed,
            trust_unsafe=version.trusts_unsafe,  # only as the registry recorded it
            trusted_by=f"registry: {version.trusted_unsafe_by}",
            trusted_keys=trusted_keys,
            version=version.version,
            device=device,
        )
    except ArtifactCorrupted:
        _forget_cached(artifacts, version.artifact_key)
        raise


def checked_manifest(artifacts: ArtifactStore, version: ModelVersion) -> Manifest:
    """A version's manifest, refused (ArtifactCorrupted) unless it hashes to the registry's
    record."""
    path = artifacts.local_path(version.artifact_key)
    if files.manifest_sha256(path) != version.manifest_sha256:
        _forget_cached(artifacts, version.artifact_key)
        raise ArtifactCorrupted(MANIFEST_FILE, "sha256 does not match the registry's record")
    return read_manifest(path)


def _forget_cached(artifacts: ArtifactStore, key: str) -> None:
    """Evict ``key`` from a remote store's host cache; a local store has none."""
    cache = getattr(artifacts, "cache", None)
    if isinstance(cache, ArtifactCache):
        cache.evict(key)


def load_local(
    path: Path,
    settings: Settings,
    *,
    require_signed: str | Path | None = None,
    trust_unsafe: bool = False,
    trusted_by: str | None = None,
    device: str = "cpu",
) -> LoadedModel:
    """Verify and load an artifact folder or bundle (unpacked once into the cache), without
    opening a registry: :meth:`Registry.load` for a path.

    It gets every check a registered version gets. It is trusted (its code runs, its pickles
    load without the allow-list) when signed by ``require_signed`` or one of
    ``settings.trusted_keys``, or with ``trust_unsafe``, recorded as ``trusted_by`` (default
    ``"trust_unsafe=True by <OS user>"``).
    """
    if trust_unsafe and trusted_by is None:
        trusted_by = f"trust_unsafe=True by {current_user()}"
    return packaging.load_artifact(
        files.local_artifact(path, settings.resolved_cache_dir(), settings.bundle),
        public_key=require_signed,
        trust_unsafe=trust_unsafe,
        trusted_by=trusted_by if trust_unsafe else None,
        trusted_keys=settings.trusted_keys,
        device=device,
    )
