"""``opsloop up`` runs a schedule: new data at the source starts the declared pipeline, and
``opsloop schedules history`` shows the run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from opsloop.context import open_project
from tests.e2e.conftest import opsloop, opsloop_env

PIPELINE = """
import opsloop


@opsloop.step
def count(rows: int) -> dict:
    return {"rows": rows}


@opsloop.pipeline
def refresh(rows: int = 1) -> None:
    count(rows=rows)
"""


@pytest.mark.slow
def test_opsloop_up_runs_a_new_data_schedule(tmp_path: Path) -> None:
    spec = {
        "project": "upsched",
        "pipelines": {"refresh": "pipes:refresh"},
        "data": {"source": "data.csv"},
        "schedules": {
            "on-data": {
                "new_data": True,
                "check_every": "1s",
                "run": "refresh",
                "params": {"rows": 2},
            }
        },
    }
    (tmp_path / "opsloop.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "pipes.py").write_text(PIPELINE)
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    up = subprocess.Popen(
        [sys.executable, "-m", "opsloop", "up", "--interval", "1", "--log-format", "json"],
        cwd=tmp_path,
        env=opsloop_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        # The first pass takes the source's bearings; then the data changes.
        seen = []
        while not any('"pass": 1' in line for line in seen):
            line = up.stdout.readline()
            assert line, "".join(seen)
            seen.append(line)
        (tmp_path / "data.csv").write_text("a,b\n1,2\n3,4\n")
        deadline = time.monotonic() + 120
        watcher = open_project(tmp_path)
        try:
            while time.monotonic() < deadline:
                runs = watcher.store.schedules.history("on-data")
                if runs and runs[0].status != "running":
                    break
                time.sleep(0.5)
        finally:
            watcher.close()
        assert [(r.trigger, r.status) for r in runs] == [("new_data", "succeeded")]
    finally:
        up.send_signal(signal.SIGTERM)
        up.communicate(timeout=60)
    history = opsloop("schedules", "history", "on-data", cwd=tmp_path)
    assert "new_data" in history.stdout and "succeeded" in history.stdout, history.stdout
