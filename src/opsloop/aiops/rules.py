"""Threshold alert rules, declared in ``opsloop.yaml``, and the section loader they share.

A rule fires when a metric series crosses a threshold for ``for`` points in a row::

    alerts:
      rules:
        - {name: feature-drift, series: drift.psi, where: {deployment: churn-prod},
           op: ">", threshold: 0.2, for: 2, severity: warning}
        - "error_rate > 0.01"
        - "latency_p99_ms{deployment=churn-prod} >= 250 for 3"
      detector: {series: [latency_p99_ms, error_rate], threshold: 0.8}

The short string form is ``SERIES[{label=value,…}] OP THRESHOLD [for N]``; its rule is named
after the series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.aiops.alerts import AlertIn, alerts_from_flags
from opsloop.spec.alerting import AlertsSection, DetectorAlerting, ThresholdRule
from opsloop.spec.loader import load_section

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime
    from pathlib import Path

    from opsloop.store import Store

__all__ = [
    "AlertsSection",
    "DetectorAlerting",
    "ThresholdRule",
    "evaluate_rule",
    "evaluate_rules",
    "load_alerts_section",
    "run_alerting",
]

# -- evaluation ----------------------------------------------------------------------------------


def evaluate_rule(
    rule: ThresholdRule,
    points: list[tuple[datetime, float]],
    labels: Mapping[str, str] | None = None,
) -> list[AlertIn]:
    """Alerts of one rule over one series' points ``(time, value)`` in time order."""
    series_labels = dict(labels or {})
    alert_labels = {**series_labels, **rule.labels}
    if rule.category:
        alert_labels["category"] = rule.category
    annotations = {"summary": rule.summary or f"{rule.describe()}"}
    values = [v for _, v in points]
    return alerts_from_flags(
        rule.name,
        alert_labels,
        [t for t, _ in points],
        [rule.breached(v) for v in values],
        for_points=rule.for_points,
        severity=rule.severity,
        source="rule",
        annotations=annotations,
        details=lambda i: {"value": values[i], "rule": rule.describe(), "series": rule.series},
    )


def evaluate_rules(
    store: Store,
    rules: list[ThresholdRule] | AlertsSection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AlertIn]:
    """Alerts of every rule over every matching stored series, points in ``[since, until)``."""
    rule_list = rules.rules if isinstance(rules, AlertsSection) else rules
    out: list[AlertIn] = []
    for rule in rule_list:
        for name, labels in store.series.list(rule.series):
            if name != rule.series or any(labels.get(k) != v for k, v in rule.where.items()):
                continue
            pts = store.series.read(name, labels, since=since, until=until)
            out.extend(evaluate_rule(rule, [(p.time, p.value) for p in pts], labels))
    return out


def run_alerting(
    store: Store, section: AlertsSection, *, since: datetime | None = None
) -> list[AlertIn]:
    """Alerts of the rules and of the detector the section declares (not yet stored)."""
    alerts = evaluate_rules(store, section, since=since)
    det = section.detector
    if det is not None:
        # Lazy imports here and below (noqa: PLC0415) of opsloop.aiops: each loads only where it is
        # used, so importing this module stays light.
        from opsloop.aiops.alerts import detect_anomalies  # noqa: PLC0415
        from opsloop.aiops.detectors import default_detector, get_detector  # noqa: PLC0415

        name = det.detector

        def make() -> Any:
            return get_detector(name) if name else default_detector()

        for prefix in det.series or [""]:
            alerts.extend(
                detect_anomalies(
                    store,
                    series_prefix=prefix,
                    threshold=det.threshold,
                    detector=make,
                    since=since,
                    severity=det.severity,
                    for_points=det.for_points,
                )
            )
    return alerts


# -- loading sections of opsloop.yaml -------------------------------------------------------------


def load_alerts_section(path: Path) -> AlertsSection:
    """The ``alerts`` section of ``opsloop.yaml`` (empty when absent)."""
    return load_section(path, "alerts", AlertsSection)
