"""Prediction log: large requests are kept out of line, as a reference to a Parquet chunk.

``predictions.rows`` is the request's row count (null on rows logged before) and
``predictions.chunk`` the digest of the chunk in the artifact store holding its rows; the index
lets retention find whether a chunk is still referenced. Feedback gets a (deployment, time)
index: monitors read labels by arrival time, and retention deletes the oldest.

Revision ID: 0004_prediction_refs
Revises: 0003_run_heartbeat
Create Date: 2026-12-06 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_prediction_refs"
down_revision: str | None = "0003_run_heartbeat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rows", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("chunk", sa.String(length=80), nullable=True))
        batch_op.create_index(batch_op.f("ix_predictions_chunk"), ["chunk"], unique=False)
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_deployment_time", ["deployment", "time"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_deployment_time")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_predictions_chunk"))
        batch_op.drop_column("chunk")
        batch_op.drop_column("rows")
