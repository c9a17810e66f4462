"""The metadata store: one facade over SQLAlchemy for every backend.

Every state change is written in one transaction together with its audit event, so the
events table never tells a story the other tables do not.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Engine, Table, and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from opsloop.errors import (
    AlreadyExistsError,
    NotFoundError,
    StoreError,
    TrackingError,
    is_data_error,
)
from opsloop.names import check_name
from opsloop.redact import redact, redact_url
from opsloop.store import models as m
from opsloop.store.base import Backend
from opsloop.store.liveness import gone_reason, this_process
from opsloop.store.migrate import upgrade
from opsloop.store.types import (
    ArtifactInfo,
    DatasetVersionInfo,
    EventInfo,
    FeedbackInfo,
    MetricPoint,
    ModelVersionInfo,
    PredictionInfo,
    RegisteredModelInfo,
    RunInfo,
    SeriesPointInfo,
    StepRunInfo,
)

RUN_STATUSES = ("running", "finished", "failed", "killed")
STEP_STATUSES = ("pending", "running", "succeeded", "failed", "skipped", "cached")
_MAX_KEY = 256

MetricRow = tuple[str, float, int, int]
"""(key, value, step, timestamp in epoch milliseconds)."""

DEFAULT_HEARTBEAT_TIMEOUT_S = 300.0

_ID_CHUNK = 1000


class FeedbackTarget(NamedTuple):
    """A request a label is sent for, as the store knows it (see
    :meth:`Store.feedback_targets`); ``model`` and ``version`` are None for a request that has
    a label but no logged prediction."""

    model: str | None
    version: str | None
    rows: int
    labelled: bool


def _check_name(kind: str, name: str) -> None:
    check_name(kind, name, TrackingError)


def _check_key(kind: str, key: str) -> None:
    if not key or len(key) > _MAX_KEY:
        raise TrackingError(f"invalid {kind} key {key!r}: 1-{_MAX_KEY} characters")


def _str_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


class Store:
    """Read and write runs, metrics, artifacts, step runs, datasets, models and events.

    Args:
        engine: A SQLAlchemy engine from the backend.
        backend: The backend that made the engine.
        url: The store URL (for messages).
        actor: Who is acting: recorded on every event.
        migrate: Bring the schema up to date on open.
        heartbeat_timeout_s: How old the heartbeat of a running run written on another host
            may be before the run is taken to be killed.
    """

    def __init__(
        self,
        engine: Engine,
        backend: Backend,
        url: str,
        *,
        actor: str = "unknown",
        migrate: bool = True,
        heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S,
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.url = url
        self.actor = actor
        self.heartbeat_timeout_s = heartbeat_timeout_s
        if migrate:
            try:
                upgrade(engine, backend, url)
            except DBAPIError as exc:
                raise StoreError(
                    f"cannot open the metadata store at {self.safe_url}: {self._reason(exc)}"
                ) from exc

    @property
    def safe_url(self) -> str:
        """The URL with its password and credential query values masked."""
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"Store({self.safe_url!r})"

    def _reason(self, exc: DBAPIError) -> str:
        # The driver's own words, on one line, without anything of the URL it may quote.
        return " ".join(redact(str(exc.orig), self.url).split())

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # -- sessions -------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
            except OperationalError as exc:
                raise StoreError(f"metadata store {self.safe_url}: {self._reason(exc)}") from exc

    @contextmanager
    def _write(self) -> Iterator[Session]:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin(), Session(bind=conn, expire_on_commit=False) as s:
                    yield s
                    s.flush()
        except OperationalError as exc:
            raise StoreError(f"metadata store {self.safe_url}: {self._reason(exc)}") from exc

    def read_session(self) -> AbstractContextManager[Session]:
        """A session for reads, for concern packages that own tables of their own."""
        return self._read()

    def write_session(self) -> AbstractContextManager[Session]:
        """A session whose work commits in one write transaction (or not at all)."""
        return self._write()

    def add_event(
        self,
        s: Session,
        kind: str,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Add an event inside a write session, so it commits with the change it records."""
        self._event(s, kind, object_type, object_id, details)

    def _event(
        self,
        s: Session,
        kind: str,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        s.add(
            m.Event(
                actor=self.actor,
                kind=kind,
                object_type=object_type,
                object_id=object_id,
                details=details or {},
            )
        )

    # -- runs -----------------------------------------------------------------------------

    def create_run(
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
    ) -> RunInfo:
        """Start a run and record a ``run.started`` event.

        The run records the calling process (host, pid, start time) as its writer; with
        ``heartbeat`` the writer promises to call :meth:`heartbeat_run` (or log metric points
        with ``heartbeat=True``) regularly, so that a run written on another host can be
        told dead by its silence too.
        """
        run_id = uuid.uuid4().hex
        me = this_process()
        with self._write() as s:
            if parent_id is not None and s.get(m.Run, parent_id) is None:
                raise NotFoundError(f"parent run {parent_id} does not exist")
            s.add(
                m.Run(
                    id=run_id,
                    name=name,
                    kind=kind,
                    parent_id=parent_id,
                    status="running",
                    user=self.actor,
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
            self._event(s, "run.started", "run", run_id, {"name": name, "kind": kind})
        return self.get_run(run_id)

    def finish_run(self, run_id: str, status: str = "finished", error: str | None = None) -> None:
        """End a run with ``status`` (finished, failed or killed)."""
        if status not in RUN_STATUSES[1:]:
            raise TrackingError(f"invalid end status {status!r}: use finished, failed or killed")
        with self._write() as s:
            run = s.get(m.Run, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} does not exist")
            run.status = status
            run.ended_at = m.utcnow()
            run.error = error
            self._event(s, f"run.{status}", "run", run_id, {"error": error} if error else {})

    def get_run(self, run_id: str) -> RunInfo:
        """A run with params, tags and latest metrics; NotFoundError if absent.

        A unique prefix of the id is accepted too, as the CLI prints short ids. A running run
        whose process is gone is marked ``killed`` first (see :meth:`reap_dead_runs`).
        """
        with self._read() as s:
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
        with self._read() as s:
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
        t = m.Metric
        last = (
            select(t.key, func.max(t.id).label("last_id")).where(t.run_id == run_id).group_by(t.key)
        ).subquery()
        rows = s.execute(select(t.key, t.value).join(last, t.id == last.c.last_id)).all()
        return {k: v for k, v in rows}

    def list_runs(
        self,
        *,
        kind: str | None = None,
        parent_id: str | None = None,
        status: str | None = None,
        name: str | None = None,
        limit: int = 100,
    ) -> list[RunInfo]:
        """Runs, newest first, filtered by kind, parent, status or name."""
        q = select(m.Run).order_by(m.Run.started_at.desc(), m.Run.id).limit(limit)
        if kind is not None:
            q = q.where(m.Run.kind == kind)
        if parent_id is not None:
            q = q.where(m.Run.parent_id == parent_id)
        if status is not None:
            q = q.where(m.Run.status == status)
        if name is not None:
            q = q.where(m.Run.name == name)
        with self._read() as s:
            runs = s.scalars(q).all()
            dead = self._dead_runs(runs, None)
            if not dead:
                return [self._run_info(s, r) for r in runs]
        self._mark_killed(dead)
        # Runs just marked killed may no longer match a status filter: query again.
        with self._read() as s:
            return [self._run_info(s, r) for r in s.scalars(q)]

    # -- liveness of running runs ---------------------------------------------------------

    def heartbeat_run(self, run_id: str) -> None:
        """Record that the process writing ``run_id`` is alive; NotFoundError if absent."""
        with self._write() as s:
            done = s.execute(
                update(m.Run).where(m.Run.id == run_id).values(heartbeat_at=m.utcnow())
            )
            if done.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFoundError(f"run {run_id} does not exist")

    def reap_dead_runs(self, timeout_s: float | None = None) -> list[RunInfo]:
        """Mark ``killed`` every running run whose process is gone; returns those runs.

        On the host that wrote a run its process is looked up (a reused pid is told apart
        by its start time); a run written on another host is dead when its heartbeat is
        older than ``timeout_s`` (default: the store's ``heartbeat_timeout_s``). The run's
        error names the process, its last heartbeat and the last step stored. Safe to call
        from several processes at once: a run is marked (and its event written) once.
        """
        with self._read() as s:
            running = s.scalars(select(m.Run).where(m.Run.status == "running")).all()
            ids = self._dead_runs(running, timeout_s)
        killed = self._mark_killed(ids)
        with self._read() as s:
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

    def _mark_killed(self, dead: dict[str, str]) -> list[str]:
        killed: list[str] = []
        for run_id, reason in dead.items():
            with self._write() as s:
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
                self._event(
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
        with self._write() as s:
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
        with self._write() as s:
            if s.get(m.Run, run_id) is None:
                raise NotFoundError(f"run {run_id} does not exist")
            for k, v in tags.items():
                _check_key("tag", k)
                s.merge(m.RunTag(run_id=run_id, key=k, value=_str_value(v)))

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
            with self.engine.connect() as conn:
                conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    if heartbeat:
                        beat = conn.execute(
                            update(m.Run).where(m.Run.id == run_id).values(heartbeat_at=m.utcnow())
                        )
                        if beat.rowcount == 0:
                            raise NotFoundError(f"run {run_id} does not exist")
                    if self.engine.dialect.name == "sqlite":
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
            raise StoreError(f"metadata store {self.safe_url}: {self._reason(exc)}") from exc
        except IntegrityError as exc:
            if not self._run_exists(run_id):
                raise NotFoundError(f"run {run_id} does not exist") from exc
            raise TrackingError(
                f"the store refused metric points of run {run_id}: {self._reason(exc)}"
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

    def _run_exists(self, run_id: str) -> bool:
        with self._read() as s:
            return s.get(m.Run, run_id) is not None

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every point of one metric of a run, by step then time."""
        t = m.Metric
        q = (
            select(t.key, t.value, t.step, t.timestamp)
            .where(and_(t.run_id == run_id, t.key == key))
            .order_by(t.step, t.id)
        )
        with self._read() as s:
            return [
                MetricPoint(key=k, value=v, step=st, timestamp=ts) for k, v, st, ts in s.execute(q)
            ]

    def count_metric_points(self, run_id: str) -> int:
        """How many metric points a run has."""
        with self._read() as s:
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
        with self._write() as s:
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
            self._event(s, "artifact.logged", "run", run_id, {"path": path, "digest": digest})
            return ArtifactInfo.model_validate(row)

    def list_artifacts(self, run_id: str) -> list[ArtifactInfo]:
        """Artifacts of a run, by path."""
        q = select(m.RunArtifact).where(m.RunArtifact.run_id == run_id).order_by(m.RunArtifact.path)
        with self._read() as s:
            return [ArtifactInfo.model_validate(a) for a in s.scalars(q)]

    # -- pipeline steps -------------------------------------------------------------------

    def create_step_run(
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
        with self._write() as s:
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

    def update_step_run(self, step_run_id: int, **fields: Any) -> StepRunInfo:
        """Update fields of a step run (status, timings, outputs, logs, error …)."""
        unknown = set(fields) - self._STEP_FIELDS
        if unknown:
            raise StoreError(f"unknown step run field(s): {', '.join(sorted(unknown))}")
        if "status" in fields and fields["status"] not in STEP_STATUSES:
            raise StoreError(f"invalid step status {fields['status']!r}")
        with self._write() as s:
            row = s.get(m.StepRun, step_run_id)
            if row is None:
                raise NotFoundError(f"step run {step_run_id} does not exist")
            for k, v in fields.items():
                setattr(row, k, v)
            s.flush()
            if "status" in fields and fields["status"] in ("succeeded", "failed", "cached"):
                self._event(
                    s,
                    f"step.{fields['status']}",
                    "run",
                    row.run_id,
                    {"step": row.name, "step_run_id": row.id},
                )
            return StepRunInfo.model_validate(row)

    def find_cached_step(self, cache_key: str) -> StepRunInfo | None:
        """The newest step run that succeeded with ``cache_key``, if any."""
        q = (
            select(m.StepRun)
            .where(m.StepRun.cache_key == cache_key, m.StepRun.status == "succeeded")
            .order_by(m.StepRun.id.desc())
            .limit(1)
        )
        with self._read() as s:
            row = s.scalar(q)
            return None if row is None else StepRunInfo.model_validate(row)

    def list_step_runs(self, run_id: str) -> list[StepRunInfo]:
        """The steps of a pipeline run, in the order they were recorded."""
        q = select(m.StepRun).where(m.StepRun.run_id == run_id).order_by(m.StepRun.id)
        with self._read() as s:
            return [StepRunInfo.model_validate(r) for r in s.scalars(q)]

    # -- datasets -------------------------------------------------------------------------

    def record_dataset_version(
        self,
        digest: str,
        *,
        source: str,
        row_count: int,
        schema: dict[str, Any],
        name: str = "",
        details: dict[str, Any] | None = None,
    ) -> DatasetVersionInfo:
        """Record a data set version; recording the same digest again returns the first record."""
        with self._write() as s:
            row = s.get(m.DatasetVersion, digest)
            if row is None:
                row = m.DatasetVersion(
                    digest=digest,
                    name=name,
                    source=source,
                    row_count=row_count,
                    schema_=schema,
                    details=details or {},
                )
                s.add(row)
                s.flush()
                self._event(
                    s, "dataset.recorded", "dataset", digest, {"source": source, "rows": row_count}
                )
            return DatasetVersionInfo.model_validate(row)

    def get_dataset_version(self, digest: str) -> DatasetVersionInfo:
        """A recorded data set version; NotFoundError if absent."""
        with self._read() as s:
            row = s.get(m.DatasetVersion, digest)
            if row is None:
                raise NotFoundError(f"dataset version {digest} does not exist")
            return DatasetVersionInfo.model_validate(row)

    # -- model registry -------------------------------------------------------------------

    def create_registered_model(
        self, name: str, *, description: str = "", tags: dict[str, str] | None = None
    ) -> RegisteredModelInfo:
        """Create a registered model; AlreadyExistsError if the name is taken."""
        _check_name("model", name)
        with self._write() as s:
            if s.get(m.RegisteredModel, name) is not None:
                raise AlreadyExistsError(f"model '{name}' already exists")
            s.add(m.RegisteredModel(name=name, description=description))
            s.flush()
            for k, v in (tags or {}).items():
                s.add(m.ModelTag(model_name=name, key=k, value=v))
            self._event(s, "model.created", "model", name, {"description": description})
        return self.get_registered_model(name)

    def get_registered_model(self, name: str) -> RegisteredModelInfo:
        """A registered model; NotFoundError if absent."""
        with self._read() as s:
            row = s.get(m.RegisteredModel, name)
            if row is None:
                raise NotFoundError(
                    f"model '{name}' is not registered", hint="see 'opsloop models list'"
                )
            return self._model_info(s, row)

    def _model_info(self, s: Session, row: m.RegisteredModel) -> RegisteredModelInfo:
        latest = s.scalar(
            select(func.max(m.ModelVersion.version)).where(m.ModelVersion.model_name == row.name)
        )
        aliases = {
            a.alias: a.version
            for a in s.scalars(select(m.ModelAlias).where(m.ModelAlias.model_name == row.name))
        }
        tags = {
            t.key: t.value
            for t in s.scalars(select(m.ModelTag).where(m.ModelTag.model_name == row.name))
        }
        return RegisteredModelInfo(
            name=row.name,
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
            latest_version=latest,
            aliases=aliases,
            tags=tags,
        )

    def list_registered_models(self) -> list[RegisteredModelInfo]:
        """Every registered model, by name."""
        with self._read() as s:
            rows = s.scalars(select(m.RegisteredModel).order_by(m.RegisteredModel.name)).all()
            return [self._model_info(s, r) for r in rows]

    def create_model_version(
        self,
        model_name: str,
        *,
        artifact_digest: str,
        run_id: str | None = None,
        dataset_digest: str | None = None,
        source: str = "",
        description: str = "",
        details: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        alias: str | None = None,
        events: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> ModelVersionInfo:
        """Add the next version of ``model_name`` (created if new), optionally aliased.

        The version number is taken under a row lock on the model (PostgreSQL) or the database
        write lock (SQLite), so concurrent registrations get distinct, gap-free numbers.
        ``events`` (kind, details) are recorded on the new version in the same transaction.
        """
        _check_name("model", model_name)
        if alias is not None:
            _check_name("alias", alias)
        for attempt in range(5):
            try:
                version = self._insert_model_version(
                    model_name,
                    artifact_digest=artifact_digest,
                    run_id=run_id,
                    dataset_digest=dataset_digest,
                    source=source,
                    description=description,
                    details=details,
                    tags=tags,
                    alias=alias,
                    events=events,
                )
                break
            except IntegrityError:
                # Two first registrations of a new model raced to create it; the loser retries
                # and now finds the model row to lock.
                if attempt == 4:
                    raise
        return self.get_model_version(model_name, version)

    def _insert_model_version(
        self,
        model_name: str,
        *,
        artifact_digest: str,
        run_id: str | None,
        dataset_digest: str | None,
        source: str,
        description: str,
        details: dict[str, Any] | None,
        tags: dict[str, str] | None,
        alias: str | None,
        events: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> int:
        with self._write() as s:
            model = s.scalar(
                select(m.RegisteredModel)
                .where(m.RegisteredModel.name == model_name)
                .with_for_update()
            )
            if model is None:
                model = m.RegisteredModel(name=model_name, description="")
                s.add(model)
                s.flush()
                self._event(s, "model.created", "model", model_name, {})
            current = s.scalar(
                select(func.max(m.ModelVersion.version)).where(
                    m.ModelVersion.model_name == model_name
                )
            )
            version = (current or 0) + 1
            row = m.ModelVersion(
                model_name=model_name,
                version=version,
                artifact_digest=artifact_digest,
                run_id=run_id,
                dataset_digest=dataset_digest,
                source=source,
                description=description,
                details=details or {},
            )
            s.add(row)
            model.updated_at = m.utcnow()
            s.flush()
            for k, v in (tags or {}).items():
                s.add(m.ModelVersionTag(version_id=row.id, key=k, value=v))
            self._event(
                s,
                "model_version.created",
                "model_version",
                f"{model_name}/{version}",
                {"artifact": artifact_digest, "run_id": run_id, "dataset": dataset_digest},
            )
            for kind, event_details in events:
                self._event(s, kind, "model_version", f"{model_name}/{version}", event_details)
            if alias is not None:
                self._set_alias(s, model_name, alias, version)
        return version

    def _version_info(self, s: Session, row: m.ModelVersion) -> ModelVersionInfo:
        aliases = sorted(
            s.scalars(
                select(m.ModelAlias.alias).where(
                    m.ModelAlias.model_name == row.model_name, m.ModelAlias.version == row.version
                )
            )
        )
        tags = {
            t.key: t.value
            for t in s.scalars(
                select(m.ModelVersionTag).where(m.ModelVersionTag.version_id == row.id)
            )
        }
        data = {c: getattr(row, c) for c in ModelVersionInfo.model_fields if hasattr(row, c)}
        return ModelVersionInfo.model_validate({**data, "aliases": aliases, "tags": tags})

    def _version_row(self, s: Session, model_name: str, version: int) -> m.ModelVersion:
        row = s.scalar(
            select(m.ModelVersion).where(
                m.ModelVersion.model_name == model_name, m.ModelVersion.version == version
            )
        )
        if row is None:
            if s.get(m.RegisteredModel, model_name) is None:
                raise NotFoundError(
                    f"model '{model_name}' is not registered", hint="see 'opsloop models list'"
                )
            raise NotFoundError(
                f"model '{model_name}' has no version {version}",
                hint=f"see 'opsloop models show {model_name}'",
            )
        return row

    def get_model_version(self, model_name: str, version: int) -> ModelVersionInfo:
        """One version; NotFoundError if the model or the version is absent."""
        with self._read() as s:
            return self._version_info(s, self._version_row(s, model_name, version))

    def get_model_version_by_alias(self, model_name: str, alias: str) -> ModelVersionInfo:
        """The version an alias points at; NotFoundError if the alias is not set."""
        with self._read() as s:
            row = s.get(m.ModelAlias, (model_name, alias))
            if row is None:
                if s.get(m.RegisteredModel, model_name) is None:
                    raise NotFoundError(
                        f"model '{model_name}' is not registered", hint="see 'opsloop models list'"
                    )
                raise NotFoundError(
                    f"model '{model_name}' has no alias '{alias}'",
                    hint=f"see 'opsloop models show {model_name}'",
                )
            return self._version_info(s, self._version_row(s, model_name, row.version))

    def list_model_versions(self, model_name: str) -> list[ModelVersionInfo]:
        """Versions of a model, newest first."""
        with self._read() as s:
            if s.get(m.RegisteredModel, model_name) is None:
                raise NotFoundError(
                    f"model '{model_name}' is not registered", hint="see 'opsloop models list'"
                )
            rows = s.scalars(
                select(m.ModelVersion)
                .where(m.ModelVersion.model_name == model_name)
                .order_by(m.ModelVersion.version.desc())
            ).all()
            return [self._version_info(s, r) for r in rows]

    def _set_alias(self, s: Session, model_name: str, alias: str, version: int) -> int | None:
        self._version_row(s, model_name, version)
        row = s.get(m.ModelAlias, (model_name, alias))
        previous = None if row is None else row.version
        if row is None:
            s.add(m.ModelAlias(model_name=model_name, alias=alias, version=version))
        else:
            row.version = version
            row.updated_at = m.utcnow()
        self._event(
            s,
            "alias.set",
            "model",
            model_name,
            {"alias": alias, "version": version, "previous": previous},
        )
        return previous

    def set_alias(self, model_name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed at before, if any."""
        _check_name("alias", alias)
        if alias.isdigit():
            raise TrackingError(f"invalid alias {alias!r}: an alias cannot be a number")
        with self._write() as s:
            return self._set_alias(s, model_name, alias, version)

    def delete_alias(self, model_name: str, alias: str) -> None:
        """Remove an alias; NotFoundError if it is not set."""
        with self._write() as s:
            row = s.get(m.ModelAlias, (model_name, alias))
            if row is None:
                raise NotFoundError(f"model '{model_name}' has no alias '{alias}'")
            version = row.version
            s.delete(row)
            self._event(
                s, "alias.deleted", "model", model_name, {"alias": alias, "version": version}
            )

    def update_model(
        self, model_name: str, *, description: str | None = None, tags: dict[str, str] | None = None
    ) -> None:
        """Change a model's description and/or set tags."""
        with self._write() as s:
            row = s.get(m.RegisteredModel, model_name)
            if row is None:
                raise NotFoundError(f"model '{model_name}' is not registered")
            if description is not None:
                row.description = description
            for k, v in (tags or {}).items():
                s.merge(m.ModelTag(model_name=model_name, key=k, value=v))
            row.updated_at = m.utcnow()
            self._event(
                s,
                "model.updated",
                "model",
                model_name,
                {"description": description, "tags": tags or {}},
            )

    def update_model_version(
        self,
        model_name: str,
        version: int,
        *,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
        status: str | None = None,
    ) -> ModelVersionInfo:
        """Change a version's description, status, set tags or merge keys into its details."""
        with self._write() as s:
            row = self._version_row(s, model_name, version)
            if description is not None:
                row.description = description
            if status is not None:
                row.status = status
            if details:
                row.details = {**row.details, **details}
            for k, v in (tags or {}).items():
                s.merge(m.ModelVersionTag(version_id=row.id, key=k, value=v))
            self._event(
                s,
                "model_version.updated",
                "model_version",
                f"{model_name}/{version}",
                {
                    "description": description,
                    "status": status,
                    "tags": tags or {},
                    "details": sorted(details or {}),
                },
            )
            s.flush()
            return self._version_info(s, row)

    # -- events ---------------------------------------------------------------------------

    def emit_event(
        self,
        kind: str,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append an event that no other store call records."""
        with self._write() as s:
            self._event(s, kind, object_type, object_id, details)

    def list_events(
        self,
        *,
        object_type: str | None = None,
        object_id: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[EventInfo]:
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
        with self._read() as s:
            return [EventInfo.model_validate(e) for e in s.scalars(q)]

    def delete_run(self, run_id: str) -> None:
        """Delete a run and everything it owns (params, metrics, artifacts records, steps)."""
        with self._write() as s:
            run = s.get(m.Run, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} does not exist")
            for table in (m.Metric, m.Param, m.RunTag, m.RunArtifact, m.StepRun):
                s.execute(delete(table).where(table.run_id == run_id))
            s.delete(run)
            self._event(s, "run.deleted", "run", run_id, {"name": run.name})

    # -- predictions, feedback and metric series ----------------------------------------

    def log_predictions(self, records: Sequence[dict[str, Any]]) -> None:
        """Insert prediction records (keys of :class:`PredictionInfo` but ``id``) in one batch."""
        if records:
            with self._write() as s:
                s.execute(insert(m.Prediction), [dict(r) for r in records])

    def count_predictions(self) -> int:
        """How many requests the prediction log holds (shadow answers included)."""
        with self._read() as s:
            return int(s.scalar(select(func.count()).select_from(m.Prediction)) or 0)

    def count_prediction_rows(self) -> int:
        """How many rows the logged requests predicted, also those kept out of line (a
        request logged before row counts were recorded counts as one)."""
        total = func.sum(func.coalesce(m.Prediction.rows, 1))
        with self._read() as s:
            return int(s.scalar(select(total)) or 0)

    def prediction_deployments(self) -> list[str]:
        """Every deployment name in the prediction log or its feedback (``""`` for servers
        outside GitOps)."""
        names: set[str] = set()
        with self._read() as s:
            for table in (m.Prediction, m.Feedback):
                names.update(str(d) for d in s.scalars(select(table.deployment).distinct()))
        return sorted(names)

    def oldest_predictions(
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
        with self._read() as s:
            return [(t, int(i), int(n)) for t, i, n in s.execute(q)]

    def delete_predictions(
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
        with self._write() as s:
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
        with self._write() as s:
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
        with self._read() as s:
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
        table = cast(Table, m.Feedback.__table__)
        keys = ["deployment", "request_id"]
        if self.engine.dialect.name == "postgresql":
            stmt: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
        else:
            stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
        stmt = stmt.returning(table.c.deployment, table.c.request_id)
        with self._write() as s:
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
        with self._read() as s:
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

    def read_predictions(
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
        with self._read() as s:
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
        with self._read() as s:
            return [FeedbackInfo.model_validate(f) for f in s.scalars(q)]

    def append_series(self, points: Sequence[tuple[str, dict[str, str], datetime, float]]) -> None:
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
        with self._write() as s:
            s.execute(insert(m.SeriesPoint), rows)

    def read_series(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        last: int | None = None,
    ) -> list[SeriesPointInfo]:
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
        with self._read() as s:
            points = [SeriesPointInfo.model_validate(p) for p in s.scalars(q)]
        return points[::-1] if last is not None else points

    def list_series(self, name_prefix: str = "") -> list[tuple[str, dict[str, str]]]:
        """Every distinct series ``(name, labels)`` whose name starts with ``name_prefix``."""
        q = (
            select(m.SeriesPoint.name, m.SeriesPoint.labels_key, func.min(m.SeriesPoint.id))
            .where(m.SeriesPoint.name.startswith(name_prefix))
            .group_by(m.SeriesPoint.name, m.SeriesPoint.labels_key)
            .order_by(m.SeriesPoint.name, m.SeriesPoint.labels_key)
        )
        with self._read() as s:
            out = []
            for name, _key, first_id in s.execute(q).all():
                point = s.get(m.SeriesPoint, first_id)
                out.append((name, dict(point.labels) if point is not None else {}))
            return out


@dataclass
class DeletedPredictions:
    """What :meth:`Store.delete_predictions` deleted."""

    predictions: int = 0
    rows: int = 0
    feedback: int = 0
    chunks: set[str] = field(default_factory=set)


_PART = 500
"""Values per ``IN (...)``: well under every backend's bound-parameter limit."""


def _parts(values: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(values), _PART):
        yield values[i : i + _PART]


def labels_key(labels: dict[str, str]) -> str:
    """A canonical string of a label set: ``a=1,b=2`` (sorted)."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))
