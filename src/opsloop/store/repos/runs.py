"""Runs: their parameters, tags, metric points and artifacts, and the liveness of the
processes writing them."""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from opsloop.errors import NotFoundError, StoreError, TrackingError, is_data_error
from opsloop.redact import redact
from opsloop.store import models as m
from opsloop.store.acting import current_actor
from opsloop.store.liveness import gone_reason, this_process
from opsloop.store.types import ArtifactInfo, MetricPoint, RunInfo

if TYPE_CHECKING:
    import builtins
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy import Select
    from sqlalchemy.orm import Session

    from opsloop.store.db import Database
    from opsloop.store.liveness import ProcessIdentity

__all__ = ["DEFAULT_HEARTBEAT_TIMEOUT_S", "RUN_STATUSES", "MetricRow", "RunRepository"]

RUN_STATUSES = ("running", "finished", "failed", "killed")
_MAX_KEY = 256

MetricRow = tuple[str, float, int, int]
"""(key, value, step, timestamp in epoch milliseconds)."""

DEFAULT_HEARTBEAT_TIMEOUT_S = 300.0
_ENVELOPES_KEPT = 64
_TEXT_FIELDS = ("id", "name", "kind", "status", "user", "parent_id", "git_commit", "source")


def _check_key(kind: str, key: str) -> None:
    if not key or len(key) > _MAX_KEY:
        raise TrackingError(f"invalid {kind} key {key!r}: 1-{_MAX_KEY} characters")


def _str_value(value: Any) -> str:
    # Params and tags never hold a secret opsloop knows (a resolved env:/file: reference).
    if isinstance(value, str):
        return redact(value)
    return redact(json.dumps(value, sort_keys=True, default=str))


