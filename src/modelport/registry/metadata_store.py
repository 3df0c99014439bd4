"""What a metadata backend stores, one protocol per concern, and ``MetadataStore``, all of them.

- :class:`ModelStore`: models and their versions (what the :class:`~modelport.registry.Registry`
  facade registers, resolves and deletes);
- :class:`AliasStore`: where each ``name@alias`` points, and its history;
- :class:`KeyStore`: the server's API keys, as salted hashes (see
  :class:`~modelport.registry.keys.ApiKeys`);
- :class:`PredictionLog`: sampled requests a server logged, and the labels sent for them;
- :class:`RunLog`: batch runs.

A backend implements :class:`MetadataStore`, the five together:
:class:`~modelport.registry.sql.SqlStore` does it for SQLite and PostgreSQL, and another
package can register its own by URI scheme (see ``_backends``). Callers hold only the part
they use: ``registry.predictions``, ``registry.runs`` and ``registry.keys``. Names are
validated by the store, so every backend refuses the same names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from modelport.registry.entities import (
    AliasChange,
    ApiKey,
    BatchRun,
    KeyScope,
    LoggedPrediction,
    ModelInfo,
    ModelVersion,
    Page,
    StoredKey,
)


class ModelStore(Protocol):
    """Models and their versions. Each method is one transaction.

    A version is created ``pending`` (its number allocated atomically), then marked
    ``ready`` once its artifact is stored, or ``failed``. Only ready versions may be aliased.
    """

    def create_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> ModelInfo: ...

    def get_model(self, name: str) -> ModelInfo: ...

    def list_models(
        self, page_token: str | None = None, max_results: int = 100
    ) -> Page[ModelInfo]: ...

    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelInfo: ...

    def delete_model(self, name: str) -> list[str]:
        """Returns the artifact keys of the deleted versions."""
        ...

    def create_version(
        self,
        name: str,
        *,
        flavor: str | None = None,
        source: str = "",
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        trusted_unsafe_by: str | None = None,
    ) -> ModelVersion: ...

    def mark_version_ready(
        self,
        name: str,
        version: int,
        *,
        artifact_key: str,
        manifest_sha256: str,
        flavor: str | None = None,
    ) -> ModelVersion: ...

    def mark_version_failed(self, name: str, version: int, error: str) -> ModelVersion: ...

    def update_version(
        self,
        name: str,
        version: int,
        *,
        tags: Mapping[str, str] | None = None,
        remove_tags: Sequence[str] = (),
        description: str | None = None,
    ) -> ModelVersion: ...

    def get_version(self, name: str, version: int) -> ModelVersion: ...

    def list_versions(
        self, name: str, page_token: str | None = None, max_results: int = 100
    ) -> Page[ModelVersion]: ...

    def latest_ready_version(self, name: str) -> ModelVersion | None: ...

    def delete_version(self, name: str, version: int) -> str:
        """Returns the deleted version's artifact key; VersionInUse while aliased."""
        ...

    def find_stale_pending(self, older_than: timedelta) -> list[ModelVersion]: ...


class AliasStore(Protocol):
    """Aliases: ``name@alias`` points at one ready version; every change is kept."""

    def set_alias(self, name: str, alias: str, version: int) -> AliasChange: ...

    def get_alias(self, name: str, alias: str) -> ModelVersion: ...

    def delete_alias(self, name: str, alias: str) -> AliasChange: ...

    def list_aliases(self, name: str) -> dict[str, int]: ...

    def alias_history(self, name: str, alias: str) -> list[AliasChange]: ...


class KeyStore(Protocol):
    """API keys, stored as a salt and a hash of the secret, never the secret itself."""

    def create_key(
        self,
        name: str,
        *,
        key_id: str,
        salt: str,
        secret_hash: str,
        scope: KeyScope,
        model: str | None = None,
        rate_limit: float | None = None,
    ) -> ApiKey:
        """Conflict if the name is taken. Stores only the salt and hash, never a secret."""
        ...

    def get_key(self, key_id: str) -> StoredKey | None: ...

    def list_keys(self, page_token: str | None = None, max_results: int = 100) -> Page[ApiKey]: ...

    def revoke_key(self, name: str) -> ApiKey:
        """KeyNotFound for an unknown name; revoking twice keeps the first time."""
        ...


class PredictionLog(Protocol):
    """The requests a server sampled into its prediction log, and the labels (feedback)
    sent for them afterwards."""

    def log_predictions(self, entries: Sequence[LoggedPrediction]) -> None:
        """Append sampled requests to the prediction log, in one transaction."""
        ...

    def logged_predictions(
        self,
        model: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = None,
        labelled_only: bool = False,
        limit: int = 100_000,
    ) -> list[LoggedPrediction]:
        """The newest ``limit`` logged requests of ``model`` made at ``since`` or later and
        before ``until``, oldest first."""
        ...

    def add_feedback(self, model: str, labels: Iterable[tuple[str, Any]]) -> list[str]:
        """Store (request id, label) pairs for logged requests; returns the unknown ids."""
        ...

    def count_logged_rows(self, model: str, request_ids: Sequence[str]) -> dict[str, int]:
        """The rows of each logged request of ``model`` (what its label must match); ids
        never logged are left out."""
        ...

    def prune_predictions(self, before: datetime, model: str | None = None) -> tuple[int, int]:
        """Delete log entries older than ``before`` and their labels; returns the counts."""
        ...


class RunLog(Protocol):
    """Batch runs: what ran, on which version, how far it got and how it ended."""

    def record_run(self, run: BatchRun) -> None:
        """Insert a batch run, or update it (same ``run_id``) when it ends."""
        ...

    def list_runs(self, model: str | None = None, limit: int = 50) -> list[BatchRun]:
        """Batch runs, newest first."""
        ...


class MetadataStore(ModelStore, AliasStore, KeyStore, PredictionLog, RunLog, Protocol):
    """Everything a metadata backend stores: what ``_backends`` builds from a registry URI.

    The :class:`~modelport.registry.Registry` facade owns it and closes it; callers get the
    part they need from the facade instead.
    """

    def close(self) -> None:
        """Release database connections."""
        ...
