"""``opsloop server``: the control plane (REST API) over the project's store, artifact store
and Git repository."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Annotated

import typer

from opsloop.cli._common import console, project

EXAMPLES = """\
Examples:

  opsloop server                      # http://127.0.0.1:8700/api/v1
  opsloop server --port 9000 --project ../churn
  curl -s http://127.0.0.1:8700/api/v1/runs?limit=5
"""


def server_command(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", metavar="PORT", help="Port.")] = 8700,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project",
            metavar="DIR",
            help="Project folder (default: found from the working directory).",
        ),
    ] = None,
) -> None:
    """Serve the control-plane REST API (/api/v1, its OpenAPI document at
    /api/v1/openapi.json) until Ctrl-C.

    Local single-user mode: every caller acts as you, so the server only listens on this
    machine (a loopback address).
    """
    # Lazy imports (noqa: PLC0415) of uvicorn, the API and the server helpers: they load with
    # this command, not with every CLI call; a refused host is told before the heavy ones.
    from opsloop.errors import ConfigError  # noqa: PLC0415
    from opsloop.serve.auth import is_loopback  # noqa: PLC0415

    if not is_loopback(host):
        raise ConfigError(
            f"--host {host} is reachable from other machines, and the control plane has no "
            "token authentication in local single-user mode: every caller would act as you",
            hint="listen on 127.0.0.1 (the default), or reach it through an SSH tunnel",
        )

    import uvicorn  # noqa: PLC0415

    from opsloop.api import create_app  # noqa: PLC0415
    from opsloop.serve.server import bind_socket  # noqa: PLC0415

    if project_dir is not None:
        from opsloop.context import find_project, set_current_project  # noqa: PLC0415

        proj = find_project(project_dir)
        set_current_project(proj)
    else:
        proj = project()
    sock = bind_socket(host, port, advice="choose another with --port")
    bound_host, bound_port = sock.getsockname()[:2]
    where = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
    url = f"http://{where}:{bound_port}/api/v1"
    app = create_app(proj)
    config = uvicorn.Config(
        app, lifespan="off", access_log=False, log_level="warning", timeout_graceful_shutdown=10
    )

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            console.print(f"opsloop control plane of {proj.name} at {url}  (docs: {url}/docs)")

    try:
        # uvicorn exits (SystemExit) when startup fails; Ctrl-C ends it cleanly.
        with contextlib.suppress(SystemExit, KeyboardInterrupt):
            _Server(config).run(sockets=[sock])
    finally:
        sock.close()
        proj.close()
