"""Explicit schema migrations for the registry database: what it is at, and bringing it to head.

SQLite databases upgrade themselves when a store opens them. A PostgreSQL database is shared by
many processes, so an open never migrates one that already has a schema: an older schema is
refused with :class:`~modelport.errors.SchemaOutdated` until ``modelport db upgrade`` runs, and
an empty database (no ``alembic_version``) gets the whole schema on first open, which is safe
because nothing else can be using it yet. A revision this modelport does not know (written by a
newer modelport) is refused on every backend with :class:`~modelport.errors.SchemaTooNew`.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelport.registry.sql._engine import (
    build_engine,
    dispose,
    mapped_errors,
    parse_url,
    schema_revisions,
    upgrade_schema,
)

__all__ = ["SchemaState", "schema_state", "upgrade_database"]


@dataclass(frozen=True, kw_only=True)
class SchemaState:
    """Where a registry database's schema stands: its revision and the one modelport needs."""

    current: str | None  # None: no schema yet
    head: str | None
    known: bool  # False: a revision from a newer modelport

    @property
    def needs_upgrade(self) -> bool:
        """True when ``modelport db upgrade`` would change the database."""
        return self.known and self.current != self.head


def schema_state(uri: str) -> SchemaState:
    """Read the schema revision of the registry database at ``uri``; changes nothing."""
    with mapped_errors(uri):
        engine = build_engine(parse_url(uri))
        try:
            current, head, known = schema_revisions(engine)
        finally:
            dispose(engine)
    return SchemaState(current=current, head=head, known=known)


def upgrade_database(uri: str) -> tuple[str | None, str | None]:
    """Migrate the registry database at ``uri`` to the newest schema; returns (from, to).

    Idempotent: at head already, from and to are the same and nothing runs.

    Raises:
        SchemaTooNew: the database was migrated by a newer modelport.
    """
    with mapped_errors(uri):
        engine = build_engine(parse_url(uri))
        try:
            before, _, _ = schema_revisions(engine)
            upgrade_schema(engine, explicit=True)
            after, _, _ = schema_revisions(engine)
        finally:
            dispose(engine)
    return before, after
