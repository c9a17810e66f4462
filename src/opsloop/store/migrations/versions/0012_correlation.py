"""Correlation by lineage node: each alert's node and deployment, and when an incident fell quiet.

``alerts.subject`` is the lineage node an alert is about and ``alerts.deployment`` the
deployment its labels name, both indexed with ``last_seen_at``, so that correlating a new
alert reads only the recent alerts of its lineage neighbours. ``incidents.quiet_since`` is when
the last firing alert of an open incident ended: an incident stays open through flaps for a
grace period after it, and the sweep that resolves quiet incidents reads an index.

Revision ID: 0012_correlation
Revises: 0011_detector_state
Create Date: 2026-12-06 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_correlation"
down_revision: str | None = "0011_detector_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("subject", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("deployment", sa.String(length=128), nullable=True))
        batch.create_index("ix_alerts_subject_seen", ["subject", "last_seen_at"], unique=False)
        batch.create_index(
            "ix_alerts_deployment_seen", ["deployment", "last_seen_at"], unique=False
        )
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("quiet_since", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_incidents_status_quiet", ["status", "quiet_since"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_index("ix_incidents_status_quiet")
        batch.drop_column("quiet_since")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_index("ix_alerts_deployment_seen")
        batch.drop_index("ix_alerts_subject_seen")
        batch.drop_column("deployment")
        batch.drop_column("subject")
