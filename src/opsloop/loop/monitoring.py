"""The loop's monitoring step: scrape the replicas, run each deployment's monitors with its
own settings, and turn the new points into alerts and incidents.

A deployment's settings come from its document in Git (``spec.monitoring``: window, which
monitors, drift thresholds, or ``enabled: false``) over the project's ``monitoring`` section;
a deployment the documents do not name (a server outside GitOps) gets the project's. The
alert rules and the detector are the project's (``alerts`` in ``opsloop.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from opsloop.aiops.alerting import raise_alerts
from opsloop.aiops.incidents import IngestResult
from opsloop.errors import GitOpsError
from opsloop.gitops import (
    DEFAULT_FOLDER,
    DeploymentDocument,
    DesiredState,
    GitRepo,
    load_desired_state,
)
from opsloop.monitor.scrape import scrape_deployments
from opsloop.monitor.service import (
    DEFAULT_BACKFILL,
    DEFAULT_GRACE,
    DEFAULT_WINDOW,
    MonitorRunResult,
    WindowDrift,
    known_deployments,
    run_monitors,
    window_drift,
    write_monitor_report,
)
from opsloop.spec.alerting import AlertsSection
from opsloop.spec.monitoring import MONITORS, DriftThresholds

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from opsloop.context import Project
    from opsloop.store import AlertInfo

__all__ = [
    "DeploymentDrift",
    "MonitorReport",
    "MonitorSettings",
    "MonitorStepResult",
    "deployment_documents",
    "deployment_drift",
    "monitor_settings",
    "monitor_step",
    "report_window",
    "write_report",
]


@dataclass(frozen=True)
class MonitorSettings:
    """How one deployment is monitored.

    Attributes:
        window: Length of a window.
        monitors: Which monitors run.
        thresholds: Drift thresholds.
    """

    window: timedelta
    monitors: tuple[str, ...]
    thresholds: DriftThresholds


@dataclass
class MonitorStepResult:
    """What one monitoring step did.

    Attributes:
        monitor: The windows monitored and points written (every deployment together).
        ingest: The alerts the new points raised and the incidents opened, updated, resolved.
        scraped: Series points written by the scrape of the replicas' ``/metrics``.
        down: Replicas that did not answer the scrape, with why.
        disabled: Deployments whose document turns monitoring off.
        settings: The settings each deployment was monitored with.
    """

    monitor: MonitorRunResult = field(default_factory=MonitorRunResult)
    ingest: IngestResult = field(default_factory=IngestResult)
    scraped: int = 0
    down: dict[str, str] = field(default_factory=dict)
    disabled: list[str] = field(default_factory=list)
    settings: dict[str, MonitorSettings] = field(default_factory=dict)

    @property
    def windows(self) -> int:
        """How many windows were monitored."""
        return len(self.monitor.windows)

    @property
    def points(self) -> int:
        """Series points written, the scrape's included."""
        return self.monitor.points + self.scraped

    @property
    def alerts(self) -> list[AlertInfo]:
        """The alerts raised (one row per alert)."""
        return self.ingest.alerts

    @property
    def opened(self) -> list[int]:
        """Incidents opened."""
        return self.ingest.opened

    @property
    def notes(self) -> list[str]:
        """What could not be computed, and why; replicas that did not answer."""
        down = [
            f"{replica} did not answer its /metrics scrape: {why}"
            for replica, why in self.down.items()
        ]
        return [*self.monitor.notes, *down]


def deployment_documents(
    project: Project, folder: str = DEFAULT_FOLDER
) -> dict[str, DeploymentDocument]:
    """The valid deployment documents at ``HEAD``; none outside a Git repository."""
    return _documents(_desired(project, folder))


def _desired(project: Project, folder: str = DEFAULT_FOLDER) -> DesiredState | None:
    """What Git holds at ``HEAD`` (None outside a Git repository)."""
    try:
        repo = GitRepo(project.dir)
        return load_desired_state(repo, repo.relpath(project.dir / folder))
    except GitOpsError:
        return None


