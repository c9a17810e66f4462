"""Shared fixtures for the AIOps tests."""

from __future__ import annotations

import json
import os
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

SLICE = Path(__file__).parent / "data" / "nab_slice"


@pytest.fixture
def nab_slice() -> Path:
    """The small NAB slice shipped with the tests."""
    return SLICE


@pytest.fixture
def nab_full() -> Path:
    """The full NAB subset named by OPSLOOP_NAB_DIR (skips when it is not set)."""
    value = os.environ.get("OPSLOOP_NAB_DIR")
    if not value:
        pytest.skip("OPSLOOP_NAB_DIR is not set; point it at the NAB subset folder to run this")
    path = Path(value)
    if not (path / "data").is_dir():
        pytest.skip(f"OPSLOOP_NAB_DIR={value} is not an NAB folder (no data/ inside)")
    return path


def install_distribution(site: Path, name: str, entry_points: str, code: str) -> None:
    """A distribution as pip leaves it in ``site``: one module and a ``*.dist-info`` folder
    with its ``entry_points.txt`` (``site`` must then be put on ``sys.path``)."""
    module = name.replace("-", "_")
    info = site / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (site / f"{module}.py").write_text(textwrap.dedent(code))


@dataclass
class Hook:
    """What the webhook server received, and the status it answers with."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def hook() -> Iterator[tuple[str, Hook]]:
    """A webhook server on 127.0.0.1: its URL (with a secret-looking path) and what it got."""
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.bodies.append(json.loads(body))
            state.headers.append(dict(self.headers))
            state.paths.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"nothing")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/T0-secret", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
