"""The model registry: versions, aliases and API keys in a metadata store, files in an
artifact store.

``Registry`` is the entry point; the stores behind it are chosen by URI scheme.
"""

from modelport.registry.artifact_store import ArtifactStore, LocalArtifactStore
from modelport.registry.entities import (
    AliasChange,
    ApiKey,
    BatchRun,
    LoggedPrediction,
    ModelInfo,
    ModelVersion,
    Page,
)
from modelport.registry.metadata_store import MetadataStore
from modelport.registry.registry import Registry

__all__ = [
    "AliasChange",
    "ApiKey",
    "ArtifactStore",
    "BatchRun",
    "LocalArtifactStore",
    "LoggedPrediction",
    "MetadataStore",
    "ModelInfo",
    "ModelVersion",
    "Page",
    "Registry",
]
