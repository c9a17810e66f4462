"""FinOps usage: metered resource-seconds per hour, kind of consumer and dimensions.

A write adds to the row of its hour (an upsert on ``(hour, kind, key)``), so the table grows
with hours x consumers, not with writes.

Revision ID: 0009_usage
Revises: 0008_access
Create Date: 2026-12-06 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_usage"
down_revision: str | None = "0008_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DIMENSIONS = (
    ("project", 128),
    ("team", 128),
    ("cost_centre", 128),
    ("run", 64),
    ("step", 256),
    ("trial", 128),
    ("model", 256),
    ("version", 32),
    ("deployment", 128),
    ("environment", 64),
)
_QUANTITIES = (
    "wall_s",
    "cpu_s",
    "memory_gb_s",
    "reserved_cpu_s",
    "reserved_memory_gb_s",
    "requests",
    "storage_gb_s",
)


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            nullable=False,
        ),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        *(sa.Column(name, sa.String(length=size), nullable=False) for name, size in _DIMENSIONS),
        *(sa.Column(name, sa.Float(), nullable=False) for name in _QUANTITIES),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.UniqueConstraint("hour", "kind", "key", name="uq_usage_hour_kind_key"),
    )
    op.create_index("ix_usage_hour", "usage", ["hour"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_usage_hour", table_name="usage")
    op.drop_table("usage")
