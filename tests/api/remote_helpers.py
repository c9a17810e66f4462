"""A real control-plane server for the remote-mode tests: uvicorn in a thread on 127.0.0.1,
over a real project, counting the requests it answers by path."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import Request, Response

from opsloop.api import create_app
from opsloop.api.deps import Authenticator
from opsloop.context import Project


@dataclass
class Served:
    """A running server: its URL, and the requests it answered by method and path."""

    url: str
    requests: Counter[str] = field(default_factory=Counter)

    def count(self, prefix: str) -> int:
        """Requests whose ``METHOD PATH`` starts with ``prefix``."""
        return sum(n for key, n in self.requests.items() if key.startswith(prefix))


@contextlib.contextmanager
def serve(
    project: Project, *, authenticate: Authenticator | None = None, timeout: float = 30.0
) -> Iterator[Served]:
    """Run ``create_app(project)`` under uvicorn in a thread, on a free port."""
    app = create_app(project, authenticate=authenticate)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    served = Served(f"http://127.0.0.1:{sock.getsockname()[1]}")

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Response:
        served.requests[f"{request.method} {request.url.path}"] += 1
        response: Response = await call_next(request)
        return response

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=target, name="opsloop-test-api", daemon=True)
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
        yield served
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
