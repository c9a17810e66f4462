"""Servers for the serving tests: real uvicorn servers on 127.0.0.1 (in a thread, or in a
subprocess where a signal must be sent)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from opsloop.serve import ServerConfig, create_app, uvicorn_config
from tests.serve.models import churn_model

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    """A running server: its base URL, port and app state."""

    url: str
    port: int
    app: Any
    server: uvicorn.Server

    @property
    def state(self) -> Any:
        return self.app.state.server


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def run_server(config: ServerConfig, *, timeout: float = 30.0) -> Iterator[Running]:
    """Run the app under uvicorn in a thread, on a free port; stop it on exit."""
    app = create_app(config)
    server = uvicorn.Server(uvicorn_config(config, app))
    sock = _bound_socket()
    port = sock.getsockname()[1]
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced by the test below
            errors.append(exc)

    thread = threading.Thread(target=target, name="opsloop-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if errors or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"server did not start: {errors}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("server did not start in time")
        time.sleep(0.02)
    try:
        yield Running(f"http://127.0.0.1:{port}", port, app, server)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


@contextlib.contextmanager
def server_process(
    *args: str, timeout: float = 60.0
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``tests/serve/serverproc.py ARGS`` in a subprocess; yields it and its URL."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.serve.serverproc", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise RuntimeError(f"server process did not start: {line!r}\n{err}")
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server process not ready: {proc.communicate()[1]}")
            time.sleep(0.05)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def churn_server() -> Iterator[Running]:
    """One churn model (version 1) with default settings, shared by a module."""

    with run_server(ServerConfig(models=[churn_model("1")], port=0)) as running:
        yield running
