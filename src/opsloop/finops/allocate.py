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

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

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


_NS_PER_HOUR = 3_600_000_000_000


def _hour_numbers(frame: pd.DataFrame) -> np.ndarray:
    """The rows' hours as whole hours since the epoch (fast to compare and to group)."""
    ns = frame["hour"].to_numpy(dtype="datetime64[ns]").view("i8")
    hours: np.ndarray = ns // _NS_PER_HOUR
    return hours


def _hour_number(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp()) // 3600


def _card_prices(card: RateCard, instance: str | None) -> tuple[float, float]:
    """Per vCPU-hour and per GB-hour of ``card`` (see :meth:`RateCard.unit_prices`)."""
    return card.unit_prices(instance)


def _prices(
    hours: np.ndarray, serving: np.ndarray, cards: Sequence[RateCard]
) -> dict[str, np.ndarray]:
    """Per-row prices, by the card valid in the row's hour and whether the row serves; and
    ``card``, the index of that card.

    The card of each hour is found once per distinct hour, then gathered per row.
    """
    n = len(hours)
    first = int(hours.min()) if n else 0
    span = np.arange(first, (int(hours.max()) + 1) if n else 0, dtype=np.int64)
    card_of_hour = np.full(len(span), -1, dtype=np.int16)
    for i, card in enumerate(cards):
        mask = np.ones(len(span), dtype=bool)
        if card.valid_from is not None:
            mask &= span >= _hour_number(card.valid_from)
        if card.valid_to is not None:
            mask &= span < _hour_number(card.valid_to)
        card_of_hour[mask] = i
    card_index = card_of_hour[hours - first]
    uncovered = card_index < 0
    if uncovered.any():
        when = datetime.fromtimestamp(int(hours[uncovered].min()) * 3600, UTC).isoformat()
        raise ConfigError(
            f"no rate card of finops.rate_cards in opsloop.yaml is valid on {when}: "
            "give one card no valid_from/valid_to, or cover every period with usage"
        )
    # Tables by (card, serving), gathered per row.
    cpu = np.array(
        [
            [_card_prices(c, c.training_instance)[0], _card_prices(c, c.serving_instance)[0]]
            for c in cards
        ]
    )
    mem = np.array(
        [
            [_card_prices(c, c.training_instance)[1], _card_prices(c, c.serving_instance)[1]]
            for c in cards
        ]
    )
    side = serving.astype(np.int8)
    return {
        "vcpu": cpu[card_index, side],
        "memory": mem[card_index, side],
        "storage": np.array([c.storage_gb_month for c in cards])[card_index],
        "requests": np.array([c.requests_per_million for c in cards])[card_index],
        "card": card_index,
    }


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
        was priced. Hours of the period without any consumer get a ``shared`` row holding
        their fixed costs.

    Raises:
        ConfigError: A row's hour has no rate card.
    """
    finops = finops or FinopsSection()
    frame = _with_idle_hours(usage, finops, since, until)
    hours = _hour_numbers(frame)
    kind = frame["kind"]
    replica = (kind == "replica").to_numpy()
    shared = kind.isin(SHARED_KINDS).to_numpy()
    prices = _prices(hours, replica, finops.rate_cards)
    cpu = frame["cpu_s"].to_numpy(dtype=float)
    mem = frame["memory_gb_s"].to_numpy(dtype=float)
    # A replica's allocation is the larger of what it reserved and what it used.
    reserved_cpu = frame["reserved_cpu_s"].to_numpy(dtype=float)
    reserved_mem = frame["reserved_memory_gb_s"].to_numpy(dtype=float)
    idle_cpu = np.where(replica, np.maximum(reserved_cpu - cpu, 0.0), 0.0)
    idle_mem = np.where(replica, np.maximum(reserved_mem - mem, 0.0), 0.0)
    costs = {
        "compute_cost": cpu * (prices["vcpu"] / 3600.0),
        "memory_cost": mem * (prices["memory"] / 3600.0),
        "idle_compute_cost": idle_cpu * (prices["vcpu"] / 3600.0),
        "idle_memory_cost": idle_mem * (prices["memory"] / 3600.0),
        "storage_cost": frame["storage_gb_s"].to_numpy(dtype=float)
        * (prices["storage"] / (3600.0 * _HOURS_PER_MONTH)),
        "request_cost": frame["requests"].to_numpy(dtype=float) * (prices["requests"] / 1e6),
    }
    if "fixed_cost" in frame:
        costs["compute_cost"] += frame["fixed_cost"].to_numpy(dtype=float)
    direct = sum(costs.values())
    assert isinstance(direct, np.ndarray)
    fixed = sum(finops.shared.hourly.values())
    share, total, given = _spread(hours, shared, direct, finops.shared.rule, fixed)
    base = frame.drop(columns=["fixed_cost"]) if "fixed_cost" in frame else frame
    columns: dict[str, Any] = {
        # A shared row whose cost went to the consumers keeps none of it, so that every
        # row's parts add up to its cost and no cost is counted twice.
        name: np.where(given, 0.0, values)
        for name, values in costs.items()
    }
    columns["shared_cost"] = share
    columns["cost"] = total
    columns["rate_card"] = pd.Categorical.from_codes(
        prices["card"], [c.name for c in finops.rate_cards]
    )
    columns["vcpu_price"] = prices["vcpu"]
    columns["memory_price"] = prices["memory"]
    # Built aside and joined once: assigning ten columns one by one copies each of them.
    added = pd.DataFrame(columns, index=base.index, copy=False)
    return pd.concat([base, added], axis=1)


def _with_idle_hours(
    usage: pd.DataFrame,
    finops: FinopsSection,
    since: datetime | None,
    until: datetime | None,
) -> pd.DataFrame:
    """The usage, plus one ``shared`` row holding the fixed costs of each hour of the period
    that has no consumer to charge them to (the other hours' go into their pool)."""
    hourly = sum(finops.shared.hourly.values())
    if hourly <= 0 or (usage.empty and (since is None or until is None)):
        return usage
    hours = _hour_numbers(usage)
    consumers = np.unique(hours[~usage["kind"].isin(SHARED_KINDS).to_numpy()])
    first = int(hours.min()) if len(hours) else 0
    start = int(pd.Timestamp(since).timestamp()) // 3600 if since is not None else first
    if until is not None:
        end = -(-int(pd.Timestamp(until).timestamp()) // 3600)  # the hour it ends in counts
    else:
        end = int(hours.max()) + 1
    idle = np.setdiff1d(np.arange(start, end, dtype=np.int64), consumers)
    if len(idle) == 0:
        return usage
    n = len(idle)
    rows: dict[str, Any] = {
        "hour": pd.DatetimeIndex(idle * _NS_PER_HOUR).tz_localize(UTC),
        "kind": "shared",
        **dict.fromkeys(USAGE_DIMENSIONS, ""),
        **dict.fromkeys(USAGE_QUANTITIES, 0.0),
        "count": 0,
        "fixed_cost": hourly,
    }
    extra = pd.DataFrame(rows, index=range(n))
    base = usage.assign(fixed_cost=0.0)
    for name in ("kind", *USAGE_DIMENSIONS):
        # The same categories on both sides, so that concatenating keeps them categorical.
        column = base[name]
        if not isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype("category")
        wanted = column.cat.categories.union(pd.Index([extra[name].iloc[0]]))
        base[name] = column.cat.set_categories(wanted)
        extra[name] = pd.Categorical(extra[name], categories=wanted)
    return pd.concat([base, extra], ignore_index=True)


def _spread(
    hours: np.ndarray, shared: np.ndarray, direct: np.ndarray, rule: str, fixed: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each hour's shared cost (its shared rows' and ``fixed``) spread over its consumers:
    ``(share, total, given)`` per row, ``given`` marking the shared rows that gave theirs.

    An hour without consumers keeps its shared cost on its shared rows (unallocated rather
    than lost).
    """
    if len(hours) == 0:
        empty = np.zeros(0)
        return empty, empty, np.zeros(0, dtype=bool)
    codes = hours - hours.min()
    n_hours = int(codes.max()) + 1
    consumer = ~shared
    consumers = np.bincount(codes, weights=consumer, minlength=n_hours)
    has_consumers = consumers > 0
    pool = np.bincount(codes, weights=np.where(shared, direct, 0.0), minlength=n_hours)
    pool += np.where(has_consumers, fixed, 0.0)
    if rule == "proportional":
        weight = np.where(consumer, direct, 0.0)
        total_weight = np.bincount(codes, weights=weight, minlength=n_hours)
        # An hour whose consumers all cost nothing still has consumers: spread evenly.
        even_hours = total_weight == 0
        weight = np.where(even_hours[codes] & consumer, 1.0, weight)
        total_weight = np.where(even_hours, consumers, total_weight)
    else:
        weight = consumer.astype(float)
        total_weight = consumers
    per_weight = np.divide(pool, total_weight, out=np.zeros(n_hours), where=total_weight > 0)
    share = weight * per_weight[codes]
    given = shared & has_consumers[codes]
    total = np.where(given, 0.0, direct + share)
    return share, total, given


def summarise(allocated: pd.DataFrame, by: str) -> pd.DataFrame:
    """Cost per value of ``by`` (one of :data:`BY`), most expensive first (by day: in order),
    with the requests served and the cost per 1,000 of them where there were requests."""
    if by not in BY:
        raise ConfigError(f"cannot group costs by {by!r}; choose one of: {', '.join(BY)}")
    columns = [*COST_COLUMNS, "shared_cost", "cost", "requests"]
    frame = allocated
    if by == "day":
        keys: list[Any] = [frame["hour"].dt.floor("D")]
    elif by == "version":
        keys = [frame["model"], frame["version"]]
    else:
        keys = [frame[by]]
    table = frame[columns].groupby(keys, observed=True, sort=False).sum()
    if by == "day":
        labels = [pd.Timestamp(t).strftime("%Y-%m-%d") for t in table.index]
    elif by == "version":
        labels = [f"{m}:{v}" if m else "" for m, v in table.index]
    else:
        labels = [str(v) for v in table.index]
    table.index = pd.Index([label or "(none)" for label in labels], name=by)
    table = table.groupby(level=0, sort=False).sum()
    table = table.sort_index() if by == "day" else table.sort_values("cost", ascending=False)
    requests = table["requests"].to_numpy()
    table["cost_per_1000_requests"] = np.divide(
        table["cost"].to_numpy() * 1000,
        requests,
        out=np.full(len(table), np.nan),
        where=requests > 0,
    )
    return table.reset_index()
