"""FinOps: what every run, step, model version, deployment and team costs.

    metering    usage the loop meters between its passes (replicas, storage, its own work);
                pipeline steps meter themselves where they finish
    allocate    usage priced by the rate cards of ``opsloop.yaml`` and charged, OpenCost-style
    report      allocated costs read from the store, the daily chart
    budgets     each budget's month: spend, month-end forecast, thresholds reached
    series      hourly cost series for the anomaly detectors; what an incident's
                remediation cost
    focus       the FOCUS 1.0 export

A discipline beside GitOps, monitoring and AIOps: it reads and writes the store only, and the
loop (:mod:`opsloop.loop`) wires it into its passes.
"""

from __future__ import annotations

from opsloop.finops.allocate import (
    BY,
    COST_COLUMNS,
    allocate,
    attribute_runs,
    summarise,
    usage_frame,
)
from opsloop.finops.budgets import BudgetStatus, budget_statuses, daily_series, month_bounds
from opsloop.finops.focus import FOCUS_COLUMNS, focus_frame, write_focus
from opsloop.finops.metering import (
    LoopMeter,
    charge_of,
    cpu_quantity,
    memory_quantity,
    split_by_hour,
)
from opsloop.finops.report import allocated_costs, cost_breakdown, daily_chart
from opsloop.finops.series import COST_SERIES, hourly_cost_points, incident_cost

__all__ = [
    "BY",
    "COST_COLUMNS",
    "COST_SERIES",
    "FOCUS_COLUMNS",
    "BudgetStatus",
    "LoopMeter",
    "allocate",
    "allocated_costs",
    "attribute_runs",
    "budget_statuses",
    "charge_of",
    "cost_breakdown",
    "cpu_quantity",
    "daily_chart",
    "daily_series",
    "focus_frame",
    "hourly_cost_points",
    "incident_cost",
    "memory_quantity",
    "month_bounds",
    "split_by_hour",
    "summarise",
    "usage_frame",
    "write_focus",
]
