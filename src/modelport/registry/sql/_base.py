"""The plumbing every part of the SQL store shares: engine, sessions and row lookups."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Self

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from modelport.errors import ModelNotFound, VersionNotFound, VersionNotReady
from modelport.ref import validate_name
from modelport.registry.entities import ModelVersion, VersionStatus
from modelport.registry.sql._engine import (
    build_engine,
    dispose,
    mapped_errors,
    parse_url,
    upgrade_schema,
    writer,
)
from modelport.registry.sql._schema import ModelRow, VersionRow, utcnow


class StoreBase:
    """Opens the database (migrating it to head) and hands out one transaction at a time."""

    def __init__(self, uri: str) -> None:
        self._uri = uri
        url = parse_url(uri)
        with mapped_errors(uri):
            self._engine = build_engine(url)
            try:
                upgrade_schema(self._engine)
            except BaseException:
                dispose(self._engine)
                raise
        self._writer = writer(self._engine)

    def close(self) -> None:
        """Release every database connection."""
        dispose(self._engine)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction; ``write`` takes the write lock at BEGIN on SQLite."""
        with (
            mapped_errors(self._uri),
            Session(self._writer if write else self._engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    def _insert_model(
        self, s: Session, name: str, *, description: str = "", tags: dict[str, str] | None = None
    ) -> bool:
        """Insert the model row unless it exists; True if this call created it."""
        now = utcnow()
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        result = s.execute(
            insert(ModelRow)
            .values(
                name=name,
                description=description,
                tags=tags or {},
                last_version=0,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(ModelRow.id)
        )
        return result.first() is not None

    def _model_row(self, s: Session, name: str, *, lock: bool = False) -> ModelRow:
        query = select(ModelRow).where(ModelRow.name == name)
        if lock:
            query = query.with_for_update()
        row = s.scalars(query).one_or_none()
        if row is None:
            raise ModelNotFound(name)
        return row

    def _version_row(
        self, s: Session, name: str, version: int, *, lock: bool = False
    ) -> VersionRow:
        validate_name(name)
        model = self._model_row(s, name, lock=lock)
        row = s.scalars(
            select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.version == version)
        ).one_or_none()
        if row is None:
            raise VersionNotFound(name, version)
        return row

    def _ready_version_row(self, s: Session, name: str, version: int) -> VersionRow:
        row = self._version_row(s, name, version, lock=True)
        if row.status != "ready":
            raise VersionNotReady(name, version, row.status)
        return row


def check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """Tag keys follow the name rules (they end up in URLs and file names); values are text."""
    return {validate_name(k, "tag key"): str(v) for k, v in (tags or {}).items()}


def to_version(name: str, row: VersionRow) -> ModelVersion:
    """Snapshot a version row for callers outside the session."""
    status: VersionStatus
    if row.status == "ready":
        status = "ready"
    elif row.status == "failed":
        status = "failed"
    else:
        status = "pending"
    # JSON columns come back as plain dicts; copy so snapshots never share state with rows.
    metrics: dict[str, Any] = dict(row.metrics)
    return ModelVersion(
        name=name,
        version=row.version,
        status=status,
        flavor=row.flavor,
        artifact_key=row.artifact_key,
        manifest_sha256=row.manifest_sha256,
        metrics=metrics,
        tags=dict(row.tags),
        description=row.description,
        source=row.source,
        created_at=row.created_at,
        error=row.error,
        trusted_unsafe_by=row.trusted_unsafe_by,
        trusted_unsafe_at=row.trusted_unsafe_at,
    )
