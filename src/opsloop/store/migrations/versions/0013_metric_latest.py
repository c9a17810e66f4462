"""Metric indexes for long histories: ``metrics (run_id, key, id)`` and the step index
extended with the value, ``metrics (run_id, key, step, value)``.

A run's latest value of a metric is its last point stored (the highest id). With this index
the database seeks to it per key instead of reading every point of the run, so that a run
with a million points shows its latest values as fast as a run with ten. With the value in
the step index, the envelope of a long history (each stretch of steps as its lowest and
highest value) is read from the index alone, without a table read per point.

Revision ID: 0013_metric_latest
Revises: 0012_correlation
Create Date: 2026-12-06 23:55:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_metric_latest"
down_revision: str | None = "0012_correlation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.create_index("ix_metrics_run_key_id", ["run_id", "key", "id"], unique=False)
        batch.create_index(
            "ix_metrics_run_key_step_value", ["run_id", "key", "step", "value"], unique=False
        )
        batch.drop_index("ix_metrics_run_key_step")


def downgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.create_index("ix_metrics_run_key_step", ["run_id", "key", "step"], unique=False)
        batch.drop_index("ix_metrics_run_key_step_value")
        batch.drop_index("ix_metrics_run_key_id")
