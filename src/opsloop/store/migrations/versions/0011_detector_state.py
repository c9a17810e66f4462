"""Detector state: a streaming detector's checkpoint per metric series, resumed each pass.

One row per ``(series, labels_key, detector)``; ``detector`` is the digest of the detector's
class and parameters, so a changed setting starts afresh instead of resuming a stale state.

Revision ID: 0011_detector_state
Revises: 0010_schedules
Create Date: 2026-12-06 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_detector_state"
down_revision: str | None = "0010_schedules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "detector_states",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            nullable=False,
        ),
        sa.Column("series", sa.String(length=128), nullable=False),
        sa.Column("labels_key", sa.String(length=512), nullable=False),
        sa.Column("detector", sa.String(length=64), nullable=False),
        sa.Column("last_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "series", "labels_key", "detector", name="uq_detector_states_series_detector"
        ),
    )


def downgrade() -> None:
    op.drop_table("detector_states")
