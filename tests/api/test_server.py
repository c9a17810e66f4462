"""``opsloop server``: a real process serving the API; a taken port and a non-loopback host
are one clear line each."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from opsloop.cli.server import server_command
from opsloop.context import Project
from opsloop.errors import ConfigError, ServingError
from opsloop.tracking import start_run
from tests.ports import free_port
from tests.processes import stop


def _opsloop(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "opsloop", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.slow
def test_server_serves_the_project(project: Project, tmp_path: Path) -> None:
    with start_run("hello", params={"lr": 0.1}, project=project) as run:
        run.log_metric("accuracy", 0.9)
    port = free_port()
    # Started from elsewhere: --project names the folder.
    proc = _opsloop("server", "--port", str(port), "--project", str(project.dir), cwd=tmp_path)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/api/v1" in line, line
        assert f"dashboard: http://127.0.0.1:{port}/" in line, line
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200 and "<h1>Overview</h1>" in page.text
        base = f"http://127.0.0.1:{port}/api/v1"
        runs = httpx.get(f"{base}/runs", timeout=10).json()["items"]
        assert [(r["id"], r["metrics"]) for r in runs] == [(run.id, {"accuracy": 0.9})]
        doc = httpx.get(f"{base}/openapi.json", timeout=10).json()
        assert doc["openapi"].startswith("3.1") and "/api/v1/runs" in doc["paths"]
        r = httpx.get(f"{base}/runs/nope", timeout=10)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    finally:
        err = stop(proc)
    assert proc.returncode in (0, 130), err


def test_a_taken_port_is_one_clear_error(project: Project) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServingError) as caught:
            server_command(port=port, project_dir=project.dir)
    assert str(caught.value) == (
        f"port {port} on 127.0.0.1 is already in use; choose another with --port"
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::"])
def test_a_non_loopback_host_is_refused_in_local_mode(project: Project, host: str) -> None:
    with pytest.raises(ConfigError, match=f"--host {re.escape(host)} is reachable from other"):
        server_command(host=host, port=free_port(), project_dir=project.dir, auth="local")
    with pytest.raises(ConfigError, match="--auth open: choose local or tokens"):
        server_command(host=host, port=free_port(), project_dir=project.dir, auth="open")


@pytest.mark.slow
def test_with_tokens_every_call_acts_as_its_token_holder(project: Project, tmp_path: Path) -> None:
    store = project.store
    store.access.create_identity("ada", roles=["developer"])
    store.access.create_identity("vic", roles=["viewer"])
    ada = store.access.issue_token("ada").token
    vic = store.access.issue_token("vic").token
    with start_run("hello", project=project) as run:
        run.log_metric("accuracy", 0.9)
    port = free_port()
    proc = _opsloop(
        "server", "--port", str(port), "--project", str(project.dir), "--auth", "tokens",
        cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert f"http://127.0.0.1:{port}/api/v1" in proc.stdout.readline()
        assert "access: API tokens" in proc.stdout.readline()
        base = f"http://127.0.0.1:{port}/api/v1"
        anonymous = httpx.get(f"{base}/runs", timeout=10)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].lower().startswith("bearer")
        forged = httpx.get(f"{base}/runs", headers={"authorization": "Bearer opsloop_x"})
        assert forged.status_code == 401
        as_ada = {"authorization": f"Bearer {ada}"}
        assert httpx.get(f"{base}/whoami", headers=as_ada, timeout=10).json()["name"] == "ada"
        assert [r["id"] for r in httpx.get(f"{base}/runs", headers=as_ada).json()["items"]] == [
            run.id
        ]
        # A viewer reads, and is refused a protected alias move by its role, not by chance.
        as_vic = {"authorization": f"Bearer {vic}"}
        assert httpx.get(f"{base}/runs", headers=as_vic, timeout=10).status_code == 200
        paths = httpx.get(f"{base}/openapi.json", headers=as_vic, timeout=10).json()["paths"]
        assert any(p.startswith("/api/v1/models") for p in paths)
    finally:
        err = stop(proc)
    assert proc.returncode in (0, 130), err
