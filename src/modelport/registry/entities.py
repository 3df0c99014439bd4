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

from modelport.errors import InvalidInput

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
    trusted_unsafe_by: str | None = None
    """Who registered this version with ``trust_unsafe=True`` (None: it was not), so that it
    loads without the pickle allow-list and its code was not scanned."""
    trusted_unsafe_at: datetime | None = None
    """When that trust was given."""

    @property
    def is_ready(self) -> bool:
        """True when the artifact is complete and the version may be loaded or aliased."""
        return self.status == "ready"

    @property
    def trusts_unsafe(self) -> bool:
        """True when this version was registered as trusted and loads without the allow-list."""
        return self.trusted_unsafe_by is not None


@dataclass(frozen=True, slots=True)
class AliasChange:
    """One entry of an alias's history; ``version`` is None when the alias was deleted."""

    alias: str
    version: int | None
    previous_version: int | None
    changed_at: datetime


KeyScope = Literal["predict", "read", "admin"]
"""What an API key may do: ``predict`` calls models, ``read`` reads metadata, ``admin`` all."""

KEY_SCOPES: tuple[KeyScope, ...] = ("predict", "read", "admin")


def key_scope(value: str) -> KeyScope:
    """``value`` as a :data:`KeyScope`; InvalidInput naming the scopes if it is none."""
    for scope in KEY_SCOPES:
        if value == scope:
            return scope
    raise InvalidInput(f"unknown API key scope {value!r}; use one of: {', '.join(KEY_SCOPES)}")


def check_rate_limit(value: float | None) -> None:
    """InvalidInput unless ``value`` is None (no limit) or a finite number of requests/s > 0."""
    if value is not None and not (0 < value < float("inf")):
        raise InvalidInput(f"a key's rate limit must be a positive number per second, got {value}")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as the registry knows it: never its secret, nor the secret's hash.

    ``allows`` is the whole permission rule: an ``admin`` key may do everything, a ``read``
    key only reads, a ``predict`` key only predicts. A key restricted to ``model`` may touch
    only that model; on server-wide routes (``model`` None) it may only read.
    """

    name: str
    key_id: str
    """The public part of the token (``mp_<key_id>_<secret>``); safe to log."""
    scope: KeyScope
    model: str | None
    """The only model this key may use, or None for every model."""
    created_at: datetime
    revoked_at: datetime | None = None
    rate_limit: float | None = None
    """Requests per second a server accepts from this key (each server process), or None."""

    @property
    def is_revoked(self) -> bool:
        """True once the key was revoked; a revoked key allows nothing."""
        return self.revoked_at is not None

    def allows(self, scope: str, model: str | None) -> bool:
        """True if this key may do ``scope`` (predict, read or admin) on ``model``.

        ``model`` is the model a request is about, or None for server-wide routes (server
        metadata, the repository index). Raises ValueError for an unknown scope: that is a
        bug in the caller, and failing loudly beats denying everything quietly.
        """
        if scope not in KEY_SCOPES:
            raise ValueError(f"unknown API key scope {scope!r}; use one of {KEY_SCOPES}")
        if self.is_revoked:
            return False
        if self.scope != "admin" and self.scope != scope:
            return False
        if self.model is None:
            return True
        if model is None:
            # A key for one model may read server metadata, but never act server-wide.
            return scope == "read"
        return model == self.model


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What the store keeps to verify a token: the key, the salt and HMAC of its secret.

    Only the registry's ``authenticate`` needs this; it never leaves the registry layer.
    """

    key: ApiKey
    salt: str = field(repr=False)
    secret_hash: str = field(repr=False)


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


@dataclass(frozen=True, slots=True)
class LoggedPrediction:
    """One sampled request of a served model, as the prediction log keeps it.

    ``inputs`` and ``outputs`` map each tensor or column name to its values as JSON lists
    (batch axis first), so a request of several rows is one entry.
    """

    model: str
    version: int | None
    request_id: str
    created_at: datetime
    latency_ms: float
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    label: Any = None
    """The label posted for this request (see ``Registry.add_feedback``), or None."""


RUN_HEARTBEAT_S = 10.0
"""How often a running batch job records that it is alive (with its progress)."""
RUN_ABANDONED_AFTER_S = 60.0
"""A running job not heard from for this long is abandoned; on its own machine, a job whose
process is gone is abandoned at once."""


@dataclass(frozen=True, slots=True)
class BatchRun:
    """One batch scoring job: which model version scored which input, and how it went."""

    run_id: str
    model: str
    version: int | None
    source: str
    sink: str
    engine: str
    status: str
    """``running``, ``succeeded``, ``failed``, or ``abandoned``: recorded as running, but its
    process is gone (killed, or its machine lost) and its heartbeat has stopped. A run is
    never stored as abandoned: the registry says so when it reads the run (see
    :data:`RUN_ABANDONED_AFTER_S`), so a run that was only slow to report goes back to
    running with its next heartbeat."""
    rows: int
    scored: int
    rejected: int
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    heartbeat_at: datetime | None = None
    """When the job last said it was alive (every :data:`RUN_HEARTBEAT_S` while it runs)."""
    host: str | None = None
    """The machine the job runs on, and its process id there."""
    pid: int | None = None

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
