"""``opsloop server``: the control plane (REST API and the web dashboard) over the project's
store, artifact store and Git repository."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Annotated

import typer

from opsloop.cli._common import console, project

EXAMPLES = """\
Examples:

  opsloop server                      # dashboard http://127.0.0.1:8700/, API /api/v1
  opsloop server --host 0.0.0.0       # a team server: every call needs an API token
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
    auth: Annotated[
        str | None,
        typer.Option(
            "--auth",
            metavar="local|tokens",
            help="local: every caller acts as you (loopback only); tokens: every call needs an "
            "API token (opsloop tokens create USER). Default: local on a loopback address, "
            "tokens on any other.",
        ),
    ] = None,
) -> None:
    """Serve the web dashboard (/), the control-plane REST API (/api/v1, its OpenAPI document
    at /api/v1/openapi.json) and MLflow's tracking API (/api/2.0/mlflow) until Ctrl-C.

    In local single-user mode every caller acts as you, so the server then listens only on
    this machine (a loopback address); with --auth tokens each call acts as the user or
    service account its bearer token was issued to, with that identity's roles.
    """
    # Lazy imports (noqa: PLC0415) of uvicorn, the API and the server helpers: they load with
    # this command, not with every CLI call; a refused host is told before the heavy ones.
    from opsloop.errors import ConfigError  # noqa: PLC0415
    from opsloop.serve.auth import is_loopback  # noqa: PLC0415

    mode = auth or ("local" if is_loopback(host) else "tokens")
    if mode not in ("local", "tokens"):
        raise ConfigError(f"--auth {auth}: choose local or tokens")
    if mode == "local" and not is_loopback(host):
        raise ConfigError(
            f"--host {host} is reachable from other machines, and in local single-user mode "
            "every caller would act as you",
            hint="use --auth tokens (the default off loopback), or listen on 127.0.0.1",
        )

    import uvicorn  # noqa: PLC0415

    from opsloop.serve.server import bind_socket  # noqa: PLC0415
    from opsloop.ui import create_server_app  # noqa: PLC0415

    if project_dir is not None:
        from opsloop.context import find_project, set_current_project  # noqa: PLC0415

        proj = find_project(project_dir)
        set_current_project(proj)
    else:
        proj = project()
    sock = bind_socket(host, port, advice="choose another with --port")
    bound_host, bound_port = sock.getsockname()[:2]
    where = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
    root = f"http://{where}:{bound_port}"
    url = f"{root}/api/v1"
    if mode == "tokens":
        from opsloop.secops.identities import token_authenticator  # noqa: PLC0415

        if not proj.store.access.list_identities():
            console.print(
                "[yellow]no users yet[/yellow]: every call will be refused until an admin "
                "makes one: opsloop users add NAME --role admin && opsloop tokens create NAME"
            )
        app = create_server_app(proj, authenticate=token_authenticator(proj.store))
    else:
        app = create_server_app(proj)
    config = uvicorn.Config(
        app, lifespan="off", access_log=False, log_level="warning", timeout_graceful_shutdown=10
    )

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            console.print(
                f"opsloop control plane of {proj.name} at {url}  (docs: {url}/docs)  "
                f"dashboard: {root}/",
                soft_wrap=True,
            )
            who = "API tokens" if mode == "tokens" else "local single-user mode: callers act as you"
            console.print(f"access: {who}")

    try:
        # uvicorn exits (SystemExit) when startup fails; Ctrl-C ends it cleanly.
        with contextlib.suppress(SystemExit, KeyboardInterrupt):
            _Server(config).run(sockets=[sock])
    finally:
        sock.close()
        proj.close()
