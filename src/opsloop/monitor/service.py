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
* ``monitor.window`` (label ``deployment``, value: the window's length in seconds): the
  cursor, where monitoring of the deployment stopped. It commits with the window's points,
  so a run over time already covered writes nothing, and a run that dies midway resumes at
  the first missing window.

A request logged out of line (a Parquet chunk of a large request, see
:mod:`opsloop.monitor.windows`) counts with its real number of rows; its chunk is read back for
drift and quality, at most ``monitoring.prediction_log.window_max_rows`` rows per window (a
seeded sample beyond, said in the run's notes).

A window is the half-open interval ``[since, until)``, and every measurement of it is
stamped with its start, ``since``: a point lies inside the window it measures, so reading a
series over ``[a, b)`` gives exactly the windows that start in it, and a point at ``until``
belongs to the next window. The cursor alone is stamped ``until``: it marks an instant, the
end of the last window monitored, and carries no measurement of a window.

What the new points mean is the AIOps part's to decide
(:func:`opsloop.aiops.alerting.raise_alerts`); the loop controller (:mod:`opsloop.loop`) runs
both.
"""

from __future__ import annotations

import bisect
import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from opsloop.data.reference import NumericProfile, ReferenceProfile
from opsloop.errors import MonitorError, NotFoundError, OpsloopError
from opsloop.monitor.drift import DriftResult, DriftThresholds, FeatureDrift, compute_drift
from opsloop.monitor.health import service_health
from opsloop.monitor.quality import LABELLED, quality_metrics
from opsloop.monitor.report import WindowTable, write_drift_report
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
from opsloop.spec.monitoring import MONITORS

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator, Sequence
    from pathlib import Path

    from opsloop.artifacts import ArtifactStore
    from opsloop.spec import ProjectSpec
    from opsloop.store import Store

__all__ = [
    "CURSOR_SERIES",
    "DEFAULT_BACKFILL",
    "DEFAULT_GRACE",
    "DEFAULT_WINDOW",
    "MonitorRunResult",
    "Serving",
    "WindowDrift",
    "WindowSummary",
    "known_deployments",
    "monitored_until",
    "run_monitors",
    "serving_now",
    "severity",
    "window_drift",
    "write_monitor_report",
]

DEFAULT_WINDOW = timedelta(minutes=15)
"""Length of a monitoring window."""
DEFAULT_GRACE = timedelta(seconds=30)
"""How long after a window ends it is monitored: the server writes its log in batches."""
DEFAULT_BACKFILL = timedelta(days=7)
"""How far back the first run of a deployment starts (from its first prediction since then)."""
CURSOR_SERIES = "monitor.window"
"""The series that records how far each deployment has been monitored: a point at the end
of each window monitored, its value the window's length in seconds."""
SeriesPoint = tuple[str, dict[str, str], datetime, float]


@dataclass
class WindowSummary:
    """What one window of one deployment gave.

    Attributes:
        deployment: The deployment.
        since: Start of the window (inclusive; the time of its points).
        until: End of the window (exclusive; the time of its cursor point).
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
        first_new: Deployments that got new points, with the time of the first (the start
            of the first window monitored).
        notes: What could not be computed, and why (no reference profile, inputs not
            logged, labels that fit no class …).
    """

    windows: list[WindowSummary] = field(default_factory=list)
    points: int = 0
    series: set[str] = field(default_factory=set)
    first_new: dict[str, datetime] = field(default_factory=dict)
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
            info = self.store.models.get_version(model, int(version))
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
    thresholds: DriftThresholds | None = None,
    grace: timedelta = DEFAULT_GRACE,
    backfill: timedelta = DEFAULT_BACKFILL,
    progress: bool = False,
    monitors: Collection[str] = MONITORS,
) -> MonitorRunResult:
    """Monitor every complete window since the last run, writing metric series.

    What the new points mean (alerts, incidents) is the AIOps part's to decide: the result
    names the deployments that got new points (``first_new``).

    Args:
        store: The metadata store (prediction log, feedback, series, incidents).
        artifacts: The artifact store holding the reference profiles.
        deployments: Deployments to monitor; default every deployment the reconciler knows
            and every one with predictions within ``backfill``.
        window: Length of a window; windows are aligned to multiples of it.
        now: The time of the run (default: now); windows that ended ``grace`` before it
            are monitored.
        spec: The project's spec: its problem type and prediction-log settings.
        thresholds: Drift thresholds (Evidently's defaults when None).
        grace: How long after its end a window is complete: prediction records reach the
            store in batches, a little after the request they record.
        backfill: How far back a deployment's first run starts.
        detector_series: Series the default anomaly detector watches when ``alerts``
            configures no detector; None or empty: none.
        progress: Draw a progress bar on stderr.
        monitors: Which monitors run (``drift``, ``quality``, ``service``); the cursor of
            each window is written whatever runs.

    Returns:
        The windows monitored and the points written.

    Raises:
        MonitorError: The window length is not positive.
    """
    if window <= timedelta(0):
        raise MonitorError(f"window length must be positive, got {window}")
    end = align((now if now is not None else datetime.now(UTC)) - grace, window)
    names = (
        list(deployments) if deployments is not None else known_deployments(store, end - backfill)
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
                store, contexts, name, lo, hi, arrived, thresholds, result, max_rows, monitors
            )
            store.series.append(points)
            first_new.setdefault(name, lo)
            result.windows.append(summary)
            result.points += len(points)
            result.series.update(p[0] for p in points)
            advance()
    for note in contexts.notes():
        _note(result, note)
    result.first_new = first_new
    return result


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Any]:
    if not enabled or total == 0:
        yield lambda: None
        return

    # Lazy imports here and below (noqa: PLC0415) of rich: each loads only where it is used, so
    # importing this module stays light.
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn  # noqa: PLC0415

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


