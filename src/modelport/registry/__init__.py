"""The model registry: versions and aliases in a metadata store, files in an artifact store.

``Registry`` is the entry point; the stores behind it are chosen by URI scheme. The metadata
store also holds the server's API keys, the prediction log and batch runs, reached as
``registry.keys``, ``registry.predictions`` and ``registry.runs``.
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
from modelport.registry.keys import ApiKeys
from modelport.registry.metadata_store import (
    AliasStore,
    KeyStore,
    MetadataStore,
    ModelStore,
    PredictionLog,
    RunLog,
)
from modelport.registry.registry import Registry

__all__ = [
    "AliasChange",
    "AliasStore",
    "ApiKey",
    "ApiKeys",
    "ArtifactStore",
    "BatchRun",
    "KeyStore",
    "LocalArtifactStore",
    "LoggedPrediction",
    "MetadataStore",
    "ModelInfo",
    "ModelStore",
    "ModelVersion",
    "Page",
    "PredictionLog",
    "Registry",
    "RunLog",
]
