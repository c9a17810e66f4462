"""What the GitOps reconciler records: each deployment's last seen desired and live state with
its statuses, and the history of syncs. Every change is written with its audit event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, desc, select

from opsloop.store import models as m
from opsloop.store.types import DeploymentRecord, SyncHistoryEntry

if TYPE_CHECKING:
    import builtins
    from datetime import datetime

    from opsloop.store.db import Database

__all__ = ["DeploymentRepository"]


class DeploymentRepository:
    """Deployment records and their sync history."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, name: str) -> DeploymentRecord | None:
        """The record of one deployment, or None."""
        with self.db.read() as s:
            row = s.get(m.Deployment, name)
            return DeploymentRecord.model_validate(row) if row is not None else None

    def list(self) -> builtins.list[DeploymentRecord]:
        """Every deployment record, by name."""
        with self.db.read() as s:
            rows = s.scalars(select(m.Deployment).order_by(m.Deployment.name)).all()
            return [DeploymentRecord.model_validate(r) for r in rows]

    def save_status(
        self,
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
        with self.db.write() as s:
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
                self.db.event(
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
                        "before": None
                        if before == (None, None)
                        else {"sync": before[0], "health": before[1]},
                        "after": {"sync": sync_status, "health": health_status},
                    },
                )
            return changed

    def record_sync(
        self,
        name: str,
        *,
        revision: str | None,
        started_at: datetime,
        result: str,
        diff: dict[str, Any],
        details: dict[str, Any],
        kind: str = "deployment.synced",
    ) -> int:
        """Add a sync to the history, with its event ``kind``; return the record's id.

        The event's ``before`` and ``after`` are the live values of the fields ``diff``
        names (``{field: {"live": …, "desired": …}}``) before and after the sync: the desired
        ones when it succeeded, the live ones unchanged when it failed.
        """
        with self.db.write() as s:
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
            before = {k: v.get("live") for k, v in diff.items() if isinstance(v, dict)}
            after = (
                before
                if result == "failed"
                else {k: v.get("desired") for k, v in diff.items() if isinstance(v, dict)}
            )
            self.db.event(
                s,
                kind,
                "deployment",
                name,
                {
                    "revision": revision,
                    "result": result,
                    "diff": diff,
                    **details,
                    "before": before,
                    "after": after,
                },
            )
            return int(rec.id)

    def delete(self, name: str, details: dict[str, Any]) -> None:
        """Forget a deployment's record (its sync history stays), with a
        ``deployment.removed`` event."""
        with self.db.write() as s:
            row = s.get(m.Deployment, name)
            before = (
                None
                if row is None
                else {
                    "revision": row.revision,
                    "sync": row.sync_status,
                    "health": row.health_status,
                }
            )
            s.execute(delete(m.Deployment).where(m.Deployment.name == name))
            self.db.event(
                s,
                "deployment.removed",
                "deployment",
                name,
                {**details, "before": before, "after": None},
            )

    def history(self, name: str, *, limit: int = 50) -> builtins.list[SyncHistoryEntry]:
        """The latest syncs of a deployment, newest first."""
        with self.db.read() as s:
            rows = s.scalars(
                select(m.SyncRecord)
                .where(m.SyncRecord.deployment == name)
                .order_by(desc(m.SyncRecord.id))
                .limit(limit)
            ).all()
            return [SyncHistoryEntry.model_validate(r) for r in rows]

    def last_sync(self, name: str, *, result: str | None = None) -> SyncHistoryEntry | None:
        """The latest sync of a deployment (with that ``result``, if given), or None."""
        with self.db.read() as s:
            query = select(m.SyncRecord).where(m.SyncRecord.deployment == name)
            if result is not None:
                query = query.where(m.SyncRecord.result == result)
            row = s.scalars(query.order_by(desc(m.SyncRecord.id)).limit(1)).first()
            return SyncHistoryEntry.model_validate(row) if row is not None else None

    def record_change(
        self,
        name: str,
        kind: str,
        details: dict[str, Any],
        *,
        before: Any = None,
        after: Any = None,
    ) -> None:
        """An audit event for a change of a deployment's desired state (a commit), with what
        the deployment served ``before`` and ``after`` it (None: nothing)."""
        with self.db.write() as s:
            self.db.event(
                s, kind, "deployment", name, {**details, "before": before, "after": after}
            )
