"""Aliases and their history, the part of the SQL store that promotion and rollback use.

An alias points at one ready version. Every change (set, move, delete) appends a history row
holding the previous target, so "roll back production" is "set it to the previous version
in its history" and an audit can tell who pointed what where, when.

On PostgreSQL a change also sends ``NOTIFY modelport_aliases, '<model name>'`` in the same
transaction (so only a committed change is announced), which serving processes listen to
(:mod:`modelport.serving.alias_events`) to follow a moved alias at once instead of at their
next poll.
"""

from __future__ import annotations

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from modelport.errors import AliasNotFound, VersionInUse
from modelport.ref import validate_alias, validate_name
from modelport.registry.entities import AliasChange, ModelVersion
from modelport.registry.sql._base import StoreBase, to_version
from modelport.registry.sql._schema import AliasHistoryRow, AliasRow, VersionRow, utcnow

ALIAS_CHANNEL = "modelport_aliases"
"""The PostgreSQL notification channel alias changes are announced on; the payload is the
model's name."""


class AliasMixin(StoreBase):
    """Alias methods of :class:`~modelport.registry.sql.store.SqlStore`."""

    def set_alias(self, name: str, alias: str, version: int) -> AliasChange:
        """Point ``alias`` at a ready ``version`` (creating or moving it) and record the change."""
        validate_alias(alias)
        with self._session(write=True) as s:
            row = self._ready_version_row(s, name, version)
            current = s.get(AliasRow, (row.model_id, alias), with_for_update=True)
            now = utcnow()
            previous = current.version if current is not None else None
            if current is None:
                s.add(AliasRow(model_id=row.model_id, alias=alias, version=version, updated_at=now))
            else:
                current.version = version
                current.updated_at = now
            _announce(s, name)
            return self._record(s, row.model_id, alias, version, previous)

    def get_alias(self, name: str, alias: str) -> ModelVersion:
        """The version ``name@alias`` points at."""
        validate_alias(alias)
        with self._session() as s:
            model = self._model_row(s, name)
            row = s.scalars(
                select(VersionRow)
                .join(
                    AliasRow,
                    (AliasRow.model_id == VersionRow.model_id)
                    & (AliasRow.version == VersionRow.version),
                )
                .where(AliasRow.model_id == model.id, AliasRow.alias == alias)
            ).one_or_none()
            if row is None:
                raise AliasNotFound(name, alias)
            return to_version(name, row)

    def delete_alias(self, name: str, alias: str) -> AliasChange:
        """Remove ``alias``; its history keeps a row with ``version=None``."""
        validate_alias(alias)
        validate_name(name)
        with self._session(write=True) as s:
            model = self._model_row(s, name, lock=True)
            current = s.get(AliasRow, (model.id, alias), with_for_update=True)
            if current is None:
                raise AliasNotFound(name, alias)
            previous = current.version
            s.delete(current)
            _announce(s, name)
            return self._record(s, model.id, alias, None, previous)

    def list_aliases(self, name: str) -> dict[str, int]:
        """Every current alias of the model and the version it points at."""
        validate_name(name)
        with self._session() as s:
            model = self._model_row(s, name)
            return self._aliases_by_model(s, [model.id]).get(model.id, {})

    def alias_history(self, name: str, alias: str) -> list[AliasChange]:
        """Every change of ``alias``, newest first (empty if it was never set)."""
        validate_alias(alias)
        validate_name(name)
        with self._session() as s:
            model = self._model_row(s, name)
            rows = s.scalars(
                select(AliasHistoryRow)
                .where(AliasHistoryRow.model_id == model.id, AliasHistoryRow.alias == alias)
                .order_by(AliasHistoryRow.id.desc())
            )
            return [
                AliasChange(row.alias, row.version, row.previous_version, row.changed_at)
                for row in rows
            ]

    def _record(
        self, s: Session, model_id: int, alias: str, version: int | None, previous: int | None
    ) -> AliasChange:
        row = AliasHistoryRow(
            model_id=model_id,
            alias=alias,
            version=version,
            previous_version=previous,
            changed_at=utcnow(),
        )
        s.add(row)
        s.flush()
        return AliasChange(alias, version, previous, row.changed_at)

    def _aliases_by_model(self, s: Session, model_ids: list[int]) -> dict[int, dict[str, int]]:
        result: dict[int, dict[str, int]] = {}
        rows = s.scalars(
            select(AliasRow).where(AliasRow.model_id.in_(model_ids)).order_by(AliasRow.alias)
        )
        for row in rows:
            result.setdefault(row.model_id, {})[row.alias] = row.version
        return result

    def _check_not_aliased(self, s: Session, name: str, row: VersionRow) -> None:
        aliases = list(
            s.scalars(
                select(AliasRow.alias)
                .where(AliasRow.model_id == row.model_id, AliasRow.version == row.version)
                .order_by(AliasRow.alias)
            )
        )
        if aliases:
            raise VersionInUse(name, row.version, aliases)

    def _delete_alias_rows(self, s: Session, model_id: int) -> None:
        s.execute(delete(AliasHistoryRow).where(AliasHistoryRow.model_id == model_id))
        s.execute(delete(AliasRow).where(AliasRow.model_id == model_id))


def _announce(s: Session, name: str) -> None:
    """Tell listening servers that an alias of ``name`` changed, when the transaction commits
    (PostgreSQL only: SQLite has no notifications, and its servers poll)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(
            text("SELECT pg_notify(:channel, :name)"), {"channel": ALIAS_CHANNEL, "name": name}
        )
