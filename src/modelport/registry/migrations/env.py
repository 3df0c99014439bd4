"""Alembic environment for the registry schema, run only programmatically.

The SQL store opens the connection, takes the migration lock and passes the connection in
``config.attributes["connection"]``; there is no ``alembic.ini`` and logging is left alone
(library code never configures logging).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from modelport.registry.sql._schema import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("modelport migrations run through the registry, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
