"""The registry's tables as SQLAlchemy 2 typed ORM classes; private to the SQL store.

The migrations in ``modelport/registry/migrations`` create exactly this schema; a test compares
the two with Alembic's autogenerate so they cannot drift apart.

- ``models``: one row per name. ``last_version`` is the highest number ever handed out, so
  version numbers stay monotonic and are never reused after a version is deleted.
- ``model_versions``: one row per version with its status and artifact key.
- ``aliases``: current alias -> version. The composite foreign key to ``model_versions``
  makes the database itself refuse to delete a version an alias points at.
- ``alias_history``: every set/move/delete of an alias, for audit and rollback.
- ``api_keys``: one row per API key: its public id, a salt and HMAC-SHA256 of its secret
  (never the secret), scope, optional model restriction and when it was revoked.
- ``prediction_log``: sampled requests of served models: inputs and outputs (JSON, column name
  -> values), version, request id, latency. Written in batches by the server's log writer.
- ``feedback``: true labels posted later for logged request ids, one per (model, request).
- ``batch_runs``: one row per batch scoring job: model version, source, sink, row counts,
  status and duration, and where it runs (host, pid) and when it last said it was alive.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAME_LENGTH = 128
KEY_ID_LENGTH = 32
REQUEST_ID_LENGTH = 128


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, whatever the backend stores.

    SQLite has no time zones and returns naive values; PostgreSQL returns values in the
    session's time zone. Normalizing here means callers always get UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


# Stable constraint names, so migrations can refer to them on every backend.
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)
    # JSON columns hold str -> str/float maps; Any because JSON is untyped at this boundary.
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UTCDateTime}


class ModelRow(Base):
    __tablename__ = "models"
    # AUTOINCREMENT keeps SQLite from reusing the id of a deleted model, and ids name
    # artifact keys, so a re-created model can never land on an old model's files.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class VersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    flavor: Mapped[str | None] = mapped_column(String(64))
    artifact_key: Mapped[str] = mapped_column(String(512))
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    trusted_unsafe_by: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    trusted_unsafe_at: Mapped[datetime | None]


class AliasRow(Base):
    __tablename__ = "aliases"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "version"],
            ["model_versions.model_id", "model_versions.version"],
            name="fk_aliases_version_model_versions",
        ),
    )

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class AliasHistoryRow(Base):
    __tablename__ = "alias_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(NAME_LENGTH))
    version: Mapped[int | None] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer)
    changed_at: Mapped[datetime]


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    key_id: Mapped[str] = mapped_column(String(KEY_ID_LENGTH), unique=True)
    salt: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    rate_limit: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class PredictionRow(Base):
    __tablename__ = "prediction_log"
    __table_args__ = (
        Index("ix_prediction_log_model_created_at", "model", "created_at"),
        Index("ix_prediction_log_model_request_id", "model", "request_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    version: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_LENGTH))
    created_at: Mapped[datetime]
    latency_ms: Mapped[float] = mapped_column(Float)
    inputs: Mapped[dict[str, Any]] = mapped_column()
    outputs: Mapped[dict[str, Any]] = mapped_column()


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("model", "request_id", name="uq_feedback_model_request_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_LENGTH))
    label: Mapped[Any] = mapped_column(JSON)  # Any: a label is any JSON value
    created_at: Mapped[datetime]


class BatchRunRow(Base):
    __tablename__ = "batch_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), unique=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    version: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    sink: Mapped[str] = mapped_column(Text)
    engine: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(Integer)
    scored: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None]
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
