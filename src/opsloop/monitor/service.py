"""Scheduled monitors: from the prediction log to metric series, alerts and incidents.

Each run of :func:`run_monitors` continues, per deployment, where the last run stopped and
walks the complete windows since then. For each window it writes, in one transaction:

* data drift per feature against the reference profile of the model version that answered
  (labels ``deployment, model, version, feature``): ``drift.psi``, ``drift.ks`` (the KS
  statistic), ``drift.score`` (the statistic of the method that decides, see
  :mod:`opsloop.monitor.drift`), ``drift.detected`` (0/1), ``data.missing_rate`` and
  ``data.out_of_range_rate`` (values outside the reference range; unseen categories for a
  categorical feature);
* per model version (labels ``deployment, model, version``): ``drift.share`` (share of drifting
  features), ``drift.prediction`` (the drift score of the model's scores) and
  ``drift.prediction_detected`` (0/1);
* model quality of the rows whose labels arrived in the window (labels ``deployment, model,
  version``): ``quality.<metric>`` (roc_auc, accuracy, f1 … or rmse, mae, r2) and
  ``quality.labelled``, the number of rows scored;
* service health (label ``deployment``): ``service.request_rate`` (requests per second),
  ``service.requests``, ``service.rows`` and ``service.latency_p50/p95/p99`` (ms);
* ``monitor.window`` (label ``deployment``, value: rows in the window): where monitoring of the
  deployment stopped. It commits with the window's points, so a run over time already
  covered writes nothing, and a run that dies midway resumes at the first missing window.

A request logged out of line (a Parquet chunk of a large request, see
:mod:`opsloop.monitor.windows`) counts with its real number of rows; its chunk is read back for
drift and quality, at most ``monitoring.prediction_log.window_max_rows`` rows per window (a
seeded sample beyond, said in the run's notes).

Every point is stamped with the end of its window. Then the alert rules of ``opsloop.yaml``
and the anomaly detector run over the new points, and their alerts go into incidents.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from opsloop.errors import MonitorError, NotFoundError, OpsloopError, SpecError
from opsloop.monitor.drift import DriftResult, DriftThresholds, FeatureDrift, compute_drift
from opsloop.monitor.health import service_health
from opsloop.monitor.quality import LABELLED, quality_metrics
from opsloop.monitor.reference import NumericProfile, ReferenceProfile
from opsloop.monitor.windows import (
    DEFAULT_WINDOW_MAX_ROWS,
    OUTPUT,
    PREDICTION,
    Label,
    PredictionWindow,
    align,
    labelled_window,
    load_window,
    read_labels,
    utc,
    window_bounds,
)

if TYPE_CHECKING:
    from opsloop.aiops.alerts import AlertIn, AlertInfo
    from opsloop.aiops.rules import AlertsSection
    from opsloop.artifacts import ArtifactStore
    from opsloop.context import Project
    from opsloop.spec import ProjectSpec
    from opsloop.store import Store

__all__ = [
    "CURSOR_SERIES",
    "DEFAULT_BACKFILL",
    "DEFAULT_DETECTOR_SERIES",
    "DEFAULT_GRACE",
    "DEFAULT_WINDOW",
    "MonitorRunResult",
    "WindowSummary",
    "monitor_pass",
    "monitored_until",
    "run_monitors",
    "write_monitor_report",
]

DEFAULT_WINDOW = timedelta(minutes=15)
"""Length of a monitoring window."""
DEFAULT_GRACE = timedelta(seconds=30)
"""How long after a window ends it is monitored: the server writes its log in batches."""
DEFAULT_BACKFILL = timedelta(days=7)
"""How far back the first run of a deployment starts (from its first prediction since then)."""
CURSOR_SERIES = "monitor.window"
"""The series that records how far each deployment has been monitored."""
DEFAULT_DETECTOR_SERIES = ("",)
"""Name prefixes of the series the default anomaly detector watches when ``opsloop.yaml``
configures none: every series (but those of
:data:`opsloop.aiops.alerts.NOT_DETECTED`)."""


SeriesPoint = tuple[str, dict[str, str], datetime, float]


@dataclass
class WindowSummary:
    """What one window of one deployment gave.

    Attributes:
        deployment: The deployment.
        since: Start of the window.
        until: End of the window (the time of its points).
        requests: Requests answered in the window.
        rows: Rows predicted in the window.
        labelled: Rows whose labels arrived in the window.
        drifted: Drifting features per model version (``model/version``).
        share: Share of drifting features per model version.
        points: Series points written for the window.
    """

    deployment: str
    since: datetime
    until: datetime
    requests: int = 0
    rows: int = 0
    labelled: int = 0
    drifted: dict[str, list[str]] = field(default_factory=dict)
    share: dict[str, float] = field(default_factory=dict)
    points: int = 0


@dataclass
class MonitorRunResult:
    """What :func:`run_monitors` did.

    Attributes:
        windows: Every window monitored, per deployment in time order.
        points: Series points written.
        series: Names of the series written to.
        alerts: The stored alerts the new points raised (deduplicated rows).
        opened: Incidents opened.
        updated: Incidents the alerts were attached to.
        resolved: Incidents resolved because all their alerts ended.
        notes: What could not be computed, and why (no reference profile, inputs not
            logged, labels that fit no class …).
    """

    windows: list[WindowSummary] = field(default_factory=list)
    points: int = 0
    series: set[str] = field(default_factory=set)
    alerts: list[AlertInfo] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def deployments(self) -> list[str]:
        """Deployments that had windows monitored."""
        return sorted({w.deployment for w in self.windows})


@dataclass
class _ModelContext:
    """What monitoring needs to know about one model version."""

    profile: ReferenceProfile | None = None
    problem_type: str | None = None
    classes: list[Any] | None = None
    notes: list[str] = field(default_factory=list)


class _Contexts:
    """Model versions' profiles and problem types, each read once per run."""

    def __init__(self, store: Store, artifacts: ArtifactStore, spec: ProjectSpec | None) -> None:
        self.store = store
        self.artifacts = artifacts
        self.spec_problem = spec.problem.type if spec is not None and spec.problem else None
        self._cache: dict[tuple[str, str], _ModelContext] = {}

    def get(self, model: str, version: str) -> _ModelContext:
        key = (model, version)
        ctx = self._cache.get(key)
        if ctx is None:
            ctx = self._cache[key] = self._load(model, version)
        return ctx

    def notes(self) -> list[str]:
        """What could not be read about the versions seen."""
        return [n for ctx in self._cache.values() for n in ctx.notes]

    def _load(self, model: str, version: str) -> _ModelContext:
        ctx = _ModelContext(problem_type=self.spec_problem)
        if not version.isdigit():
            ctx.notes.append(f"{model}/{version}: not a registered version; no reference profile")
            return ctx
        try:
            info = self.store.get_model_version(model, int(version))
        except NotFoundError as exc:
            ctx.notes.append(f"{model}/{version}: {exc.message}")
            return ctx
        details = info.details or {}
        output = ((details.get("package") or {}).get("signature") or {}).get("output") or {}
        classes = output.get("classes")
        ctx.classes = list(classes) if isinstance(classes, list) else None
        if ctx.problem_type is None:
            kind = output.get("kind")
            if kind == "classifier":
                ctx.problem_type = "classification"
            elif kind == "regressor":
                ctx.problem_type = "regression"
        digest = details.get("reference_profile")
        if not isinstance(digest, str) or not digest:
            ctx.notes.append(
                f"{model}/{version}: no reference profile was stored with the version; "
                "drift is not monitored"
            )
            return ctx
        try:
            ctx.profile = ReferenceProfile.model_validate_json(self.artifacts.get_bytes(digest))
        except (OpsloopError, ValueError) as exc:
            ctx.notes.append(f"{model}/{version}: reference profile {digest} unreadable: {exc}")
        return ctx


