"""API keys, and the trust record of versions registered with ``trust_unsafe``.

Revision ID: 0002
Revises: 0001
Create Date: 2024-07-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modelport.registry.sql._schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
        sa.UniqueConstraint("key_id", name="uq_api_keys_key_id"),
    )
    # Nullable, so existing rows need no value: versions registered before were not trusted.
    op.add_column("model_versions", sa.Column("trusted_unsafe_by", sa.String(128), nullable=True))
    op.add_column("model_versions", sa.Column("trusted_unsafe_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite before 3.35 cannot drop a column in place.
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("trusted_unsafe_at")
        batch.drop_column("trusted_unsafe_by")
    op.drop_table("api_keys")
