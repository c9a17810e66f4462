"""FinOps: what every run, step, model version, deployment and team costs.

    metering    usage the loop meters between its passes (replicas, storage, its own work);
                pipeline steps meter themselves where they finish
    allocate    usage priced by the rate cards of ``opsloop.yaml`` and charged, OpenCost-style
    report      allocated costs read from the store, the daily chart
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
from opsloop.finops.focus import FOCUS_COLUMNS, focus_frame, write_focus
from opsloop.finops.metering import (
    LoopMeter,
    charge_of,
    cpu_quantity,
    memory_quantity,
    split_by_hour,
)
from opsloop.finops.report import allocated_costs, cost_breakdown, daily_chart

__all__ = [
    "BY",
    "COST_COLUMNS",
    "FOCUS_COLUMNS",
    "LoopMeter",
    "allocate",
    "allocated_costs",
    "attribute_runs",
    "charge_of",
    "cost_breakdown",
    "cpu_quantity",
    "daily_chart",
    "focus_frame",
    "memory_quantity",
    "split_by_hour",
    "summarise",
    "usage_frame",
    "write_focus",
]
