"""FinOps usage: resource-seconds metered per hour, kind of consumer and dimensions.

The table is append-only in meaning and compact in size: a write adds its quantities to the
row of its ``(hour, kind, dimensions)`` with one ``INSERT … ON CONFLICT DO UPDATE`` that sums
in the database, so concurrent writers never lose an addition (PostgreSQL locks the row it
updates; SQLite writes one transaction at a time).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.dialects import postgresql, sqlite

from opsloop.errors import NotFoundError, StoreError
from opsloop.store import models as m
from opsloop.store.types import USAGE_DIMENSIONS, USAGE_QUANTITIES, UsageInfo, UsageRecord

if TYPE_CHECKING:
    import builtins
    from collections.abc import Sequence

    from sqlalchemy.orm import Session

    from opsloop.store.db import Database

__all__ = ["UsageRepository", "hour_of", "usage_key"]

# One statement per this many rows keeps the bound parameters of a batch under SQLite's limit.
_BATCH_ROWS = 500


def hour_of(when: datetime) -> datetime:
    """The start of the UTC hour ``when`` falls in (naive times are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def usage_key(dimensions: dict[str, str]) -> str:
    """The digest that stands for a set of dimensions in the unique index."""
    text = "\x1f".join(f"{d}={dimensions.get(d, '')}" for d in USAGE_DIMENSIONS)
    return hashlib.sha256(text.encode()).hexdigest()


def _check(record: UsageRecord) -> None:
    if not record.kind or len(record.kind) > 32:
        raise StoreError(f"usage kind must be 1 to 32 characters, got {record.kind!r}")
    unknown = set(record.dimensions) - set(USAGE_DIMENSIONS)
    if unknown:
        raise StoreError(
            f"unknown usage dimension(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(USAGE_DIMENSIONS)}"
        )
    unknown = set(record.quantities) - set(USAGE_QUANTITIES)
    if unknown:
        raise StoreError(
            f"unknown usage quantity(ies) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(USAGE_QUANTITIES)}"
        )
    for name, value in record.quantities.items():
        number = float(value)
        if not number >= 0 or number == float("inf"):
            raise StoreError(f"usage quantity {name} must be a finite number >= 0, got {value!r}")


class UsageRepository:
    """Metered usage, summed per hour, kind and dimensions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, records: Sequence[UsageRecord]) -> int:
        """Add usage records: each adds its quantities to the row of its hour, kind and
        dimensions (made when missing). All or nothing; returns the rows touched.

        Raises:
            StoreError: An unknown dimension or quantity, or a negative quantity.
        """
        ordered = self._rows(records)
        if not ordered:
            return 0
        with self.db.write() as s:
            self._write(s, ordered)
        return len(ordered)

    def _rows(self, records: Sequence[UsageRecord]) -> builtins.list[dict[str, Any]]:
        """The records checked and summed per row, in the one order every writer uses."""
        rows: dict[tuple[datetime, str, str], dict[str, Any]] = {}
        for record in records:
            _check(record)
            dims = {d: str(record.dimensions.get(d, "") or "") for d in USAGE_DIMENSIONS}
            key = (hour_of(record.time), record.kind, usage_key(dims))
            row = rows.get(key)
            if row is None:
                row = {"hour": key[0], "kind": key[1], "key": key[2], **dims, "count": 0}
                row.update(dict.fromkeys(USAGE_QUANTITIES, 0.0))
                rows[key] = row
            for name, value in record.quantities.items():
                row[name] += float(value)
            row["count"] += 1
        # The same order in every writer: two PostgreSQL transactions upserting overlapping
        # rows then wait for each other instead of deadlocking.
        return [rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1], k[2]))]

    def _write(self, s: Session, ordered: builtins.list[dict[str, Any]]) -> None:
        for start in range(0, len(ordered), _BATCH_ROWS):
            s.execute(self._upsert(ordered[start : start + _BATCH_ROWS]))

    def split(self, row: UsageInfo, parts: Sequence[tuple[str, dict[str, str], float]]) -> int:
        """Move shares of a row's usage to finer rows of the same hour, in one transaction:
        each part ``(kind, dimensions, share)`` gets ``share`` of every quantity of ``row``
        (e.g. the tuning trials of a pipeline step, by their share of its wall time), and
        the row keeps the rest. Returns the rows written.

        Raises:
            StoreError: Shares below 0 or adding up to more than 1, or bad dimensions.
            NotFoundError: The row is not in the store (any more).
        """
        shares = [share for _kind, _dims, share in parts]
        if any(not 0 <= s <= 1 for s in shares) or sum(shares) > 1 + 1e-9:
            raise StoreError(f"usage shares must be in [0, 1] and add up to at most 1: {shares}")
        if not parts:
            return 0
        dims = {d: getattr(row, d) for d in USAGE_DIMENSIONS}
        key = usage_key(dims)
        moved = {q: getattr(row, q) * min(sum(shares), 1.0) for q in USAGE_QUANTITIES}
        ordered = self._rows(
            [
                UsageRecord(
                    row.hour,
                    kind,
                    {**dims, **more},
                    {q: getattr(row, q) * share for q in USAGE_QUANTITIES},
                )
                for kind, more, share in parts
            ]
        )
        with self.db.write() as s:
            target = s.scalar(
                select(m.Usage).where(
                    m.Usage.hour == row.hour, m.Usage.kind == row.kind, m.Usage.key == key
                )
            )
            if target is None:
                raise NotFoundError(f"no usage row of {row.kind} at {row.hour} with {dims}")
            for name, amount in moved.items():
                # Never below zero: what another writer added since is not ours to move.
                setattr(target, name, max(getattr(target, name) - amount, 0.0))
            s.flush()
            self._write(s, ordered)
        return len(ordered) + 1

    def _upsert(self, rows: builtins.list[dict[str, Any]]) -> Any:
        dialect = self.db.dialect
        if dialect == "postgresql":
            stmt: Any = postgresql.insert(m.Usage).values(rows)
        elif dialect == "sqlite":
            stmt = sqlite.insert(m.Usage).values(rows)
        else:
            raise StoreError(f"usage metering does not support the {dialect!r} database")
        table = m.Usage.__table__
        summed = {n: table.c[n] + stmt.excluded[n] for n in (*USAGE_QUANTITIES, "count")}
        return stmt.on_conflict_do_update(index_elements=["hour", "kind", "key"], set_=summed)

    def read(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        kind: str | None = None,
        **dimensions: str,
    ) -> builtins.list[UsageInfo]:
        """Usage rows of the hours in ``[since, until)``, oldest first; ``kind`` and
        ``dimensions`` (e.g. ``deployment="churn"``) filter them."""
        q = select(m.Usage)
        for name, value in dimensions.items():
            if name not in USAGE_DIMENSIONS:
                raise StoreError(f"unknown usage dimension {name!r}")
            q = q.where(getattr(m.Usage, name) == value)
        if since is not None:
            q = q.where(m.Usage.hour >= hour_of(since))
        if until is not None:
            q = q.where(m.Usage.hour < until)
        if kind is not None:
            q = q.where(m.Usage.kind == kind)
        q = q.order_by(m.Usage.hour, m.Usage.id)
        with self.db.read() as s:
            return [UsageInfo.model_validate(r) for r in s.scalars(q)]

    def columns(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, builtins.list[Any]]:
        """The same rows as :meth:`read`, column by column (cheap to turn into a frame)."""
        names = ("hour", "kind", *USAGE_DIMENSIONS, *USAGE_QUANTITIES, "count")
        q = select(*(getattr(m.Usage, n) for n in names))
        if since is not None:
            q = q.where(m.Usage.hour >= hour_of(since))
        if until is not None:
            q = q.where(m.Usage.hour < until)
        q = q.order_by(m.Usage.hour, m.Usage.id)
        with self.db.read() as s:
            rows = s.execute(q).all()
        return {name: [r[i] for r in rows] for i, name in enumerate(names)}

    def requests_after(
        self, after_id: int | None
    ) -> tuple[builtins.list[tuple[str, str, str, int]], int]:
        """Requests the prediction log got since the one numbered ``after_id``, per
        ``(deployment, model, version)`` (shadow requests included: a replica served them),
        and the number to pass next time. By number, not by time: a server flushes its log
        in batches, so a request may be written after a later pass than its time says.
        ``None`` only takes the number (nothing counted)."""
        with self.db.read() as s:
            newest = int(s.scalar(select(func.max(m.Prediction.id))) or 0)
            if after_id is None or newest <= after_id:
                return [], max(newest, after_id or 0)
            q = (
                select(
                    m.Prediction.deployment,
                    m.Prediction.model_name,
                    m.Prediction.model_version,
                    func.count(m.Prediction.id),
                )
                .where(m.Prediction.id > after_id, m.Prediction.id <= newest)
                .group_by(
                    m.Prediction.deployment, m.Prediction.model_name, m.Prediction.model_version
                )
            )
            return [(d, mn, mv, int(n)) for d, mn, mv, n in s.execute(q).all()], newest

    def artifact_bytes(self) -> dict[str, int]:
        """Bytes of the artifacts each run logged, by run id."""
        q = select(m.RunArtifact.run_id, func.sum(m.RunArtifact.size)).group_by(
            m.RunArtifact.run_id
        )
        with self.db.read() as s:
            return {run: int(size or 0) for run, size in s.execute(q).all()}

    def prediction_log_bytes(self) -> dict[str, int]:
        """Approximate bytes the prediction log holds, by deployment: the length of each
        request's stored inputs and outputs as JSON text."""
        size = func.length(cast(m.Prediction.inputs, Text)) + func.length(
            cast(m.Prediction.outputs, Text)
        )
        q = select(m.Prediction.deployment, func.sum(size)).group_by(m.Prediction.deployment)
        with self.db.read() as s:
            return {dep: int(total or 0) for dep, total in s.execute(q).all()}

    def last_hour(self, kind: str) -> datetime | None:
        """The newest hour with usage of ``kind``, or None."""
        with self.db.read() as s:
            found: datetime | None = s.scalar(
                select(func.max(m.Usage.hour)).where(m.Usage.kind == kind)
            )
            return found
