"""Budgets: each team's, model's or deployment's spend this month, its forecast, its alerts.

The month is the calendar month in UTC. The month-end forecast is the spend so far plus the
recent run rate over the hours left: the cost of the budget's scope over the last
``run_rate_days`` days (never before its first usage, and over at least one day, so that a
single costly hour is not taken for the rate of a whole month) per hour. A run rate is what
FinOps practice forecasts a month by until there is enough history for seasonality; the
month's spend is rarely long enough a series for more.

Thresholds are fractions of the monthly budget; a status lists the ones the actual spend and
the forecast have reached. The loop turns those into alerts (:mod:`opsloop.loop.costs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opsloop.spec.finops import Budget

__all__ = [
    "RUN_RATE_DAYS",
    "BudgetStatus",
    "budget_statuses",
    "daily_series",
    "month_bounds",
    "scope_mask",
]

RUN_RATE_DAYS = 7
"""Days of recent spend the forecast's run rate is taken from."""


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Start (inclusive) and end (exclusive) of the UTC calendar month of ``now``."""
    now = now.astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def scope_mask(allocated: pd.DataFrame, dimension: str, value: str) -> np.ndarray:
    """Rows of the allocated frame charged to ``dimension == value``."""
    if allocated.empty:
        return np.zeros(0, dtype=bool)
    mask: np.ndarray = (allocated[dimension].astype(str) == value).to_numpy()
    return mask


def daily_series(allocated: pd.DataFrame, mask: np.ndarray | None = None) -> pd.Series:
    """The cost of each UTC day (of the rows of ``mask``), days without usage as 0."""
    frame = allocated if mask is None else allocated[mask]
    if frame.empty:
        return pd.Series(dtype=float)
    days = frame["hour"].dt.floor("D")
    series = frame["cost"].groupby(days).sum()
    full = pd.date_range(series.index.min(), series.index.max(), freq="D")
    return series.reindex(full, fill_value=0.0)


@dataclass(frozen=True)
class BudgetStatus:
    """Where one budget stands this month.

    Attributes:
        budget: The budget.
        month: The month, ``YYYY-MM``.
        actual: Spend of the month so far.
        forecast: Month-end forecast (spend so far plus the run rate over the hours left).
        run_rate_per_day: The run rate the forecast uses, per day.
        actual_reached: Thresholds of ``budget.actual`` the spend has reached.
        forecast_reached: Thresholds of ``budget.forecast`` the forecast has reached.
        daily: The scope's cost per day of the month so far.
    """

    budget: Budget
    month: str
    actual: float
    forecast: float
    run_rate_per_day: float
    actual_reached: list[float] = field(default_factory=list)
    forecast_reached: list[float] = field(default_factory=list)
    daily: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))

    @property
    def used(self) -> float:
        """The actual spend as a fraction of the budget."""
        return self.actual / self.budget.monthly

    @property
    def forecast_used(self) -> float:
        """The forecast as a fraction of the budget."""
        return self.forecast / self.budget.monthly

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (the API's and the CLI's)."""
        dim, value = self.budget.scope
        return {
            "name": self.budget.name,
            "scope": dim,
            dim: value,
            "month": self.month,
            "monthly": self.budget.monthly,
            "actual": round(self.actual, 6),
            "forecast": round(self.forecast, 6),
            "run_rate_per_day": round(self.run_rate_per_day, 6),
            "used": round(self.used, 4),
            "forecast_used": round(self.forecast_used, 4),
            "actual_reached": self.actual_reached,
            "forecast_reached": self.forecast_reached,
        }


def budget_statuses(
    allocated: pd.DataFrame,
    budgets: Sequence[Budget],
    now: datetime,
    *,
    run_rate_days: int = RUN_RATE_DAYS,
) -> list[BudgetStatus]:
    """Where each budget stands at ``now``.

    Args:
        allocated: Allocated costs (see :func:`~opsloop.finops.allocate`) covering the month
            so far and the ``run_rate_days`` before ``now``.
        budgets: The budgets of ``finops.budgets``.
        now: The time of the evaluation (UTC).
        run_rate_days: Days of recent spend the run rate is taken from.
    """
    start, end = month_bounds(now)
    now = now.astimezone(UTC)
    hours_left = max((end - now).total_seconds() / 3600.0, 0.0)
    if allocated.empty:
        hours = pd.Series(dtype="datetime64[ns, UTC]")
        costs = np.zeros(0)
    else:
        hours = allocated["hour"]
        costs = allocated["cost"].to_numpy(dtype=float)
    in_month = ((hours >= start) & (hours < now)).to_numpy()
    recent_from = now - timedelta(days=run_rate_days)
    recent = ((hours >= recent_from) & (hours < now)).to_numpy()
    out = []
    for budget in budgets:
        mask = scope_mask(allocated, *budget.scope)
        actual = float(costs[mask & in_month].sum())
        rate_rows = mask & recent
        rate_cost = float(costs[rate_rows].sum())
        if rate_rows.any():
            first = max(pd.Timestamp(hours[rate_rows].min()).to_pydatetime(), recent_from)
            span_h = max((now - first).total_seconds() / 3600.0, 24.0)
            rate_h = rate_cost / span_h
        else:
            rate_h = 0.0
        forecast = actual + rate_h * hours_left
        out.append(
            BudgetStatus(
                budget=budget,
                month=f"{start:%Y-%m}",
                actual=actual,
                forecast=forecast,
                run_rate_per_day=rate_h * 24,
                actual_reached=[t for t in budget.actual if actual >= t * budget.monthly],
                forecast_reached=[t for t in budget.forecast if forecast >= t * budget.monthly],
                daily=daily_series(allocated, mask & in_month)
                if mask.any()
                else pd.Series(dtype=float),
            )
        )
    return out