# -- the run ------------------------------------------------------------------------------------


def run_monitors(
    store: Store,
    artifacts: ArtifactStore,
    *,
    deployments: Sequence[str] | None = None,
    window: timedelta = DEFAULT_WINDOW,
    now: datetime | None = None,
    spec: ProjectSpec | None = None,
    alerts: AlertsSection | None = None,
    thresholds: DriftThresholds | None = None,
    grace: timedelta = DEFAULT_GRACE,
    backfill: timedelta = DEFAULT_BACKFILL,
    detector_series: Sequence[str] | None = DEFAULT_DETECTOR_SERIES,
    progress: bool = False,
    new_points: Mapping[str, datetime] | None = None,
) -> MonitorRunResult:
    """Monitor every complete window since the last run, then alert and open incidents.

    Args:
        store: The metadata store (prediction log, feedback, series, incidents).
        artifacts: The artifact store holding the reference profiles.
        deployments: Deployments to monitor; default every deployment the reconciler knows
            and every one with predictions within ``backfill``.
        window: Length of a window; windows are aligned to multiples of it.
        now: The time of the run (default: now); windows that ended ``grace`` before it
            are monitored.
        spec: The project's spec: its problem type and, unless ``alerts`` is given, its
            ``alerts`` section.
        alerts: Alert rules and detector to run over the new points.
        thresholds: Drift thresholds (Evidently's defaults when None).
        grace: How long after its end a window is complete: prediction records reach the
            store in batches, a little after the request they record.
        backfill: How far back a deployment's first run starts.
        detector_series: Series the default anomaly detector watches when ``alerts``
            configures no detector; None or empty: none.
        progress: Draw a progress bar on stderr.
        new_points: Deployments with points written since the last run outside the
            windows (a scrape), with the time of the first: alerts are evaluated for them
            even when no window closed.

    Returns:
        The windows monitored, points written, alerts and incidents.

    Raises:
        MonitorError: The window length is not positive.
        SpecError: The spec's ``alerts`` section is invalid.
    """
    if window <= timedelta(0):
        raise MonitorError(f"window length must be positive, got {window}")
    end = align((now if now is not None else datetime.now(UTC)) - grace, window)
    section = alerts if alerts is not None else _alerts_of(spec)
    names = (
        list(deployments) if deployments is not None else _known_deployments(store, end - backfill)
    )
    plan: list[tuple[str, datetime, datetime]] = []
    for name in names:
        start = _start_of(store, name, end, window, backfill)
        if start is not None:
            plan.extend((name, lo, hi) for lo, hi in window_bounds(start, end, window))

    result = MonitorRunResult()
    contexts = _Contexts(store, artifacts, spec)
    max_rows = (
        spec.monitoring.prediction_log.window_max_rows
        if spec is not None
        else DEFAULT_WINDOW_MAX_ROWS
    )
    first_new: dict[str, datetime] = {}
    labels: dict[str, list[Label]] = {}
    with _progress(progress, len(plan)) as advance:
        for name, lo, hi in plan:
            if name not in labels:
                # One read of the run's labels per deployment, split by window below.
                labels[name] = read_labels(store, name, lo, end)
            arrived = _between(labels[name], lo, hi)
            points, summary = _monitor_window(
                store, contexts, name, lo, hi, arrived, thresholds, result, max_rows
            )
            store.append_series(points)
            first_new.setdefault(name, hi)
            result.windows.append(summary)
            result.points += len(points)
            result.series.update(p[0] for p in points)
            advance()
    for note in contexts.notes():
        _note(result, note)
    for name, when in (new_points or {}).items():
        first_new[name] = min(when, first_new.get(name, when))
    if first_new:
        _alert(store, section, first_new, window, detector_series, result)
    return result


