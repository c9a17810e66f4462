"""Allocation: metered usage priced by the rate cards and charged to whoever caused it.

As OpenCost does for Kubernetes, a serving replica costs what it reserved for as long as it
ran (its allocation is the larger of its request and its use): the part it used is charged as
compute and memory, the rest as idle. Steps, tuning trials and the loop's own work cost the
CPU they used and the memory they held; storage costs its GB-months; requests their price
per million. The loop's own work (controller, monitors) and the fixed hourly costs of
``finops.shared`` are shared costs: each hour's are spread over that hour's consumers, evenly
or in proportion to their own cost.

Everything is vectorised over a frame of usage rows (numpy), so that millions of hourly rows
price in seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from opsloop.errors import ConfigError
from opsloop.spec.finops import FinopsSection, RateCard
from opsloop.store.types import USAGE_DIMENSIONS, USAGE_QUANTITIES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opsloop.store import ModelVersionInfo, Store

__all__ = [
    "BY",
    "COST_COLUMNS",
    "SHARED_KINDS",
    "allocate",
    "attribute_runs",
    "summarise",
    "usage_frame",
]

COST_COLUMNS = (
    "compute_cost",
    "memory_cost",
    "idle_compute_cost",
    "idle_memory_cost",
    "storage_cost",
    "request_cost",
)
"""The direct cost of a row, by what it paid for; ``shared_cost`` and ``cost`` come after."""

SHARED_KINDS = ("controller", "monitor", "shared")
"""Kinds of usage that no single consumer causes: their cost is spread."""

BY = (
    "team",
    "cost_centre",
    "model",
    "version",
    "deployment",
    "run",
    "step",
    "trial",
    "kind",
    "day",
)
"""What :func:`summarise` can group by (``version`` is ``model:version``)."""

_HOURS_PER_MONTH = 730.0


def usage_frame(
    store: Store, *, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """The usage rows of ``[since, until)`` as a frame (dimensions as categories)."""
    cols = store.usage.columns(since=since, until=until)
    frame = pd.DataFrame(cols)
    if frame.empty:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    frame["hour"] = pd.to_datetime(frame["hour"], utc=True)
    for name in ("kind", *USAGE_DIMENSIONS):
        frame[name] = frame[name].astype("category")
    for name in USAGE_QUANTITIES:
        frame[name] = frame[name].astype("float64")
    return frame


def attribute_runs(frame: pd.DataFrame, versions: Sequence[ModelVersionInfo]) -> pd.DataFrame:
    """Charge the usage of a run that registered a model version to that version (training
    is part of what a version cost), where the row names no model yet."""
    by_run = {v.run_id: (v.model_name, str(v.version)) for v in versions if v.run_id}
    if not by_run or frame.empty:
        return frame
    frame = frame.copy()
    runs = frame["run"].astype(str)
    empty = frame["model"].astype(str) == ""
    models = runs.map({r: mv[0] for r, mv in by_run.items()})
    versions_ = runs.map({r: mv[1] for r, mv in by_run.items()})
    found = empty & models.notna()
    if found.any():
        for name, values in (("model", models), ("version", versions_)):
            column = frame[name].astype(str)
            column[found] = values[found]
            frame[name] = column.astype("category")
    return frame


def _hours(frame: pd.DataFrame) -> np.ndarray:
    """The rows' hours as naive UTC ``datetime64[ns]`` (fast to compare and to group)."""
    hours: np.ndarray = frame["hour"].to_numpy(dtype="datetime64[ns]")
    return hours


def _card_prices(card: RateCard, instance: str | None) -> tuple[float, float]:
    """Per vCPU-hour and per GB-hour: the card's own, or split from an instance type's
    hourly price in the ratio of the card's own CPU and memory prices (evenly per unit
    when the card gives none)."""
    if instance is None:
        return card.vcpu_hour, card.memory_gb_hour
    machine = card.instance_types[instance]
    cpu_weight, mem_weight = card.vcpu_hour, card.memory_gb_hour
    if cpu_weight + mem_weight == 0:
        cpu_weight = mem_weight = 1.0
    scale = machine.hourly / (machine.vcpu * cpu_weight + machine.memory_gb * mem_weight)
    return cpu_weight * scale, mem_weight * scale


