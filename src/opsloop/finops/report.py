"""What the project's usage cost, read from the store: the allocated rows, the daily chart."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.finops.allocate import allocate, attribute_runs, summarise, usage_frame

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    import pandas as pd

    from opsloop.spec.finops import FinopsSection
    from opsloop.store import Store

__all__ = ["allocated_costs", "cost_breakdown", "daily_chart"]


def allocated_costs(
    store: Store,
    finops: FinopsSection | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """The usage of ``[since, until)`` priced and allocated (see :func:`allocate`); a run's
    usage is charged to the model version it registered."""
    usage = usage_frame(store, since=since, until=until)
    frame = attribute_runs(usage, store.models.all_versions())
    return allocate(frame, finops, since=since, until=until)


def cost_breakdown(allocated: pd.DataFrame, runs: dict[str, str]) -> list[tuple[str, float]]:
    """Cost by what it went to: each named run (``{run id: label}``, e.g. the training and
    a retrain), other runs, serving, storage, and what stayed unallocated; in that order,
    each with its share of the shared costs, and only the parts that cost something."""
    kind = allocated["kind"].astype(str)
    run = allocated["run"].astype(str)
    cost = allocated["cost"]
    lines: list[tuple[str, float]] = []
    named = run.isin(list(runs))
    for run_id, label in runs.items():
        lines.append((label, float(cost[run == run_id].sum())))
    lines.append(("other runs", float(cost[~named & kind.isin(["step", "trial"])].sum())))
    lines.append(("serving", float(cost[kind == "replica"].sum())))
    lines.append(("storage", float(cost[~named & (kind == "storage")].sum())))
    lines.append(
        ("the loop itself", float(cost[kind.isin(["controller", "monitor", "shared"])].sum()))
    )
    return [(label, value) for label, value in lines if value > 0]


def daily_chart(allocated: pd.DataFrame, by: str, path: Path, *, currency: str = "USD") -> Path:
    """A PNG of the daily cost, stacked by ``by`` (the largest eight, the rest as 'other')."""
    import matplotlib  # noqa: PLC0415 - heavy, and only a chart needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after choosing the headless backend

    frame = allocated.assign(day=allocated["hour"].dt.strftime("%Y-%m-%d"))
    if by != "day":
        totals = summarise(allocated, by)
        top = list(totals[by].head(8))
        if by == "version":
            model = frame["model"].astype(str)
            key = model.where(model == "", model + ":" + frame["version"].astype(str))
        else:
            key = frame[by].astype(str)
        key = key.where(key != "", "(none)")
        frame = frame.assign(group=key.where(key.isin(top), "other"))
    else:
        frame = frame.assign(group="cost")
    pivot = frame.pivot_table(
        index="day", columns="group", values="cost", aggfunc="sum", fill_value=0.0, observed=True
    ).sort_index()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bottom = None
    for column in pivot.columns:
        ax.bar(pivot.index, pivot[column], bottom=bottom, label=str(column))
        bottom = pivot[column] if bottom is None else bottom + pivot[column]
    ax.set_ylabel(f"cost ({currency})")
    ax.set_title(f"daily cost by {by}")
    if by != "day":
        ax.legend(fontsize="small", loc="upper left")
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path