def _alerts_of(spec: ProjectSpec | None) -> AlertsSection:
    from pydantic import ValidationError

    from opsloop.aiops.rules import AlertsSection

    raw = spec.alerts if spec is not None else None
    try:
        return AlertsSection.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("alerts", *first["loc"]))
        raise SpecError(str(first["msg"]), file="opsloop.yaml", field=where) from exc


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Any]:
    if not enabled or total == 0:
        yield lambda: None
        return
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "monitoring windows",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
    with bar:
        task = bar.add_task("windows", total=total)
        yield lambda: bar.advance(task)


def _known_deployments(store: Store, since: datetime) -> list[str]:
    """Deployments of the reconciler's records and of the recent prediction log."""
    from sqlalchemy import select

    from opsloop.gitops.state import list_deployments
    from opsloop.store import models as m

    names = {d.name for d in list_deployments(store)}
    # No facade call lists the deployments of the prediction log; the (deployment, time)
    # index serves this query.
    q = select(m.Prediction.deployment).where(m.Prediction.time >= since).distinct()
    with store.read_session() as s:
        names.update(str(d) for d in s.scalars(q) if d)
    return sorted(names)


def monitored_until(store: Store, deployment: str) -> datetime | None:
    """The end of the last window monitored for ``deployment``, or None if none was."""
    from sqlalchemy import func, select

    from opsloop.store import models as m
    from opsloop.store.facade import labels_key

    # The newest point only: reading the whole cursor series would grow with its age.
    q = select(func.max(m.SeriesPoint.time)).where(
        m.SeriesPoint.name == CURSOR_SERIES,
        m.SeriesPoint.labels_key == labels_key({"deployment": deployment}),
    )
    with store.read_session() as s:
        found = s.scalar(q)
    return utc(found) if found is not None else None


