"""Row counts for list commands, so that a short list can say what it left out.

Kept apart from the facade: each is one ``GROUP BY`` query, read-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from opsloop.store import models as m

if TYPE_CHECKING:
    from opsloop.store.facade import Store

__all__ = ["incident_counts_by_status", "run_counts_by_kind"]


def run_counts_by_kind(store: Store, *, status: str | None = None) -> dict[str, int]:
    """How many runs there are of each kind (``run``, ``pipeline``, ``trial`` …)."""
    q = select(m.Run.kind, func.count()).group_by(m.Run.kind)
    if status is not None:
        q = q.where(m.Run.status == status)
    with store.read_session() as s:
        return {str(kind): int(n) for kind, n in s.execute(q)}


def incident_counts_by_status(store: Store, *, kind: str | None = None) -> dict[str, int]:
    """How many incidents there are in each status (``open``, ``resolved``)."""
    q = select(m.Incident.status, func.count()).group_by(m.Incident.status)
    if kind is not None:
        q = q.where(m.Incident.kind == kind)
    with store.read_session() as s:
        return {str(status): int(n) for status, n in s.execute(q)}
