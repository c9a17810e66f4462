"""A process killed with SIGKILL while it logs: its run reads as killed, and at most about one
flush interval of metric points is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.context import Project, open_project

FLUSH_S = 0.5
# Time a write may take on a loaded machine, on top of the flush interval.
SLACK_S = 1.0
REPORT_EVERY = 50

CHILD = textwrap.dedent(
    f"""
    import sys, time, opsloop
    run = opsloop.start_run(name="doomed")
    report = open(sys.argv[1], "w")
    report.write(run.id + "\\n")
    report.flush()
    i = 0
    while True:
        opsloop.log_metric("loss", 1.0 / (i + 1), step=i)
        i += 1
        if i % {REPORT_EVERY} == 0:
            report.write(f"{{i}} {{time.time()}}\\n")
            report.flush()
            time.sleep(0.02)
    """
)


@pytest.fixture
def any_project(store_url: str, tmp_path: Path) -> Iterator[Project]:
    os.environ["OPSLOOP_STORE_URL"] = store_url
    try:
        (tmp_path / "opsloop.yaml").write_text("project: kill\n")
        proj = open_project(tmp_path)
    finally:
        del os.environ["OPSLOOP_STORE_URL"]
    try:
        yield proj
    finally:
        proj.close()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_sigkill_loses_at_most_one_flush_interval(any_project: Project, tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    env = {
        **os.environ,
        "OPSLOOP_PROJECT_DIR": str(any_project.dir),
        "OPSLOOP_STORE_URL": any_project.store_url,
        "OPSLOOP_METRIC_FLUSH_S": str(FLUSH_S),
        # Larger than anything logged here: only the timer writes points before the kill.
        "OPSLOOP_METRIC_BUFFER_SIZE": "100000",
    }
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(report)], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lines = _lines(report)
            if len(lines) > 1 and int(lines[-1].split()[0]) >= 8_000:
                break
            assert child.poll() is None, "the child died on its own"
            time.sleep(0.05)
        killed_at = time.time()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    lines = _lines(report)
    run_id = lines[0]
    progress = [(int(n), float(t)) for n, t in (line.split() for line in lines[1:])]
    reported = progress[-1][0]
    logged_before_window = max(
        (n for n, t in progress if t <= killed_at - FLUSH_S - SLACK_S), default=0
    )

    store = any_project.store
    info = store.runs.get(run_id)
    stored = store.runs.count_metric_points(run_id)
    assert info.status == "killed", info
    assert f"process {child.pid}" in (info.error or "")
    assert f"last step stored {stored - 1}" in (info.error or "")
    # Points were written in order, none twice.
    assert [p.step for p in store.runs.metric_history(run_id, "loss")] == list(range(stored))
    assert stored <= reported + REPORT_EVERY
    # Lost: only what was logged within about one flush interval (and a write) of the kill.
    lost, allowed = reported - stored, reported - logged_before_window
    assert lost <= allowed, f"lost {lost} of {reported} points; allowed {allowed}"
    assert store.runs.list(status="running") == []


def test_the_cli_shows_a_killed_run(project: Project) -> None:
    run = project.store.runs.create("doomed", heartbeat=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with project.store.db.write() as s:
        from sqlalchemy import update  # noqa: PLC0415

        from opsloop.store import models as m  # noqa: PLC0415

        s.execute(update(m.Run).where(m.Run.id == run.id).values(pid=gone.pid))
    env = {**os.environ, "OPSLOOP_PROJECT_DIR": str(project.dir), "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, "-m", "opsloop", "runs", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if "doomed" in line)
    assert "killed" in row
    shown = subprocess.run(
        [sys.executable, "-m", "opsloop", "runs", "show", run.id],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "killed" in shown.stdout and f"process {gone.pid}" in shown.stdout
    assert "no metric stored" in shown.stdout
