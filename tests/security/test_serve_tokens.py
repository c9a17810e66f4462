"""Tokens never travel as command-line arguments: the local GitOps runtime hands them to its
servers through the environment (nothing in the process list) and uses the admin token for
its own zero-downtime changes."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import httpx
import psutil

from opsloop.gitops.runtime.local import LocalRuntime
from opsloop.gitops.types import RuntimeSpec

REPO = Path(__file__).resolve().parents[2]
SERVE = "serve-token-for-the-runtime-0123"
ADMIN = "admin-token-for-the-runtime-4567"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_local_runtime_servers_get_tokens_by_environment_only(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "opsloop.yaml").write_text("project: tokens\n")
    runtime = LocalRuntime(
        project,
        server_command=[
            sys.executable,
            "-m",
            "opsloop",
            "serve",
            "--loader",
            "tests.serve.models:load",
            "--prediction-log",
            "none",
            "--feedback-log",
            "none",
        ],
        env={"PYTHONPATH": str(REPO), "OPSLOOP_SERVE_TOKEN": SERVE, "OPSLOOP_ADMIN_TOKEN": ADMIN},
        ready_timeout_s=90,
        stop_timeout_s=10,
    )
    port = _free_port()
    spec = RuntimeSpec(name="web", model="churn", version=1, traffic={1: 100.0}, port=port)
    try:
        runtime.apply("web", spec)
        [replica] = runtime._read().deployments["web"].replicas
        server = psutil.Process(replica.pid)
        visible = " ".join(server.cmdline())
        assert SERVE not in visible and ADMIN not in visible
        assert "--admin-token" not in visible
        assert server.environ()["OPSLOOP_ADMIN_TOKEN"] == ADMIN
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/v1/admin/models").status_code == 401
        assert (
            httpx.post(f"{url}/invocations", json={"instances": [[1, 2.0, "a", True]]}).status_code
            == 401
        )

        # A canary is a change in place through the admin endpoint, with the admin token:
        # the same process keeps serving.
        canary = spec.model_copy(update={"traffic": {1: 90.0, 2: 10.0}})
        runtime.apply("web", canary)
        [after] = runtime._read().deployments["web"].replicas
        assert after.pid == replica.pid
        [routing] = runtime.live_state()["web"].routing
        assert routing is not None and routing.normalized() == canary.routing.normalized()
        assert SERVE not in " ".join(after.command) and ADMIN not in Path(after.log).read_text()
    finally:
        runtime.stop_all()
