"""The README's Alertmanager set-up, command by command: a developer service account, its
token, ``opsloop server --auth tokens``, and an Alertmanager delivery that opens an incident
the CLI then lists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from opsloop.context import Project
from tests.api.test_alert_webhook import am_alert, payload
from tests.ports import free_port
from tests.processes import stop


def _opsloop(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsloop", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


@pytest.mark.slow
def test_an_alertmanager_delivery_through_the_team_server_opens_an_incident(
    project: Project, tmp_path: Path
) -> None:
    here = project.dir
    added = _opsloop("users", "add", "alertmanager", "--service", "--role", "developer", cwd=here)
    assert added.returncode == 0, added.stderr
    created = _opsloop("tokens", "create", "alertmanager", cwd=here)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token and "\n" not in token
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsloop", "server", "--port", str(port), "--auth", "tokens"],
        cwd=here,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        assert f"http://127.0.0.1:{port}/api/v1" in proc.stdout.readline()
        url = f"http://127.0.0.1:{port}/api/v1/alerts/alertmanager"
        body = payload(
            am_alert("KubePodCrashLooping", "2026-03-01T10:00:00Z", deployment="churn-prod"),
            am_alert("HighErrorRate", "2026-03-01T10:00:40Z", deployment="churn-prod"),
        )
        anonymous = httpx.post(url, json=body, timeout=30)
        assert anonymous.status_code == 401
        sent = httpx.post(url, json=body, headers={"authorization": f"Bearer {token}"}, timeout=30)
        assert sent.status_code == 200, sent.text
        opened = sent.json()["opened"]
        assert len(opened) == 1
    finally:
        err = stop(proc)
    assert proc.returncode in (0, 130), err
    listed = _opsloop("incidents", "list", cwd=here)
    assert listed.returncode == 0, listed.stderr
    assert str(opened[0]) in listed.stdout and "open" in listed.stdout
    events = project.store.events.list(kind="alert.*")
    assert events and {e.actor for e in events} == {"alertmanager"}