def _start_of(
    store: Store, deployment: str, end: datetime, window: timedelta, backfill: timedelta
) -> datetime | None:
    cursor = monitored_until(store, deployment)
    if cursor is not None:
        return cursor if cursor < end else None
    first = store.read_predictions(deployment=deployment, since=end - backfill, until=end, limit=1)
    if not first:
        return None
    return align(first[0].time, window)


# -- one window ---------------------------------------------------------------------------------


def _monitor_window(
    store: Store,
    contexts: _Contexts,
    deployment: str,
    since: datetime,
    until: datetime,
    arrived: list[Label],
    thresholds: DriftThresholds | None,
    result: MonitorRunResult,
    max_rows: int | None = DEFAULT_WINDOW_MAX_ROWS,
) -> tuple[list[SeriesPoint], WindowSummary]:
    win = load_window(
        store,
        deployment,
        since,
        until,
        labels=False,
        artifacts=contexts.artifacts,
        max_rows=max_rows,
    )
    summary = WindowSummary(deployment, since, until)
    points: list[SeriesPoint] = []

    def add(name: str, labels: dict[str, str], value: float | None) -> None:
        # NaN and infinities are no measurement (a z-test on constant data, an unseen
        # category's chi-square); SQLite cannot even store NaN.
        if value is not None and math.isfinite(value):
            points.append((name, labels, until, float(value)))

    dep = {"deployment": deployment}
    health = service_health(win.requests, win.seconds)
    for name, value in health.items():
        add(f"service.{name}", dep, value)
    summary.requests = len(win.requests)
    summary.rows = win.row_count
    for note in win.notes:
        _note(result, note)
    if win.malformed:
        _note(
            result,
            f"{deployment}: {len(win.malformed)} request(s) whose inputs and outputs "
            f"differ in length were left out (e.g. {win.malformed[0]})",
        )

    for model, version in win.versions():
        ctx = contexts.get(model, version)
        if ctx.profile is None:
            continue
        labels = {**dep, "model": model, "version": version}
        try:
            drift = _drift(ctx.profile, win, model, version, thresholds)
        except MonitorError as exc:
            _note(result, f"{deployment} {model}/{version}: {exc}")
            continue
        if drift is None:
            _note(
                result,
                f"{deployment} {model}/{version}: no input columns were logged; "
                "drift is not monitored (enable input logging on the server)",
            )
            continue
        for feature in drift.features.values():
            for name, stat in _feature_values(feature).items():
                add(name, {**labels, "feature": feature.name}, stat)
        add("drift.share", labels, drift.share_drifted)
        if drift.prediction is not None and drift.prediction.status == "ok":
            add("drift.prediction", labels, drift.prediction.score)
            add("drift.prediction_detected", labels, float(drift.prediction.drift_detected))
        key = f"{model}/{version}"
        summary.drifted[key] = drift.drifted_features
        summary.share[key] = drift.share_drifted

    labelled = labelled_window(
        store,
        deployment,
        since,
        until,
        labels=arrived,
        artifacts=contexts.artifacts,
        max_rows=max_rows,
    )
    for note in labelled.notes:
        _note(result, note)
    for model, version in labelled.versions():
        ctx = contexts.get(model, version)
        rows = labelled.of_version(model, version)
        problem = ctx.problem_type or _guess_problem(rows)
        if problem is None:
            _note(
                result,
                f"{model}/{version}: problem type unknown (no 'problem' in "
                "opsloop.yaml, no classifier or regressor in the model's signature)",
            )
            continue
        try:
            metrics = quality_metrics(rows, problem_type=problem, classes=ctx.classes)
        except MonitorError as exc:
            _note(result, f"{deployment} {model}/{version}: {exc}")
            continue
        labels = {**dep, "model": model, "version": version}
        for name, value in metrics.items():
            add(f"quality.{name}", labels, value)
        summary.labelled += int(metrics.get(LABELLED, 0))

    add(CURSOR_SERIES, dep, float(summary.rows))
    summary.points = len(points)
    return points, summary


