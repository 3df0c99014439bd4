"""What the registry hands out: frozen snapshots, never live ORM rows.

Returning plain dataclasses keeps SQLAlchemy sessions from leaking out of the store (no lazy
loads after the session closed, no accidental writes through a shared object) and lets any
other store backend return the same types. Every datetime is timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

VersionStatus = Literal["pending", "ready", "failed"]
"""A version is ``pending`` while its artifact is written, then ``ready`` or ``failed``."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A registered model: its description, tags, newest ready version and aliases."""

    name: str
    description: str
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime
    latest_version: int | None
    """The newest *ready* version (what a bare ``name`` ref resolves to), or None."""
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One version of a model and where its artifact lives."""

    name: str
    version: int
    status: VersionStatus
    flavor: str | None
    artifact_key: str
    """Key in the artifact store, assigned when the version is created."""
    manifest_sha256: str | None
    """SHA-256 of the artifact's ``modelport.json``; set once the version is ready."""
    # Metric values are floats; Any only because JSON columns are untyped.
    metrics: dict[str, Any]
    tags: dict[str, str]
    description: str
    source: str
    created_at: datetime
    error: str | None = None

    @property
    def is_ready(self) -> bool:
        """True when the artifact is complete and the version may be loaded or aliased."""
        return self.status == "ready"


@dataclass(frozen=True, slots=True)
class AliasChange:
    """One entry of an alias's history; ``version`` is None when the alias was deleted."""

    alias: str
    version: int | None
    previous_version: int | None
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list call; pass ``next_page_token`` back to get the next one."""

    items: list[T]
    next_page_token: str | None = None

    def __iter__(self) -> Iterator[T]:
        """Iterate over this page's items (only this page; follow the token for more)."""
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