def _prices(frame: pd.DataFrame, cards: Sequence[RateCard]) -> dict[str, np.ndarray]:
    """Per-row prices (by the card valid in the row's hour and what the row is)."""
    n = len(frame)
    out = {k: np.zeros(n) for k in ("vcpu", "memory", "storage", "requests")}
    card_name = np.full(n, "", dtype=object)
    covered = np.zeros(n, dtype=bool)
    hours = _hours(frame)
    serving = (frame["kind"].astype(str) == "replica").to_numpy()
    for card in cards:
        mask = np.ones(n, dtype=bool)
        if card.valid_from is not None:
            start = np.datetime64(datetime.combine(card.valid_from, datetime.min.time()), "ns")
            mask &= hours >= start
        if card.valid_to is not None:
            end = np.datetime64(datetime.combine(card.valid_to, datetime.min.time()), "ns")
            mask &= hours < end
        train_cpu, train_mem = _card_prices(card, card.training_instance)
        serve_cpu, serve_mem = _card_prices(card, card.serving_instance)
        out["vcpu"][mask] = np.where(serving[mask], serve_cpu, train_cpu)
        out["memory"][mask] = np.where(serving[mask], serve_mem, train_mem)
        out["storage"][mask] = card.storage_gb_month
        out["requests"][mask] = card.requests_per_million
        card_name[mask] = card.name
        covered |= mask
    if not covered.all():
        first = pd.Timestamp(hours[~covered].min()).isoformat()
        raise ConfigError(
            f"no rate card of finops.rate_cards in opsloop.yaml is valid on {first}: "
            "give one card no valid_from/valid_to, or cover every period with usage"
        )
    out["card"] = card_name
    return out


