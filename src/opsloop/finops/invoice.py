"""FOCUS billing import: a provider's invoice joined to opsloop's own allocation.

AWS, Azure and Google Cloud all export billing data as FOCUS. The rows of resources that
carry opsloop's labels are charged to the deployment they name; the invoiced cost of each
deployment is then set beside what opsloop metered and priced for it over the same charge
periods, so that a rate card that is off (or a resource opsloop does not meter) shows.

A row names its deployment by, in order: an ``x_deployment`` column (opsloop's own export
has one), or a tag of its ``Tags`` object: ``deployment``, ``opsloop.io/deployment``, or
``app.kubernetes.io/instance`` on a resource whose ``app.kubernetes.io/managed-by`` is
``opsloop`` (the labels opsloop's Kubernetes runtime puts on what it creates). Tag keys may
carry a provider's ``user:`` prefix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from opsloop.errors import ConfigError

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["InvoiceComparison", "compare_invoice", "invoice_deployments", "read_focus"]

_REQUIRED = ("BilledCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd")
_TAG_KEYS = ("deployment", "opsloop.io/deployment")


def read_focus(path: Path) -> pd.DataFrame:
    """A FOCUS dataset from a CSV or Parquet file.

    Raises:
        ConfigError: The file is missing, not CSV or Parquet, unreadable, or lacks a column
            the join needs.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    suffix = path.suffix.lower().lstrip(".")
    try:
        if suffix == "csv":
            frame = pd.read_csv(path, dtype={"Tags": str, "x_deployment": str})
        elif suffix == "parquet":
            frame = pd.read_parquet(path)
        else:
            raise ConfigError(f"{path}: a FOCUS export is a .csv or .parquet file")
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{path}: not a readable FOCUS dataset: {exc}") from exc
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: not a FOCUS dataset: column {missing[0]} is missing")
    return frame


def _tags(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        raw = value
    elif isinstance(value, str) and value.strip():
        try:
            raw = json.loads(value)
        except ValueError:
            return {}
    else:
        return {}
    if not isinstance(raw, dict):
        return {}
    out = {}
    for key, val in raw.items():
        name = str(key)
        out[name.removeprefix("user:")] = "" if val is None else str(val)
    return out


def _deployment_of(tags: dict[str, str]) -> str:
    for key in _TAG_KEYS:
        if tags.get(key):
            return tags[key]
    if tags.get("app.kubernetes.io/managed-by") == "opsloop":
        return tags.get("app.kubernetes.io/instance", "")
    return ""


def invoice_deployments(focus: pd.DataFrame) -> pd.Series:
    """The deployment each invoice row is charged to ('' for rows opsloop did not tag)."""
    named = pd.Series([""] * len(focus), index=focus.index, dtype=object)
    if "x_deployment" in focus.columns:
        column = focus["x_deployment"]
        named = column.where(column.notna() & (column.astype(str) != ""), "").astype(str)
    if "Tags" in focus.columns:
        from_tags = focus["Tags"].map(lambda v: _deployment_of(_tags(v)))
        named = named.where(named != "", from_tags)
    return named.astype(str)


@dataclass(frozen=True)
class InvoiceComparison:
    """Invoiced cost beside opsloop's metered estimate, per deployment.

    Attributes:
        table: One row per deployment: ``deployment``, ``invoiced``, ``metered``,
            ``difference`` (invoiced - metered) and ``ratio`` (invoiced / metered).
        untagged: Invoiced cost of rows that name no deployment.
        currency: The invoice's currency.
        since: Start of the invoice's charge periods.
        until: Their end.
    """

    table: pd.DataFrame
    untagged: float
    currency: str
    since: datetime
    until: datetime


def compare_invoice(focus: pd.DataFrame, allocated: pd.DataFrame) -> InvoiceComparison:
    """Join a FOCUS invoice to the allocation of the same period (see the module).

    Args:
        focus: The invoice (see :func:`read_focus`).
        allocated: opsloop's allocated costs covering the invoice's charge periods.

    Raises:
        ConfigError: The invoice mixes currencies, or has no rows.
    """
    if focus.empty:
        raise ConfigError("the FOCUS dataset has no rows")
    currencies = sorted(set(focus["BillingCurrency"].dropna().astype(str)))
    if len(currencies) != 1:
        raise ConfigError(
            f"the FOCUS dataset bills in {', '.join(currencies) or 'no currency'}: "
            "import one currency at a time"
        )
    starts = pd.to_datetime(focus["ChargePeriodStart"], utc=True)
    ends = pd.to_datetime(focus["ChargePeriodEnd"], utc=True)
    since, until = starts.min().to_pydatetime(), ends.max().to_pydatetime()
    deployment = invoice_deployments(focus)
    billed = pd.to_numeric(focus["BilledCost"], errors="coerce").fillna(0.0)
    invoiced = billed.groupby(deployment).sum()
    untagged = float(invoiced.pop("")) if "" in invoiced.index else 0.0
    metered = pd.Series(dtype=float)
    if not allocated.empty:
        window = (allocated["hour"] >= since) & (allocated["hour"] < until)
        rows = allocated[window.to_numpy()]
        named = rows["deployment"].astype(str)
        metered = rows["cost"].groupby(named.to_numpy()).sum()
        metered = metered[metered.index != ""]
    names = sorted(set(invoiced.index) | set(metered.index))
    table = pd.DataFrame(
        {
            "deployment": names,
            "invoiced": [float(invoiced.get(n, 0.0)) for n in names],
            "metered": [float(metered.get(n, 0.0)) for n in names],
        }
    )
    table["difference"] = table["invoiced"] - table["metered"]
    table["ratio"] = np.divide(
        table["invoiced"].to_numpy(),
        table["metered"].to_numpy(),
        out=np.full(len(table), np.nan),
        where=table["metered"].to_numpy() > 0,
    )
    return InvoiceComparison(table, untagged, currencies[0], since, until)