def _documents(state: DesiredState | None) -> dict[str, DeploymentDocument]:
    if state is None:
        return {}
    return {name: loaded.document for name, loaded in state.documents.items()}


def monitor_settings(
    project: Project,
    documents: Mapping[str, DeploymentDocument],
    names: Sequence[str],
    *,
    window: timedelta | None = None,
) -> tuple[dict[str, MonitorSettings], list[str]]:
    """Each deployment's settings, and the deployments whose monitoring is off.

    Args:
        project: The project (its ``monitoring`` section gives the defaults).
        documents: Deployment documents by name.
        names: The deployments.
        window: A window length that overrides every other (``opsloop monitor run -w``).
    """
    spec = project.spec
    base_window = spec.monitoring.window if spec is not None else timedelta(minutes=15)
    base_drift = spec.monitoring.drift if spec is not None else DriftThresholds()
    settings: dict[str, MonitorSettings] = {}
    disabled: list[str] = []
    for name in names:
        doc = documents.get(name)
        own = doc.spec.monitoring if doc is not None else None
        if own is not None and not own.enabled:
            disabled.append(name)
            continue
        settings[name] = MonitorSettings(
            window=window or (own.window if own is not None and own.window else base_window),
            monitors=tuple(own.monitors) if own is not None else MONITORS,
            thresholds=own.thresholds(base_drift) if own is not None else base_drift,
        )
    return settings, disabled


@dataclass(frozen=True)
class MonitorReport:
    """A monitor report written.

    Attributes:
        path: The HTML file.
        window: The window length it used.
        window_source: Where that length comes from, in words.
    """

    path: Path
    window: timedelta
    window_source: str


def report_window(
    project: Project,
    deployment: str,
    *,
    window: timedelta | None = None,
    given: str = "given with --window",
) -> tuple[timedelta, str]:
    """The monitoring window of ``deployment`` and where it comes from, in words.

    The window given wins (its source is ``given``); else the deployment's own
    (``spec.monitoring.window`` of its document at ``HEAD``), else the project's
    (``monitoring.window`` of ``opsloop.yaml``), else the default.
    """
    if window is not None:
        return window, given
    return _own_window(project, deployment, _desired(project))


def _own_window(
    project: Project, deployment: str, state: DesiredState | None
) -> tuple[timedelta, str]:
    loaded = state.documents.get(deployment) if state is not None else None
    own = loaded.document.spec.monitoring if loaded is not None else None
    if loaded is not None and own is not None and own.window:
        return own.window, f"spec.monitoring.window of {loaded.file}"
    spec = project.spec
    if spec is not None and "window" in spec.monitoring.model_fields_set:
        return spec.monitoring.window, "monitoring.window of opsloop.yaml"
    default = spec.monitoring.window if spec is not None else DEFAULT_WINDOW
    return default, "the default: neither the deployment's document nor opsloop.yaml sets one"


@dataclass(frozen=True)
class DeploymentDrift:
    """The drift of a window of a deployment, checked with the deployment's own settings.

    Attributes:
        checked: The window, the version checked and its drift.
        window_source: Where the window's length comes from, in words.
    """

    checked: WindowDrift
    window_source: str


def _own_settings(
    project: Project, deployment: str, window: timedelta | None, given: str
) -> tuple[timedelta, str, DriftThresholds | None]:
    """The window (given, else the deployment's own, see :func:`report_window`), where it
    comes from, and the drift thresholds of the deployment's document."""
    # Git is read once for both.
    state = _desired(project)
    length, source = (
        (window, given) if window is not None else _own_window(project, deployment, state)
    )
    settings, _off = monitor_settings(project, _documents(state), [deployment], window=length)
    own = settings.get(deployment)
    return length, source, own.thresholds if own is not None else None


def deployment_drift(
    project: Project,
    deployment: str,
    *,
    window: timedelta | None = None,
    until: datetime | None = None,
    given: str = "given with --window",
) -> DeploymentDrift:
    """The drift of ``deployment``'s window ending at ``until`` (default: its latest window
    with requests), with its own monitoring window and drift thresholds, as
    :func:`write_report` checks it.

    Raises:
        MonitorError: As :func:`~opsloop.monitor.service.window_drift`.
    """
    length, source, thresholds = _own_settings(project, deployment, window, given)
    checked = window_drift(
        project.store,
        project.artifacts,
        deployment,
        window=length,
        until=until,
        thresholds=thresholds,
    )
    return DeploymentDrift(checked, source)


