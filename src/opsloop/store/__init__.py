"""The metadata store: runs, metrics, artifacts, pipeline steps, datasets, models, events."""

from __future__ import annotations

from opsloop.errors import ConfigError
from opsloop.store.base import Backend
from opsloop.store.facade import DEFAULT_HEARTBEAT_TIMEOUT_S, Store
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

__all__ = [
    "ArtifactInfo",
    "DatasetVersionInfo",
    "EventInfo",
    "FeedbackInfo",
    "MetricPoint",
    "ModelVersionInfo",
    "PredictionInfo",
    "RegisteredModelInfo",
    "RunInfo",
    "SeriesPointInfo",
    "StepRunInfo",
    "Store",
    "backend_for",
    "open_store",
]


def backend_for(url: str) -> Backend:
    """The backend for a store URL, chosen by its scheme (``sqlite``, ``postgresql``)."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        from opsloop.store.sqlite import SQLiteBackend

        return SQLiteBackend()
    if scheme in ("postgresql", "postgres"):
        from opsloop.store.postgres import PostgresBackend

        return PostgresBackend()
    raise ConfigError(
        f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql+psycopg://HOST/DB"
    )


def open_store(
    url: str,
    *,
    actor: str = "unknown",
    migrate: bool = True,
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S,
) -> Store:
    """Open (and by default migrate) the metadata store at ``url``."""
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    backend = backend_for(url)
    engine = backend.create_engine(url)
    return Store(
        engine,
        backend,
        url,
        actor=actor,
        migrate=migrate,
        heartbeat_timeout_s=heartbeat_timeout_s,
    )
