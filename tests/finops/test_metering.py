"""Metering: pipeline steps where they finish, replicas, storage and the loop between passes."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsloop.context import Project, open_project, set_current_project
from opsloop.finops import LoopMeter, charge_of, cpu_quantity, memory_quantity, split_by_hour
from opsloop.loop.controller import Controller
from opsloop.pipeline import run_pipeline
from opsloop.spec.finops import FinopsSection
from opsloop.store import Store, UsageRecord, open_store
from tests.gitops.conftest import git
from tests.pipeline import steps_fixture as sf

T0 = datetime(2026, 12, 1, 10, 50, tzinfo=UTC)


def test_kubernetes_quantities() -> None:
    assert cpu_quantity("500m") == 0.5
    assert cpu_quantity("2") == 2.0
    assert cpu_quantity(None) == 0.0
    assert cpu_quantity("lots") == 0.0
    assert memory_quantity("512Mi") == 0.5
    assert memory_quantity("2Gi") == 2.0
    assert memory_quantity("1G") == pytest.approx(10**9 / 2**30)
    assert memory_quantity(None) == 0.0


def test_an_interval_is_split_at_hour_boundaries() -> None:
    parts = list(split_by_hour(T0, T0 + timedelta(minutes=80)))
    assert [(t.hour, s) for t, s in parts] == [(10, 600.0), (11, 3600.0), (12, 600.0)]
    assert list(split_by_hour(T0, T0)) == []


def test_steps_meter_themselves_charged_to_the_projects_team(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "opsloop.yaml").write_text(
        "project: demo\nfinops: {team: growth, cost_centre: cc-42}\n"
    )
    proj = open_project(tmp_path)
    set_current_project(proj)
    try:
        result = run_pipeline(
            sf.parity_pipeline,
            {"n": 3, "marker": str(tmp_path / "m")},
            executor="inline",
            progress=False,
        )
        rows = proj.store.usage.read(kind="step")
        assert {r.step for r in rows} == {"parity", "describe"}
        for row in rows:
            assert row.dimensions == {
                "project": "demo",
                "team": "growth",
                "cost_centre": "cc-42",
                "run": result.run_id,
                "step": row.step,
            }
            assert row.count == 1 and row.wall_s >= 0 and row.cpu_s >= 0
        # A cached step did no work and meters none.
        run_pipeline(
            sf.parity_pipeline,
            {"n": 3, "marker": str(tmp_path / "m")},
            executor="inline",
            progress=False,
        )
        assert sum(r.count for r in proj.store.usage.read(kind="step")) == 2
    finally:
        set_current_project(None)
        proj.close()


def _serve(store: Store, name: str, *, pid: int, running: int = 2) -> None:
    live = {
        "spec": {
            "name": name,
            "model": "churn",
            "version": 3,
            "replicas": running,
            "port": 8000,
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
            "labels": {"team": "growth", "environment": "prod"},
        },
        "running": running,
        "details": {"replicas": [{"index": 0, "pid": pid, "alive": True}]},
    }
    store.deployments.save_status(
        name,
        revision="r1",
        desired={},
        live=live,
        sync_status="Synced",
        health_status="Healthy",
        reason="",
    )


def test_replicas_cost_their_reservation_and_their_requests(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    _serve(store, "churn", pid=os.getpid())
    base = {"deployment": "churn", "model_name": "churn", "latency_ms": 1.0, "inputs": {}}
    old = {**base, "request_id": "old", "model_version": "3", "time": T0 - timedelta(hours=1)}
    store.predictions.log([old])
    meter = LoopMeter(store, charge=charge_of("demo", FinopsSection(team="core")))
    assert meter.meter(T0) == 0  # the first pass takes its marks
    store.predictions.log(
        [
            {**base, "request_id": f"q{i}", "model_version": "3", "time": T0 + timedelta(minutes=5)}
            for i in range(7)
        ]
    )
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:  # this process is the "replica": give it CPU time
        pass
    meter.meter(T0 + timedelta(minutes=20))
    rows = {r.hour.hour: r for r in store.usage.read(kind="replica")}
    assert set(rows) == {10, 11}
    ten, eleven = rows[10], rows[11]
    # 10:50 to 11:00 and 11:00 to 11:10, two replicas of 0.5 vCPU and 1 GB each.
    assert ten.reserved_cpu_s == pytest.approx(600.0)
    assert ten.reserved_memory_gb_s == pytest.approx(1200.0)
    assert ten.wall_s == pytest.approx(1200.0)
    assert eleven.reserved_cpu_s == pytest.approx(600.0)
    assert ten.cpu_s + eleven.cpu_s >= 0.04
    assert ten.memory_gb_s > 0
    assert ten.dimensions == {
        "project": "demo",
        "team": "growth",  # the deployment's label wins over the project's tag
        "environment": "prod",
        "deployment": "churn",
        "model": "churn",
        "version": "3",
    }
    assert eleven.requests == 7.0
    assert ten.requests == 0.0
    store.close()


def test_storage_and_the_loops_own_work(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    run = store.runs.create("train")
    store.runs.log_artifact(run.id, "model.skops", "sha256:" + "0" * 64, 2**30)
    meter = LoopMeter(store, storage_every_s=60)
    meter.meter(T0)
    meter.meter(T0 + timedelta(seconds=30))  # too soon for another scan
    assert store.usage.read(kind="storage") == []
    meter.meter(T0 + timedelta(seconds=120))
    (row,) = store.usage.read(kind="storage")
    assert row.run == run.id and row.storage_gb_s == pytest.approx(120.0)
    meter.own_work("controller", cpu_s=0.2, wall_s=0.5, at=T0)
    (own,) = store.usage.read(kind="controller")
    assert (own.cpu_s, own.wall_s) == (0.2, 0.5)
    store.close()


def test_the_controller_meters_every_pass(project: Project) -> None:
    git(project.dir, "init", "-q", "-b", "main")
    git(project.dir, "add", "-A")
    git(project.dir, "commit", "-q", "-m", "init")
    clock = iter(T0 + timedelta(seconds=10 * i) for i in range(100))
    controller = Controller(project, monitor_every_s=0, clock=lambda: next(clock))
    controller.run_pass(reconcile=False)
    report = controller.run_pass(reconcile=False)
    assert not [e for e in report.errors if e.startswith("metering")]
    (row,) = project.store.usage.read(kind="controller")
    assert row.count == 2 and row.project == "demo"


def test_tuning_trials_take_their_share_of_the_train_step(tmp_path: Path) -> None:
    from opsloop.lifecycle.driver import _meter_trials  # noqa: PLC0415 - the lifecycle's own

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    dims = {"project": "demo", "team": "ml", "run": "r1", "step": "train"}
    store.usage.add([UsageRecord(T0, "step", dims, {"cpu_s": 40.0, "wall_s": 10.0})])
    _meter_trials(store, "r1", {"trial-a": 3.0, "trial-b": 5.0})
    trials = {r.trial: r for r in store.usage.read(kind="trial")}
    assert trials["trial-a"].cpu_s == pytest.approx(12.0)
    assert trials["trial-b"].wall_s == pytest.approx(5.0)
    assert trials["trial-b"].team == "ml"
    (step,) = store.usage.read(kind="step")
    assert step.cpu_s == pytest.approx(8.0)  # the refit and the rest stay on the step
    _meter_trials(store, "no-such-run", {"t": 1.0})  # nothing metered: nothing to share
    store.close()