def _between(labels: list[Label], since: datetime, until: datetime) -> list[Label]:
    times = [label.time for label in labels]
    return labels[bisect.bisect_left(times, since) : bisect.bisect_left(times, until)]


def _note(result: MonitorRunResult, text: str) -> None:
    if text not in result.notes:
        result.notes.append(text)


def _guess_problem(rows: pd.DataFrame) -> str | None:
    outputs = rows[OUTPUT].tolist()
    if outputs and all(isinstance(o, list) for o in outputs):
        return "classification"
    return None


def drift_frame(profile: ReferenceProfile, rows: pd.DataFrame) -> pd.DataFrame | None:
    """The profile's features of a window's rows, ready for :func:`compute_drift`.

    A numeric feature's values that are not numbers count as missing; a feature absent from
    the log is all missing. None when no feature of the profile was logged at all.
    """
    present = [name for name in profile.features if name in rows.columns]
    if not present:
        return None
    data: dict[str, pd.Series] = {}
    for name, feature in profile.features.items():
        if name not in rows.columns:
            data[name] = pd.Series(np.full(len(rows), np.nan))
        elif isinstance(feature, NumericProfile):
            data[name] = _numbers(rows[name])
        else:
            data[name] = rows[name].reset_index(drop=True)
    return pd.DataFrame(data)


