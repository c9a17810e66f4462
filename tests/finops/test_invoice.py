"""``opsloop finops import``: a provider's FOCUS invoice (checked by focus-validator first)
joined to opsloop's allocation, per deployment."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from opsloop.context import open_project
from opsloop.errors import ConfigError
from opsloop.finops import allocated_costs, focus_frame
from opsloop.finops.invoice import compare_invoice, invoice_deployments, read_focus

from ..cli.test_cli import opsloop
from .test_focus import FINOPS, _usage, _validate

if TYPE_CHECKING:
    from pathlib import Path

YAML = """\
project: demo
finops:
  currency: EUR
  team: ml
  rate_cards:
    - {name: '2026', vcpu_hour: 0.05, memory_gb_hour: 0.006, storage_gb_month: 0.02,
       requests_per_million: 0.4}
  shared: {hourly: {store: 0.01}}
"""

_COSTS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
_PRICES = ("ListUnitPrice", "ContractedUnitPrice")


def _invoice(focus: pd.DataFrame) -> pd.DataFrame:
    """What a provider bills for the same resources: 25 % more for the deployment's replicas,
    tagged with the labels opsloop's Kubernetes runtime sets, and no x_ columns."""
    out = focus.drop(columns=[c for c in focus.columns if c.startswith("x_")]).copy()
    serving = focus["x_deployment"].fillna("") == "churn"
    for column in (*_COSTS, *_PRICES):
        out.loc[serving, column] = out.loc[serving, column] * 1.25
    tags = {
        "app.kubernetes.io/instance": "churn",
        "app.kubernetes.io/managed-by": "opsloop",
        "user:team": "growth",
    }
    out.loc[serving, "Tags"] = json.dumps(tags)
    out.loc[~serving, "Tags"] = json.dumps({"user:team": "ml"})
    for column in ("ProviderName", "Provider", "PublisherName", "Publisher"):
        out[column] = "ExampleCloud"
    return out


@pytest.mark.slow
def test_an_invoice_is_joined_to_the_allocation_per_deployment(
    tmp_path: Path, focus_validator: Path
) -> None:
    (tmp_path / "opsloop.yaml").write_text(YAML)
    proj = open_project(tmp_path)
    _usage(proj.store)
    allocated = allocated_costs(proj.store, FINOPS)
    proj.close()
    invoice = _invoice(focus_frame(allocated, currency="EUR", account="demo"))
    path = tmp_path / "invoice.csv"
    invoice.to_csv(path, index=False)
    report, _stdout = _validate(focus_validator, path)
    suite = re.search(r'<testsuites [^>]*tests="(\d+)" failures="(\d+)" errors="(\d+)"', report)
    assert suite is not None and suite.group(2) == "0" and suite.group(3) == "0", report

    metered = float(allocated.loc[allocated["deployment"].astype(str) == "churn", "cost"].sum())
    result = compare_invoice(read_focus(path), allocated)
    row = result.table.set_index("deployment").loc["churn"]
    assert row["metered"] == pytest.approx(metered)
    assert row["invoiced"] == pytest.approx(1.25 * metered)
    assert row["ratio"] == pytest.approx(1.25)
    assert result.untagged == pytest.approx(float(allocated["cost"].sum()) - metered)
    assert result.currency == "EUR"

    out = opsloop("finops", "import", "invoice.csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if "churn" in x)
    assert f"{1.25 * metered:,.4f}" in line and "1.25" in line
    assert "without an opsloop deployment tag" in out.stdout


def test_deployments_come_from_x_columns_or_tags(tmp_path: Path) -> None:
    focus = pd.DataFrame(
        {
            "x_deployment": ["a", None, None, None, None],
            "Tags": [
                None,
                '{"opsloop.io/deployment": "b"}',
                '{"app.kubernetes.io/instance": "c", "app.kubernetes.io/managed-by": "opsloop"}',
                '{"app.kubernetes.io/instance": "d"}',
                "not json",
            ],
        }
    )
    assert invoice_deployments(focus).tolist() == ["a", "b", "c", "", ""]
    (tmp_path / "bill.csv").write_text("BilledCost,BillingCurrency\n1,EUR\n")
    with pytest.raises(ConfigError, match="column ChargePeriodStart is missing"):
        read_focus(tmp_path / "bill.csv")
    with pytest.raises(ConfigError, match="no such file"):
        read_focus(tmp_path / "nope.csv")
    (tmp_path / "bill.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"\.csv or \.parquet"):
        read_focus(tmp_path / "bill.json")
