"""The metadata store: a repository per domain (runs, steps, datasets, models, events,
predictions, series, deployments, incidents) over one database; see :mod:`opsloop.store.facade`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from opsloop.errors import ConfigError
from opsloop.redact import redact, redact_url, remember
from opsloop.store.base import STORE_BACKENDS, Backend
from opsloop.store.facade import DEFAULT_HEARTBEAT_TIMEOUT_S, Store
from opsloop.store.repos.runs import MetricRow
from opsloop.store.repos.schedules import ScheduleRunInfo, SourceLoadInfo
from opsloop.store.repos.series import labels_key
from opsloop.store.types import (
    ActionInfo,
    AlertInfo,
    ArtifactInfo,
    DatasetVersionInfo,
    DeletedPredictions,
    DeploymentRecord,
    EventInfo,
    FeedbackInfo,
    FeedbackTarget,
    IncidentInfo,
    MetricPoint,
    ModelVersionInfo,
    PredictionInfo,
    RegisteredModelInfo,
    RunInfo,
    SeriesPointInfo,
    StepRunInfo,
    SyncHistoryEntry,
    UsageInfo,
    UsageRecord,
)

if TYPE_CHECKING:
    from sqlalchemy import URL

__all__ = [
    "ActionInfo",
    "AlertInfo",
    "ArtifactInfo",
    "DatasetVersionInfo",
    "DeletedPredictions",
    "DeploymentRecord",
    "EventInfo",
    "FeedbackInfo",
    "FeedbackTarget",
    "IncidentInfo",
    "MetricPoint",
    "MetricRow",
    "ModelVersionInfo",
    "PredictionInfo",
    "RegisteredModelInfo",
    "RunInfo",
    "ScheduleRunInfo",
    "SeriesPointInfo",
    "SourceLoadInfo",
    "StepRunInfo",
    "Store",
    "SyncHistoryEntry",
    "UsageInfo",
    "UsageRecord",
    "backend_for",
    "check_store_url",
    "labels_key",
    "open_store",
]


def backend_for(url: str, *, setting: str = "store URL") -> Backend:
    """The backend for a store URL, chosen by its scheme (``sqlite``, ``postgresql``, or one
    a plugin registered in :data:`opsloop.store.base.STORE_BACKENDS`).

    Raises:
        ConfigError: No backend has that scheme; names ``setting``, password masked.
        PluginError: The backend's plugin cannot be imported.
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme == "postgres":
        scheme = "postgresql"
    if scheme not in STORE_BACKENDS:
        raise ConfigError(
            f"{setting}: unsupported store URL {redact_url(url)!r}: "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
            hint=f"store backends: {', '.join(STORE_BACKENDS.names())}",
        )
    return STORE_BACKENDS.get(scheme)


def check_store_url(url: str, *, setting: str = "store URL") -> URL:
    """Parse a store URL, refusing what a driver would misread or echo.

    Raises:
        ConfigError: The URL has no scheme, does not parse, has a port that is not a number,
            or a password with an unescaped ``@``; names the setting, password masked.
    """
    shown = redact_url(url)
    if "://" not in url:
        raise ConfigError(
            f"{setting}: {shown!r} is not a URL",
            hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
        )
    try:
        parsed = make_url(url)
    except ValueError:
        # SQLAlchemy converts the port with int(), and its error quotes only that part.
        raise ConfigError(f"{setting}: the port is not a number in {shown!r}") from None
    except ArgumentError:
        # Its message quotes the whole URL, password and all.
        raise ConfigError(f"{setting}: cannot be read as a URL: {shown!r}") from None
    if parsed.host is not None and "@" in parsed.host:
        raise ConfigError(
            f"{setting}: the password holds an unescaped '@' in {shown!r}",
            hint="percent-encode it in the URL: '@' as %40, ':' as %3A, '/' as %2F",
        )
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigError(f"{setting}: port {parsed.port} is out of range in {shown!r}")
    return parsed


def _check_folder(database: str | None, setting: str, state_dir: Path | None) -> None:
    """The SQLite file's folder must exist; only the project's own state folder is made."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    # As SQLite opens it: relative to the working folder, "~" not expanded.
    folder = Path(database).absolute().parent
    if folder.is_dir():
        return
    if (
        state_dir is not None
        and folder == state_dir.absolute()
        and folder.parent.is_dir()
        and not folder.exists()
    ):
        folder.mkdir(exist_ok=True)
        return
    what = "is not a folder" if folder.exists() else "does not exist"
    raise ConfigError(
        f"{setting}: folder {folder} {what}",
        hint="create it first, or point the store at a file in an existing folder",
    )


def open_store(
    url: str,
    *,
    actor: str = "unknown",
    migrate: bool = True,
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S,
    setting: str = "store URL",
    state_dir: Path | None = None,
) -> Store:
    """Open (and by default migrate) the metadata store at ``url``.

    Args:
        url: ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST/DB``.
        actor: Who is acting: recorded on every event.
        migrate: Bring the schema up to date.
        setting: Where the URL came from (``OPSLOOP_STORE_URL``), for messages.
        heartbeat_timeout_s: How long a run on another host may go without a heartbeat
            before it is marked killed.
        state_dir: The project's state folder, the one folder created when missing; any other
            missing folder of a SQLite file is an error.

    Raises:
        ConfigError: The URL is malformed or unsupported, or the SQLite file's folder does
            not exist; the message names ``setting`` and masks the password.
        StoreError: The store cannot be reached or migrated.
    """
    remember(url)
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    parsed = check_store_url(url, setting=setting)
    backend = backend_for(url, setting=setting)
    if backend.name == "sqlite":
        _check_folder(parsed.database, setting, state_dir)
    try:
        engine = backend.create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"{setting}: {redact(str(exc), url)} in {redact_url(url)!r}") from None
    return Store(
        engine,
        backend,
        url,
        actor=actor,
        migrate=migrate,
        heartbeat_timeout_s=heartbeat_timeout_s,
    )
