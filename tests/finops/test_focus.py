"""The FOCUS export, checked by the FinOps Foundation's reference validator."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from opsloop.errors import ConfigError
from opsloop.finops import FOCUS_COLUMNS, allocate, allocated_costs, focus_frame, write_focus
from opsloop.spec.finops import FinopsSection
from opsloop.store import Store, UsageRecord, open_store

H = datetime(2026, 11, 30, 22, tzinfo=UTC)  # two billing periods: November and December


def _usage(store: Store) -> None:
    """A little of everything the loop meters, over a month boundary."""
    records = []
    for i in range(4):
        at = H + timedelta(hours=i)
        records += [
            UsageRecord(
                at,
                "replica",
                {
                    "project": "demo",
                    "team": "growth",
                    "deployment": "churn",
                    "model": "churn",
                    "version": "2",
                    "environment": "prod",
                },
                {
                    "reserved_cpu_s": 3600,
                    "cpu_s": 600 + i,
                    "reserved_memory_gb_s": 3600,
                    "memory_gb_s": 1200,
                    "requests": 5000,
                    "wall_s": 3600,
                },
            ),
            UsageRecord(
                at,
                "step",
                {"project": "demo", "team": "ml", "run": "r1", "step": "train"},
                {"cpu_s": 100, "memory_gb_s": 50, "wall_s": 120},
            ),
            UsageRecord(
                at, "trial", {"project": "demo", "run": "r1", "trial": "rf-3"}, {"cpu_s": 10}
            ),
            UsageRecord(at, "storage", {"project": "demo", "run": "r1"}, {"storage_gb_s": 3600}),
            UsageRecord(at, "controller", {"project": "demo"}, {"cpu_s": 2, "wall_s": 5}),
        ]
    store.usage.add(records)


FINOPS = FinopsSection.model_validate(
    {
        "currency": "EUR",
        "team": "ml",
        "rate_cards": [
            {
                "name": "2026",
                "vcpu_hour": 0.05,
                "memory_gb_hour": 0.006,
                "storage_gb_month": 0.02,
                "requests_per_million": 0.4,
            },
        ],
        "shared": {"hourly": {"store": 0.01}},
    }
)


def _validate(python: Path, data: Path) -> tuple[str, str]:
    site = subprocess.run(
        [
            str(python),
            "-c",
            "import focus_validator, os; "
            "print(os.path.dirname(os.path.dirname(focus_validator.__file__)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    report = data.with_suffix(".xml")
    proc = subprocess.run(
        [
            str(python),
            "-m",
            "focus_validator.main",
            "--data-file",
            str(data),
            "--validate-version",
            "1.0",
            "--output-type",
            "unittest",
            "--output-destination",
            str(report),
        ],
        # The validator reads its currency list by a path relative to the working directory.
        cwd=site,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return report.read_text(), proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_the_export_passes_every_rule_of_focus_validator(
    tmp_path: Path, focus_validator: Path, suffix: str
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    _usage(store)
    allocated = allocated_costs(store, FINOPS)
    out = tmp_path / f"costs.{suffix}"
    rows = write_focus(allocated, out, currency="EUR", account="demo")
    assert rows > 20
    report, _stdout = _validate(focus_validator, out)
    suite = re.search(r'<testsuites [^>]*tests="(\d+)" failures="(\d+)" errors="(\d+)"', report)
    assert suite is not None, report[:500]
    tests, failures, errors = map(int, suite.groups())
    assert tests >= 130 and failures == 0 and errors == 0, report
    store.close()


def test_the_focus_rows_carry_every_cost_once(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    _usage(store)
    allocated = allocated_costs(store, FINOPS)
    focus = focus_frame(allocated, currency="EUR", account="demo")
    assert list(focus.columns[: len(FOCUS_COLUMNS)]) == list(FOCUS_COLUMNS)
    assert focus["BilledCost"].sum() == pytest.approx(allocated["cost"].sum())
    assert set(focus["BillingPeriodStart"]) == {"2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"}
    assert set(focus["SkuId"]) == {
        "vcpu",
        "memory",
        "idle-vcpu",
        "idle-memory",
        "storage",
        "requests",
        "shared",
    }
    replica = focus[(focus["x_deployment"] == "churn") & (focus["SkuId"] == "requests")]
    assert replica["PricingQuantity"].tolist() == [5000.0] * 4
    assert replica["ListUnitPrice"].tolist() == pytest.approx([0.4 / 1e6] * 4)
    assert json.loads(replica["Tags"].iloc[0])["team"] == "growth"
    assert set(replica["ResourceId"]) == {"deployment/churn"}
    assert set(focus["x_kind"]) == {"replica", "step", "trial", "storage"}  # shared ones spread
    assert not any(
        c.startswith("x_") is False
        and c not in FOCUS_COLUMNS
        and c not in ("InvoiceIssuer", "Provider", "Publisher", "ResourceID", "ChargeType")
        for c in focus.columns
    )
    store.close()


def test_an_empty_export_and_a_bad_format(tmp_path: Path) -> None:
    empty = allocate(pd.DataFrame(columns=["hour", "kind"]).pipe(_empty_usage), FINOPS)
    out = tmp_path / "costs.csv"
    assert write_focus(empty, out, currency="EUR", account="demo") == 0
    assert out.read_text().startswith("AvailabilityZone,BilledCost,")
    with pytest.raises(ConfigError, match=r"name the file \.csv or \.parquet"):
        write_focus(empty, tmp_path / "costs.xlsx", currency="EUR", account="demo")


def _empty_usage(_frame: pd.DataFrame) -> pd.DataFrame:
    store = open_store("sqlite://")
    from opsloop.finops import usage_frame  # noqa: PLC0415 - the store's empty frame

    frame = usage_frame(store)
    store.close()
    return frame
