"""Alert indexes for correlation: ``alerts (incident_id, starts_at)`` and ``alerts (status,
incident_id)``.

Ingesting alerts asks of an incident where its first alerts end (the alert at a given place
by start, to tell whether new alerts change the ones its root causes are ranked on), and for
the firing alerts in no incident; with these indexes both are read from an index, whatever
the number of alerts stored.

Revision ID: 0014_alert_incident_order
Revises: 0013_metric_latest
Create Date: 2026-12-07 03:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_alert_incident_order"
down_revision: str | None = "0013_metric_latest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.create_index("ix_alerts_incident_start", ["incident_id", "starts_at"], unique=False)
        batch.create_index("ix_alerts_status_incident", ["status", "incident_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_index("ix_alerts_status_incident")
        batch.drop_index("ix_alerts_incident_start")
