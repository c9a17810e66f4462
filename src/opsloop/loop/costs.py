"""The loop's cost step: budgets and cost anomalies become alerts and incidents.

Every ``finops.evaluate_every_s`` the loop prices the month's usage and

1. writes the hourly cost series of the hours completed since the last step
   (:mod:`opsloop.finops.series`: training cost by model, serving cost by deployment) and runs
   the AIOps streaming detector over them, as over every other series;
2. works out each budget of ``finops.budgets``: the month's spend, its month-end forecast, the
   thresholds they reached; a threshold reached fires an alert (``budget-spend`` or
   ``budget-forecast``), one no longer reached resolves it (a new month starts afresh);
3. hands the alerts to the AIOps path (:func:`~opsloop.aiops.incidents.ingest_alerts`): they
   are correlated over the lineage graph with every other alert, and the incidents they open
   (kind ``cost_anomaly``) are remediated by the policies that name that kind.

A training-cost alert is labelled with its model and no deployment, so it sits on the model
version's lineage node, upstream of the deployments serving it: a retrain storm that also
drives a deployment's serving cost up is ranked the root cause of the incident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsloop.aiops.alerts import AlertIn, detect_anomalies, list_alerts
from opsloop.aiops.incidents import IngestResult, ingest_alerts
from opsloop.aiops.lineage import lineage_from_store
from opsloop.finops import allocated_costs
from opsloop.finops.budgets import RUN_RATE_DAYS, BudgetStatus, budget_statuses, month_bounds
from opsloop.finops.series import COST_SERIES, hourly_cost_points
from opsloop.spec.finops import FinopsSection

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opsloop.store import Store

__all__ = [
    "BACKFILL",
    "BUDGET_ALERTS",
    "COST_WINDOW",
    "CostStepResult",
    "budget_alerts",
    "cost_step",
]

BUDGET_ALERTS = ("budget-spend", "budget-forecast")
"""Names of the alerts of a budget's actual spend and of its forecast."""

COST_WINDOW = timedelta(hours=2)
"""Correlation window of cost alerts: costs are hourly, so an hour's anomaly and an alert
raised when that hour is priced, up to an hour later, belong together."""

BACKFILL = timedelta(days=14)
"""Hours of cost series the first step writes (the detectors learn from them)."""


@dataclass
class CostStepResult:
    """What one cost step did.

    Attributes:
        budgets: Where each budget stands.
        points: Cost series points written.
        alerts: Alerts raised (budgets and anomalies), before deduplication.
        ingest: The alerts stored and the incidents opened, updated, resolved.
    """

    budgets: list[BudgetStatus] = field(default_factory=list)
    points: int = 0
    alerts: list[AlertIn] = field(default_factory=list)
    ingest: IngestResult = field(default_factory=IngestResult)

    def summary(self) -> dict[str, Any]:
        """JSON-ready (a line of the loop's pass log)."""
        return {
            "points": self.points,
            "alerts": len(self.alerts),
            "opened": self.ingest.opened,
            "budgets": {
                s.budget.name: {"used": round(s.used, 3), "forecast": round(s.forecast_used, 3)}
                for s in self.budgets
            },
        }


def _percent(at: float) -> str:
    return f"{at * 100:g}%"


