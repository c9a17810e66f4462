"""The control plane under a real uvicorn server on 127.0.0.1, in a thread."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


@contextlib.contextmanager
def serving(app: Any, *, timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` on a free port of 127.0.0.1; yields its base URL, stops it on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # OPSLOOP_TEST_LOG=info shows the server's log and its access log while debugging a test.
    level = os.environ.get("OPSLOOP_TEST_LOG", "warning")
    config = uvicorn.Config(
        app, log_level=level, access_log=bool(os.environ.get("OPSLOOP_TEST_LOG")), lifespan="off"
    )
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=target, name="opsloop-test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not server.started:
            if errors or not thread.is_alive():
                raise RuntimeError(f"server did not start: {errors}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in time")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