def _numbers(column: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(column.dtype):
        return column.reset_index(drop=True)
    as_numbers = pd.to_numeric(
        column.where(column.map(lambda v: not isinstance(v, bool))), errors="coerce"
    )
    return pd.Series(as_numbers.to_numpy(dtype=np.float64, na_value=np.nan))


def _drift(
    profile: ReferenceProfile,
    win: PredictionWindow,
    model: str,
    version: str,
    thresholds: DriftThresholds | None,
) -> DriftResult | None:
    rows = win.of_version(model, version)
    current = drift_frame(profile, rows)
    if current is None:
        return None
    predictions = None
    if profile.prediction is not None:
        scores = rows[PREDICTION]
        predictions = (
            _numbers(scores).to_numpy()
            if isinstance(profile.prediction, NumericProfile)
            else scores.to_numpy()
        )
    return compute_drift(profile, current, thresholds=thresholds, predictions=predictions)


def _feature_values(feature: FeatureDrift) -> dict[str, float | None]:
    if feature.status != "ok":
        return {"data.missing_rate": feature.missing_rate}
    out_of_range = feature.out_of_range_rate if feature.kind == "numeric" else feature.unseen_rate
    return {
        "drift.psi": feature.psi,
        "drift.ks": feature.ks_statistic,
        "drift.score": feature.score,
        "drift.detected": float(feature.drift_detected),
        "data.missing_rate": feature.missing_rate,
        "data.out_of_range_rate": out_of_range,
    }


# -- alerts and incidents -------------------------------------------------------------------------


def _alert(
    store: Store,
    section: AlertsSection,
    first_new: dict[str, datetime],
    window: timedelta,
    detector_series: Sequence[str] | None,
    result: MonitorRunResult,
) -> None:
    from opsloop.aiops.alerts import detect_anomalies
    from opsloop.aiops.incidents import ingest_alerts
    from opsloop.aiops.lineage import lineage_from_store
    from opsloop.aiops.rules import run_alerting

    # A rule that needs N points in a row must see the N points before the new ones, or a
    # run of one window per pass would never fire it (nor resolve an alert it fired).
    needed = [r.for_points for r in section.rules]
    if section.detector is not None:
        needed.append(section.detector.for_points)
    since = min(first_new.values()) - max([1, *needed]) * window
    raised: list[AlertIn] = list(run_alerting(store, section, since=since))
    served = _served_versions(store)
    if section.detector is None:
        for prefix in detector_series or ():
            raised.extend(
                detect_anomalies(
                    store,
                    series_prefix=prefix,
                    # The default detector fires on one point: it needs no lookback.
                    since=min(first_new.values()),
                    # Only the series of the deployments monitored now: the others raised
                    # their alerts when their points were new.
                    where=lambda labels: labels.get("deployment") in first_new,
                )
            )
    # Keep the alerts of the new points of the deployments monitored now; older points
    # raised theirs when they were new.
    fresh = [
        a
        for a in raised
        if a.labels.get("deployment") in first_new
        and a.seen_at >= first_new[a.labels["deployment"]]
        and not _stale(a, served)
    ]
    if not fresh:
        return
    ingested = ingest_alerts(store, fresh, lineage_from_store(store))
    # One row per alert given: repeats of a firing alert come back as the same row.
    result.alerts = list({a.id: a for a in ingested.alerts}.values())
    result.opened = list(ingested.opened)
    result.updated = list(ingested.updated)
    result.resolved = list(ingested.resolved)


def _served_versions(store: Store) -> dict[str, set[str]]:
    """The versions each deployment serves or shadows in Git now, as the reconciler saw it."""
    from opsloop.gitops.state import list_deployments

    served: dict[str, set[str]] = {}
    for record in list_deployments(store):
        spec = record.desired.get("spec") or {}
        versions = {str(v) for v in (spec.get("traffic") or {})}
        versions.update(str(s.get("version")) for s in spec.get("shadow") or [] if s)
        if versions:
            served[record.name] = versions
    return served


def _stale(alert: AlertIn, served: Mapping[str, set[str]]) -> bool:
    """A firing alert on a model version that no longer serves in its deployment.

    Its series go stale once the version is replaced: what its last windows say (the control
    arm of a canary, say) raises no new alert, as a removed target raises none in a
    monitoring system that scrapes. Resolutions still pass.
    """
    versions = served.get(alert.labels.get("deployment", ""))
    version = alert.labels.get("version")
    return (
        alert.status == "firing"
        and versions is not None
        and version is not None
        and version not in versions
    )


# -- entry points -------------------------------------------------------------------------------


def monitor_pass(
    project: Project,
    *,
    deployments: Sequence[str] | None = None,
    window: timedelta = DEFAULT_WINDOW,
    until: datetime | None = None,
    progress: bool = False,
    scrape: bool = True,
) -> MonitorRunResult:
    """One monitoring pass over a project: :func:`run_monitors` with its stores and spec.

    The ``alerts`` section is read from the project's ``opsloop.yaml`` (errors name its
    line). First the running replicas are scraped (:mod:`opsloop.monitor.scrape`: up, error
    rate, batch size), so that the pass's alert rules see those points too.

    Args:
        project: The project.
        deployments: Deployments to monitor (default: all).
        window: Length of a window.
        until: Monitor the windows that ended by this time; default: those that ended
            :data:`DEFAULT_GRACE` ago.
        progress: Draw a progress bar on stderr.
        scrape: Scrape the replicas' ``/metrics`` first.
    """
    from opsloop.aiops.rules import AlertsSection, load_alerts_section
    from opsloop.monitor.scrape import scrape_deployments
    from opsloop.spec.loader import SPEC_FILE

    spec_file = project.dir / SPEC_FILE
    section = load_alerts_section(spec_file) if spec_file.is_file() else AlertsSection()
    scraped = None
    if scrape:
        scraped_at = datetime.now(UTC)
        scraped = scrape_deployments(project.store, scraped_at, deployments=deployments)
    result = run_monitors(
        project.store,
        project.artifacts,
        deployments=deployments,
        window=window,
        now=until,
        grace=DEFAULT_GRACE if until is None else timedelta(0),
        spec=project.spec,
        alerts=section,
        progress=progress,
        new_points={p[1]["deployment"]: scraped_at for p in scraped.points} if scraped else None,
    )
    if scraped is not None:
        result.points += len(scraped.points)
        result.series.update(p[0] for p in scraped.points)
        for replica, why in scraped.down.items():
            _note(result, f"{replica} did not answer its /metrics scrape: {why}")
    return result


#: Series charted in a report, with the labels they carry.
_REPORT_VERSION_SERIES = ("drift.share", "drift.prediction")
_REPORT_SERVICE_SERIES = ("service.request_rate", "service.latency_p95", "service.latency_p99")


def write_monitor_report(
    store: Store,
    artifacts: ArtifactStore,
    deployment: str,
    path: str | Path,
    *,
    window: timedelta = DEFAULT_WINDOW,
    until: datetime | None = None,
    history: timedelta = timedelta(days=7),
    thresholds: DriftThresholds | None = None,
) -> Path:
    """Write the HTML drift report of a deployment's latest monitored window.

    The report checks the window ``[until - window, until)`` of the model version that
    answered most of its rows, with a chart per drifting feature, and charts the metric
    series of that deployment and version over ``history``.

    Args:
        store: The metadata store.
        artifacts: The artifact store holding the reference profile.
        deployment: The deployment.
        path: The HTML file to write.
        window: Length of the window checked.
        until: End of the window (default: where monitoring of the deployment stopped, or
            the last window boundary).
        history: How far back the series charts go.
        thresholds: Drift thresholds (Evidently's defaults when None).

    Raises:
        MonitorError: The window has no predictions, or the model version has no reference
            profile.
    """
    from opsloop.monitor.report import write_drift_report

    if until is None:
        until = monitored_until(store, deployment) or align(datetime.now(UTC), window)
    until = utc(until)
    since = until - window
    win = load_window(store, deployment, since, until, artifacts=artifacts)
    versions = win.versions()
    if not versions:
        raise MonitorError(
            f"deployment '{deployment}' has no predictions in [{since:%Y-%m-%d %H:%M}, "
            f"{until:%Y-%m-%d %H:%M}) UTC",
            hint="pass a longer --window, or check the deployment's name",
        )
    model, version = versions[0]
    ctx = _Contexts(store, artifacts, None).get(model, version)
    if ctx.profile is None:
        raise MonitorError(
            f"{model}/{version} has no reference profile to compare with: " + "; ".join(ctx.notes)
        )
    rows = win.of_version(model, version)
    current = drift_frame(ctx.profile, rows)
    if current is None:
        raise MonitorError(
            f"deployment '{deployment}' logged no input columns; drift cannot be reported",
            hint="enable input logging on the model server",
        )
    drift = _drift(ctx.profile, win, model, version, thresholds)
    assert drift is not None  # drift_frame found columns above

    labels = {"deployment": deployment, "model": model, "version": version}
    start = until - history
    wanted: list[tuple[str, str, dict[str, str]]] = []
    wanted.extend((name, name, labels) for name in _REPORT_VERSION_SERIES)
    for name, series_labels in store.list_series("quality."):
        if series_labels == labels:
            wanted.append((name, name, labels))
    wanted.extend((name, name, {"deployment": deployment}) for name in _REPORT_SERVICE_SERIES)
    for feature in drift.drifted_features:
        wanted.append((f"drift.score ({feature})", "drift.score", {**labels, "feature": feature}))
    series: dict[str, list[tuple[datetime, float]]] = {}
    for title, name, series_labels in wanted:
        points = store.read_series(name, series_labels, since=start, until=until + window)
        if points:
            series[title] = [(p.time, p.value) for p in points]
    title = (
        f"{deployment}: {model} version {version}, {since:%Y-%m-%d %H:%M} to "
        f"{until:%Y-%m-%d %H:%M} UTC"
    )
    return write_drift_report(
        drift, path, profile=ctx.profile, current=current, series=series, title=title
    )
