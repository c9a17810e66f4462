"""``opsloop serve`` as a user runs it: a real process, its lines on stderr, its exit."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from opsloop.errors import ServingError
from opsloop.serve.server import bind_socket

REPO = Path(__file__).resolve().parents[2]
ARGS = ["--loader", "tests.serve.models:load", "--prediction-log", "none", "--feedback-log", "none"]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    for var in ("OPSLOOP_SERVE_TOKEN", "OPSLOOP_ADMIN_TOKEN"):
        env.pop(var, None)
    return env


def test_a_busy_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "opsloop", "serve", "test:churn/1", "--port", str(port), *ARGS],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert out.returncode == 1
    assert out.stdout == ""
    # No false "serving … on", no uvicorn lines, no traceback: one line that says what to do.
    assert out.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use; pick another with --port PORT"
    ]


def test_serving_is_said_once_it_listens_and_stopping_when_it_stops(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsloop", "serve", "test:churn/1", "--port", "0", *ARGS],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.fullmatch(r"serving test:churn/1 on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match is not None, line + (proc.stderr.read() if proc.poll() is not None else "")
        # Port 0 asked the kernel for a port: the line names the one it gave.
        assert int(match[2]) > 0
        deadline = time.monotonic() + 30
        while httpx.get(f"{match[1]}/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    # uvicorn ends by the signal it was stopped with, as a process should.
    assert proc.returncode == -signal.SIGTERM
    assert err.splitlines() == ["stopped serving test:churn/1"]


def test_bind_socket_names_the_port_and_the_way_out() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            bind_socket("127.0.0.1", port, advice="choose another port")
        except ServingError as exc:
            assert exc.message == f"port {port} on 127.0.0.1 is already in use; choose another port"
        else:
            raise AssertionError("a taken port was bound")
    with bind_socket("127.0.0.1", 0) as sock:
        assert sock.getsockname()[1] > 0
    try:
        bind_socket("no-such-host.invalid", 80)
    except ServingError as exc:
        assert exc.message.startswith("cannot listen on no-such-host.invalid:80: ")
    else:
        raise AssertionError("an unknown host was bound")
