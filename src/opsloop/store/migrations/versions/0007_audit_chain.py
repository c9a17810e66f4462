"""Audit trail: events become a hash chain; where each came from.

``events`` gets ``source`` (from where), ``seq`` (the position in the chain: 1, 2, 3 …),
``prev_hash`` and ``hash`` (hex SHA-256, see :mod:`opsloop.store.audit`); ``audit_head`` holds
the newest entry's position and hash. Events written before this revision are hashed here in
the order of their ids, with no source.

The append-only triggers of 0001 are lifted while the existing rows are hashed and put back.

Revision ID: 0007_audit_chain
Revises: 0006_prediction_ids
Create Date: 2026-12-27 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from opsloop.store.audit import GENESIS, entry_hash

revision: str = "0007_audit_chain"
down_revision: str | None = "0006_prediction_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EVENTS = sa.table(
    "events",
    sa.column("id", sa.BigInteger()),
    sa.column("time", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("object_type", sa.String()),
    sa.column("object_id", sa.String()),
    sa.column("details", sa.JSON()),
    sa.column("source", sa.String()),
    sa.column("seq", sa.BigInteger()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)


def _drop_append_only() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS events_append_only_update")
        op.execute("DROP TRIGGER IF EXISTS events_append_only_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")


def _create_append_only() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_append_only_{verb.lower()} BEFORE {verb} ON events "
                "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
            )
    else:
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION opsloop_events_append_only()"
        )


def _backfill() -> tuple[int, str]:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_EVENTS).order_by(_EVENTS.c.id)).mappings().all()
    seq, prev = 0, GENESIS
    for row in rows:
        seq += 1
        digest = entry_hash(
            seq=seq,
            prev_hash=prev,
            time=row["time"],
            actor=row["actor"],
            source=None,
            kind=row["kind"],
            object_type=row["object_type"],
            object_id=row["object_id"],
            details=dict(row["details"] or {}),
        )
        bind.execute(
            _EVENTS.update()
            .where(_EVENTS.c.id == row["id"])
            .values(seq=seq, prev_hash=prev, hash=digest)
        )
        prev = digest
    return seq, prev


def upgrade() -> None:
    _drop_append_only()
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    seq, last = _backfill()
    op.bulk_insert(head, [{"id": 1, "seq": seq, "hash": last}])
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index("ix_events_seq", ["seq"], unique=True)
    _create_append_only()


def downgrade() -> None:
    _drop_append_only()
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_seq")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
        batch_op.drop_column("source")
    op.drop_table("audit_head")
    _create_append_only()
