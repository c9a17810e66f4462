"""Metric series: points ``(name, labels, time, value)`` written by monitors and scrapes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select

from opsloop.store import models as m
from opsloop.store.types import SeriesPointInfo

if TYPE_CHECKING:
    import builtins
    from collections.abc import Sequence
    from datetime import datetime

    from opsloop.store.db import Database

__all__ = ["SeriesRepository", "labels_key"]


def labels_key(labels: dict[str, str]) -> str:
    """A canonical string of a label set: ``a=1,b=2`` (sorted)."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


class SeriesRepository:
    """Metric series written by monitors and scrapes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, points: Sequence[tuple[str, dict[str, str], datetime, float]]) -> None:
        """Append points ``(name, labels, time, value)`` to metric series in one batch."""
        if not points:
            return
        rows = [
            {
                "name": name,
                "labels": dict(labels),
                "labels_key": labels_key(labels),
                "time": when,
                "value": float(value),
            }
            for name, labels, when, value in points
        ]
        with self.db.write() as s:
            s.execute(insert(m.SeriesPoint), rows)

    def read(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        last: int | None = None,
    ) -> builtins.list[SeriesPointInfo]:
        """Points of one series (exact labels) — or of every series of ``name`` — by time;
        with ``last``, only the latest ``last`` of them (still oldest first)."""
        q = select(m.SeriesPoint).where(m.SeriesPoint.name == name)
        if labels is not None:
            q = q.where(m.SeriesPoint.labels_key == labels_key(labels))
        if since is not None:
            q = q.where(m.SeriesPoint.time >= since)
        if until is not None:
            q = q.where(m.SeriesPoint.time < until)
        if last is not None:
            q = q.order_by(m.SeriesPoint.time.desc(), m.SeriesPoint.id.desc()).limit(last)
        else:
            q = q.order_by(m.SeriesPoint.time, m.SeriesPoint.id)
        with self.db.read() as s:
            points = [SeriesPointInfo.model_validate(p) for p in s.scalars(q)]
        return points[::-1] if last is not None else points

    def list(self, name_prefix: str = "") -> builtins.list[tuple[str, dict[str, str]]]:
        """Every distinct series ``(name, labels)`` whose name starts with ``name_prefix``."""
        q = (
            select(m.SeriesPoint.name, m.SeriesPoint.labels_key, func.min(m.SeriesPoint.id))
            .where(m.SeriesPoint.name.startswith(name_prefix))
            .group_by(m.SeriesPoint.name, m.SeriesPoint.labels_key)
            .order_by(m.SeriesPoint.name, m.SeriesPoint.labels_key)
        )
        with self.db.read() as s:
            out = []
            for name, _key, first_id in s.execute(q).all():
                point = s.get(m.SeriesPoint, first_id)
                out.append((name, dict(point.labels) if point is not None else {}))
            return out

    def last_time(self, name: str, labels: dict[str, str]) -> datetime | None:
        """The time of the newest point of one series, or None (the index serves it)."""
        q = select(func.max(m.SeriesPoint.time)).where(
            m.SeriesPoint.name == name, m.SeriesPoint.labels_key == labels_key(labels)
        )
        with self.db.read() as s:
            found: datetime | None = s.scalar(q)
            return found

    def last_values_before(
        self, names: Sequence[str], labels: dict[str, str], before: datetime
    ) -> dict[str, float] | None:
        """The newest value before ``before`` of each named series with these labels; None
        when one of them has no point yet."""
        key = labels_key(labels)
        values: dict[str, float] = {}
        with self.db.read() as s:
            for name in names:
                q = (
                    select(m.SeriesPoint.value)
                    .where(
                        m.SeriesPoint.name == name,
                        m.SeriesPoint.labels_key == key,
                        m.SeriesPoint.time < before,
                    )
                    .order_by(m.SeriesPoint.time.desc(), m.SeriesPoint.id.desc())
                    .limit(1)
                )
                found = s.scalar(q)
                if found is None:
                    return None
                values[name] = float(found)
        return values
