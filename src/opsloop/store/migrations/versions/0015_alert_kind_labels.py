"""The labels correlation tells alerts apart by, as columns: ``alerts.label_category``,
``alerts.label_feature`` and ``alerts.label_model``.

Correlating a batch groups the alerts of neighbouring open incidents by kind (node,
deployment, name, severity and these three labels). Read from columns, the grouping no longer
decodes every alert's labels. Existing alerts get the values of their labels.

Revision ID: 0015_alert_kind_labels
Revises: 0014_alert_incident_order
Create Date: 2026-12-07 05:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_alert_kind_labels"
down_revision: str | None = "0014_alert_incident_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LABELS = ("category", "feature", "model")


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        for label in _LABELS:
            batch.add_column(sa.Column(f"label_{label}", sa.Text(), nullable=True))
    alerts = sa.table(
        "alerts",
        sa.column("labels", sa.JSON()),
        *(sa.column(f"label_{label}", sa.Text()) for label in _LABELS),
    )
    op.execute(
        alerts.update().values(
            {f"label_{label}": alerts.c.labels[label].as_string() for label in _LABELS}
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        for label in reversed(_LABELS):
            batch.drop_column(f"label_{label}")
