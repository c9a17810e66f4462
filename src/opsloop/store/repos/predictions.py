"""The prediction log and its feedback labels."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from opsloop.store import models as m
from opsloop.store.types import (
    DeletedPredictions,
    FeedbackInfo,
    FeedbackTarget,
    PredictionInfo,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from opsloop.store.db import Database

__all__ = ["PredictionRepository"]

_ID_CHUNK = 1000
_PART = 500
"""Values per ``IN (...)``: well under every backend's bound-parameter limit."""


def _parts(values: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(values), _PART):
        yield values[i : i + _PART]


class PredictionRepository:
    """The prediction log and its feedback labels."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def log(self, records: Sequence[dict[str, Any]]) -> None:
        """Insert prediction records (keys of :class:`PredictionInfo` but ``id``) in one batch."""
        if records:
            with self.db.write() as s:
                s.execute(insert(m.Prediction), [dict(r) for r in records])

    def count(self) -> int:
        """How many requests the prediction log holds (shadow answers included)."""
        with self.db.read() as s:
            return int(s.scalar(select(func.count()).select_from(m.Prediction)) or 0)

    def count_rows(self) -> int:
        """How many rows the logged requests predicted, also those kept out of line (a
        request logged before row counts were recorded counts as one)."""
        total = func.sum(func.coalesce(m.Prediction.rows, 1))
        with self.db.read() as s:
            return int(s.scalar(select(total)) or 0)

    def deployments(self) -> list[str]:
        """Every deployment name in the prediction log or its feedback (``""`` for servers
        outside GitOps)."""
        names: set[str] = set()
        with self.db.read() as s:
            for table in (m.Prediction, m.Feedback):
                names.update(str(d) for d in s.scalars(select(table.deployment).distinct()))
        return sorted(names)

    def newest_time(self, deployment: str, before: datetime | None = None) -> datetime | None:
        """When the newest request of ``deployment`` (before ``before``, if given) came, or
        None when it has none."""
        p = m.Prediction
        q = select(func.max(p.time)).where(p.deployment == deployment)
        if before is not None:
            q = q.where(p.time < before)
        with self.db.read() as s:
            found = s.scalar(q)
        return found if isinstance(found, datetime) else None

    def oldest(
        self, deployment: str, before: datetime, limit: int
    ) -> list[tuple[datetime, int, int]]:
        """``(time, id, rows)`` of the oldest ``limit`` requests of ``deployment`` before
        ``before`` (shadow answers included), oldest first; ``rows`` as in
        :meth:`count_prediction_rows`."""
        p = m.Prediction
        q = (
            select(p.time, p.id, func.coalesce(p.rows, 1))
            .where(p.deployment == deployment, p.time < before)
            .order_by(p.time, p.id)
            .limit(limit)
        )
        with self.db.read() as s:
            return [(t, int(i), int(n)) for t, i, n in s.execute(q)]

    def delete(
        self, deployment: str, ids: Sequence[int], *, feedback_before: datetime | None = None
    ) -> DeletedPredictions:
        """Delete requests of ``deployment`` by id, with their feedback, in one transaction.

        A label is deleted with its request when it arrived before ``feedback_before`` (None:
        never) and no request of the same id is left in the deployment's log.

        Returns:
            The numbers of requests, of their rows and of labels deleted, and the chunk
            digests the deleted requests referenced (see :meth:`referenced_chunks` before
            deleting a blob).
        """
        out = DeletedPredictions()
        if not ids:
            return out
        p = m.Prediction
        with self.db.write() as s:
            request_ids: set[str] = set()
            for part in _parts(list(ids)):
                found = s.execute(
                    select(p.request_id, p.chunk, func.coalesce(p.rows, 1)).where(
                        p.deployment == deployment, p.id.in_(part)
                    )
                ).all()
                request_ids.update(str(r) for r, _, _ in found)
                out.chunks.update(str(c) for _, c, _ in found if c)
                out.predictions += len(found)
                out.rows += sum(int(n) for _, _, n in found)
                s.execute(delete(p).where(p.deployment == deployment, p.id.in_(part)))
            if feedback_before is None or not request_ids:
                return out
            f = m.Feedback
            for part in _parts(sorted(request_ids)):
                kept = set(
                    s.scalars(
                        select(p.request_id)
                        .where(p.deployment == deployment, p.request_id.in_(part))
                        .distinct()
                    )
                )
                gone = [r for r in part if r not in kept]
                if gone:
                    result = s.execute(
                        delete(f).where(
                            f.deployment == deployment,
                            f.request_id.in_(gone),
                            f.time < feedback_before,
                        )
                    )
                    out.feedback += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return out

    def delete_feedback_before(self, deployment: str, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` of the oldest labels of ``deployment`` that arrived before
        ``before``, in one transaction; how many were deleted."""
        f = m.Feedback
        with self.db.write() as s:
            ids = list(
                s.scalars(
                    select(f.id)
                    .where(f.deployment == deployment, f.time < before)
                    .order_by(f.time, f.id)
                    .limit(limit)
                )
            )
            for part in _parts(ids):
                s.execute(delete(f).where(f.id.in_(part)))
        return len(ids)

    def referenced_chunks(self, digests: Iterable[str]) -> set[str]:
        """The digests among ``digests`` that some logged request still references."""
        wanted = sorted(set(digests))
        found: set[str] = set()
        with self.db.read() as s:
            for part in _parts(wanted):
                q = select(m.Prediction.chunk).where(m.Prediction.chunk.in_(part)).distinct()
                found.update(str(c) for c in s.scalars(q))
        return found

    def log_feedback(self, records: Sequence[dict[str, Any]]) -> list[str]:
        """Insert feedback records: ``request_id``, ``label`` (JSON object), ``deployment``.

        A request id of a deployment takes one label: a record for one that has a label
        already (in the store, or earlier in the batch) is refused, the rest are inserted in
        one transaction. The unique index on ``(deployment, request_id)`` makes this hold
        between concurrent writers too.

        Returns:
            The request ids of the refused records, in order.
        """
        if not records:
            return []
        rows = [{"deployment": "", **r} for r in records]
        table = cast("Table", m.Feedback.__table__)
        keys = ["deployment", "request_id"]
        if self.db.engine.dialect.name == "postgresql":
            stmt: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
        else:
            stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
        stmt = stmt.returning(table.c.deployment, table.c.request_id)
        with self.db.write() as s:
            inserted = Counter((str(d), str(r)) for d, r in s.execute(stmt, rows).all())
        refused: list[str] = []
        for row in rows:
            key = (str(row["deployment"]), str(row["request_id"]))
            if inserted[key] > 0:
                inserted[key] -= 1
            else:
                refused.append(key[1])
        return refused

    def feedback_targets(
        self, request_ids: Sequence[str], *, deployment: str
    ) -> dict[str, FeedbackTarget]:
        """What the store knows of requests a label is sent for: the model version that
        answered each (its latest answer, shadows left out), its rows, and whether it has a
        label. Ids with neither a prediction nor a label are left out."""
        ids = sorted(set(request_ids))
        out: dict[str, FeedbackTarget] = {}
        with self.db.read() as s:
            for i in range(0, len(ids), _ID_CHUNK):
                chunk = ids[i : i + _ID_CHUNK]
                labelled = set(
                    s.scalars(
                        select(m.Feedback.request_id).where(
                            m.Feedback.deployment == deployment, m.Feedback.request_id.in_(chunk)
                        )
                    )
                )
                answered = s.execute(
                    select(
                        m.Prediction.request_id,
                        m.Prediction.model_name,
                        m.Prediction.model_version,
                        m.Prediction.outputs,
                        m.Prediction.rows,
                    )
                    .where(
                        m.Prediction.deployment == deployment,
                        m.Prediction.request_id.in_(chunk),
                        m.Prediction.shadow.is_(False),
                    )
                    .order_by(m.Prediction.id)
                )
                for request_id, model, version, outputs, counted in answered:
                    values = outputs.get("values") if isinstance(outputs, dict) else None
                    # A request kept out of line (a chunk) records its row count.
                    rows = (
                        int(counted)
                        if counted is not None
                        else len(values)
                        if isinstance(values, list)
                        else 0
                    )
                    out[request_id] = FeedbackTarget(model, version, rows, request_id in labelled)
                for request_id in labelled - set(out):
                    out[request_id] = FeedbackTarget(None, None, 0, True)
        return out

    def read(
        self,
        *,
        deployment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_shadow: bool = False,
        limit: int | None = None,
    ) -> list[PredictionInfo]:
        """Predictions in ``[since, until)``, oldest first."""
        q = select(m.Prediction).order_by(m.Prediction.time, m.Prediction.id)
        if deployment is not None:
            q = q.where(m.Prediction.deployment == deployment)
        if since is not None:
            q = q.where(m.Prediction.time >= since)
        if until is not None:
            q = q.where(m.Prediction.time < until)
        if not include_shadow:
            q = q.where(m.Prediction.shadow.is_(False))
        if limit is not None:
            q = q.limit(limit)
        with self.db.read() as s:
            return [PredictionInfo.model_validate(p) for p in s.scalars(q)]

    def read_feedback(
        self, *, request_ids: Sequence[str] | None = None, deployment: str | None = None
    ) -> list[FeedbackInfo]:
        """Feedback labels, oldest first; the latest label per request wins when read."""
        q = select(m.Feedback).order_by(m.Feedback.id)
        if request_ids is not None:
            q = q.where(m.Feedback.request_id.in_(list(request_ids)))
        if deployment is not None:
            q = q.where(m.Feedback.deployment == deployment)
        with self.db.read() as s:
            return [FeedbackInfo.model_validate(f) for f in s.scalars(q)]

    def deployments_since(self, since: datetime) -> list[str]:
        """Deployments with a prediction at ``since`` or later (the (deployment, time) index
        serves it)."""
        q = select(m.Prediction.deployment).where(m.Prediction.time >= since).distinct()
        with self.db.read() as s:
            return sorted(str(d) for d in s.scalars(q) if d)

    def labels_between(
        self, deployment: str, since: datetime, until: datetime
    ) -> list[tuple[datetime, str, Any]]:
        """``(time, request_id, label)`` of the labels of ``deployment`` that arrived in
        ``[since, until)``, oldest first (monitors read labels by arrival)."""
        f = m.Feedback
        q = (
            select(f.time, f.request_id, f.label)
            .where(f.deployment == deployment, f.time >= since, f.time < until)
            .order_by(f.time, f.id)
        )
        with self.db.read() as s:
            return [(t, str(r), label) for t, r, label in s.execute(q)]

    def read_by_request(self, deployment: str, request_ids: Sequence[str]) -> list[PredictionInfo]:
        """The answers (shadows left out) of ``deployment`` to these requests, by time."""
        ids = sorted(set(request_ids))
        out: list[PredictionInfo] = []
        p = m.Prediction
        with self.db.read() as s:
            for i in range(0, len(ids), _ID_CHUNK):
                q = (
                    select(p)
                    .where(
                        p.request_id.in_(ids[i : i + _ID_CHUNK]),
                        p.deployment == deployment,
                        p.shadow.is_(False),
                    )
                    .order_by(p.time, p.id)
                )
                out.extend(PredictionInfo.model_validate(r) for r in s.scalars(q))
        out.sort(key=lambda r: (r.time, r.id))
        return out