def budget_alerts(
    statuses: Sequence[BudgetStatus],
    now: datetime,
    *,
    currency: str = "USD",
    firing: set[str] | None = None,
) -> list[AlertIn]:
    """Firing alerts for the thresholds reached; resolved ones for those no longer reached
    whose alert fires (``firing``: fingerprints of the firing budget alerts)."""
    out: list[AlertIn] = []
    for status in statuses:
        budget = status.budget
        dim, value = budget.scope
        for name, thresholds, reached, amount in (
            ("budget-spend", budget.actual, status.actual_reached, status.actual),
            ("budget-forecast", budget.forecast, status.forecast_reached, status.forecast),
        ):
            what = "spend" if name == "budget-spend" else "month-end forecast"
            for at in thresholds:
                labels = {
                    "budget": budget.name,
                    "threshold": _percent(at),
                    dim: value,
                    "category": "cost",
                }
                details = {
                    "month": status.month,
                    "amount": round(amount, 6),
                    "monthly": budget.monthly,
                    "currency": currency,
                    "run_rate_per_day": round(status.run_rate_per_day, 6),
                }
                if at in reached:
                    summary = (
                        f"{what} of budget '{budget.name}' ({dim} {value}) is "
                        f"{amount:,.2f} {currency}: {_percent(amount / budget.monthly)} of "
                        f"{budget.monthly:,.2f} for {status.month}"
                    )
                    alert = AlertIn(
                        name=name,
                        labels=labels,
                        annotations={"summary": summary},
                        severity="critical" if at >= 1 else budget.severity,
                        source="rule",
                        starts_at=now,
                        details=details,
                    )
                    out.append(alert)
                else:
                    alert = AlertIn(
                        name=name,
                        labels=labels,
                        status="resolved",
                        source="rule",
                        starts_at=now,
                        details=details,
                    )
                    if firing is not None and alert.fingerprint in firing:
                        out.append(alert)
    return out


def _last_written(store: Store) -> tuple[datetime | None, set[tuple[str, str]]]:
    """When the cost series were last written to, and which exist (``(name, value)``)."""
    last: datetime | None = None
    known: set[tuple[str, str]] = set()
    for name, labels in store.series.list("cost."):
        if name not in COST_SERIES:
            continue
        known.add((name, labels.get(COST_SERIES[name][0], "")))
        when = store.series.last_time(name, labels)
        if when is not None:
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
            last = when if last is None else max(last, when)
    return last, known


def cost_step(
    store: Store,
    finops: FinopsSection | None = None,
    *,
    now: datetime | None = None,
    labels: dict[str, str] | None = None,
) -> CostStepResult:
    """Price the usage, write the new hours of the cost series, alert on budgets and
    anomalies, and correlate the alerts into incidents (see the module docstring).

    Args:
        store: The metadata store.
        finops: The ``finops`` section (rate cards, budgets, anomaly settings).
        now: The time of the step (UTC; default now).
        labels: Labels every cost series point carries as well (none by default).

    Raises:
        ConfigError: An hour of usage has no rate card.
    """
    finops = finops or FinopsSection()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    last, known = _last_written(store)
    write_from = last + timedelta(hours=1) if last is not None else this_hour - BACKFILL
    month_start, _end = month_bounds(now)
    since = min(month_start, now - timedelta(days=RUN_RATE_DAYS), write_from)
    allocated = allocated_costs(store, finops, since=since, until=now)
    result = CostStepResult()
    points = []
    if finops.anomalies.enabled and write_from < this_hour:
        points = hourly_cost_points(allocated, write_from, this_hour, extra=labels, known=known)
        store.series.append(points)
    result.points = len(points)
    alerts: list[AlertIn] = []
    if points:
        for alert in detect_anomalies(
            store,
            series_prefix="cost.",
            threshold=finops.anomalies.threshold,
            # The first step backfills history to learn from: only its last hour is news.
            since=write_from if last is not None else this_hour - timedelta(hours=1),
        ):
            value = float(alert.details.get("value") or 0.0)
            if alert.status == "firing" and value < finops.anomalies.min_cost:
                continue
            alerts.append(alert)
    result.budgets = budget_statuses(allocated, finops.budgets, now)
    firing = {
        a.fingerprint
        for name in BUDGET_ALERTS
        for a in list_alerts(store, status="firing", name=name)
    }
    alerts.extend(budget_alerts(result.budgets, now, currency=finops.currency, firing=firing))
    result.alerts = alerts
    # Also without alerts: the quiet incidents past their grace period resolve at ``now``.
    result.ingest = ingest_alerts(
        store, alerts, lineage_from_store(store), window=COST_WINDOW, now=now
    )
    return result
