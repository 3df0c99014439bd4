"""The model registry: versions and aliases in a metadata store, files in an artifact store.

``Registry`` is the entry point; the stores behind it are chosen by URI scheme.
"""

from modelport.registry.artifact_store import ArtifactStore, LocalArtifactStore
from modelport.registry.entities import AliasChange, ModelInfo, ModelVersion, Page
from modelport.registry.metadata_store import MetadataStore
from modelport.registry.registry import Registry

__all__ = [
    "AliasChange",
    "ArtifactStore",
    "LocalArtifactStore",
    "MetadataStore",
    "ModelInfo",
    "ModelVersion",
    "Page",
    "Registry",
]