def known_deployments(store: Store, since: datetime) -> list[str]:
    """Deployments of the reconciler's records and of the recent prediction log."""
    names = {d.name for d in store.deployments.list()}
    names.update(store.predictions.deployments_since(since))
    return sorted(names)


def monitored_until(store: Store, deployment: str) -> datetime | None:
    """The end of the last window monitored for ``deployment``, or None if none was."""
    found = store.series.last_time(CURSOR_SERIES, {"deployment": deployment})
    return utc(found) if found is not None else None


def _start_of(
    store: Store, deployment: str, end: datetime, window: timedelta, backfill: timedelta
) -> datetime | None:
    cursor = monitored_until(store, deployment)
    if cursor is not None:
        return cursor if cursor < end else None
    first = store.predictions.read(deployment=deployment, since=end - backfill, until=end, limit=1)
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
    monitors: Collection[str] = MONITORS,
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
        # A measurement of the window lies inside it: at its start (see the module's doc).
        if value is not None and math.isfinite(value):
            points.append((name, labels, since, float(value)))

    dep = {"deployment": deployment}
    if "service" in monitors:
        for name, value in service_health(win.requests, win.seconds).items():
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

    for model, version in win.versions() if "drift" in monitors else []:
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

    if "quality" in monitors:
        _quality(store, contexts, deployment, since, until, arrived, result, max_rows, add, summary)
    # The cursor is an instant, not a measurement: the end of the window, where the next
    # run resumes.
    points.append((CURSOR_SERIES, dep, until, win.seconds))
    summary.points = len(points)
    return points, summary


def _quality(
    store: Store,
    contexts: _Contexts,
    deployment: str,
    since: datetime,
    until: datetime,
    arrived: list[Label],
    result: MonitorRunResult,
    max_rows: int | None,
    add: Callable[[str, dict[str, str], float | None], None],
    summary: WindowSummary,
) -> None:
    """Model quality on the rows whose labels arrived in the window."""
    dep = {"deployment": deployment}
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
    return _drift_of(profile, rows, current, thresholds)


def _drift_of(
    profile: ReferenceProfile,
    rows: pd.DataFrame,
    current: pd.DataFrame,
    thresholds: DriftThresholds | None,
) -> DriftResult:
    """The drift of a version's rows, whose :func:`drift_frame` is ``current``."""
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


# -- entry points -------------------------------------------------------------------------------


#: Series charted in a report, with the labels they carry.
_REPORT_VERSION_SERIES = ("drift.share", "drift.prediction")
_REPORT_SERVICE_SERIES = ("service.request_rate", "service.latency_p95", "service.latency_p99")
#: Most windows the report's table lists (the newest).
_REPORT_TABLE_WINDOWS = 12


@dataclass(frozen=True)
class Serving:
    """What a deployment serves now, as the reconciler last recorded it.

    Attributes:
        model: The model.
        traffic: Share of the traffic per version, in percent, largest first.
        shadow: Versions that answer in the shadow.
    """

    model: str
    traffic: tuple[tuple[str, float], ...]
    shadow: tuple[str, ...] = ()

    def describe(self) -> str:
        """``churn v2 (100 %)``, or ``churn v1 90 % / v2 10 %``, with the shadows."""
        if len(self.traffic) == 1:
            text = f"{self.model} v{self.traffic[0][0]} ({_percent(self.traffic[0][1])})"
        else:
            text = f"{self.model} " + " / ".join(
                f"v{version} {_percent(share)}" for version, share in self.traffic
            )
        if self.shadow:
            text += ", shadow " + ", ".join(f"v{v}" for v in self.shadow)
        return text


def _percent(share: float) -> str:
    return f"{share:g} %"


