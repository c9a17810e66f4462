"""FOCUS 1.0 export: the allocated costs as a FinOps Open Cost and Usage Specification dataset.

One FOCUS row per priced part of an allocated row (a replica-hour gives its used vCPU, its
memory, its idle reservation, its requests and its share of the shared costs as separate
charges, each with its own SKU, quantity and unit). opsloop's own dimensions are the
``x_``-prefixed columns and the ``Tags`` object.

The costs are opsloop's estimates from its rate cards: list, contracted, effective and billed
cost are the same number, with no commitment discounts.

Besides the FOCUS 1.0 column names, the dataset carries the names the FinOps Foundation's
``focus-validator`` 1.0.0 still checks for its ``1.0`` rule set (``InvoiceIssuer``,
``Provider``, ``Publisher``, ``ResourceID`` and ``ChargeType``), with the same values, so
that the reference validator passes every rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from opsloop.errors import ConfigError
from opsloop.store.types import USAGE_DIMENSIONS

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FOCUS_COLUMNS", "focus_frame", "write_focus"]

FOCUS_COLUMNS = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)
"""The FOCUS 1.0 columns of the export, in order (then the validator's names, then ``x_``)."""

_VALIDATOR_NAMES = {
    "InvoiceIssuer": "InvoiceIssuerName",
    "Provider": "ProviderName",
    "Publisher": "PublisherName",
    "ResourceID": "ResourceId",
    "ChargeType": "ChargeCategory",
}

_PROVIDER = "opsloop"


def _parts(frame: pd.DataFrame) -> list[tuple[str, str, str, np.ndarray, np.ndarray]]:
    """``(sku, description, unit, quantity, cost)`` of each priced part, per row."""
    cpu_h = frame["cpu_s"].to_numpy(dtype=float) / 3600.0
    mem_h = frame["memory_gb_s"].to_numpy(dtype=float) / 3600.0
    vcpu_price = frame["vcpu_price"].to_numpy(dtype=float)
    mem_price = frame["memory_price"].to_numpy(dtype=float)
    idle_cpu = frame["idle_compute_cost"].to_numpy(dtype=float)
    idle_mem = frame["idle_memory_cost"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        idle_cpu_h = np.where(vcpu_price > 0, idle_cpu / vcpu_price, 0.0)
        idle_mem_h = np.where(mem_price > 0, idle_mem / mem_price, 0.0)
    return [
        ("vcpu", "vCPU used", "vCPU-Hours", cpu_h, frame["compute_cost"].to_numpy(dtype=float)),
        ("memory", "memory held", "GB-Hours", mem_h, frame["memory_cost"].to_numpy(dtype=float)),
        ("idle-vcpu", "vCPU reserved, not used", "vCPU-Hours", idle_cpu_h, idle_cpu),
        ("idle-memory", "memory reserved, not used", "GB-Hours", idle_mem_h, idle_mem),
        (
            "storage",
            "bytes stored",
            "GB-Months",
            frame["storage_gb_s"].to_numpy(dtype=float) / 3600.0 / 730.0,
            frame["storage_cost"].to_numpy(dtype=float),
        ),
        (
            "requests",
            "requests served",
            "Requests",
            frame["requests"].to_numpy(dtype=float),
            frame["request_cost"].to_numpy(dtype=float),
        ),
        (
            "shared",
            "share of the shared costs",
            "",
            np.full(len(frame), np.nan),
            frame["shared_cost"].to_numpy(dtype=float),
        ),
    ]


_RESOURCE_TYPE = {
    "replica": "Model server replica",
    "step": "Pipeline step",
    "trial": "Tuning trial",
    "storage": "Stored data",
    "controller": "Loop controller",
    "monitor": "Monitor",
    "shared": "Shared fixed cost",
}
_SERVICE = {
    "replica": ("AI and Machine Learning", "opsloop serving"),
    "step": ("AI and Machine Learning", "opsloop pipelines"),
    "trial": ("AI and Machine Learning", "opsloop tuning"),
    "storage": ("Storage", "opsloop storage"),
}
_CONTROL = ("Management and Governance", "opsloop control plane")


def _resource_id(row: dict[str, str]) -> str:
    if row["deployment"]:
        return f"deployment/{row['deployment']}"
    if row["run"]:
        head = f"run/{row['run']}"
        if row["trial"]:
            return f"{head}/trial/{row['trial']}"
        return f"{head}/step/{row['step']}" if row["step"] else head
    return row["kind"]


def _iso(values: pd.Series) -> pd.Series:
    return values.dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def focus_frame(allocated: pd.DataFrame, *, currency: str, account: str) -> pd.DataFrame:
    """The FOCUS 1.0 rows of allocated costs (see the module docstring).

    Args:
        allocated: What :func:`~opsloop.finops.allocate.allocate` returns.
        currency: The ISO 4217 code of the costs.
        account: The billing account: the project's name.
    """
    pieces = []
    for sku, what, unit, quantity, cost in _parts(allocated):
        keep = cost != 0
        if not keep.any():
            continue
        part = allocated.loc[keep, ["hour", "kind", *USAGE_DIMENSIONS, "rate_card"]].copy()
        part["_sku"] = sku
        part["_what"] = what
        part["_unit"] = unit
        part["_quantity"] = quantity[keep]
        part["_cost"] = cost[keep]
        pieces.append(part)
    columns = [*FOCUS_COLUMNS, *_VALIDATOR_NAMES, *(f"x_{d}" for d in ("kind", *USAGE_DIMENSIONS))]
    if not pieces:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    rows = pd.concat(pieces, ignore_index=True)
    for name in ("kind", *USAGE_DIMENSIONS, "rate_card"):
        rows[name] = rows[name].astype(str)
    hour = rows["hour"]
    month = hour.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("M")
    period_start = month.dt.start_time.dt.tz_localize("UTC")
    period_end = (month + 1).dt.start_time.dt.tz_localize("UTC")
    quantity = rows["_quantity"].astype(float)
    measured = quantity.where(quantity > 0)
    cost = rows["_cost"].astype(float).round(10)
    unit_price = (cost / measured).round(10)
    records = rows[["kind", *USAGE_DIMENSIONS]].to_dict("records")
    service = [_SERVICE.get(k, _CONTROL) for k in rows["kind"]]
    null = pd.Series([None] * len(rows), dtype=object)
    out = pd.DataFrame(
        {
            "AvailabilityZone": null,
            "BilledCost": cost,
            "BillingAccountId": account,
            "BillingAccountName": account,
            "BillingCurrency": currency,
            "BillingPeriodEnd": _iso(period_end),
            "BillingPeriodStart": _iso(period_start),
            "ChargeCategory": "Usage",
            "ChargeClass": null,
            "ChargeDescription": rows["kind"] + ": " + rows["_what"],
            "ChargeFrequency": "Usage-Based",
            "ChargePeriodEnd": _iso(hour + pd.Timedelta(hours=1)),
            "ChargePeriodStart": _iso(hour),
            "CommitmentDiscountCategory": null,
            "CommitmentDiscountId": null,
            "CommitmentDiscountName": null,
            "CommitmentDiscountStatus": null,
            "CommitmentDiscountType": null,
            "ConsumedQuantity": measured,
            "ConsumedUnit": rows["_unit"].where(measured.notna(), None),
            "ContractedCost": cost,
            "ContractedUnitPrice": unit_price,
            "EffectiveCost": cost,
            "InvoiceIssuerName": _PROVIDER,
            "ListCost": cost,
            "ListUnitPrice": unit_price,
            "PricingCategory": "Standard",
            "PricingQuantity": measured,
            "PricingUnit": rows["_unit"].where(measured.notna(), None),
            "ProviderName": _PROVIDER,
            "PublisherName": _PROVIDER,
            "RegionId": null,
            "RegionName": null,
            "ResourceId": [_resource_id(r) for r in records],
            "ResourceName": [_resource_id(r).split("/")[-1] for r in records],
            "ResourceType": rows["kind"].map(_RESOURCE_TYPE).fillna("Other"),
            "ServiceCategory": [s[0] for s in service],
            "ServiceName": [s[1] for s in service],
            "SkuId": rows["_sku"],
            "SkuPriceId": rows["_sku"] + ":" + rows["rate_card"],
            "SubAccountId": rows["team"].where(rows["team"] != "", None),
            "SubAccountName": rows["team"].where(rows["team"] != "", None),
            "Tags": [
                json.dumps({k: v for k, v in r.items() if v and k != "kind"}, sort_keys=True)
                for r in records
            ],
        }
    )
    for name, same in _VALIDATOR_NAMES.items():
        out[name] = out[same]
    out["x_kind"] = rows["kind"]
    for name in USAGE_DIMENSIONS:
        out[f"x_{name}"] = rows[name].where(rows[name] != "", None)
    return out[columns]


def write_focus(
    allocated: pd.DataFrame,
    out: Path,
    *,
    currency: str,
    account: str,
    fmt: str | None = None,
) -> int:
    """Write the FOCUS rows to ``out`` as CSV or Parquet (by ``fmt``, else by the file's
    suffix); returns the rows written.

    Raises:
        ConfigError: The format is neither ``csv`` nor ``parquet``.
    """
    chosen = fmt or Path(out).suffix.lstrip(".").lower()
    writers: dict[str, Callable[[pd.DataFrame, Path], None]] = {
        "csv": lambda f, p: f.to_csv(p, index=False),
        "parquet": lambda f, p: f.to_parquet(p, index=False),
    }
    if chosen not in writers:
        raise ConfigError(
            f"cannot write FOCUS data as {chosen or 'a file without a suffix'!r}: "
            "name the file .csv or .parquet"
        )
    frame = focus_frame(allocated, currency=currency, account=account)
    out.parent.mkdir(parents=True, exist_ok=True)
    writers[chosen](frame, out)
    return len(frame)
