"""``modelport.load``: one call from any ref to a verified, ready-to-predict model."""

from __future__ import annotations

from pathlib import Path

from modelport.config import Settings
from modelport.packaging import LoadedModel, load_artifact, local_artifact
from modelport.ref import ModelRef
from modelport.registry import Registry


def load(ref: str | Path | ModelRef, *, settings: Settings | None = None) -> LoadedModel:
    """Load ``churn@production``, ``churn/3``, ``churn`` (latest ready), a folder or a bundle.

    Registry refs use ``settings`` (default: built from ``MODELPORT_*`` env vars). Paths never
    open the registry; a ``.tar`` bundle is unpacked once into the cache, keyed by its hash.

    >>> model = modelport.load("churn@production")
    >>> model.predict(rows)
    """
    parsed = ModelRef.parse(ref)
    config = settings or Settings()
    if parsed.path is not None:
        return load_artifact(local_artifact(parsed.path, config.resolved_cache_dir()))
    with Registry(config) as registry:
        return registry.load(parsed)
