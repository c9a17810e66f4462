"""Prediction log: the columns a request sent beyond the model's signature.

``/invocations`` ignores columns the model does not take (ids, timestamps …), as MLflow does;
``predictions.ids`` keeps them, ``{column: [values]}``, so that labels can be joined by them.

Revision ID: 0006_prediction_ids
Revises: 0005_feedback_unique
Create Date: 2026-12-20 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_prediction_ids"
down_revision: str | None = "0005_feedback_unique"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("ids")
