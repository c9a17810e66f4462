"""The loop's cost step: budget alerts, cost anomalies, and a retrain storm as the root cause
of the cost incident it causes."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from opsloop.aiops.actions import REMEDIATION_ACTIONS, ActionContext
from opsloop.aiops.alerts import AlertIn, list_alerts
from opsloop.aiops.incidents import get_incident, ingest_alerts, list_incidents
from opsloop.aiops.lineage import LineageGraph
from opsloop.context import use_project
from opsloop.errors import AIOpsError, ConfigError
from opsloop.gitops import parse_document
from opsloop.lifecycle.schedules import Scheduler
from opsloop.loop.cost_actions import pause_schedules, scale_to_minimum
from opsloop.loop.costs import cost_step
from opsloop.spec.finops import FinopsSection
from opsloop.store import UsageRecord, open_store
from tests.gitops.conftest import git

if TYPE_CHECKING:
    from pathlib import Path

    from opsloop.store import Store

# Mid-month, so that the month has history before the storm.
NOW = datetime(2026, 12, 15, 14, 20, tzinfo=UTC)
STORM = datetime(2026, 12, 15, 13, 0, tzinfo=UTC)  # the last complete hour at NOW
CARD = {"vcpu_hour": 0.04, "memory_gb_hour": 0.005}


def finops(**extra: object) -> FinopsSection:
    return FinopsSection.model_validate({"rate_cards": [CARD], **extra})


def _serve(store: Store, deployment: str, since: datetime, until: datetime, vcpus: float) -> None:
    """A deployment's replicas reserving ``vcpus`` each hour of ``[since, until)``."""
    records = []
    at = since
    while at < until:
        records.append(
            UsageRecord(
                at,
                "replica",
                {"deployment": deployment, "model": "churn", "version": "1"},
                {"reserved_cpu_s": vcpus * 3600, "cpu_s": vcpus * 900, "wall_s": 3600},
            )
        )
        at += timedelta(hours=1)
    store.usage.add(records)


def _train(store: Store, at: datetime, cpu_s: float) -> str:
    """A lifecycle run that registers a new version of churn, and its train step's usage."""
    run = store.runs.create("lifecycle", kind="pipeline")
    n = len(store.models.all_versions())
    store.models.create_version("churn", artifact_digest=f"sha256:{n:064x}", run_id=run.id)
    store.usage.add([UsageRecord(at, "step", {"run": run.id, "step": "train"}, {"cpu_s": cpu_s})])
    return run.id


def _deployment(store: Store, traffic: dict[str, float]) -> None:
    store.deployments.save_status(
        "churn-prod",
        revision="r1",
        desired={"spec": {"model": "churn", "version": 1, "traffic": traffic}},
        live={},
        sync_status="Synced",
        health_status="Healthy",
        reason="",
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'store.db'}")


def test_a_retrain_storm_is_the_root_cause_of_the_cost_incident(store: Store) -> None:
    start = STORM - timedelta(days=6)
    # Six days of one nightly training at 02:00 and two replicas serving round the clock.
    _train(store, start - timedelta(hours=11), 1800)
    for day in range(6):
        _train(store, (start + timedelta(days=day)).replace(hour=2), 1800)
    _serve(store, "churn-prod", start, STORM, 2)
    # The storm: 24 retraining runs in one hour, each canaried: the deployment runs the
    # canaries' replicas besides its own, and the last version takes 10 % of the traffic.
    for _ in range(24):
        _train(store, STORM + timedelta(minutes=1), 1800)
    _serve(store, "churn-prod", STORM, STORM + timedelta(hours=1), 8)
    latest = len(store.models.all_versions())
    _deployment(store, {"1": 90.0, str(latest): 10.0})
    section = finops(
        budgets=[{"deployment": "churn-prod", "monthly": 30.0, "actual": [0.9], "forecast": [1.0]}]
    )

    result = cost_step(store, section, now=NOW)

    names = {a.name for a in result.alerts if a.status == "firing"}
    assert "cost.training anomaly" in names
    assert "budget-forecast" in names
    assert len(result.ingest.opened) == 1
    incident = list_incidents(store)[0]
    assert incident.kind == "cost_anomaly"
    # The retraining (the model version it produced) explains the deployment's cost alerts.
    assert incident.root_cause == f"model:churn/{latest}"
    assert incident.root_causes[0]["explains"] == len(list_alerts(store, incident_id=incident.id))
    assert "deployment:churn-prod" in incident.details["subjects"]

    # The next step writes only the hours completed since, and opens nothing new.
    again = cost_step(store, section, now=NOW + timedelta(minutes=10))
    assert again.points == 0
    assert again.ingest.opened == []
    store.close()


