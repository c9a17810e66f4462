"""Loads of data sources, and schedules with their history."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from opsloop.errors import NotFoundError
from opsloop.store import models as m

if TYPE_CHECKING:
    import builtins
    from collections.abc import Sequence

    from opsloop.store.db import Database

__all__ = [
    "ScheduleRepository",
    "ScheduleRunInfo",
    "SourceLoadInfo",
    "SourceLoadRepository",
]

ACTIVE_STATUSES = ("running",)


class _Info(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class SourceLoadInfo(_Info):
    """One load of a data source.

    Attributes:
        source: The source's name (``data.name``).
        loaded_at: When it was loaded.
        digest: The content digest of the whole version after the load.
        artifact: The artifact digest of its Parquet snapshot.
        rows: Rows of the version.
        new_rows: Rows the load added.
        watermark: The largest watermark value seen (``{"type": …, "value": …}``), or None.
    """

    id: int
    source: str
    loaded_at: datetime
    digest: str
    artifact: str
    rows: int
    new_rows: int
    watermark: dict[str, Any] | None
    details: dict[str, Any]


class ScheduleRunInfo(_Info):
    """One time a schedule was due.

    ``status`` is ``running``, ``succeeded``, ``failed``, ``skipped`` (nothing started: the
    reason says why), ``replaced`` (stopped for a newer run) or ``interrupted`` (its process
    was gone when the loop looked).
    """

    id: int
    schedule: str
    trigger: str
    due_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    pid: int | None
    run_id: str | None
    reason: str
    details: dict[str, Any]


class SourceLoadRepository:
    """Loads of data sources."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        source: str,
        *,
        digest: str,
        artifact: str,
        rows: int,
        new_rows: int,
        watermark: dict[str, Any] | None,
        details: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> SourceLoadInfo:
        """Record one load of ``source``."""
        with self.db.write() as s:
            row = m.SourceLoad(
                source=source,
                digest=digest,
                artifact=artifact,
                rows=rows,
                new_rows=new_rows,
                watermark=watermark,
                details=details or {},
            )
            if at is not None:
                row.loaded_at = at
            s.add(row)
            s.flush()
            self.db.event(
                s,
                "source.loaded",
                "source",
                source,
                {"digest": digest, "rows": rows, "new_rows": new_rows},
            )
            return SourceLoadInfo.model_validate(row)

    def latest(self, source: str) -> SourceLoadInfo | None:
        """The last load of ``source``, or None."""
        with self.db.read() as s:
            row = s.scalars(
                select(m.SourceLoad)
                .where(m.SourceLoad.source == source)
                .order_by(m.SourceLoad.id.desc())
                .limit(1)
            ).first()
            return SourceLoadInfo.model_validate(row) if row is not None else None

    def list(
        self, source: str, *, since: datetime | None = None, limit: int = 1000
    ) -> builtins.list[SourceLoadInfo]:
        """Loads of ``source``, oldest first (from ``since`` on, at most ``limit``, the newest)."""
        with self.db.read() as s:
            q = select(m.SourceLoad).where(m.SourceLoad.source == source)
            if since is not None:
                q = q.where(m.SourceLoad.loaded_at >= since)
            rows = s.scalars(q.order_by(m.SourceLoad.id.desc()).limit(limit)).all()
            return [SourceLoadInfo.model_validate(r) for r in reversed(rows)]


class ScheduleRepository:
    """Schedules: where each stands (its cursor), and its history."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def cursor(self, name: str) -> dict[str, Any]:
        """The schedule's cursor (empty for a schedule never evaluated)."""
        with self.db.read() as s:
            row = s.get(m.Schedule, name)
            return dict(row.cursor) if row is not None else {}

    def set_cursor(self, name: str, cursor: dict[str, Any]) -> None:
        """Replace the schedule's cursor."""
        with self.db.write() as s:
            row = s.get(m.Schedule, name)
            if row is None:
                s.add(m.Schedule(name=name, cursor=dict(cursor)))
            else:
                row.cursor = dict(cursor)
                row.updated_at = m.utcnow()

    def add_run(
        self,
        schedule: str,
        *,
        trigger: str,
        due_at: datetime,
        status: str,
        reason: str = "",
        pid: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> ScheduleRunInfo:
        """Record that ``schedule`` was due at ``due_at``: the run started, or why none."""
        with self.db.write() as s:
            now = m.utcnow()
            row = m.ScheduleRun(
                schedule=schedule,
                trigger=trigger,
                due_at=due_at,
                started_at=now if status == "running" else None,
                finished_at=None if status == "running" else now,
                status=status,
                pid=pid,
                reason=reason,
                details=details or {},
            )
            s.add(row)
            s.flush()
            self.db.event(
                s,
                f"schedule.{status}",
                "schedule",
                schedule,
                {"run": row.id, "trigger": trigger, "reason": reason},
            )
            return ScheduleRunInfo.model_validate(row)

    def finish_run(
        self,
        run: int,
        *,
        status: str,
        reason: str = "",
        run_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> ScheduleRunInfo:
        """End a running schedule run with ``status``."""
        with self.db.write() as s:
            row = s.get(m.ScheduleRun, run)
            if row is None:
                raise NotFoundError(f"schedule run {run} does not exist")
            row.status = status
            row.finished_at = m.utcnow()
            if reason:
                row.reason = reason
            if run_id is not None:
                row.run_id = run_id
            if details:
                row.details = {**row.details, **details}
            self.db.event(
                s, f"schedule.{status}", "schedule", row.schedule, {"run": run, "reason": reason}
            )
            return ScheduleRunInfo.model_validate(row)

    def active(self, schedule: str | None = None) -> builtins.list[ScheduleRunInfo]:
        """Runs still running (of one schedule, or of all)."""
        with self.db.read() as s:
            q = select(m.ScheduleRun).where(m.ScheduleRun.status.in_(ACTIVE_STATUSES))
            if schedule is not None:
                q = q.where(m.ScheduleRun.schedule == schedule)
            return [
                ScheduleRunInfo.model_validate(r) for r in s.scalars(q.order_by(m.ScheduleRun.id))
            ]

    def history(
        self, schedule: str | None = None, *, limit: int = 50
    ) -> builtins.list[ScheduleRunInfo]:
        """The newest runs first (of one schedule, or of all)."""
        with self.db.read() as s:
            q = select(m.ScheduleRun)
            if schedule is not None:
                q = q.where(m.ScheduleRun.schedule == schedule)
            rows = s.scalars(q.order_by(m.ScheduleRun.id.desc()).limit(limit)).all()
            return [ScheduleRunInfo.model_validate(r) for r in rows]

    def last_runs(self, names: Sequence[str]) -> dict[str, ScheduleRunInfo]:
        """The newest run of each named schedule that has one."""
        out: dict[str, ScheduleRunInfo] = {}
        for name in names:
            runs = self.history(name, limit=1)
            if runs:
                out[name] = runs[0]
        return out
