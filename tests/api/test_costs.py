"""/api/v1/costs (grouped by a dimension over a period) and /api/v1/costs/budgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from opsloop.api import create_app
from opsloop.context import open_project
from opsloop.store import UsageRecord
from tests.api.conftest import Populated, is_problem, running

YAML = """\
project: demo
finops:
  currency: EUR
  rate_cards: [{name: card, vcpu_hour: 1.0, requests_per_million: 100.0}]
  budgets:
    - {deployment: churn-prod, monthly: 10, actual: [0.1], forecast: [1.0]}
"""


def test_costs_by_deployment_and_day_and_the_budgets(populated: Populated) -> None:
    root = populated.project.dir
    (root / "opsloop.yaml").write_text(YAML)
    project = open_project(root)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    project.store.usage.add(
        [
            UsageRecord(
                hour,
                "replica",
                {"deployment": "churn-prod", "model": "churn", "version": "1"},
                {"reserved_cpu_s": 7200, "cpu_s": 3600, "requests": 10_000},
            ),
            UsageRecord(hour, "step", {"run": "r1", "step": "train"}, {"cpu_s": 1800}),
        ]
    )
    with running(create_app(project)) as url, httpx.Client(base_url=url, timeout=120) as client:
        out = client.get("/api/v1/costs", params={"by": "deployment"}).json()
        assert out["currency"] == "EUR" and out["by"] == "deployment"
        assert out["total"] == pytest.approx(3.5)
        prod = next(r for r in out["rows"] if r["key"] == "churn-prod")
        assert prod["used"] == pytest.approx(1.0) and prod["idle"] == pytest.approx(1.0)
        assert prod["requests"] == pytest.approx(1.0)
        assert prod["cost_per_1000_requests"] == pytest.approx(0.3)
        assert (
            next(r for r in out["rows"] if r["key"] == "(none)")["cost_per_1000_requests"] is None
        )
        later = {"by": "day", "from": (hour + timedelta(hours=1)).isoformat()}
        assert client.get("/api/v1/costs", params=later).json()["rows"] == []
        is_problem(client.get("/api/v1/costs", params={"by": "colour"}), 422)
        backwards = {"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
        assert (
            "is not after"
            in is_problem(client.get("/api/v1/costs", params=backwards), 422)["detail"]
        )
        budgets = client.get("/api/v1/costs/budgets").json()
        (budget,) = budgets["budgets"]
        assert budget["name"] == "deployment-churn-prod" and budget["value"] == "churn-prod"
        assert budget["actual"] == pytest.approx(3.0) and budget["actual_reached"] == [0.1]
        assert budget["forecast"] >= budget["actual"]
    project.close()
