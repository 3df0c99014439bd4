"""The SQL metadata store (SQLite and PostgreSQL) and its schema; see :class:`SqlStore`."""

from modelport.registry.sql.store import SqlStore

__all__ = ["SqlStore"]
