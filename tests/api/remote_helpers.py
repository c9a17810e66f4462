"""A real control-plane server for the remote-mode tests: uvicorn in a thread on 127.0.0.1,
over a real project, counting the requests it answers by path."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response

from opsloop.api import create_app
from opsloop.api.deps import Authenticator
from opsloop.context import Project
from tests.api.live import serving


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
    served = Served("")

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Response:
        served.requests[f"{request.method} {request.url.path}"] += 1
        response: Response = await call_next(request)
        return response

    with serving(app, timeout=timeout) as url:
        served.url = url
        yield served
