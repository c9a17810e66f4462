"""Hourly cost series for the AIOps detectors, and what an incident's remediation cost.

The loop writes each complete hour's cost as metric series points, so that the same streaming
detectors that watch every other series watch costs too:

    cost.training   {model}        steps and tuning trials of the runs that trained a model
    cost.serving    {deployment}   a deployment's replicas (used and idle) and requests

The training series carries no deployment label on purpose: an anomaly in it is about the
model (its lineage node sits upstream of the deployments that serve it), so a retrain storm
is ranked as the cause of the serving cost it drags along, not as one more deployment alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opsloop.store.types import ActionInfo

__all__ = [
    "COST_SERIES",
    "hourly_cost_points",
    "incident_cost",
]

COST_SERIES = {
    "cost.training": ("model", ("step", "trial")),
    "cost.serving": ("deployment", ("replica",)),
}
"""Series name → (the dimension it is labelled by, the usage kinds it sums)."""

Point = tuple[str, dict[str, str], datetime, float]


def _floor_hour(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hourly_cost_points(
    allocated: pd.DataFrame,
    since: datetime,
    until: datetime,
    *,
    extra: dict[str, str] | None = None,
    known: set[tuple[str, str]] | None = None,
) -> list[Point]:
    """Points of :data:`COST_SERIES` for every whole hour in ``[since, until)``.

    Each model or deployment that has any cost in the frame gets a point for every hour,
    zero where it cost nothing (a detector must see the quiet hours to tell a spike); a
    series that does not exist yet starts at its first hour with a cost (weeks of zeros
    before a model's first training would make that training an anomaly).

    Args:
        allocated: Allocated costs covering the hours.
        since: First hour (floored to the hour).
        until: End (floored to the hour: an hour still running is not written).
        extra: Labels every point carries as well (the project).
        known: ``(series, value)`` of the series written before.
    """
    start, end = _floor_hour(since), _floor_hour(until)
    if end <= start or allocated.empty:
        return []
    hours = pd.date_range(start, end - timedelta(hours=1), freq="h", tz=UTC)
    kind = allocated["kind"].astype(str)
    points: list[Point] = []
    for name, (dimension, kinds) in COST_SERIES.items():
        rows = allocated[kind.isin(kinds).to_numpy() & (allocated[dimension].astype(str) != "")]
        if rows.empty:
            continue
        table = rows.pivot_table(
            index="hour", columns=dimension, values="cost", aggfunc="sum", observed=True
        )
        table = table.reindex(hours, fill_value=0.0).fillna(0.0)
        for key in table.columns:
            labels = {**(extra or {}), dimension: str(key)}
            values = table[key].to_numpy(dtype=float)
            first = 0
            if (name, str(key)) not in (known or set()):
                costly = values.nonzero()[0]
                first = int(costly[0]) if len(costly) else len(values)
            for at, value in zip(hours[first:], values[first:], strict=True):
                points.append((name, labels, at.to_pydatetime(), float(value)))
    return points


def incident_cost(
    allocated: pd.DataFrame, actions: Sequence[ActionInfo]
) -> list[tuple[str, float]]:
    """What an incident's remediation cost, by action: ``[(what, cost), ...]``.

    - a ``retrain`` costs its run (the steps and trials of the run it started);
    - a ``canary`` costs the new version's share of the deployment's serving while it held:
      the deployment's replica cost in the hours the canary ran (each hour in proportion to
      the part of it the canary ran in) times the canary's traffic weight;
    - other actions cost what the loop spent on them, which the loop's own shared cost holds.

    Args:
        allocated: Allocated costs covering the incident's actions.
        actions: The incident's actions.
    """
    out: list[tuple[str, float]] = []
    if allocated.empty:
        return out
    run = allocated["run"].astype(str)
    kind = allocated["kind"].astype(str)
    deployment = allocated["deployment"].astype(str)
    hour = allocated["hour"]
    cost = allocated["cost"].to_numpy(dtype=float)
    for action in actions:
        result = action.result or {}
        if action.action == "retrain" and result.get("run_id"):
            spent = float(cost[(run == str(result["run_id"])).to_numpy()].sum())
            out.append((f"retrain (run {result['run_id']})", spent))
        elif action.action == "canary" and action.started_at is not None:
            ended = action.finished_at or action.started_at
            target = str(action.params.get("deployment") or result.get("deployment") or "")
            weight = float(result.get("weight") or 0.0) / 100.0
            rows = ((kind == "replica") & (deployment == target)).to_numpy()
            if not rows.any() or weight <= 0:
                out.append((f"canary of v{result.get('version', '?')}", 0.0))
                continue
            starts = hour[rows].dt.tz_convert(UTC)
            began = pd.Timestamp(action.started_at).tz_convert(UTC)
            finished = pd.Timestamp(ended).tz_convert(UTC)
            ends = (starts + pd.Timedelta(hours=1)).clip(upper=finished)
            overlap = (ends - starts.clip(lower=began)).dt.total_seconds().clip(lower=0.0)
            spent = float((cost[rows] * overlap.to_numpy() / 3600.0).sum()) * weight
            out.append((f"canary of v{result.get('version', '?')} on {target}", spent))
    return out
