"""Run heartbeats and NaN metric values: the process writing a run (host, pid and its start
time) and when it last said it was alive; ``metrics.value`` may be NULL, which stands for NaN.

Revision ID: 0003_run_heartbeat
Revises: 0002
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_run_heartbeat"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pid_started", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.alter_column("value", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    # The old schema cannot hold a NaN point; those points are dropped.
    op.execute("DELETE FROM metrics WHERE value IS NULL")
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.alter_column("value", existing_type=sa.Float(), nullable=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("pid_started")
        batch_op.drop_column("pid")
        batch_op.drop_column("host")
