"""Costs: the allocated costs grouped by a dimension, and the budgets with their forecasts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from opsloop.api.problems import problems
from opsloop.api.v1._common import Caller, ProjectDep
from opsloop.errors import ConfigError
from opsloop.finops import allocated_costs, budget_statuses, month_bounds, summarise
from opsloop.finops.budgets import RUN_RATE_DAYS
from opsloop.secops.access import authorize
from opsloop.spec.finops import FinopsSection

__all__ = ["router"]

router = APIRouter(tags=["costs"])

By = Literal[
    "team", "cost_centre", "model", "version", "deployment", "run", "step", "trial", "kind", "day"
]


class CostRow(BaseModel):
    """The cost of one value of the dimension."""

    key: str = Field(description="The value ('(none)' for costs charged to none).")
    used: float = Field(description="CPU and memory used.")
    idle: float = Field(description="Reserved by replicas but not used.")
    storage: float
    requests: float = Field(description="The price of the requests served.")
    shared: float = Field(description="Its share of the shared costs.")
    cost: float = Field(description="All of it.")
    requests_served: float
    cost_per_1000_requests: float | None = Field(description="Null without requests.")


class CostsOut(BaseModel):
    """Costs grouped by one dimension over a period."""

    currency: str
    by: str
    since: datetime | None = Field(serialization_alias="from")
    until: datetime | None = Field(serialization_alias="to")
    total: float
    rows: list[CostRow]


class BudgetOut(BaseModel):
    """Where a budget stands this month."""

    name: str
    scope: str = Field(description="team, model or deployment")
    value: str = Field(description="The team, model or deployment it covers.")
    month: str
    monthly: float
    actual: float
    forecast: float = Field(description="Month-end forecast: spend plus the run rate.")
    run_rate_per_day: float
    used: float = Field(description="actual / monthly")
    forecast_used: float = Field(description="forecast / monthly")
    actual_reached: list[float] = Field(description="Thresholds of the spend reached.")
    forecast_reached: list[float] = Field(description="Thresholds of the forecast reached.")


class BudgetsOut(BaseModel):
    """The budgets of ``finops.budgets`` in ``opsloop.yaml``."""

    currency: str
    month: str
    budgets: list[BudgetOut]


# What the allocation's timestamps can hold; a period beyond them is clamped to them.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2262, 1, 1, tzinfo=UTC)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return min(max(value, _EARLIEST), _LATEST)


@router.get(
    "/costs",
    response_model=CostsOut,
    response_model_by_alias=True,
    responses=problems(422),
    summary="Costs grouped by a dimension",
)
def get_costs(
    caller: Caller,
    proj: ProjectDep,
    by: Annotated[By, Query(description="What to group the costs by.")] = "team",
    since: Annotated[
        datetime | None, Query(alias="from", description="From this time (UTC), inclusive.")
    ] = None,
    until: Annotated[
        datetime | None, Query(alias="to", description="To this time (UTC), exclusive.")
    ] = None,
) -> CostsOut:
    """What the project's usage cost, priced by the rate cards of ``opsloop.yaml``, grouped
    by ``by``, most expensive first (by day: in order)."""
    authorize(caller, "read")
    start, end = _utc(since), _utc(until)
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"'to' ({end.isoformat()}) is not after 'from' ({start.isoformat()})")
    finops = proj.spec.finops if proj.spec is not None else FinopsSection()
    allocated = allocated_costs(proj.store, finops, since=start, until=end)
    table = summarise(allocated, by)
    rows = [
        CostRow(
            key=str(getattr(r, by)),
            used=float(r.compute_cost + r.memory_cost),
            idle=float(r.idle_compute_cost + r.idle_memory_cost),
            storage=float(r.storage_cost),
            requests=float(r.request_cost),
            shared=float(r.shared_cost),
            cost=float(r.cost),
            requests_served=float(r.requests),
            cost_per_1000_requests=(
                None if math.isnan(r.cost_per_1000_requests) else float(r.cost_per_1000_requests)
            ),
        )
        for r in table.itertuples(index=False)
    ]
    return CostsOut(
        currency=finops.currency,
        by=by,
        since=start,
        until=end,
        total=float(table["cost"].sum()) if len(table) else 0.0,
        rows=rows,
    )


@router.get(
    "/costs/budgets",
    response_model=BudgetsOut,
    responses=problems(),
    summary="Budgets with their month-end forecasts",
)
def get_budgets(caller: Caller, proj: ProjectDep) -> BudgetsOut:
    """Each budget's spend this month (UTC), its month-end forecast and the alert thresholds
    they have reached."""
    authorize(caller, "read")
    finops = proj.spec.finops if proj.spec is not None else FinopsSection()
    now = datetime.now(UTC)
    start, _end = month_bounds(now)
    out = BudgetsOut(currency=finops.currency, month=f"{start:%Y-%m}", budgets=[])
    if not finops.budgets:
        return out
    since = min(start, now - timedelta(days=RUN_RATE_DAYS))
    allocated = allocated_costs(proj.store, finops, since=since, until=now)
    for status in budget_statuses(allocated, finops.budgets, now):
        data = status.to_json()
        scope = str(data["scope"])
        out.budgets.append(
            BudgetOut(
                name=status.budget.name,
                scope=scope,
                value=str(data[scope]),
                month=status.month,
                monthly=status.budget.monthly,
                actual=status.actual,
                forecast=status.forecast,
                run_rate_per_day=status.run_rate_per_day,
                used=status.used,
                forecast_used=status.forecast_used,
                actual_reached=status.actual_reached,
                forecast_reached=status.forecast_reached,
            )
        )
    return out
