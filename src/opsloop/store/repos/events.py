"""The append-only audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from opsloop.store import models as m
from opsloop.store.types import EventInfo

if TYPE_CHECKING:
    import builtins
    from datetime import datetime

    from opsloop.store.db import Database

__all__ = ["EventRepository"]


class EventRepository:
    """The append-only audit log."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def emit(
        self,
        kind: str,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append an event that no other store call records."""
        with self.db.write() as s:
            self.db.event(s, kind, object_type, object_id, details)

    def list(
        self,
        *,
        object_type: str | None = None,
        object_id: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> builtins.list[EventInfo]:
        """Events, oldest first, filtered by object, kind (prefix with ``*``) or time."""
        q = select(m.Event).order_by(m.Event.id).limit(limit)
        if object_type is not None:
            q = q.where(m.Event.object_type == object_type)
        if object_id is not None:
            q = q.where(m.Event.object_id == object_id)
        if kind is not None:
            if kind.endswith("*"):
                q = q.where(m.Event.kind.startswith(kind[:-1]))
            else:
                q = q.where(m.Event.kind == kind)
        if since is not None:
            q = q.where(m.Event.time >= since)
        with self.db.read() as s:
            return [EventInfo.model_validate(e) for e in s.scalars(q)]
