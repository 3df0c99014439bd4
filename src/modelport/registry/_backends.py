"""Pick a metadata or artifact store by URI scheme.

Built-in stores are import strings, so a backend's dependencies (psycopg, boto3) load only
when its scheme is used. Other packages add schemes through the entry-point groups
``modelport.registry_stores`` and ``modelport.artifact_stores``; an entry point's object is
called with the URI and returns the store: for a registry store, an object that implements
:class:`~modelport.registry.metadata_store.MetadataStore` (every one of its per-concern
protocols). Entry points are read on first lookup.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, cast

from modelport.errors import StoreError, UnsupportedURI
from modelport.registry.sql._engine import redact

if TYPE_CHECKING:
    from modelport.config import Settings
    from modelport.registry.artifact_store import ArtifactStore
    from modelport.registry.metadata_store import MetadataStore

METADATA_STORES: dict[str, str] = {
    "sqlite": "modelport.registry.sql:SqlStore",
    "postgresql": "modelport.registry.sql:SqlStore",
}
ARTIFACT_STORES: dict[str, str] = {
    "file": "modelport.registry.artifact_store:LocalArtifactStore",
    "s3": "modelport.registry.s3_store:S3ArtifactStore",
}
REMOTE_STORES = frozenset({"s3"})
"""Built-in stores called with the settings too (cache folder, client options)."""
METADATA_GROUP = "modelport.registry_stores"
ARTIFACT_GROUP = "modelport.artifact_stores"

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def scheme_of(uri: str) -> str | None:
    """The URI scheme without a driver suffix (``postgresql+psycopg`` -> ``postgresql``)."""
    match = _SCHEME_RE.match(uri)
    return match.group(1).split("+", 1)[0].lower() if match else None


@functools.cache
def _entry_points(group: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=group)}


def _builder(
    group: str, builtins: dict[str, str], scheme: str, uri: str
) -> Callable[[str], object]:
    known = {**builtins, **_entry_points(group)}
    target = known.get(scheme)
    if target is None:
        raise UnsupportedURI(redact(uri), sorted(known))
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StoreError(
            f"the {scheme!r} store needs {exc.name or module_name!r}; install its extra"
        ) from exc
    return cast("Callable[[str], object]", getattr(module, attr))


def open_metadata_store(uri: str) -> MetadataStore:
    """Build the metadata store for ``uri`` (``sqlite:///...``, ``postgresql://...``)."""
    scheme = scheme_of(uri) or ""
    if scheme == "postgres":
        scheme = "postgresql"
    return cast("MetadataStore", _builder(METADATA_GROUP, METADATA_STORES, scheme, uri)(uri))


def open_artifact_store(uri: str, settings: Settings | None = None) -> ArtifactStore:
    """Build the artifact store for ``uri``; a plain path means a local folder. A remote
    store (``s3://bucket/prefix``) takes its cache folder and client options from
    ``settings``."""
    scheme = scheme_of(uri) or "file"
    build = _builder(ARTIFACT_GROUP, ARTIFACT_STORES, scheme, uri)
    if scheme in REMOTE_STORES:
        return cast("ArtifactStore", build(uri, settings))  # type: ignore[call-arg]
    return cast("ArtifactStore", build(uri))
