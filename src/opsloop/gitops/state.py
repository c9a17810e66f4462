"""What the reconciler records in the metadata store: each deployment's last seen desired and
live state with its statuses, and the history of syncs.

Every change is written together with its audit event, in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, desc, select

from opsloop.store import Store
from opsloop.store import models as m

__all__ = [
    "DeploymentRecord",
    "SyncHistoryEntry",
    "delete_deployment",
    "get_deployment",
    "last_sync",
    "list_deployments",
    "record_change",
    "record_sync",
    "save_status",
    "sync_history",
]


class DeploymentRecord(BaseModel):
    """A deployment as the reconciler last saw it."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    revision: str | None
    desired: dict[str, Any]
    live: dict[str, Any]
    sync_status: str
    health_status: str
    reason: str
    created_at: datetime
    updated_at: datetime


class SyncHistoryEntry(BaseModel):
    """One sync of one deployment."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    deployment: str
    revision: str | None
    started_at: datetime
    finished_at: datetime | None
    result: str
    diff: dict[str, Any]
    details: dict[str, Any]


def get_deployment(store: Store, name: str) -> DeploymentRecord | None:
    """The record of one deployment, or None."""
    with store.read_session() as s:
        row = s.get(m.Deployment, name)
        return DeploymentRecord.model_validate(row) if row is not None else None


def list_deployments(store: Store) -> list[DeploymentRecord]:
    """Every deployment record, by name."""
    with store.read_session() as s:
        rows = s.scalars(select(m.Deployment).order_by(m.Deployment.name)).all()
        return [DeploymentRecord.model_validate(r) for r in rows]


def save_status(
    store: Store,
    name: str,
    *,
    revision: str | None,
    desired: dict[str, Any] | None,
    live: dict[str, Any] | None,
    sync_status: str,
    health_status: str,
    reason: str,
) -> bool:
    """Create or update a deployment's record.

    ``desired`` or ``live`` left None keep their stored value. An event
    ``deployment.status`` is recorded only when the sync or health status changes, so a
    reconcile loop does not flood the audit log.

    Returns:
        Whether the sync or health status changed.
    """
    with store.write_session() as s:
        row = s.get(m.Deployment, name)
        now = m.utcnow()
        if row is None:
            row = m.Deployment(name=name, created_at=now, desired={}, live={})
            s.add(row)
            before: tuple[str | None, str | None] = (None, None)
        else:
            before = (row.sync_status, row.health_status)
        row.revision = revision
        if desired is not None:
            row.desired = desired
        if live is not None:
            row.live = live
        row.sync_status = sync_status
        row.health_status = health_status
        row.reason = reason
        row.updated_at = now
        changed = before != (sync_status, health_status)
        if changed:
            store.add_event(
                s,
                "deployment.status",
                "deployment",
                name,
                {
                    "sync": sync_status,
                    "health": health_status,
                    "previous_sync": before[0],
                    "previous_health": before[1],
                    "reason": reason,
                    "revision": revision,
                },
            )
        return changed


def record_sync(
    store: Store,
    name: str,
    *,
    revision: str | None,
    started_at: datetime,
    result: str,
    diff: dict[str, Any],
    details: dict[str, Any],
    kind: str = "deployment.synced",
) -> int:
    """Add a sync to the history, with its event ``kind``; return the record's id."""
    with store.write_session() as s:
        rec = m.SyncRecord(
            deployment=name,
            revision=revision,
            started_at=started_at,
            finished_at=m.utcnow(),
            result=result,
            diff=diff,
            details=details,
        )
        s.add(rec)
        s.flush()
        store.add_event(
            s,
            kind,
            "deployment",
            name,
            {"revision": revision, "result": result, "diff": diff, **details},
        )
        return int(rec.id)


def delete_deployment(store: Store, name: str, details: dict[str, Any]) -> None:
    """Forget a deployment's record (its sync history stays), with a ``deployment.removed``
    event."""
    with store.write_session() as s:
        s.execute(delete(m.Deployment).where(m.Deployment.name == name))
        store.add_event(s, "deployment.removed", "deployment", name, details)


def sync_history(store: Store, name: str, *, limit: int = 50) -> list[SyncHistoryEntry]:
    """The latest syncs of a deployment, newest first."""
    with store.read_session() as s:
        rows = s.scalars(
            select(m.SyncRecord)
            .where(m.SyncRecord.deployment == name)
            .order_by(desc(m.SyncRecord.id))
            .limit(limit)
        ).all()
        return [SyncHistoryEntry.model_validate(r) for r in rows]


def last_sync(store: Store, name: str, *, result: str | None = None) -> SyncHistoryEntry | None:
    """The latest sync of a deployment (with that ``result``, if given), or None."""
    with store.read_session() as s:
        query = select(m.SyncRecord).where(m.SyncRecord.deployment == name)
        if result is not None:
            query = query.where(m.SyncRecord.result == result)
        row = s.scalars(query.order_by(desc(m.SyncRecord.id)).limit(1)).first()
        return SyncHistoryEntry.model_validate(row) if row is not None else None


def record_change(store: Store, name: str, kind: str, details: dict[str, Any]) -> None:
    """An audit event for a change of a deployment's desired state (a commit)."""
    with store.write_session() as s:
        store.add_event(s, kind, "deployment", name, details)
