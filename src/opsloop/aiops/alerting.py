"""From new series points to incidents: threshold rules, anomaly detectors, correlation.

A monitoring pass (or a scrape) writes points; :func:`raise_alerts` evaluates the ``alerts``
section of ``opsloop.yaml`` over the points of the deployments that got new ones, runs the
default anomaly detector on every other series, drops alerts on model versions that no
longer serve, and correlates what is left into incidents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.aiops.alerts import AlertIn, detect_anomalies
from opsloop.aiops.incidents import IngestResult, ingest_alerts
from opsloop.aiops.lineage import lineage_from_store
from opsloop.aiops.rules import run_alerting

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime, timedelta

    from opsloop.spec.alerting import AlertsSection
    from opsloop.store import Store

__all__ = ["DEFAULT_DETECTOR_SERIES", "raise_alerts", "served_versions"]

DEFAULT_DETECTOR_SERIES = ("",)
"""Name prefixes of the series the default anomaly detector watches when ``opsloop.yaml``
configures none: every series (but those of :data:`opsloop.aiops.alerts.NOT_DETECTED`)."""


def raise_alerts(
    store: Store,
    section: AlertsSection,
    first_new: Mapping[str, datetime],
    *,
    window: timedelta,
    detector_series: Sequence[str] | None = DEFAULT_DETECTOR_SERIES,
) -> IngestResult:
    """Alert on the new points of some deployments and correlate the alerts into incidents.

    Args:
        store: The metadata store.
        section: The rules and detector of ``opsloop.yaml``.
        first_new: Deployments that got new points, with the time of the first of them.
        window: The monitoring window: a rule that needs N points in a row sees the N
            windows before the new points too.
        detector_series: Series the default anomaly detector watches when ``section``
            configures no detector; None or empty: none.

    Returns:
        The alerts stored (one row per alert, repeats folded), and the incidents opened,
        updated and resolved.
    """
    if not first_new:
        return IngestResult()
    # A rule that needs N points in a row must see the N points before the new ones, or a
    # run of one window per pass would never fire it (nor resolve an alert it fired).
    needed = [r.for_points for r in section.rules]
    if section.detector is not None:
        needed.append(section.detector.for_points)
    since = min(first_new.values()) - max([1, *needed]) * window
    raised: list[AlertIn] = list(run_alerting(store, section, since=since))
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
    served = served_versions(store)
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
        return IngestResult()
    ingested = ingest_alerts(store, fresh, lineage_from_store(store))
    # One row per alert given: repeats of a firing alert come back as the same row.
    ingested.alerts = list({a.id: a for a in ingested.alerts}.values())
    return ingested


def served_versions(store: Store) -> dict[str, set[str]]:
    """The versions each deployment serves or shadows in Git now, as the reconciler saw it."""
    served: dict[str, set[str]] = {}
    for record in store.deployments.list():
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
