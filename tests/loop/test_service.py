"""``opsloop up`` as a service, in real processes: structured log lines without a terminal,
a clean stop on SIGTERM and SIGINT, one controller per project, ``opsloop down``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsloop.context import Project
from opsloop.loop.service import loop_info
from tests.gitops.conftest import git

UP = [sys.executable, "-m", "opsloop", "up", "--interval", "0.3", "--monitor-every", "0.3"]


@pytest.fixture
def repo(project: Project) -> Project:
    (project.dir / ".gitignore").write_text(".opsloop/\n")
    git(project.dir, "init", "-q", "-b", "main")
    git(project.dir, "add", "-A")
    git(project.dir, "commit", "-q", "-m", "init")
    return project


def _env(project: Project) -> dict[str, str]:
    return {**os.environ, "OPSLOOP_PROJECT_DIR": str(project.dir)}


def _start(project: Project, log: Path, *args: str) -> subprocess.Popen[str]:
    # stdout is a file: no terminal, as under nohup, systemd or a container.
    with log.open("w") as out:
        return subprocess.Popen(
            [*UP, *args],
            cwd=project.dir,
            env=_env(project),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )


def _records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _wait_for(log: Path, event: str, count: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in _records(log) if r["event"] == event] if log.exists() else []
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"no {count} '{event}' line(s) in {log.read_text()}"
        time.sleep(0.1)


@pytest.fixture
def running(repo: Project, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    log = tmp_path / "up.log"
    proc = _start(repo, log)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_without_a_terminal_it_logs_json_lines_and_stops_cleanly_on_a_signal(
    running: tuple[subprocess.Popen[str], Path], sig: signal.Signals
) -> None:
    proc, log = running
    (start,) = _wait_for(log, "start")
    passes = _wait_for(log, "pass", 3)
    assert start["pid"] == proc.pid
    assert [p["pass"] for p in passes[:3]] == [1, 2, 3]
    assert all("seconds" in p and "started_at" in p for p in passes)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    records = _records(log)
    assert records[-1]["event"] == "stop"
    assert "Traceback" not in err


def test_a_second_up_on_the_same_project_refuses_to_start(
    running: tuple[subprocess.Popen[str], Path], repo: Project, tmp_path: Path
) -> None:
    proc, log = running
    _wait_for(log, "start")
    info = loop_info(repo)
    assert info is not None and info.pid == proc.pid
    second = subprocess.run(
        UP, check=False, cwd=repo.dir, env=_env(repo), capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 1
    assert "already running" in second.stderr and str(proc.pid) in second.stderr
    assert proc.poll() is None


def test_opsloop_down_stops_the_running_loop(
    running: tuple[subprocess.Popen[str], Path], repo: Project
) -> None:
    proc, log = running
    _wait_for(log, "pass")
    down = subprocess.run(
        [sys.executable, "-m", "opsloop", "down"],
        check=False,
        cwd=repo.dir,
        env=_env(repo),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert down.returncode == 0, down.stderr
    assert f"stopped 'opsloop up' (process {proc.pid})" in down.stdout
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert loop_info(repo) is None
    assert _records(log)[-1]["event"] == "stop"


def test_once_runs_one_pass_and_exits(repo: Project, tmp_path: Path) -> None:
    log = tmp_path / "once.log"
    proc = _start(repo, log, "--once")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    events = [r["event"] for r in _records(log)]
    assert events == ["start", "pass", "stop"]
    assert "monitor" in _records(log)[1]
