"""Schedules: cron times on time and missed, new data, incidents of a kind, and the
concurrency policies, with real processes standing in for the pipeline runs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsloop.aiops.alerts import AlertIn
from opsloop.aiops.incidents import ingest_alerts
from opsloop.aiops.lineage import lineage_from_store
from opsloop.context import Project, open_project
from opsloop.errors import SpecError
from opsloop.lifecycle.schedules import Scheduler, run_command
from opsloop.spec import ProjectSpec
from opsloop.spec.loader import parse_spec

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _sleep(seconds: float) -> Any:
    return lambda schedule: [sys.executable, "-c", f"import time; time.sleep({seconds})"]


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[Any]:
    opened: list[Project] = []

    def make(schedules: dict[str, Any], **extra: Any) -> Project:
        folder = tmp_path / f"p{len(opened)}"
        folder.mkdir()
        spec = {"project": "sched", "schedules": schedules, **extra}
        (folder / "opsloop.yaml").write_text(yaml.safe_dump(spec))
        project = open_project(folder)
        opened.append(project)
        return project

    yield make
    for project in opened:
        project.close()


@pytest.fixture
def schedulers() -> Iterator[list[Scheduler]]:
    made: list[Scheduler] = []
    yield made
    for scheduler in made:
        for proc in list(scheduler._procs.values()):
            proc.kill()
            proc.wait()


def _history(project: Project, name: str) -> list[tuple[str, str]]:
    return [(r.trigger, r.status) for r in reversed(project.store.schedules.history(name))]


def test_a_cron_time_on_time_starts_a_run_that_is_reaped(
    make_project: Any, schedulers: list[Scheduler]
) -> None:
    project = make_project({"every-minute": {"cron": "* * * * *"}})
    scheduler = Scheduler(project, command=_sleep(0))
    schedulers.append(scheduler)
    assert scheduler.tick(T0).started == []  # first sight: bearings only
    ticked = scheduler.tick(T0 + timedelta(seconds=61))
    assert [r.due_at for r in ticked.started] == [T0 + timedelta(minutes=1)]
    run = ticked.started[0]
    assert run.status == "running" and run.pid is not None
    assert (project.dir / run.details["log"]).is_file()
    finished = scheduler.wait(timeout_s=60)
    assert [(r.id, r.status) for r in finished.finished] == [(run.id, "succeeded")]
    assert scheduler.tick(T0 + timedelta(seconds=62)).started == []
    assert _history(project, "every-minute") == [("cron", "succeeded")]


@pytest.mark.parametrize(
    ("missed", "expected"),
    [("skip", [("cron", "skipped")]), ("catch-up", [("catch-up", "succeeded")])],
)
def test_missed_cron_times(
    make_project: Any, schedulers: list[Scheduler], missed: str, expected: list[Any]
) -> None:
    project = make_project({"ten": {"cron": "*/10 * * * *", "missed": missed}})
    scheduler = Scheduler(project, command=_sleep(0))
    schedulers.append(scheduler)
    scheduler.tick(T0)
    # The loop was down for 67 minutes: six cron times passed, none within the deadline.
    ticked = scheduler.tick(T0 + timedelta(minutes=67))
    scheduler.wait(timeout_s=60)
    rows = project.store.schedules.history("ten")
    assert _history(project, "ten") == expected
    assert rows[0].details["missed"] == 6
    assert rows[0].due_at == T0 + timedelta(hours=1)
    assert len(ticked.started) == (1 if missed == "catch-up" else 0)


def test_concurrency_forbid_replace_allow(make_project: Any, schedulers: list[Scheduler]) -> None:
    project = make_project(
        {
            "forbid": {"cron": "* * * * *", "concurrency": "forbid"},
            "replace": {"cron": "* * * * *", "concurrency": "replace"},
            "allow": {"cron": "* * * * *", "concurrency": "allow"},
        }
    )
    scheduler = Scheduler(project, command=_sleep(120))
    schedulers.append(scheduler)
    scheduler.tick(T0)
    first = scheduler.tick(T0 + timedelta(minutes=1, seconds=1))
    assert sorted(r.schedule for r in first.started) == ["allow", "forbid", "replace"]
    second = scheduler.tick(T0 + timedelta(minutes=2, seconds=1))
    assert [r.schedule for r in second.skipped] == ["forbid"]
    assert "concurrency: forbid" in second.skipped[0].reason
    assert [r.schedule for r in second.replaced] == ["replace"]
    assert sorted(r.schedule for r in second.started) == ["allow", "replace"]
    assert _history(project, "forbid") == [("cron", "running"), ("cron", "skipped")]
    assert _history(project, "replace") == [("cron", "replaced"), ("cron", "running")]
    assert _history(project, "allow") == [("cron", "running"), ("cron", "running")]
    assert len(project.store.schedules.active()) == 4


def test_a_run_left_by_a_stopped_loop_is_interrupted(
    make_project: Any, schedulers: list[Scheduler]
) -> None:
    project = make_project({"m": {"cron": "* * * * *"}})
    before = Scheduler(project, command=_sleep(120))
    before.tick(T0)
    run = before.tick(T0 + timedelta(seconds=61)).started[0]
    for proc in before._procs.values():
        proc.kill()
        proc.wait()
    after = Scheduler(project, command=_sleep(0))
    schedulers.append(after)
    reaped = after.tick(T0 + timedelta(seconds=62))
    assert [(r.id, r.status) for r in reaped.finished] == [(run.id, "interrupted")]


def test_new_data_starts_a_run_when_the_files_change(
    make_project: Any, schedulers: list[Scheduler]
) -> None:
    project = make_project(
        {"fresh": {"new_data": True, "check_every": "1m"}},
        data={"source": "data.csv"},
    )
    (project.dir / "data.csv").write_text("a,b\n1,2\n")
    scheduler = Scheduler(project, command=_sleep(0))
    schedulers.append(scheduler)
    assert scheduler.tick(T0).started == []
    assert scheduler.tick(T0 + timedelta(minutes=2)).started == []  # unchanged
    (project.dir / "data.csv").write_text("a,b\n1,2\n3,4\n")
    assert scheduler.tick(T0 + timedelta(minutes=2, seconds=30)).started == []  # not due
    started = scheduler.tick(T0 + timedelta(minutes=4)).started
    assert [r.trigger for r in started] == ["new_data"]
    assert started[0].details["token"].startswith("files:")


def test_an_incident_of_the_kind_starts_a_run(
    make_project: Any, schedulers: list[Scheduler]
) -> None:
    project = make_project({"heal": {"incident": "data_drift"}})
    scheduler = Scheduler(project, command=_sleep(0))
    schedulers.append(scheduler)
    scheduler.tick(T0)
    alert = AlertIn(name="data-freshness", labels={"dataset": "customers", "sla": "freshness"})
    result = ingest_alerts(project.store, [alert], lineage_from_store(project.store))
    incident = project.store.incidents.get(result.opened[0])
    assert incident.kind == "data_drift"
    started = scheduler.tick(T0 + timedelta(seconds=5)).started
    assert [r.details["incidents"] for r in started] == [[incident.id]]
    assert scheduler.tick(T0 + timedelta(seconds=10)).started == []


def test_schedule_spec_errors_name_the_line() -> None:
    text = "project: p\nschedules:\n  nightly:\n    cron: '0 3 * *'\n"
    with pytest.raises(SpecError, match="not a cron expression") as err:
        parse_spec(text)
    assert err.value.line == 4
    with pytest.raises(SpecError, match="exactly one trigger"):
        parse_spec("project: p\nschedules:\n  x: {cron: '* * * * *', new_data: true}\n")
    with pytest.raises(SpecError, match="unknown key"):
        parse_spec("project: p\nschedules:\n  x: {cron: '* * * * *', concurrence: allow}\n")
    spec: ProjectSpec = parse_spec(
        "project: p\nschedules:\n  x: {cron: '0 3 * * *', run: train, params: {trials: 3}}\n"
    )
    assert run_command(spec.schedules["x"])[2:] == ["opsloop", "run", "train", "-p", "trials=3"]


def test_data_source_spec() -> None:
    spec = parse_spec(
        "project: p\ndata:\n  source: {url: 'env:DB', table: t, watermark: id}\n"
        "  sla: {freshness: 24h, volume: 0.3}\n"
    )
    assert spec.data is not None and spec.data.source_name == "data"
    assert spec.data.source.kind == "sql"  # type: ignore[union-attr]
    http = parse_spec("project: p\ndata:\n  source: {url: 'https://x/api', records: items}\n")
    assert http.data is not None and http.data.source.kind == "http"  # type: ignore[union-attr]
    with pytest.raises(SpecError, match="exactly one of 'table' and 'query'"):
        parse_spec("project: p\ndata:\n  source: {url: 'env:DB', table: t, query: 'SELECT 1'}\n")
    with pytest.raises(SpecError, match="a file source has none"):
        parse_spec("project: p\ndata:\n  source: data.csv\n  sla: {freshness: 1h}\n")
    with pytest.raises(SpecError, match="unknown key"):
        parse_spec("project: p\ndata:\n  source: {url: 'env:DB', tabel: t}\n")