def serving_now(store: Store, deployment: str) -> Serving | None:
    """The versions ``deployment`` serves now: its live traffic split as the reconciler
    recorded it (its desired one while nothing runs); None when there is no record."""
    record = store.deployments.get(deployment)
    if record is None:
        return None
    for state in (record.live, record.desired):
        spec = state.get("spec") if isinstance(state, dict) else None
        if not isinstance(spec, dict):
            continue
        traffic = spec.get("traffic")
        model = spec.get("model")
        if not isinstance(traffic, dict) or not traffic or not model:
            continue
        split = sorted(
            ((str(v), float(share)) for v, share in traffic.items()),
            key=lambda item: (-item[1], item[0]),
        )
        shadow = tuple(
            str(s.get("version")) for s in spec.get("shadow") or [] if isinstance(s, dict)
        )
        return Serving(str(model), tuple(split), shadow)
    return None


#: Methods whose score is a p-value: the smaller, the stronger the evidence of drift.
_PVALUE_METHODS = frozenset({"ks", "chisquare", "z"})


@dataclass(frozen=True)
class WindowDrift:
    """The drift of one window of a deployment, for the model version a report checks.

    Attributes:
        deployment: The deployment.
        model: The model checked.
        version: Its version checked (see :func:`window_drift`).
        since: Start of the window (inclusive).
        until: End of the window (exclusive).
        drift: Drift of the version's rows against its reference profile; each feature
            carries its ``distribution`` (reference and current shares per bin or category).
        profile: The version's reference profile.
        current: The version's rows of the window, the profile's features as drift read them.
        serving: What the deployment serves now, as the reconciler recorded it.
        answered: Every version that answered in the window, with its rows, most rows first.
    """

    deployment: str
    model: str
    version: str
    since: datetime
    until: datetime
    drift: DriftResult
    profile: ReferenceProfile
    current: pd.DataFrame
    serving: Serving | None
    answered: tuple[tuple[str, str, int], ...]

    @property
    def window(self) -> timedelta:
        """The window's length."""
        return self.until - self.since

    @property
    def rows(self) -> int:
        """Rows of the checked version in the window."""
        return len(self.current)

    @property
    def most_drifted(self) -> str | None:
        """The feature furthest past its threshold (a drifting one first); None when no
        feature could be judged."""
        judged = [f for f in self.drift.features.values() if severity(f) is not None]
        if not judged:
            return None
        return max(judged, key=lambda f: (f.drift_detected, severity(f))).name


def severity(feature: FeatureDrift) -> float | None:
    """How far ``feature``'s score is past its threshold: 1 at the threshold, above 1 beyond
    it (the threshold over the score for a p-value, the score over the threshold for a
    distance); None without a score or a positive threshold."""
    score, limit = feature.score, feature.threshold
    if feature.status != "ok" or score is None or not limit or limit <= 0 or math.isnan(score):
        return None
    if feature.method in _PVALUE_METHODS:
        return limit / score if score > 0 else math.inf
    return score / limit


def window_drift(
    store: Store,
    artifacts: ArtifactStore,
    deployment: str,
    *,
    window: timedelta = DEFAULT_WINDOW,
    until: datetime | None = None,
    thresholds: DriftThresholds | None = None,
) -> WindowDrift:
    """The drift of the window ``[until - window, until)`` of ``deployment``.

    It checks the serving version with the most traffic that answered in the window (else
    the version that answered most rows) against that version's reference profile.

    Args:
        store: The metadata store.
        artifacts: The artifact store holding the reference profile.
        deployment: The deployment.
        window: Length of the window: the deployment's monitoring window.
        until: End of the window (default: the end of the latest window, before the one
            where monitoring of the deployment stopped, that holds requests).
        thresholds: Drift thresholds (Evidently's defaults when None).

    Raises:
        MonitorError: The window has no predictions, the model version has no reference
            profile, or no input columns were logged.
    """
    if window <= timedelta(0):
        raise MonitorError(f"window length must be positive, got {window}")
    if until is None:
        # The latest monitored window that holds requests: monitoring goes on through quiet
        # windows, and an empty window has nothing to report.
        until = monitored_until(store, deployment) or align(datetime.now(UTC), window)
        newest = store.predictions.newest_time(deployment, utc(until))
        if newest is not None:
            until = align(utc(newest), window) + window
    try:
        until = utc(until)
        since = until - window
    except OverflowError:
        raise MonitorError(
            f"a window of {_length(window)} ending at {until} is out of range"
        ) from None
    win = load_window(store, deployment, since, until, artifacts=artifacts)
    versions = win.versions()
    if not versions:
        raise MonitorError(
            f"deployment '{deployment}' has no predictions in [{since:%Y-%m-%d %H:%M:%S}, "
            f"{until:%Y-%m-%d %H:%M:%S}) UTC (window {_length(window)})",
            hint="pass a longer --window, or check the deployment's name",
        )
    serving = serving_now(store, deployment)
    model, version = _checked_version(versions, serving)
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
    drift = _drift_of(ctx.profile, rows, current, thresholds)
    return WindowDrift(
        deployment=deployment,
        model=model,
        version=version,
        since=since,
        until=until,
        drift=drift,
        profile=ctx.profile,
        current=current,
        serving=serving,
        answered=tuple((m, v, len(win.of_version(m, v))) for m, v in versions),
    )


