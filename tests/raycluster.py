"""A real two-node Ray cluster on this machine, one per test module (the Ray tests are one
module, tests/e2e/test_ray.py, so that one worker of a parallel test run starts it).

``ray start --head`` and ``ray start --address`` run in a process group of their own, each
with one CPU, a 100 MB object store and no dashboard, in a temporary folder; the test
process connects as the driver. The fixture stops both nodes by their process groups (never
``ray stop``, which stops every Ray process of the machine).

The tests run whenever ``ray`` is installed (``OPSLOOP_RAY_TESTS=0`` leaves them out); with
``OPSLOOP_REQUIRE_RAY=1`` (CI) a missing ``ray`` fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.ports import free_port

SRC = Path(__file__).resolve().parent.parent / "src"
STARTUP_TIMEOUT_S = 180.0


def require_ray() -> None:
    """Skip the Ray tests when ``ray`` is missing (CI sets ``OPSLOOP_REQUIRE_RAY=1``, where
    that fails instead) or when ``OPSLOOP_RAY_TESTS=0`` leaves them out."""
    required = os.environ.get("OPSLOOP_REQUIRE_RAY") == "1"
    if not required and os.environ.get("OPSLOOP_RAY_TESTS") == "0":
        pytest.skip("OPSLOOP_RAY_TESTS=0 leaves the Ray cluster tests out")
    if importlib.util.find_spec("ray") is not None:
        return
    reason = "ray is not installed (pip install 'opsloop[ray]')"
    if required:
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass(frozen=True)
class RayCluster:
    """A running local cluster the test process is connected to."""

    address: str
    node_ids: tuple[str, ...]
    env: dict[str, str]


def _ray_start() -> list[str]:
    """Ray's ``ray start`` command, patient with a slow node (see tests/ray_start.py)."""
    return [sys.executable, str(Path(__file__).with_name("ray_start.py")), "start"]


def _port(taken: set[int]) -> int:
    """A free port none of the cluster's other components was given (two draws of a free
    port can be the same one: Ray then refuses to start the node)."""
    port = free_port()
    while port in taken:
        port = free_port()
    taken.add(port)
    return port


def _node_args(temp: Path, taken: set[int]) -> list[str]:
    # Every port a node listens on is a free one: Ray's fixed defaults (52365 for the
    # dashboard agent, 8085 for metrics …) collide with another cluster on the machine, or
    # with an agent a killed cluster left behind, and the node then never starts.
    ports = [
        f"--{name}={_port(taken)}"
        for name in (
            "node-manager-port",
            "object-manager-port",
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "runtime-env-agent-port",
            "metrics-export-port",
        )
    ]
    return [
        *ports,
        "--num-cpus=1",
        "--object-store-memory=100000000",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
        "--block",
    ]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Every process the node started, also one that left the process group (Ray's agents
    # must not outlive the test, holding ports and memory).
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
        break
    # The group may outlive its leader for a moment.
    time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for child in family:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(family, timeout=10)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """Two Ray nodes of one CPU each; the test process is connected as the driver."""
    require_ray()
    import ray  # noqa: PLC0415 - only when the tests run

    if ray.is_initialized():
        ray.shutdown()
    temp = Path(tempfile.mkdtemp(prefix="oray-"))  # short: Ray's socket paths must fit
    taken: set[int] = set()
    port = _port(taken)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        ),
        "RAY_USAGE_STATS_ENABLED": "0",
        # On a busy machine the Python agents and workers of a node start slowly; Ray's
        # defaults (seconds) would fail the node or the task.
        "RAY_agent_register_timeout_ms": "180000",
        "RAY_worker_register_timeout_seconds": "180",
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        head = [
            *_ray_start(),
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            "--no-monitor",
            f"--dashboard-port={_port(taken)}",
            *_node_args(temp, taken),
        ]
        procs.append(_start_node(head, env, temp / "head.log"))
        address = f"127.0.0.1:{port}"
        worker = [*_ray_start(), f"--address={address}", *_node_args(temp, taken)]
        procs.append(_start_node(worker, env, temp / "node.log"))
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the second Ray node did not join")
            time.sleep(0.5)
        nodes = tuple(n["NodeID"] for n in ray.nodes() if n["Alive"])
        yield RayCluster(address=address, node_ids=nodes, env=env)
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


def _start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``ray start … --block`` in a process group of its own, once it says its node runs.

    On a busy machine a node can fail to start in Ray's fixed times: its raylet gives up on
    registering (30 s) or aborts when its dashboard agent has not written its port within
    about 15 s (a constant in Ray's raylet, no setting changes it). Such a node is stopped
    and started again, up to four times, each once the machine had a moment.
    """
    temp = log.parent
    for attempt in range(4):
        crashed_before = _raylet_crashes(temp)
        with log.open("wb") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=out, start_new_session=True)
        try:
            _wait_started(proc, log, temp, crashed_before)
            return proc
        except _RetryableStartError:
            _stop(proc)
            if attempt == 3:
                raise
            time.sleep(5)
        except BaseException:
            _stop(proc)  # failed or interrupted: leave no node behind
            raise
    raise AssertionError("unreachable")


class _RetryableStartError(RuntimeError):
    """The node did not start for a reason that a second try on a calmer machine cures."""


def _raylet_crashes(temp: Path) -> int:
    """How many raylets of the cluster's sessions aborted on startup so far."""
    count = 0
    for err in temp.glob("session_*/logs/raylet*.err"):
        count += err.read_text(errors="replace").count("Timed out waiting for file")
    return count


def _wait_started(
    proc: subprocess.Popen[bytes], log: Path, temp: Path, crashed_before: int
) -> None:
    """Wait for ``ray start --block`` to say that its node runs."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Ray runtime started" in text:
            return
        if _raylet_crashes(temp) > crashed_before:
            raise _RetryableStartError(f"the node's raylet aborted on startup: {text[-1000:]}")
        if proc.poll() is not None:
            if "timed out during startup" in text:
                raise _RetryableStartError(f"ray start timed out: {text[-2000:]}")
            raise RuntimeError(f"ray start exited: {text[-2000:]}")
        time.sleep(0.3)
    raise _RetryableStartError(f"ray start did not finish: {text[-2000:]}")
