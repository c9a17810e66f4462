"""A real two-node Ray cluster on this machine, one per test session (the Ray tests are one
module, tests/e2e/test_ray.py, so that one worker of a parallel test run starts it).

``ray start --head`` and ``ray start --address`` run in a process group of their own, each
with one CPU, a 100 MB object store and no dashboard, in a temporary folder; the test
process connects as the driver. The fixture stops both nodes by their process groups (never
``ray stop``, which stops every Ray process of the machine).

Without ray installed the tests that use the fixture skip, unless ``OPSLOOP_REQUIRE_RAY=1``
(set by CI), where they fail.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
STARTUP_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_ray() -> None:
    """Skip (or, under CI, fail) when ray is not installed."""
    if importlib.util.find_spec("ray") is not None:
        return
    reason = "ray is not installed (pip install 'opsloop[ray]')"
    if os.environ.get("OPSLOOP_REQUIRE_RAY") == "1":
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


def _node_args(temp: Path) -> list[str]:
    return [
        "--num-cpus=1",
        "--object-store-memory=100000000",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
        "--block",
    ]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
        # The group may outlive its leader for a moment.
        time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """Two Ray nodes of one CPU each; the test process is connected as the driver."""
    require_ray()
    import ray  # noqa: PLC0415 - only when the tests run

    if ray.is_initialized():
        ray.shutdown()
    temp = Path(tempfile.mkdtemp(prefix="oray-"))  # short: Ray's socket paths must fit
    port = _free_port()
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
            f"--dashboard-port={_free_port()}",
            *_node_args(temp),
        ]
        procs.append(_start_node(head, env, temp / "head.log"))
        address = f"127.0.0.1:{port}"
        worker = [*_ray_start(), f"--address={address}", *_node_args(temp)]
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

    Ray gives a new node's raylet a fixed 30 s to register; on a busy machine that can pass,
    so a node that timed out is started again (up to three times).
    """
    for attempt in range(3):
        with log.open("wb") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=out, start_new_session=True)
        try:
            _wait_started(proc, log)
            return proc
        except RuntimeError:
            _stop(proc)
            if attempt == 2 or "timed out during startup" not in log.read_text(errors="replace"):
                raise
        except BaseException:
            _stop(proc)  # interrupted: leave no node behind
            raise
    raise AssertionError("unreachable")


def _wait_started(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for ``ray start --block`` to say that its node runs."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Ray runtime started" in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited: {text[-2000:]}")
        time.sleep(0.3)
    raise RuntimeError(f"ray start did not finish: {log.read_text(errors='replace')[-2000:]}")