def test_budget_alerts_fire_at_their_thresholds_and_resolve_in_a_new_month(store: Store) -> None:
    _serve(store, "churn-prod", NOW - timedelta(days=3), NOW, 1)  # 0.04 an hour: 2.88 so far
    section = finops(
        budgets=[
            {
                "name": "serving",
                "deployment": "churn-prod",
                "monthly": 5.0,
                "actual": [0.5, 1.0],
                "forecast": [1.0],
            }
        ],
        anomalies={"enabled": False},
    )
    result = cost_step(store, section, now=NOW)
    status = result.budgets[0]
    assert status.actual == pytest.approx(72 * 0.04)
    # The run rate: 2.88 over the 72 h 20 min since the first hour with usage began, over
    # the 16 days 9 h 40 min left of December.
    rate = 72 * 0.04 / (72 + 20 / 60)
    assert status.forecast == pytest.approx(72 * 0.04 + rate * (16 * 24 + 9 + 40 / 60))
    assert status.run_rate_per_day == pytest.approx(rate * 24)
    assert status.actual_reached == [0.5]
    assert status.forecast_reached == [1.0]
    firing = list_alerts(store, status="firing")
    assert sorted((a.name, a.labels["threshold"]) for a in firing) == [
        ("budget-forecast", "100%"),
        ("budget-spend", "50%"),
    ]
    assert {a.severity for a in firing if a.name == "budget-forecast"} == {"critical"}
    assert list_incidents(store)[0].kind == "cost_anomaly"

    # January: nothing spent yet, the run rate alone forecasts less than the budget.
    january = cost_step(store, section, now=datetime(2027, 1, 1, 0, 30, tzinfo=UTC))
    assert january.budgets[0].actual == 0
    assert list_alerts(store, status="firing") == []
    # The incident stays open through its grace period (a flap would reopen nothing), and a
    # later step resolves it.
    cost_step(store, section, now=datetime(2027, 1, 1, 1, 30, tzinfo=UTC))
    assert all(i.status == "resolved" for i in list_incidents(store))
    store.close()


DOC = """\
apiVersion: opsloop/v1
kind: Deployment
metadata:
  name: prod
spec:
  model: churn
  version: 1
  replicas: 4
  port: 18081
  objectives: {min_replicas: 2}
"""


def test_scale_to_minimum_commits_the_deployment_down(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text("project: demo\n")
    (tmp_path / ".gitignore").write_text(".opsloop/\n")
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "prod.yaml").write_text(DOC)
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "init")):
        git(tmp_path, *args)
    alert = AlertIn(name="budget-forecast", labels={"deployment": "prod", "category": "cost"})
    with use_project(tmp_path) as proj:
        (incident_id,) = ingest_alerts(proj.store, [alert], LineageGraph([])).opened
        incident = get_incident(proj.store, incident_id)
        assert "scale_to_minimum" in REMEDIATION_ACTIONS
        context = ActionContext.for_incident(incident, "scale_to_minimum", settings={})
        result = scale_to_minimum(context)
        assert result.did == "scaled prod from 4 to 2 replica(s)" and len(result.commits) == 1
        shown = git(tmp_path, "show", "HEAD:deploy/prod.yaml")
        assert parse_document(shown, "prod.yaml").spec.replicas == 2
        assert "Cost incident" in git(tmp_path, "log", "-1", "--format=%B")
        # At its minimum already: nothing to commit.
        again = scale_to_minimum(context)
        assert again.commits == () and "left prod at 2" in again.did


def test_pause_schedules_skips_due_runs_until_the_pause_ends(tmp_path: Path) -> None:
    spec = (
        "project: demo\nschedules:\n  nightly: {cron: '* * * * *'}\n  hourly: {cron: '0 * * * *'}\n"
    )
    (tmp_path / "opsloop.yaml").write_text(spec)
    alert = AlertIn(name="cost.training", labels={"model": "churn", "category": "cost"})
    with use_project(tmp_path) as proj:
        (incident_id,) = ingest_alerts(proj.store, [alert], LineageGraph([])).opened
        incident = get_incident(proj.store, incident_id)
        assert "pause_schedules" in REMEDIATION_ACTIONS
        scheduler = Scheduler(proj, command=lambda s: [sys.executable, "-c", "pass"])
        now = datetime.now(UTC)
        scheduler.tick(now)  # bearings
        settings = {"schedules": ["nightly"], "hours": 2}
        context = ActionContext.for_incident(incident, "pause_schedules", settings=settings)
        result = pause_schedules(context)
        assert result.did.startswith("paused nightly until ")
        ticked = scheduler.tick(now + timedelta(seconds=61))
        assert ticked.started == []
        [skipped] = ticked.skipped
        assert skipped.schedule == "nightly" and skipped.status == "skipped"
        assert f"(incident {incident_id}: " in skipped.reason and "paused until" in skipped.reason
        later = scheduler.tick(now + timedelta(hours=2, minutes=1))
        assert "nightly" in [r.schedule for r in later.started]
        scheduler.wait(timeout_s=60)
        with pytest.raises(ConfigError, match=r"no schedule 'weekly' in opsloop.yaml"):
            pause_schedules(
                ActionContext.for_incident(
                    incident, "pause_schedules", settings={"schedules": ["weekly"]}
                )
            )
        with pytest.raises(AIOpsError, match="hours"):
            pause_schedules(
                ActionContext.for_incident(incident, "pause_schedules", settings={"hours": -1})
            )