def write_report(
    project: Project,
    deployment: str,
    path: str | Path,
    *,
    window: timedelta | None = None,
    until: datetime | None = None,
) -> MonitorReport:
    """Write the HTML monitor report of ``deployment`` with its own monitoring window (see
    :func:`report_window`) and its document's drift thresholds.

    Raises:
        MonitorError: As :func:`~opsloop.monitor.service.write_monitor_report`.
    """
    length, source, thresholds = _own_settings(project, deployment, window, "given with --window")
    written = write_monitor_report(
        project.store,
        project.artifacts,
        deployment,
        path,
        window=length,
        window_source=source,
        until=until,
        thresholds=thresholds,
    )
    return MonitorReport(written, length, source)


def monitor_step(
    project: Project,
    *,
    deployments: Sequence[str] | None = None,
    until: datetime | None = None,
    window: timedelta | None = None,
    documents: Mapping[str, DeploymentDocument] | None = None,
    progress: bool = False,
    scrape: bool = True,
) -> MonitorStepResult:
    """Scrape, monitor every complete window since the last step, alert, correlate.

    Args:
        project: The project.
        deployments: Only these deployments (default: those of the documents, of the
            reconciler's records and of the recent prediction log).
        until: Monitor the windows that ended by this time (default: those that ended a
            grace period ago, as prediction records reach the store in batches).
        window: A window length for every deployment, over their own settings.
        documents: The deployment documents (default: read from Git at ``HEAD``).
        progress: Draw a progress bar on stderr.
        scrape: Scrape the running replicas' ``/metrics`` first, so that the alert rules see
            those points too.
    """
    store = project.store
    docs = deployment_documents(project) if documents is None else documents
    now = until if until is not None else datetime.now(UTC)
    if deployments is not None:
        names = sorted(set(deployments))
    else:
        names = sorted(set(docs) | set(known_deployments(store, now - DEFAULT_BACKFILL)))
    settings, disabled = monitor_settings(project, docs, names, window=window)
    result = MonitorStepResult(disabled=disabled, settings=settings)
    first_new: dict[str, datetime] = {}
    if scrape and settings:
        scraped_at = datetime.now(UTC)
        scraped = scrape_deployments(store, scraped_at, deployments=sorted(settings))
        result.scraped = len(scraped.points)
        result.down = dict(scraped.down)
        for point in scraped.points:
            first_new.setdefault(point[1]["deployment"], scraped_at)
    grace = project.spec.monitoring.grace if project.spec is not None else DEFAULT_GRACE
    groups: dict[MonitorSettings, list[str]] = {}
    for name, own in settings.items():
        groups.setdefault(own, []).append(name)
    for own, group in groups.items():
        done = run_monitors(
            store,
            project.artifacts,
            deployments=group,
            window=own.window,
            now=until,
            grace=timedelta(0) if until is not None else grace,
            spec=project.spec,
            thresholds=own.thresholds,
            progress=progress,
            monitors=own.monitors,
        )
        _merge(result.monitor, done)
    for name, when in result.monitor.first_new.items():
        first_new[name] = min(when, first_new.get(name, when))
    if first_new:
        spec = project.spec
        longest = max((settings[n].window for n in first_new if n in settings), default=None)
        result.ingest = raise_alerts(
            store,
            spec.alerts if spec is not None else AlertsSection(),
            first_new,
            window=longest or timedelta(minutes=15),
        )
    return result


def _merge(into: MonitorRunResult, done: MonitorRunResult) -> None:
    into.windows.extend(done.windows)
    into.points += done.points
    into.series.update(done.series)
    for name, when in done.first_new.items():
        into.first_new[name] = min(when, into.first_new.get(name, when))
    for note in done.notes:
        if note not in into.notes:
            into.notes.append(note)