class RunRepository:
    """Runs of user code, pipelines and steps: params, tags, metric points, artifacts, and
    the liveness of the processes writing them."""

    def __init__(
        self, db: Database, *, heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    ) -> None:
        self.db = db
        self.heartbeat_timeout_s = heartbeat_timeout_s
        # Envelopes of ended runs' long histories, which no longer change: (run, key,
        # buckets) -> (last point id, envelope), the least recently used dropped first.
        self._envelopes: OrderedDict[tuple[str, str, int], tuple[int, list[tuple[int, float]]]]
        self._envelopes = OrderedDict()
        self._envelopes_lock = threading.Lock()

    def create(
        self,
        name: str,
        *,
        kind: str = "run",
        parent_id: str | None = None,
        project: str = "",
        git_commit: str | None = None,
        source: str | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        heartbeat: bool = False,
        writer: ProcessIdentity | None = None,
    ) -> RunInfo:
        """Start a run and record a ``run.started`` event.

        The run records the calling process (host, pid, start time) as its writer, or
        ``writer`` (a server starting a run for a client names the client's process); with
        ``heartbeat`` the writer promises to call :meth:`heartbeat_run` (or log metric points
        with ``heartbeat=True``) regularly, so that a run written on another host can be
        told dead by its silence too.
        """
        run_id = uuid.uuid4().hex
        me = writer or this_process()
        # On a server acting for a client, the run is the client's.
        caller = current_actor()
        with self.db.write() as s:
            if parent_id is not None and s.get(m.Run, parent_id) is None:
                raise NotFoundError(f"parent run {parent_id} does not exist")
            s.add(
                m.Run(
                    id=run_id,
                    name=name,
                    kind=kind,
                    parent_id=parent_id,
                    status="running",
                    user=caller.name if caller is not None else self.db.actor,
                    project=project,
                    git_commit=git_commit,
                    source=source,
                    host=me.host,
                    pid=me.pid,
                    pid_started=me.started,
                    heartbeat_at=m.utcnow() if heartbeat else None,
                )
            )
            s.flush()
            for k, v in (params or {}).items():
                _check_key("param", k)
                s.add(m.Param(run_id=run_id, key=k, value=_str_value(v)))
            for k, v in (tags or {}).items():
                _check_key("tag", k)
                s.add(m.RunTag(run_id=run_id, key=k, value=_str_value(v)))
            self.db.event(s, "run.started", "run", run_id, {"name": name, "kind": kind})
        return self.get(run_id)

    def finish(self, run_id: str, status: str = "finished", error: str | None = None) -> None:
        """End a run with ``status`` (finished, failed or killed)."""
        if status not in RUN_STATUSES[1:]:
            raise TrackingError(f"invalid end status {status!r}: use finished, failed or killed")
        with self.db.write() as s:
            run = s.get(m.Run, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} does not exist")
            run.status = status
            run.ended_at = m.utcnow()
            run.error = error
            self.db.event(s, f"run.{status}", "run", run_id, {"error": error} if error else {})

    def get(self, run_id: str) -> RunInfo:
        """A run with params, tags and latest metrics; NotFoundError if absent.

        A unique prefix of the id is accepted too, as the CLI prints short ids. A running run
        whose process is gone is marked ``killed`` first (see :meth:`reap_dead_runs`).
        """
        with self.db.read() as s:
            run = s.get(m.Run, run_id)
            if run is None and 0 < len(run_id) < 32:
                found = s.scalars(select(m.Run).where(m.Run.id.startswith(run_id)).limit(2)).all()
                if len(found) == 1:
                    run = found[0]
            if run is None:
                raise NotFoundError(f"run {run_id} does not exist")
            dead = self._dead_runs([run], None)
            if not dead:
                return self._run_info(s, run)
        self._mark_killed(dead)
        with self.db.read() as s:
            return self._run_info(s, s.get_one(m.Run, next(iter(dead))))

    def _run_info(self, s: Session, run: m.Run) -> RunInfo:
        params = {
            p.key: p.value for p in s.scalars(select(m.Param).where(m.Param.run_id == run.id))
        }
        tags = {
            t.key: t.value for t in s.scalars(select(m.RunTag).where(m.RunTag.run_id == run.id))
        }
        return RunInfo.model_validate(
            {
                **{c: getattr(run, c) for c in RunInfo.model_fields if hasattr(run, c)},
                "params": params,
                "tags": tags,
                "metrics": self._latest_metrics(s, run.id),
            }
        )

    def _latest_metrics(self, s: Session, run_id: str) -> dict[str, float]:
        """The last value stored of each metric of a run, read by index seeks: the run's keys
        one after another (the least key above the one before), then each key's highest id.
        A GROUP BY would read every point of the run, a million for a long curve; this reads
        two index entries per key. (Written out because neither SQLite nor SQLAlchemy offers
        a loose index scan.)"""
        t = m.Metric
        mine = t.run_id == run_id
        out: dict[str, float] = {}
        key = s.scalar(select(func.min(t.key)).where(mine))
        while key is not None:
            last = select(t.value).where(mine, t.key == key).order_by(t.id.desc()).limit(1)
            out[key] = s.execute(last).scalar_one()
            key = s.scalar(select(func.min(t.key)).where(mine, t.key > key))
        return out

    def list(
        self,
        *,
        kind: str | None = None,
        parent_id: str | None = None,
        status: str | None = None,
        name: str | None = None,
        limit: int = 100,
        equal: Sequence[tuple[str, str]] = (),
        containing: Sequence[tuple[str, str]] = (),
    ) -> builtins.list[RunInfo]:
        """Runs, newest first, filtered by kind, parent, status or name, and by text
        fields of the run (``name``, ``user`` …): ``equal`` as (field, value) pairs, and
        ``containing`` as (field, text) pairs matched by SQL LIKE (so case-insensitively on
        SQLite and MariaDB: a caller wanting exact case filters the runs again)."""
        q = select(m.Run).order_by(m.Run.started_at.desc(), m.Run.id).limit(limit)
        for field, value in equal:
            q = q.where(self._text_field(field) == value)
        for field, text in containing:
            q = q.where(self._text_field(field).contains(text, autoescape=True))
        if kind is not None:
            q = q.where(m.Run.kind == kind)
        if parent_id is not None:
            q = q.where(m.Run.parent_id == parent_id)
        if status is not None:
            q = q.where(m.Run.status == status)
        if name is not None:
            q = q.where(m.Run.name == name)
        return self._listed(q)

    @staticmethod
    def _text_field(field: str) -> Any:
        if field not in _TEXT_FIELDS:
            raise TrackingError(
                f"runs cannot be filtered by {field!r}: use one of {', '.join(_TEXT_FIELDS)}"
            )
        return getattr(m.Run, field)

    def list_page(
        self,
        *,
        kind: str | None = None,
        parent_id: str | None = None,
        status: str | None = None,
        name: str | None = None,
        descending: bool = True,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> builtins.list[RunInfo]:
        """One page of runs by start time then id (both descending or both ascending),
        starting after the run whose (started_at, id) is ``after``: keyset paging, so a page
        costs the same however many runs there are."""
        t = m.Run
        order = (t.started_at.desc(), t.id.desc()) if descending else (t.started_at, t.id)
        q = select(t).order_by(*order).limit(limit)
        if kind is not None:
            q = q.where(t.kind == kind)
        if parent_id is not None:
            q = q.where(t.parent_id == parent_id)
        if status is not None:
            q = q.where(t.status == status)
        if name is not None:
            q = q.where(t.name == name)
        if after is not None:
            when, run_id = after
            if descending:
                q = q.where(or_(t.started_at < when, and_(t.started_at == when, t.id < run_id)))
            else:
                q = q.where(or_(t.started_at > when, and_(t.started_at == when, t.id > run_id)))
        return self._listed(q)

    def _listed(self, q: Select[m.Run]) -> builtins.list[RunInfo]:
        with self.db.read() as s:
            runs = s.scalars(q).all()
            dead = self._dead_runs(runs, None)
            if not dead:
                return self._run_infos(s, runs)
        self._mark_killed(dead)
        # Runs just marked killed may no longer match a status filter: query again.
        with self.db.read() as s:
            return self._run_infos(s, s.scalars(q).all())

    def _run_infos(self, s: Session, runs: Sequence[m.Run]) -> builtins.list[RunInfo]:
        """Runs with their params, tags and latest metrics: three queries per 500 runs, not
        three per run."""
        params: dict[str, dict[str, Any]] = {r.id: {} for r in runs}
        tags: dict[str, dict[str, Any]] = {r.id: {} for r in runs}
        metrics: dict[str, dict[str, float]] = {r.id: {} for r in runs}
        ids = list(params)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for p in s.scalars(select(m.Param).where(m.Param.run_id.in_(chunk))):
                params[p.run_id][p.key] = p.value
            for tg in s.scalars(select(m.RunTag).where(m.RunTag.run_id.in_(chunk))):
                tags[tg.run_id][tg.key] = tg.value
            t = m.Metric
            last = (
                select(func.max(t.id).label("last_id"))
                .where(t.run_id.in_(chunk))
                .group_by(t.run_id, t.key)
            ).subquery()
            rows = s.execute(select(t.run_id, t.key, t.value).join(last, t.id == last.c.last_id))
            for run_id, key, value in rows:
                metrics[run_id][key] = value
        return [
            RunInfo.model_validate(
                {
                    **{c: getattr(r, c) for c in RunInfo.model_fields if hasattr(r, c)},
                    "params": params[r.id],
                    "tags": tags[r.id],
                    "metrics": metrics[r.id],
                }
            )
            for r in runs
        ]

    def heartbeat(self, run_id: str) -> None:
        """Record that the process writing ``run_id`` is alive; NotFoundError if absent."""
        with self.db.write() as s:
            done = s.execute(
                update(m.Run).where(m.Run.id == run_id).values(heartbeat_at=m.utcnow())
            )
            if done.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFoundError(f"run {run_id} does not exist")

    def reap_dead(self, timeout_s: float | None = None) -> builtins.list[RunInfo]:
        """Mark ``killed`` every running run whose process is gone; returns those runs.

        On the host that wrote a run its process is looked up (a reused pid is told apart
        by its start time); a run written on another host is dead when its heartbeat is
        older than ``timeout_s`` (default: the store's ``heartbeat_timeout_s``). The run's
        error names the process, its last heartbeat and the last step stored. Safe to call
        from several processes at once: a run is marked (and its event written) once.
        """
        with self.db.read() as s:
            running = s.scalars(select(m.Run).where(m.Run.status == "running")).all()
            ids = self._dead_runs(running, timeout_s)
        killed = self._mark_killed(ids)
        with self.db.read() as s:
            return [self._run_info(s, s.get_one(m.Run, run_id)) for run_id in killed]

    def _dead_runs(self, runs: Sequence[m.Run], timeout_s: float | None) -> dict[str, str]:
        timeout = self.heartbeat_timeout_s if timeout_s is None else timeout_s
        now = m.utcnow()
        dead: dict[str, str] = {}
        for run in runs:
            if run.status != "running":
                continue
            reason = gone_reason(run.host, run.pid, run.pid_started, run.heartbeat_at, now, timeout)
            if reason is not None:
                dead[run.id] = reason
        return dead

    def _mark_killed(self, dead: dict[str, str]) -> builtins.list[str]:
        killed: builtins.list[str] = []
        for run_id, reason in dead.items():
            with self.db.write() as s:
                run = s.get(m.Run, run_id)
                if run is None or run.status != "running":
                    continue  # ended, or reaped by another process, since it was read
                last_step = s.scalar(
                    select(func.max(m.Metric.step)).where(m.Metric.run_id == run_id)
                )
                seen = run.heartbeat_at
                error = f"killed: {reason}"
                if seen is not None:
                    error += f"; last heartbeat {seen:%Y-%m-%d %H:%M:%S} UTC"
                error += (
                    "; no metric stored" if last_step is None else f"; last step stored {last_step}"
                )
                run.status = "killed"
                run.ended_at = seen if seen is not None else m.utcnow()
                run.error = error
                self.db.event(
                    s,
                    "run.killed",
                    "run",
                    run_id,
                    {"error": error, "host": run.host, "pid": run.pid, "last_step": last_step},
                )
                killed.append(run_id)
        return killed

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Record parameters; re-logging a key with a different value is an error."""
        with self.db.write() as s:
            if s.get(m.Run, run_id) is None:
                raise NotFoundError(f"run {run_id} does not exist")
            for k, v in params.items():
                _check_key("param", k)
                value = _str_value(v)
                old = s.get(m.Param, (run_id, k))
                if old is None:
                    s.add(m.Param(run_id=run_id, key=k, value=value))
                elif old.value != value:
                    raise TrackingError(
                        f"param '{k}' of run {run_id} is already {old.value!r}; "
                        f"it cannot change to {value!r}",
                        hint="a parameter is fixed once logged: log a new key or start a new run",
                    )

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        """Set (or overwrite) run tags."""
        with self.db.write() as s:
            if s.get(m.Run, run_id) is None:
                raise NotFoundError(f"run {run_id} does not exist")
            for k, v in tags.items():
                _check_key("tag", k)
                s.merge(m.RunTag(run_id=run_id, key=k, value=_str_value(v)))

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove one run tag and record a ``run.tag_deleted`` event.

        Raises:
            NotFoundError: The run, or its tag ``key``, does not exist.
        """
        with self.db.write() as s:
            if s.get(m.Run, run_id) is None:
                raise NotFoundError(f"run {run_id} does not exist")
            row = s.get(m.RunTag, (run_id, key))
            if row is None:
                raise NotFoundError(f"run {run_id} has no tag '{key}'")
            s.delete(row)
            self.db.event(s, "run.tag_deleted", "run", run_id, {"key": key})

    def log_metric_points(
        self, run_id: str, points: Sequence[MetricRow], *, heartbeat: bool = False
    ) -> None:
        """Insert metric points in one transaction (all or none).

        This is the hot path of tracking: rows go through one executemany of a Core insert
        without ORM objects. NaN is stored as NULL (see :class:`~opsloop.store.models.NaNFloat`),
        infinities as they are. With ``heartbeat``, the run's heartbeat is refreshed in the same
        transaction.

        Raises:
            NotFoundError: The run does not exist.
            TrackingError: The store refused a point (a data error: retrying will not help).
            StoreError: The store failed or cannot be reached.
        """
        if not points:
            return
        try:
            with self.db.engine.connect() as conn:
                conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    if heartbeat:
                        beat = conn.execute(
                            update(m.Run).where(m.Run.id == run_id).values(heartbeat_at=m.utcnow())
                        )
                        if beat.rowcount == 0:
                            raise NotFoundError(f"run {run_id} does not exist")
                    if self.db.engine.dialect.name == "sqlite":
                        # The driver's executemany over tuples is about twice as fast as a
                        # Core insert over dicts, and this is the path of every metric point.
                        # NaN goes in as NULL, as NaNFloat does for Core statements; it is the
                        # one value unequal to itself, a cheaper test than math.isnan per point.
                        conn.exec_driver_sql(
                            "INSERT INTO metrics (run_id, key, value, step, timestamp) "
                            "VALUES (?, ?, ?, ?, ?)",
                            [
                                (run_id, k, v if v == v else None, st, ts)  # noqa: PLR0124
                                for k, v, st, ts in points
                            ],
                        )
                    else:
                        conn.execute(
                            insert(m.Metric),
                            [
                                {
                                    "run_id": run_id,
                                    "key": k,
                                    "value": v,
                                    "step": st,
                                    "timestamp": ts,
                                }
                                for k, v, st, ts in points
                            ],
                        )
        except OperationalError as exc:
            raise StoreError(f"metadata store {self.db.safe_url}: {self.db.reason(exc)}") from exc
        except IntegrityError as exc:
            if not self._exists(run_id):
                raise NotFoundError(f"run {run_id} does not exist") from exc
            raise TrackingError(
                f"the store refused metric points of run {run_id}: {self.db.reason(exc)}"
            ) from exc
        except (NotFoundError, StoreError):
            raise
        except Exception as exc:
            if not is_data_error(exc):
                raise
            detail = getattr(exc, "orig", None) or exc
            raise TrackingError(
                f"the store refused metric points of run {run_id}: "
                f"{type(detail).__name__}: {detail}"
            ) from exc

    def _exists(self, run_id: str) -> bool:
        with self.db.read() as s:
            return s.get(m.Run, run_id) is not None

    def metric_history(self, run_id: str, key: str) -> builtins.list[MetricPoint]:
        """Every point of one metric of a run, by step then time."""
        t = m.Metric
        q = (
            select(t.key, t.value, t.step, t.timestamp)
            .where(and_(t.run_id == run_id, t.key == key))
            .order_by(t.step, t.id)
        )
        with self.db.read() as s:
            return [
                MetricPoint(key=k, value=v, step=st, timestamp=ts) for k, v, st, ts in s.execute(q)
            ]

    def metric_steps(self, run_id: str, key: str) -> builtins.list[tuple[int, float]]:
        """Every (step, value) of one metric of a run, by step then time: the history
        without a record per point, for charts of long series."""
        t = m.Metric
        q = (
            select(t.step, t.value)
            .where(and_(t.run_id == run_id, t.key == key))
            .order_by(t.step, t.id)
        )
        with self.db.read() as s:
            return [(int(st), float(v)) for st, v in s.execute(q)]

    def metric_envelope(
        self, run_id: str, key: str, buckets: int
    ) -> builtins.list[tuple[int, float]] | None:
        """One metric's history cut into about ``buckets`` equal runs of steps, each as its
        lowest and highest value (at the stretch's first and last step), computed in the
        database: a chart of a million points without reading them. None when the history
        has no more than ``2 * buckets`` points (read them all instead).

        Each stretch is one range query on the (run, key, step) index: the database reads
        the stretch's points in step order and keeps four aggregates, where one GROUP BY on
        a computed bucket would sort every point of the history first."""
        t = m.Metric
        mine = and_(t.run_id == run_id, t.key == key)
        with self.db.read() as s:
            run = s.get(m.Run, run_id)
            last_id = s.scalar(select(t.id).where(mine).order_by(t.id.desc()).limit(1))
            ended = run is not None and run.status != "running"
            cached = (run_id, key, buckets)
            with self._envelopes_lock:
                hit = self._envelopes.get(cached)
                if hit is not None and ended and hit[0] == last_id:
                    self._envelopes.move_to_end(cached)
                    return list(hit[1])
            # Counting stops past 2 * buckets points: a long history is not counted whole.
            some = select(t.id).where(mine).limit(2 * buckets + 1).subquery()
            count = s.scalar(select(func.count()).select_from(some)) or 0
            if count <= 2 * buckets:
                return None
            # Separate queries, so that each is one index seek.
            lo = int(s.scalar(select(func.min(t.step)).where(mine)) or 0)
            hi = int(s.scalar(select(func.max(t.step)).where(mine)) or 0)
            width = max(1, -(-(hi - lo + 1) // buckets))
            stretch = select(
                func.min(t.step), func.max(t.step), func.min(t.value), func.max(t.value)
            ).where(mine, t.step >= bindparam("start"), t.step < bindparam("stop"))
            rows = [
                s.execute(stretch, {"start": start, "stop": start + width}).one()
                for start in range(lo, hi + 1, width)
            ]
        out: builtins.list[tuple[int, float]] = []
        for first, last, low, high in rows:
            if first is None or low is None:  # no point, or only NaN, in this stretch
                continue
            out.append((int(first), float(low)))
            if last != first or high != low:
                out.append((int(last), float(high)))
        if ended and last_id is not None:
            with self._envelopes_lock:
                self._envelopes[cached] = (int(last_id), list(out))
                self._envelopes.move_to_end(cached)
                while len(self._envelopes) > _ENVELOPES_KEPT:
                    self._envelopes.popitem(last=False)
        return out

    def count_metric_points(self, run_id: str) -> int:
        """How many metric points a run has."""
        with self.db.read() as s:
            return int(
                s.scalar(
                    select(func.count()).select_from(m.Metric).where(m.Metric.run_id == run_id)
                )
                or 0
            )

    def log_artifact(
        self, run_id: str, path: str, digest: str, size: int, kind: str = "file"
    ) -> ArtifactInfo:
        """Record that a run produced the artifact ``digest`` under the logical ``path``."""
        with self.db.write() as s:
            if s.get(m.Run, run_id) is None:
                raise NotFoundError(f"run {run_id} does not exist")
            existing = s.scalar(
                select(m.RunArtifact).where(
                    m.RunArtifact.run_id == run_id, m.RunArtifact.path == path
                )
            )
            if existing is not None:
                existing.digest, existing.size, existing.kind = digest, size, kind
                row = existing
            else:
                row = m.RunArtifact(run_id=run_id, path=path, digest=digest, size=size, kind=kind)
                s.add(row)
            s.flush()
            self.db.event(s, "artifact.logged", "run", run_id, {"path": path, "digest": digest})
            return ArtifactInfo.model_validate(row)

    def list_artifacts(self, run_id: str) -> builtins.list[ArtifactInfo]:
        """Artifacts of a run, by path."""
        q = select(m.RunArtifact).where(m.RunArtifact.run_id == run_id).order_by(m.RunArtifact.path)
        with self.db.read() as s:
            return [ArtifactInfo.model_validate(a) for a in s.scalars(q)]

    def delete(self, run_id: str) -> None:
        """Delete a run and everything it owns (params, metrics, artifacts records, steps)."""
        with self.db.write() as s:
            run = s.get(m.Run, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} does not exist")
            for table in (m.Metric, m.Param, m.RunTag, m.RunArtifact, m.StepRun):
                s.execute(delete(table).where(table.run_id == run_id))
            s.delete(run)
            self.db.event(s, "run.deleted", "run", run_id, {"name": run.name})

    def count_by_kind(self, *, status: str | None = None) -> dict[str, int]:
        """How many runs there are of each kind (``run``, ``pipeline``, ``trial`` …), so
        that a short list can say what it left out."""
        q = select(m.Run.kind, func.count()).group_by(m.Run.kind)
        if status is not None:
            q = q.where(m.Run.status == status)
        with self.db.read() as s:
            return {str(kind): int(n) for kind, n in s.execute(q)}