def allocate(
    usage: pd.DataFrame,
    finops: FinopsSection | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """Price usage rows and spread the shared costs (see the module docstring).

    Args:
        usage: Rows as :func:`usage_frame` returns them.
        finops: Rate cards and shared costs (default: the default rate card).
        since: Start of the period fixed shared costs are charged for (default: the first
            hour with usage).
        until: End of that period (default: the hour after the last with usage).

    Returns:
        The rows with the cost columns of :data:`COST_COLUMNS`, ``shared_cost`` (this row's
        share of the shared costs), ``cost`` (their sum: what the row is charged in all),
        ``rate_card`` and the per-row ``vcpu_price`` and ``memory_price``. Shared rows whose
        cost was spread cost nothing themselves; the total of ``cost`` is the total of what
        was priced.

    Raises:
        ConfigError: A row's hour has no rate card.
    """
    finops = finops or FinopsSection()
    frame = _with_fixed_costs(usage, finops, since, until)
    prices = _prices(frame, finops.rate_cards)
    kind = frame["kind"].astype(str).to_numpy()
    replica = kind == "replica"
    cpu = frame["cpu_s"].to_numpy(dtype=float)
    mem = frame["memory_gb_s"].to_numpy(dtype=float)
    # A replica's allocation is the larger of what it reserved and what it used.
    reserved_cpu = frame["reserved_cpu_s"].to_numpy(dtype=float)
    alloc_cpu = np.where(replica, np.maximum(reserved_cpu, cpu), cpu)
    alloc_mem = np.where(
        replica, np.maximum(frame["reserved_memory_gb_s"].to_numpy(dtype=float), mem), mem
    )
    out = frame.copy()
    out["compute_cost"] = cpu / 3600.0 * prices["vcpu"]
    out["memory_cost"] = mem / 3600.0 * prices["memory"]
    out["idle_compute_cost"] = (alloc_cpu - cpu) / 3600.0 * prices["vcpu"]
    out["idle_memory_cost"] = (alloc_mem - mem) / 3600.0 * prices["memory"]
    out["storage_cost"] = (
        frame["storage_gb_s"].to_numpy(dtype=float)
        / (3600.0 * _HOURS_PER_MONTH)
        * prices["storage"]
    )
    out["request_cost"] = frame["requests"].to_numpy(dtype=float) / 1e6 * prices["requests"]
    if "fixed_cost" in frame:
        out["compute_cost"] += frame["fixed_cost"].to_numpy(dtype=float)
        out = out.drop(columns=["fixed_cost"])
    direct = out[list(COST_COLUMNS)].to_numpy().sum(axis=1)
    out["shared_cost"], out["cost"] = _spread(
        _hours(out), np.isin(kind, SHARED_KINDS), direct, finops.shared.rule
    )
    # A shared row whose cost went to the consumers keeps none of it, so that every row's
    # parts add up to its cost and no cost is counted twice.
    given = np.isin(kind, SHARED_KINDS) & (out["cost"].to_numpy() == 0)
    for name in COST_COLUMNS:
        out.loc[given, name] = 0.0
    out["rate_card"] = pd.Categorical(prices["card"])
    out["vcpu_price"] = prices["vcpu"]
    out["memory_price"] = prices["memory"]
    return out


def _with_fixed_costs(
    usage: pd.DataFrame,
    finops: FinopsSection,
    since: datetime | None,
    until: datetime | None,
) -> pd.DataFrame:
    """The usage with one ``shared`` row per hour of the period holding the fixed costs."""
    hourly = sum(finops.shared.hourly.values())
    if hourly <= 0 or (usage.empty and (since is None or until is None)):
        return usage
    hours = usage["hour"]
    start = pd.Timestamp(since).floor("h") if since is not None else hours.min()
    end = (
        pd.Timestamp(until).ceil("h") if until is not None else hours.max() + pd.Timedelta(hours=1)
    )
    if start.tzinfo is None:
        start = start.tz_localize(UTC)
    if end.tzinfo is None:
        end = end.tz_localize(UTC)
    period = pd.date_range(start, end - timedelta(hours=1), freq="h")
    fixed = pd.DataFrame({"hour": period, "kind": "shared"})
    for name in USAGE_DIMENSIONS:
        fixed[name] = ""
    for name in USAGE_QUANTITIES:
        fixed[name] = 0.0
    fixed["count"] = 0
    fixed["fixed_cost"] = hourly
    merged = pd.concat([usage.assign(fixed_cost=0.0), fixed], ignore_index=True)
    for name in ("kind", *USAGE_DIMENSIONS):
        merged[name] = merged[name].astype(str).astype("category")
    return merged


def _spread(
    hours: np.ndarray, shared: np.ndarray, direct: np.ndarray, rule: str
) -> tuple[np.ndarray, np.ndarray]:
    """Each hour's shared cost spread over its direct rows: ``(share, total)`` per row.

    An hour whose shared cost has nobody to go to keeps it on its shared rows (unallocated
    rather than lost).
    """
    codes, _uniques = pd.factorize(hours)
    n_hours = int(codes.max()) + 1 if len(codes) else 0
    shared_cost = np.where(shared, direct, 0.0)
    pool = np.bincount(codes, weights=shared_cost, minlength=n_hours)
    weight = np.where(shared, 0.0, direct if rule == "proportional" else 1.0)
    total_weight = np.bincount(codes, weights=weight, minlength=n_hours)
    if rule == "proportional":
        # An hour whose consumers all cost nothing still has consumers: spread evenly.
        consumers = np.bincount(codes, weights=(~shared).astype(float), minlength=n_hours)
        even = (total_weight[codes] == 0) & ~shared
        weight = np.where(even, 1.0, weight)
        total_weight = np.where(total_weight == 0, consumers, total_weight)
    spreadable = total_weight > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(spreadable[codes], pool[codes] * weight / total_weight[codes], 0.0)
    share = np.where(shared, 0.0, share)
    # Shared rows of an hour with consumers have given their cost away.
    total = np.where(shared & spreadable[codes], 0.0, direct + share)
    return share, total


def summarise(allocated: pd.DataFrame, by: str) -> pd.DataFrame:
    """Cost per value of ``by`` (one of :data:`BY`), most expensive first, with the requests
    served and the cost per 1,000 of them where there were requests."""
    if by not in BY:
        raise ConfigError(f"cannot group costs by {by!r}; choose one of: {', '.join(BY)}")
    frame = allocated
    if by == "day":
        key = frame["hour"].dt.strftime("%Y-%m-%d")
    elif by == "version":
        model = frame["model"].astype(str)
        key = model.where(model == "", model + ":" + frame["version"].astype(str))
    else:
        key = frame[by].astype(str)
    key = key.where(key != "", "(none)")
    columns = [*COST_COLUMNS, "shared_cost", "cost", "requests"]
    table = frame[columns].groupby(key.to_numpy(), sort=False).sum()
    table.index.name = by
    table = table.sort_values("cost", ascending=False) if by != "day" else table.sort_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        per_k = np.where(table["requests"] > 0, table["cost"] / table["requests"] * 1000, np.nan)
    table["cost_per_1000_requests"] = per_k
    return table.reset_index()
