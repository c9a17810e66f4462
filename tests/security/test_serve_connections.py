"""Connection exhaustion against a real server process: one client holding thousands of
idle connections neither starves other clients nor silences the health endpoints."""

from __future__ import annotations

import contextlib
import errno
import resource
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.serve.conftest import server_process

BODY = {"instances": [[30, 61.5, "paris", True]]}


@pytest.fixture(autouse=True)
def _enough_file_descriptors() -> None:
    # Thousands of sockets on each side; the server process inherits the raised limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@contextlib.contextmanager
def idle_connections(port: int, count: int, source: str = "127.0.0.2") -> Iterator[list]:
    """``count`` connections from ``source`` that never send a byte."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.bind((source, 0))
            err = sock.connect_ex(("127.0.0.1", port))
            assert err in (0, errno.EINPROGRESS), errno.errorcode.get(err)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset by the server, or never connected
        return True


def _wait_closed(socks: list[socket.socket], at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        closed = sum(map(_closed, socks))
        if closed >= at_least or time.monotonic() > deadline:
            return closed
        time.sleep(0.1)


def test_one_client_cannot_hold_every_connection() -> None:
    args = ("--max-per-client", "50", "--limit-concurrency", "1000", "--header-timeout", "2")
    with server_process(*args) as (_, url), httpx.Client(base_url=url, timeout=5) as client:
        port = int(url.rsplit(":", 1)[1])
        with idle_connections(port, 1500) as socks:
            # Beyond its 50, the attacker's connections are reset as they are accepted.
            assert _wait_closed(socks, 1450, timeout=5) >= 1450
            for _ in range(5):
                start = time.perf_counter()
                assert client.get("/v2/health/ready").status_code == 200
                assert client.post("/invocations", json=BODY).status_code == 200
                assert time.perf_counter() - start < 1.0
            # The 50 it kept are idle: closed at the header deadline.
            assert _wait_closed(socks, 1500, timeout=5) == 1500


def test_health_answers_past_the_concurrency_limit() -> None:
    args = ("--max-per-client", "1000", "--limit-concurrency", "100", "--header-timeout", "3")
    with server_process(*args) as (_, url), httpx.Client(base_url=url, timeout=5) as client:
        port = int(url.rsplit(":", 1)[1])
        close = {"connection": "close"}
        with idle_connections(port, 150):
            # Once the server has accepted them, the limit is reached ...
            assert _status_within(client, 503, close, timeout=5)
            for path in ("/v2/health/ready", "/v2/health/live", "/ping", "/health"):
                # ... yet an orchestrator still sees a live, ready server.
                assert client.get(path, headers=close).status_code == 200, path
            # Idle connections are closed at the header deadline (3 s), and the server is back.
            assert _status_within(client, 200, close, timeout=8)


def _status_within(client: httpx.Client, status: int, headers: dict, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.post("/invocations", json=BODY, headers=headers).status_code == status:
            return True
        time.sleep(0.1)
    return False
