"""The steps of pipeline runs, and the cache of step results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from opsloop.errors import NotFoundError, StoreError
from opsloop.store import models as m
from opsloop.store.types import StepRunInfo

if TYPE_CHECKING:
    import builtins

    from opsloop.store.db import Database

__all__ = ["STEP_STATUSES", "StepRepository"]

STEP_STATUSES = ("pending", "running", "succeeded", "failed", "skipped", "cached")


class StepRepository:
    """The steps of pipeline runs and the step cache."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        run_id: str,
        name: str,
        *,
        status: str = "pending",
        cache_key: str | None = None,
        params: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> StepRunInfo:
        """Record a step of a pipeline run."""
        with self.db.write() as s:
            row = m.StepRun(
                run_id=run_id,
                name=name,
                status=status,
                cache_key=cache_key,
                params=params or {},
                inputs=inputs or {},
                outputs={},
            )
            s.add(row)
            s.flush()
            return StepRunInfo.model_validate(row)

    _STEP_FIELDS = frozenset(
        {
            "status",
            "cache_key",
            "cached_from",
            "attempts",
            "started_at",
            "ended_at",
            "cpu_seconds",
            "peak_memory_bytes",
            "params",
            "inputs",
            "outputs",
            "logs",
            "error",
            "traceback",
        }
    )

    def update(self, step_run_id: int, **fields: Any) -> StepRunInfo:
        """Update fields of a step run (status, timings, outputs, logs, error …)."""
        unknown = set(fields) - self._STEP_FIELDS
        if unknown:
            raise StoreError(f"unknown step run field(s): {', '.join(sorted(unknown))}")
        if "status" in fields and fields["status"] not in STEP_STATUSES:
            raise StoreError(f"invalid step status {fields['status']!r}")
        with self.db.write() as s:
            row = s.get(m.StepRun, step_run_id)
            if row is None:
                raise NotFoundError(f"step run {step_run_id} does not exist")
            for k, v in fields.items():
                setattr(row, k, v)
            s.flush()
            if "status" in fields and fields["status"] in ("succeeded", "failed", "cached"):
                self.db.event(
                    s,
                    f"step.{fields['status']}",
                    "run",
                    row.run_id,
                    {"step": row.name, "step_run_id": row.id},
                )
            return StepRunInfo.model_validate(row)

    def find_cached(self, cache_key: str) -> StepRunInfo | None:
        """The newest step run that succeeded with ``cache_key``, if any."""
        q = (
            select(m.StepRun)
            .where(m.StepRun.cache_key == cache_key, m.StepRun.status == "succeeded")
            .order_by(m.StepRun.id.desc())
            .limit(1)
        )
        with self.db.read() as s:
            row = s.scalar(q)
            return None if row is None else StepRunInfo.model_validate(row)

    def list(self, run_id: str) -> builtins.list[StepRunInfo]:
        """The steps of a pipeline run, in the order they were recorded."""
        q = select(m.StepRun).where(m.StepRun.run_id == run_id).order_by(m.StepRun.id)
        with self.db.read() as s:
            return [StepRunInfo.model_validate(r) for r in s.scalars(q)]