def write_monitor_report(
    store: Store,
    artifacts: ArtifactStore,
    deployment: str,
    path: str | Path,
    *,
    window: timedelta = DEFAULT_WINDOW,
    window_source: str | None = None,
    until: datetime | None = None,
    history: timedelta = timedelta(days=7),
    thresholds: DriftThresholds | None = None,
) -> Path:
    """Write the HTML drift report of a deployment's latest monitored window.

    The report names what the deployment serves now (the reconciler's record), checks the
    window ``[until - window, until)`` of the serving version with the most traffic that
    answered in it (else of the version that answered most rows), with a chart per drifting
    feature, and charts and tabulates the metric series of that deployment and version over
    the windows that start in ``[until - history, until)``.

    Args:
        store: The metadata store.
        artifacts: The artifact store holding the reference profile.
        deployment: The deployment.
        path: The HTML file to write.
        window: Length of the window checked: the deployment's monitoring window.
        window_source: Where ``window`` comes from, said in the report (e.g.
            ``spec.monitoring.window of deploy/churn-prod.yaml``).
        until: End of the window (default: the end of the latest window, before the one
            where monitoring of the deployment stopped, that holds requests).
        history: How far back the series charts go.
        thresholds: Drift thresholds (Evidently's defaults when None).

    Raises:
        MonitorError: The window has no predictions, or the model version has no reference
            profile.
    """
    checked = window_drift(
        store, artifacts, deployment, window=window, until=until, thresholds=thresholds
    )
    model, version, since, until = checked.model, checked.version, checked.since, checked.until
    drift, serving = checked.drift, checked.serving

    labels = {"deployment": deployment, "model": model, "version": version}
    wanted: list[tuple[str, str, dict[str, str]]] = []
    wanted.extend((name, name, labels) for name in _REPORT_VERSION_SERIES)
    for name, series_labels in store.series.list("quality."):
        if series_labels == labels:
            wanted.append((name, name, labels))
    wanted.extend((name, name, {"deployment": deployment}) for name in _REPORT_SERVICE_SERIES)
    for feature in drift.drifted_features:
        wanted.append((f"drift.score ({feature})", "drift.score", {**labels, "feature": feature}))
    series: dict[str, list[tuple[datetime, float]]] = {}
    for title, name, series_labels in wanted:
        # Points are stamped with the start of their window: those in [start, until) are
        # the windows up to the one checked, and none after it.
        points = store.series.read(name, series_labels, since=until - history, until=until)
        if points:
            series[title] = [(utc(p.time), p.value) for p in points]

    answered = ", ".join(f"{m} v{v} ({rows} rows)" for m, v, rows in checked.answered)
    source = f": {window_source}" if window_source else ""
    details = [
        f"Serving now: {serving.describe()}."
        if serving is not None
        else "Serving now: not recorded (the deployment is not reconciled from Git).",
        f"Window checked: [{since:%Y-%m-%d %H:%M:%S}, {until:%Y-%m-%d %H:%M:%S}) UTC, "
        f"{_length(window)} long{source}. Answered in it: {answered}.",
        f"Drift below is that of {model} v{version} on the {checked.rows} rows it answered.",
    ]
    title = f"{deployment}: {serving.describe() if serving is not None else f'{model} v{version}'}"
    return write_drift_report(
        drift,
        path,
        profile=checked.profile,
        current=checked.current,
        series=series,
        title=title,
        details=details,
        windows=WindowTable.of(series, window, last=_REPORT_TABLE_WINDOWS),
    )


def _checked_version(versions: list[tuple[str, str]], serving: Serving | None) -> tuple[str, str]:
    """The version a report checks: the serving version with the most traffic that answered
    in the window, else the one that answered most rows."""
    if serving is not None:
        answered = set(versions)
        for version, _share in serving.traffic:
            if (serving.model, version) in answered:
                return serving.model, version
    return versions[0]


def _length(window: timedelta) -> str:
    """A window's length as ``20s``, ``15m``, ``1h30m`` or ``1d``."""
    seconds = window.total_seconds()
    if seconds != int(seconds):
        return f"{seconds:g}s"
    out = ""
    rest = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"
