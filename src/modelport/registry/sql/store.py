"""The SQL metadata store: models, versions and aliases in SQLite or PostgreSQL.

One code path serves both databases. Version numbers are allocated inside the write
transaction from the ``last_version`` counter on the model row, which is locked first:
on SQLite by ``BEGIN IMMEDIATE`` (one writer at a time), on PostgreSQL by
``SELECT ... FOR UPDATE`` after an ``INSERT ... ON CONFLICT DO NOTHING`` that makes sure the
row exists. Either way two registrations can never receive the same number, and since the
counter only grows, a deleted version's number is never handed out again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from modelport.errors import Conflict
from modelport.ref import validate_name
from modelport.registry import _paging
from modelport.registry.entities import ModelInfo, ModelVersion, Page
from modelport.registry.sql._aliases import AliasMixin
from modelport.registry.sql._base import check_tags, to_version
from modelport.registry.sql._keys import KeyMixin
from modelport.registry.sql._logged_rows import LoggedRowsMixin
from modelport.registry.sql._monitoring import MonitoringMixin
from modelport.registry.sql._runs import RunMixin
from modelport.registry.sql._schema import ModelRow, VersionRow, utcnow

logger = logging.getLogger(__name__)

_MAX_ERROR_LENGTH = 4000


class SqlStore(AliasMixin, KeyMixin, LoggedRowsMixin, MonitoringMixin, RunMixin):
    """Registry metadata in a SQL database, created or migrated to the newest schema on open.

    >>> store = SqlStore("sqlite:////tmp/registry.db")
    >>> store.create_version("churn", flavor="sklearn").version
    1
    """

    # -- models -------------------------------------------------------------------------

    def create_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> ModelInfo:
        """Register a new, empty model; Conflict if the name is taken."""
        validate_name(name)
        clean_tags = check_tags(tags)
        with self._session(write=True) as s:
            if not self._insert_model(s, name, description=description, tags=clean_tags):
                raise Conflict(f"model {name!r} already exists")
            return self._model_infos(s, [self._model_row(s, name)])[0]

    def get_model(self, name: str) -> ModelInfo:
        """The model with its newest ready version and current aliases."""
        validate_name(name)
        with self._session() as s:
            return self._model_infos(s, [self._model_row(s, name)])[0]

    def list_models(
        self, page_token: str | None = None, max_results: int = _paging.DEFAULT_MAX_RESULTS
    ) -> Page[ModelInfo]:
        """Models in name order, one page at a time."""
        limit = _paging.check_max_results(max_results)
        after = _paging.decode_token(page_token, str)
        query = select(ModelRow).order_by(ModelRow.name).limit(limit + 1)
        if after is not None:
            query = query.where(ModelRow.name > after)
        with self._session() as s:
            rows = list(s.scalars(query))
            infos = self._model_infos(s, rows[:limit])
        token = _paging.encode_token(infos[-1].name) if len(rows) > limit else None
        return Page(infos, token)

    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelInfo:
        """Replace the description and/or tags of a model (None leaves a field as it is)."""
        validate_name(name)
        clean_tags = check_tags(tags) if tags is not None else None
        with self._session(write=True) as s:
            row = self._model_row(s, name, lock=True)
            if description is not None:
                row.description = description
            if clean_tags is not None:
                row.tags = clean_tags
            row.updated_at = utcnow()
            s.flush()
            return self._model_infos(s, [row])[0]

    def delete_model(self, name: str) -> list[str]:
        """Delete a model with all its versions, aliases and history.

        Returns the artifact keys of the deleted versions so the caller can remove the files.
        """
        validate_name(name)
        with self._session(write=True) as s:
            model = self._model_row(s, name, lock=True)
            keys = list(
                s.scalars(select(VersionRow.artifact_key).where(VersionRow.model_id == model.id))
            )
            self._delete_alias_rows(s, model.id)
            s.execute(delete(VersionRow).where(VersionRow.model_id == model.id))
            s.delete(model)
        return keys

    # -- versions -----------------------------------------------------------------------

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
    ) -> ModelVersion:
        """Allocate the next version number as a ``pending`` version, creating the model if new.

        The artifact key is fixed here, from the model's id and the number, so a crashed
        registration leaves a row that says where its partial files may be.
        ``trusted_unsafe_by`` records who trusted this version to load without the pickle
        allow-list (and when: now).
        """
        validate_name(name)
        clean_tags = check_tags(tags)
        with self._session(write=True) as s:
            self._insert_model(s, name)
            model = self._model_row(s, name, lock=True)
            model.last_version += 1
            now = utcnow()
            model.updated_at = now
            row = VersionRow(
                model_id=model.id,
                version=model.last_version,
                status="pending",
                flavor=flavor,
                artifact_key=f"models/{model.id}/v{model.last_version}",
                metrics={k: float(v) for k, v in (metrics or {}).items()},
                tags=clean_tags,
                description=description,
                source=source,
                created_at=now,
                updated_at=now,
                trusted_unsafe_by=trusted_unsafe_by,
                trusted_unsafe_at=now if trusted_unsafe_by is not None else None,
            )
            s.add(row)
            s.flush()
            logger.debug("allocated %s/%d", name, row.version)
            return to_version(name, row)

    def mark_version_ready(
        self,
        name: str,
        version: int,
        *,
        artifact_key: str,
        manifest_sha256: str,
        flavor: str | None = None,
    ) -> ModelVersion:
        """Publish a pending version whose artifact is complete at ``artifact_key``.

        Conflict if the version is no longer pending (e.g. ``cleanup_stale`` gave up on it).
        """
        with self._session(write=True) as s:
            row = self._version_row(s, name, version, lock=True)
            if row.status != "pending":
                raise Conflict(
                    f"model {name!r} version {version} is {row.status}; "
                    "only a pending version can become ready"
                )
            row.status = "ready"
            row.artifact_key = artifact_key
            row.manifest_sha256 = manifest_sha256
            row.flavor = flavor or row.flavor
            row.updated_at = utcnow()
            s.flush()
            return to_version(name, row)

    def mark_version_failed(self, name: str, version: int, error: str) -> ModelVersion:
        """Record that a pending version's artifact could not be written; a ready one stays."""
        with self._session(write=True) as s:
            row = self._version_row(s, name, version, lock=True)
            if row.status == "ready":
                raise Conflict(f"model {name!r} version {version} is ready and cannot fail")
            row.status = "failed"
            row.error = error[:_MAX_ERROR_LENGTH]
            row.updated_at = utcnow()
            s.flush()
            return to_version(name, row)

    def update_version(
        self,
        name: str,
        version: int,
        *,
        tags: Mapping[str, str] | None = None,
        remove_tags: Sequence[str] = (),
        description: str | None = None,
    ) -> ModelVersion:
        """Change a version's registry tags (set ``tags``, drop ``remove_tags``) and
        description. The artifact itself is immutable: its manifest keeps what it was saved
        with."""
        new_tags = {validate_name(k, "tag key"): str(v) for k, v in (tags or {}).items()}
        for key in remove_tags:
            validate_name(key, "tag key")
        with self._session(write=True) as s:
            row = self._version_row(s, name, version, lock=True)
            merged = {k: v for k, v in dict(row.tags).items() if k not in remove_tags}
            row.tags = {**merged, **new_tags}
            if description is not None:
                row.description = description
            row.updated_at = utcnow()
            s.flush()
            return to_version(name, row)

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version, whatever its status."""
        with self._session() as s:
            return to_version(name, self._version_row(s, name, version))

    def list_versions(
        self,
        name: str,
        page_token: str | None = None,
        max_results: int = _paging.DEFAULT_MAX_RESULTS,
    ) -> Page[ModelVersion]:
        """Versions of a model, newest first, one page at a time."""
        validate_name(name)
        limit = _paging.check_max_results(max_results)
        before = _paging.decode_token(page_token, int)
        with self._session() as s:
            model = self._model_row(s, name)
            query = (
                select(VersionRow)
                .where(VersionRow.model_id == model.id)
                .order_by(VersionRow.version.desc())
                .limit(limit + 1)
            )
            if before is not None:
                query = query.where(VersionRow.version < before)
            rows = list(s.scalars(query))
        items = [to_version(name, row) for row in rows[:limit]]
        token = _paging.encode_token(items[-1].version) if len(rows) > limit else None
        return Page(items, token)

    def latest_ready_version(self, name: str) -> ModelVersion | None:
        """The newest ready version (what a bare ``name`` ref means), or None if none is."""
        validate_name(name)
        with self._session() as s:
            model = self._model_row(s, name)
            row = s.scalars(
                select(VersionRow)
                .where(VersionRow.model_id == model.id, VersionRow.status == "ready")
                .order_by(VersionRow.version.desc())
                .limit(1)
            ).first()
            return to_version(name, row) if row is not None else None

    def delete_version(self, name: str, version: int) -> str:
        """Delete a version no alias points at; returns its artifact key for file removal."""
        with self._session(write=True) as s:
            row = self._version_row(s, name, version, lock=True)
            self._check_not_aliased(s, name, row)
            key = row.artifact_key
            s.delete(row)
        return key

    def find_stale_pending(self, older_than: timedelta) -> list[ModelVersion]:
        """Pending versions created more than ``older_than`` ago: registrations that died."""
        cutoff = utcnow() - older_than
        with self._session() as s:
            rows = s.execute(
                select(ModelRow.name, VersionRow)
                .join(ModelRow, ModelRow.id == VersionRow.model_id)
                .where(VersionRow.status == "pending", VersionRow.created_at < cutoff)
                .order_by(ModelRow.name, VersionRow.version)
            ).all()
            return [to_version(model_name, row) for model_name, row in rows]

    # -- helpers ------------------------------------------------------------------------

    def _model_infos(self, s: Session, rows: list[ModelRow]) -> list[ModelInfo]:
        """Snapshots of ``rows`` with latest ready version and aliases, in two queries."""
        ids = [row.id for row in rows]
        latest = dict(
            s.execute(
                select(VersionRow.model_id, func.max(VersionRow.version))
                .where(VersionRow.model_id.in_(ids), VersionRow.status == "ready")
                .group_by(VersionRow.model_id)
            ).all()
        )
        aliases = self._aliases_by_model(s, ids)
        return [
            ModelInfo(
                name=row.name,
                description=row.description,
                tags=dict(row.tags),
                created_at=row.created_at,
                updated_at=row.updated_at,
                latest_version=latest.get(row.id),
                aliases=aliases.get(row.id, {}),
            )
            for row in rows
        ]
