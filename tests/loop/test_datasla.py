"""The loop's data step on a real PostgreSQL source: a stale source raises a data-freshness
alert and an incident on the data set; new rows resolve it. And the controller runs it with
the schedules in one pass."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text

from opsloop.context import Project, open_project
from opsloop.lifecycle.schedules import Scheduler
from opsloop.loop.controller import Controller
from opsloop.loop.datasla import data_step

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def sla_project(tmp_path: Path, pg_database_url: str) -> Iterator[Project]:
    engine = create_engine(pg_database_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, v DOUBLE PRECISION)"))
        conn.execute(text("INSERT INTO events VALUES (1, 0.5), (2, 1.5)"))
    engine.dispose()
    spec = {
        "project": "sla",
        "data": {
            "name": "events",
            "source": {"url": pg_database_url, "table": "events", "watermark": "id"},
            "sla": {"freshness": "24h", "check_every": "1h"},
        },
        "schedules": {"hourly": {"cron": "0 * * * *"}},
    }
    (tmp_path / "opsloop.yaml").write_text(yaml.safe_dump(spec))
    # The controller's reconciler reads the desired state from Git.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    project = open_project(tmp_path)
    try:
        yield project
    finally:
        project.close()


def test_a_stale_source_opens_an_incident_that_new_rows_resolve(
    sla_project: Project, pg_database_url: str
) -> None:
    first = data_step(sla_project, T0)
    assert first.loaded == {"events": 2}
    assert [(r.sla, r.ok) for r in first.results] == [("freshness", True)]
    assert data_step(sla_project, T0 + timedelta(minutes=30)).loaded == {}  # not due

    stale = data_step(sla_project, T0 + timedelta(hours=25))
    assert stale.loaded == {"events": 0}
    assert [(r.sla, r.ok) for r in stale.results] == [("freshness", False)]
    assert len(stale.ingest.opened) == 1
    incident = sla_project.store.incidents.get(stale.ingest.opened[0])
    assert incident.kind == "data_drift"
    assert incident.status == "open"

    engine = create_engine(pg_database_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO events VALUES (3, 2.5)"))
    engine.dispose()
    healed = data_step(sla_project, T0 + timedelta(hours=26))
    assert healed.loaded == {"events": 1}
    assert healed.results[0].ok
    assert healed.ingest.resolved == [incident.id]


def test_the_controller_runs_the_data_step_and_the_schedules(sla_project: Project) -> None:
    now = [T0]
    scheduler = Scheduler(
        sla_project, command=lambda s: [sys.executable, "-c", "pass"], clock=lambda: now[0]
    )
    controller = Controller(
        sla_project, monitor_every_s=0, scheduler=scheduler, clock=lambda: now[0]
    )
    first = controller.run_pass(reconcile=False, monitor=False)
    assert first.data is not None and first.data.loaded == {"events": 2}
    now[0] = T0 + timedelta(hours=1, seconds=5)
    second = controller.run_pass(reconcile=False, monitor=False)
    assert second.scheduled is not None
    assert [r.schedule for r in second.scheduled.started] == ["hourly"]
    assert second.summary()["schedules"]["started"] == [
        f"hourly#{second.scheduled.started[0].id}: running"
    ]
    scheduler.wait(timeout_s=60)
    assert [r.status for r in sla_project.store.schedules.history("hourly")] == ["succeeded"]
