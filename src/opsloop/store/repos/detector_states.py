"""Detector checkpoints: a streaming detector's state per metric series, between passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from opsloop.store import models as m
from opsloop.store.repos.series import labels_key

if TYPE_CHECKING:
    from datetime import datetime

    from opsloop.store.db import Database

__all__ = ["DetectorCheckpoint", "DetectorStateRepository"]


@dataclass(frozen=True)
class DetectorCheckpoint:
    """A stored detector state.

    Attributes:
        last_time: Time of the newest point the state has learnt.
        points: Points learnt in all (for information).
        state: The state as JSON text.
    """

    last_time: datetime
    points: int
    state: str


class DetectorStateRepository:
    """Checkpoints of streaming detectors, one per series, labels and detector setting."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, series: str, labels: dict[str, str], detector: str) -> DetectorCheckpoint | None:
        """The checkpoint of one series for one detector digest, or None."""
        q = select(m.DetectorState).where(
            m.DetectorState.series == series,
            m.DetectorState.labels_key == labels_key(labels),
            m.DetectorState.detector == detector,
        )
        with self.db.read() as s:
            row = s.scalars(q).first()
            if row is None:
                return None
            return DetectorCheckpoint(last_time=row.last_time, points=row.points, state=row.state)

    def put(
        self,
        series: str,
        labels: dict[str, str],
        detector: str,
        *,
        last_time: datetime,
        points: int,
        state: str,
    ) -> None:
        """Store (or replace) the checkpoint of one series for one detector digest."""
        key = labels_key(labels)
        with self.db.write() as s:
            row = s.scalars(
                select(m.DetectorState).where(
                    m.DetectorState.series == series,
                    m.DetectorState.labels_key == key,
                    m.DetectorState.detector == detector,
                )
            ).first()
            if row is None:
                s.add(
                    m.DetectorState(
                        series=series,
                        labels_key=key,
                        detector=detector,
                        last_time=last_time,
                        points=points,
                        state=state,
                    )
                )
            else:
                row.last_time = last_time
                row.points = points
                row.state = state

    def delete(self, series: str | None = None) -> int:
        """Forget the checkpoints of one series (every series when None); how many."""
        q = delete(m.DetectorState)
        if series is not None:
            q = q.where(m.DetectorState.series == series)
        with self.db.write() as s:
            return int(s.execute(q).rowcount or 0)  # type: ignore[attr-defined]
