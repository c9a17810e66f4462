"""Alembic environment: always run online, on the connection opsloop hands over."""

from __future__ import annotations

from alembic import context

from opsloop.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table="opsloop_alembic_version",
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
