"""Batch runs record where they run and a heartbeat, so that a killed job shows as abandoned.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modelport.registry.sql._schema import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("batch_runs", sa.Column("heartbeat_at", UTCDateTime(), nullable=True))
    op.add_column("batch_runs", sa.Column("host", sa.String(255), nullable=True))
    op.add_column("batch_runs", sa.Column("pid", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_runs") as table:
        table.drop_column("pid")
        table.drop_column("host")
        table.drop_column("heartbeat_at")
