"""``modelport.load``: one call from any ref to a verified, ready-to-predict model."""

from __future__ import annotations

from pathlib import Path

from modelport.artifact.bundle import unpack
from modelport.artifact.checksums import sha256_file
from modelport.config import Settings
from modelport.packaging import BUNDLE_SUFFIXES, LoadedModel, load_artifact
from modelport.ref import ModelRef
from modelport.registry import Registry


def load(ref: str | Path | ModelRef, *, settings: Settings | None = None) -> LoadedModel:
    """Load ``churn@production``, ``churn/3``, ``churn`` (latest ready), a folder or a bundle.

    Registry refs use ``settings`` (default: built from ``MODELPORT_*`` env vars). Paths never
    touch the registry; a ``.tar`` bundle is unpacked once into the cache, keyed by its hash.

    >>> model = modelport.load("churn@production")
    >>> model.predict(rows)
    """
    parsed = ModelRef.parse(ref)
    config = settings or Settings()
    if parsed.path is not None:
        return load_artifact(_local_folder(parsed.path, config))
    registry = Registry(config)
    try:
        return registry.load(parsed)
    finally:
        registry.close()


def _local_folder(path: Path, settings: Settings) -> Path:
    if path.suffix.lower() in BUNDLE_SUFFIXES and path.is_file():
        target = settings.resolved_cache_dir() / "bundles" / sha256_file(path)
        if not target.exists():
            unpack(path, target)
        return target
    return path
