"""The metadata store: one object holding a repository per domain over one database.

    store.runs          runs, params, tags, metric points, artifacts, liveness
    store.steps         pipeline step runs and the step cache
    store.datasets      data set versions
    store.models        registered models, versions, aliases
    store.events        the audit log
    store.predictions   the prediction log and feedback labels
    store.series        metric series
    store.deployments   what the GitOps reconciler records
    store.incidents     alerts, incidents, remediation actions
    store.access        identities, their roles and grants, API tokens
    store.usage         metered usage per hour (FinOps)
    store.sources       loads of data sources (snapshots, watermarks)
    store.schedules     schedules and their history
    store.detector_states  streaming detectors' checkpoints per series

Only :mod:`opsloop.store` touches ORM models and sessions; the repositories own their queries
and return the plain records of :mod:`opsloop.store.types`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.store.db import Database
from opsloop.store.repos.access import AccessRepository
from opsloop.store.repos.datasets import DatasetRepository
from opsloop.store.repos.deployments import DeploymentRepository
from opsloop.store.repos.detector_states import DetectorStateRepository
from opsloop.store.repos.events import EventRepository
from opsloop.store.repos.incidents import IncidentRepository
from opsloop.store.repos.models import ModelRepository
from opsloop.store.repos.predictions import PredictionRepository
from opsloop.store.repos.runs import DEFAULT_HEARTBEAT_TIMEOUT_S, RunRepository
from opsloop.store.repos.schedules import ScheduleRepository, SourceLoadRepository
from opsloop.store.repos.series import SeriesRepository
from opsloop.store.repos.steps import StepRepository
from opsloop.store.repos.usage import UsageRepository

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from opsloop.store.base import Backend

__all__ = ["DEFAULT_HEARTBEAT_TIMEOUT_S", "Store"]


class Store:
    """The metadata store of a project.

    Args:
        engine: A SQLAlchemy engine from the backend.
        backend: The backend that made the engine.
        url: The store URL (shown masked in messages).
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
        self.db = Database(engine, backend, url, actor=actor, migrate=migrate)
        self.runs = RunRepository(self.db, heartbeat_timeout_s=heartbeat_timeout_s)
        self.steps = StepRepository(self.db)
        self.datasets = DatasetRepository(self.db)
        self.models = ModelRepository(self.db)
        self.events = EventRepository(self.db)
        self.predictions = PredictionRepository(self.db)
        self.series = SeriesRepository(self.db)
        self.deployments = DeploymentRepository(self.db)
        self.incidents = IncidentRepository(self.db)
        self.access = AccessRepository(self.db)
        self.usage = UsageRepository(self.db)
        self.sources = SourceLoadRepository(self.db)
        self.schedules = ScheduleRepository(self.db)
        self.detector_states = DetectorStateRepository(self.db)

    @property
    def url(self) -> str:
        """The store URL (with its password: never print it, see :attr:`safe_url`)."""
        return self.db.url

    @property
    def safe_url(self) -> str:
        """The URL with its password and credential query values masked."""
        return self.db.safe_url

    @property
    def actor(self) -> str:
        """Who is acting: recorded on every event."""
        return self.db.actor

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine."""
        return self.db.engine

    def close(self) -> None:
        """Release the connection pool."""
        self.db.close()

    def __repr__(self) -> str:
        return f"Store({self.safe_url!r})"
