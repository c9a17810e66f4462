"""Feedback: one label per request id of a deployment (a unique index).

Labels stored before this revision may hold several for one request, of which readers took
the latest; the older ones are removed so that what readers see does not change.

Revision ID: 0005_feedback_unique
Revises: 0004_prediction_refs
Create Date: 2026-12-14 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_feedback_unique"
down_revision: str | None = "0004_prediction_refs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        sa.text(
            "DELETE FROM feedback WHERE id NOT IN "
            "(SELECT keep FROM (SELECT max(id) AS keep FROM feedback "
            "GROUP BY deployment, request_id) AS latest)"
        )
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(
            "uq_feedback_deployment_request", ["deployment", "request_id"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("uq_feedback_deployment_request")
