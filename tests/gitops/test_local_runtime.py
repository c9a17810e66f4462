"""The local runtime with real processes (a tiny stand-in server, for speed): start, health,
self-heal, in-place and replacing updates, port conflicts, stop; and the runtime contract
(opsloop.testing.runtimes) on every built-in runtime."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from opsloop.context import Project
from opsloop.errors import GitOpsError
from opsloop.gitops.runtime import Runtime, available_runtimes
from opsloop.gitops.runtime.kubernetes import KubernetesRuntime
from opsloop.gitops.runtime.local import LocalRuntime, exit_reason
from opsloop.gitops.types import HealthStatus, RuntimeSpec
from opsloop.testing import yield_runtime_checks
from tests.gitops.conftest import TINY_SERVER, kill
from tests.ports import free_port


def spec(name: str = "web", port: int | None = None, **kw: object) -> RuntimeSpec:
    data: dict[str, object] = {
        "name": name,
        "model": "churn",
        "version": 1,
        "traffic": {1: 100.0},
        "port": port or free_port(),
    }
    data.update(kw)
    return RuntimeSpec.model_validate(data)


def test_apply_starts_a_ready_server_and_stop_ends_it(tiny_runtime: LocalRuntime) -> None:
    s = spec(traffic={1: 80.0, 2: 20.0}, shadow=[3])
    live = tiny_runtime.apply("web", s)
    assert live.running == 1 and live.endpoints == [f"http://127.0.0.1:{s.port}"]
    assert httpx.get(f"http://127.0.0.1:{s.port}/v2/health/ready").status_code == 200
    [routing] = tiny_runtime.live_state()["web"].routing
    assert routing is not None and routing.normalized() == s.routing.normalized()
    health = tiny_runtime.health("web")
    assert health.status == HealthStatus.HEALTHY
    assert health.reason == f"1/1 replica ready on 127.0.0.1:{s.port}"
    [replica] = tiny_runtime._read().deployments["web"].replicas
    command = " ".join(replica.command)
    assert "--deployment web --traffic churn=1:80,2:20 --shadow churn=3" in command
    assert (tiny_runtime.dir / "local.json").is_file()

    tiny_runtime.stop("web")
    assert not psutil.pid_exists(replica.pid) or not LocalRuntime.alive(replica)
    assert tiny_runtime.live_state() == {}
    assert tiny_runtime.health("web").status == HealthStatus.MISSING


def test_tokens_named_by_the_document_reach_the_server_and_the_runtime_uses_them(
    tiny_runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "admin").write_text("tiny-admin-token-0123456789\n")
    s = spec(auth={"OPSLOOP_ADMIN_TOKEN": f"file:{tmp_path / 'admin'}"})
    tiny_runtime.apply("web", s)
    url = f"http://127.0.0.1:{s.port}/v1/admin/models"
    # The server got the token from its environment: it refuses an admin call without it ...
    assert httpx.get(url).status_code == 401
    # ... and the runtime's own calls carry it, so it reads the routing table.
    [routing] = tiny_runtime.live_state()["web"].routing
    assert routing is not None and routing.normalized() == s.routing.normalized()
    [replica] = tiny_runtime._read().deployments["web"].replicas
    assert "tiny-admin-token" not in " ".join(replica.command)
    assert "tiny-admin-token" not in tiny_runtime.state_path.read_text()

    monkeypatch.delenv("WEB_TOKEN", raising=False)
    missing = spec(name="web2", auth={"OPSLOOP_SERVE_TOKEN": "env:WEB_TOKEN"})
    with pytest.raises(GitOpsError, match=r"deployment 'web2': spec\.auth.*WEB_TOKEN"):
        tiny_runtime.apply("web2", missing)


def test_a_killed_server_is_degraded_and_apply_brings_it_back(
    tiny_runtime: LocalRuntime,
) -> None:
    s = spec()
    tiny_runtime.apply("web", s)
    [old] = tiny_runtime._read().deployments["web"].replicas
    kill(old.pid)
    live = tiny_runtime.live_state()["web"]
    assert live.running == 0
    health = tiny_runtime.health("web")
    assert health.status == HealthStatus.DEGRADED
    assert f"replica 0 (pid {old.pid}, port {s.port}) exited" in health.reason
    # The cause, not the start-up line its log ends with.
    assert "killed by a signal or out of memory" in health.reason
    assert "tiny server for" not in health.reason
    tiny_runtime.apply("web", s)
    [new] = tiny_runtime._read().deployments["web"].replicas
    assert new.pid != old.pid and new.port == s.port
    assert tiny_runtime.health("web").status == HealthStatus.HEALTHY


def test_a_foreign_process_on_the_port_is_a_clear_error(tiny_runtime: LocalRuntime) -> None:
    s = spec()
    tiny_runtime.apply("web", s)
    before = tiny_runtime._read()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(GitOpsError, match=f"port {taken} on 127.0.0.1 is in use"):
            tiny_runtime.apply("web", s.model_copy(update={"port": taken}))
        with pytest.raises(GitOpsError, match=f"port {taken}"):
            tiny_runtime.apply("other", spec("other", port=taken))
    # Nothing changed: the same process still serves the old spec.
    assert tiny_runtime._read() == before
    assert tiny_runtime.health("web").status == HealthStatus.HEALTHY
    assert "other" not in tiny_runtime.live_state()


def test_a_port_held_by_another_deployment_is_named(tiny_runtime: LocalRuntime) -> None:
    s = spec()
    tiny_runtime.apply("web", s)
    with pytest.raises(GitOpsError, match="in use by deployment 'web'"):
        tiny_runtime.apply("api", spec("api", port=s.port))


def test_a_new_port_starts_beside_the_old_then_stops_it(tiny_runtime: LocalRuntime) -> None:
    s = spec()
    tiny_runtime.apply("web", s)
    [old] = tiny_runtime._read().deployments["web"].replicas
    moved = s.model_copy(update={"port": free_port()})
    tiny_runtime.apply("web", moved)
    [new] = tiny_runtime._read().deployments["web"].replicas
    assert new.port == moved.port and new.started_at > old.started_at
    assert not LocalRuntime.alive(old)


def test_a_routing_change_the_server_refuses_restarts_it(tiny_runtime: LocalRuntime) -> None:
    s = spec()
    tiny_runtime.apply("web", s)
    [old] = tiny_runtime._read().deployments["web"].replicas
    changed = s.model_copy(update={"traffic": {1: 50.0, 2: 50.0}})
    live = tiny_runtime.apply("web", changed)
    [new] = tiny_runtime._read().deployments["web"].replicas
    assert new.pid != old.pid and not LocalRuntime.alive(old)
    assert live.routing[0] is not None
    assert live.routing[0].normalized() == changed.routing.normalized()


def test_replicas_scale_and_zero_is_suspended(tiny_runtime: LocalRuntime) -> None:
    base = free_port()
    s = spec(port=base, replicas=2)
    if not (tiny_runtime.port_free(base + 1)):
        pytest.skip("the port after the free one is taken")
    live = tiny_runtime.apply("web", s)
    assert live.running == 2
    assert [r.port for r in tiny_runtime._read().deployments["web"].replicas] == [base, base + 1]
    assert tiny_runtime.health("web").reason.startswith("2/2 replicas ready")
    tiny_runtime.apply("web", s.model_copy(update={"replicas": 0}))
    assert tiny_runtime.live_state()["web"].running == 0
    assert tiny_runtime.health("web").status == HealthStatus.SUSPENDED


def test_a_server_that_fails_to_start_is_reported_with_its_log(
    tiny_runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(tiny_runtime.env, "TINY_FAIL", "1")
    with pytest.raises(GitOpsError, match="exited before it was ready: error: model failed"):
        tiny_runtime.apply("web", spec())
    assert "web" not in tiny_runtime.live_state()


def runtime_factories(
    tiny_runtime: LocalRuntime, tmp_path: Path
) -> dict[str, tuple[Callable[[], Runtime], set[HealthStatus]]]:
    """Each built-in runtime: new objects over one place, and its health once applied."""

    def local() -> Runtime:
        return LocalRuntime(
            tiny_runtime.project_dir,
            server_command=tiny_runtime.server_command,
            ready_timeout_s=20,
            stop_timeout_s=5,
        )

    def kubernetes() -> Runtime:
        return KubernetesRuntime(tmp_path / "k8s")

    # The local runtime waits for its servers; manifests' health is the cluster's to say.
    return {
        "local": (local, {HealthStatus.HEALTHY}),
        "kubernetes": (kubernetes, {HealthStatus.UNKNOWN}),
    }


@pytest.mark.parametrize("name", available_runtimes())
@pytest.mark.parametrize("check", [c.name for c in yield_runtime_checks()])
def test_runtime_contract(
    tiny_runtime: LocalRuntime, tmp_path: Path, name: str, check: str
) -> None:
    make, up = runtime_factories(tiny_runtime, tmp_path)[name]
    [one] = [c for c in yield_runtime_checks(up=up) if c.name == check]
    one(make)


def test_a_port_taken_after_the_check_is_the_same_one_line(repo_project: Project) -> None:
    class Racy(LocalRuntime):
        def _check_ports(self, *args: object) -> None:
            # As if another process bound the port between the check and the server's bind.
            pass

    runtime = Racy(
        repo_project.dir,
        server_command=[sys.executable, str(TINY_SERVER)],
        ready_timeout_s=20,
        stop_timeout_s=5,
    )
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = busy.getsockname()[1]
            with pytest.raises(GitOpsError) as info:
                runtime.apply("web", spec(port=taken))
        message = str(info.value)
        said = f"deployment 'web': port {taken} on 127.0.0.1 is in use by another process"
        try:
            psutil.net_connections(kind="tcp")
        except psutil.AccessDenied:
            # A system that lists sockets only to root (macOS): the line names no process.
            assert message == said
        else:
            # The one line names the process that holds the port: here, this test's.
            assert message.startswith(f"{said} (pid {os.getpid()}: "), message
        assert "\n" not in message
        assert info.value.hint == "free the port or change spec.port in the deployment document"
        assert "web" not in runtime.live_state()
    finally:
        runtime.stop_all()


def test_a_port_let_go_within_the_wait_is_started_on(tiny_runtime: LocalRuntime) -> None:
    # A server that just died, or another process trying the port, holds it for a moment:
    # the start waits for it (up to port_wait_s) instead of failing the deployment.
    busy = socket.socket()
    busy.bind(("127.0.0.1", free_port()))
    busy.listen()
    port = busy.getsockname()[1]
    timer = threading.Timer(0.5, busy.close)
    timer.start()
    try:
        tiny_runtime.port_wait_s = 5.0
        live = tiny_runtime.apply("web", spec(port=port))
        assert live.running == 1
        assert [r.port for r in tiny_runtime._read().deployments["web"].replicas] == [port]
    finally:
        timer.cancel()
        busy.close()


def test_a_port_held_past_the_wait_fails_after_it(tiny_runtime: LocalRuntime) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", free_port()))
        busy.listen()
        port = busy.getsockname()[1]
        tiny_runtime.port_wait_s = 0.5
        started = time.monotonic()
        with pytest.raises(GitOpsError, match=f"port {port} on 127.0.0.1 is in use by another"):
            tiny_runtime.apply("web", spec(port=port))
        assert 0.5 <= time.monotonic() - started < 5
    assert "web" not in tiny_runtime.live_state()


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (
            ["serving models:/churn/1 on http://127.0.0.1:8601"],
            "its log shows no error: killed by a signal or out of memory?",
        ),
        (
            [
                "serving models:/churn/1 on http://127.0.0.1:8601",
                "error: the server could not start: model 'churn' failed its warm-up",
                "hint: see the log",
            ],
            "error: the server could not start: model 'churn' failed its warm-up",
        ),
        (
            ["Traceback (most recent call last):", '  File "x.py", line 1', "MemoryError"],
            "MemoryError",
        ),
        (
            ["Traceback (most recent call last):", "ValueError: bad input: 3"],
            "ValueError: bad input: 3",
        ),
        (
            ["serving models:/churn/1 on http://127.0.0.1:8601", "stopped serving models:/churn/1"],
            "it was stopped (SIGTERM or Ctrl-C)",
        ),
    ],
)
def test_the_exit_reason_is_read_from_the_last_start(
    tmp_path: Path, lines: list[str], reason: str
) -> None:
    log = tmp_path / "web-0.log"
    earlier = ["--- 2026-01-01T00:00:00 starting: opsloop serve", "error: an earlier run failed"]
    log.write_text("\n".join([*earlier, "--- 2026-01-02T00:00:00 starting: opsloop serve", *lines]))
    assert exit_reason(log) == reason
    assert exit_reason(tmp_path / "missing.log") == "no log"
