"""``opsloop costs`` and ``opsloop finops export`` as a user runs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from opsloop.context import open_project
from opsloop.store import UsageRecord

from .test_cli import opsloop

H = datetime(2026, 12, 1, 10, tzinfo=UTC)

YAML = """\
project: demo
finops:
  currency: EUR
  team: ml
  rate_cards:
    - {name: card, vcpu_hour: 1.0, memory_gb_hour: 0.5, requests_per_million: 100.0}
"""


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("costs")
    (root / "opsloop.yaml").write_text(YAML)
    proj = open_project(root)
    proj.store.usage.add(
        [
            UsageRecord(H, "step", {"team": "ml", "run": "r1", "step": "train"}, {"cpu_s": 3600}),
            UsageRecord(
                H + timedelta(days=1),
                "replica",
                {"team": "growth", "deployment": "churn", "model": "churn", "version": "1"},
                {"reserved_cpu_s": 7200, "cpu_s": 3600, "requests": 10_000},
            ),
        ]
    )
    proj.close()
    return root


def test_costs_by_team_with_a_chart(metered: Path) -> None:
    out = opsloop("costs", "--by", "team", "--chart", "daily.png", cwd=metered)
    assert out.returncode == 0, out.stderr
    assert "costs by team (EUR)" in out.stdout
    text = out.stdout
    # growth: 1 vCPU-hour used, 1 idle, 10,000 requests at 100 per million.
    assert "growth" in text and "ml" in text
    row = next(line for line in text.splitlines() if "growth" in line)
    assert "1.0000" in row and "3.0000" in row and "0.30000" in row
    assert "total" in text and "4.0000" in text
    assert (metered / "daily.png").read_bytes()[:4] == b"\x89PNG"


def test_costs_of_one_day_by_deployment(metered: Path) -> None:
    out = opsloop(
        "costs", "--by", "deployment", "--from", "2026-12-01", "--to", "2026-12-01", cwd=metered
    )
    assert out.returncode == 0, out.stderr
    assert "churn" not in out.stdout
    assert "1.0000" in out.stdout


def test_bad_options_are_named(metered: Path) -> None:
    out = opsloop("costs", "--by", "colour", cwd=metered)
    assert out.returncode == 1 and "--by 'colour' is not one of" in out.stderr
    out = opsloop("costs", "--from", "yesterday", cwd=metered)
    assert out.returncode == 1 and "--from 'yesterday' is not a date" in out.stderr
    out = opsloop("costs", "--from", "2026-12-02", "--to", "2026-12-01", cwd=metered)
    assert out.returncode == 1 and "is not after --from" in out.stderr
    out = opsloop("finops", "export", "--out", "costs.json", cwd=metered)
    assert out.returncode == 1 and "name the file .csv or .parquet" in out.stderr


def test_finops_export_writes_focus(metered: Path) -> None:
    out = opsloop("finops", "export", "--format", "focus", "--out", "costs.parquet", cwd=metered)
    assert out.returncode == 0, out.stderr
    focus = pd.read_parquet(metered / "costs.parquet")
    assert focus["BilledCost"].sum() == pytest.approx(4.0)
    assert set(focus["BillingCurrency"]) == {"EUR"}
    assert set(focus["BillingAccountId"]) == {"demo"}
    assert set(focus["x_team"]) == {"ml", "growth"}


def test_costs_budgets_shows_spend_and_forecast(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text(
        YAML + "  budgets:\n    - {name: serving, deployment: churn, monthly: 1000}\n"
    )
    proj = open_project(tmp_path)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    proj.store.usage.add(
        [UsageRecord(hour, "replica", {"deployment": "churn"}, {"reserved_cpu_s": 7200})]
    )
    proj.close()
    out = opsloop("costs", "--budgets", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if "serving" in line)
    # 2 vCPU-hours at 1.0 spent; the forecast adds the run rate (2 a day at least).
    assert "deployment churn" in row and "1,000.00" in row and "2.0000" in row
