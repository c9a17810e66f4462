"""Running the app under uvicorn (uvloop + httptools), with slow-client protection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from typing import Any

from opsloop.errors import MissingDependencyError, ServingError
from opsloop.serve.base import ServableModel
from opsloop.serve.config import ServerConfig

__all__ = ["run_server", "serve", "uvicorn_config"]


def _guarded_protocol(header_timeout: float) -> type[Any]:
    """uvicorn's httptools protocol plus a deadline for receiving a request's headers.

    uvicorn times out idle keep-alive connections but not a client that sends its headers a
    byte at a time (slowloris); such connections would pile up until the connection limit.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._header_deadline)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_deadline(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

    return GuardedHttpToolsProtocol


def uvicorn_config(config: ServerConfig, app: Any | None = None) -> Any:
    """The ``uvicorn.Config`` for ``config`` (uvloop, httptools, timeouts, limits).

    Raises:
        MissingDependencyError: uvicorn is not installed.
    """
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise MissingDependencyError("uvicorn", "serve") from None
    from opsloop.serve.app import create_app

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - depends on the platform
        loop = "asyncio"
    try:
        http: Any = _guarded_protocol(config.header_timeout_s)
    except ImportError:  # pragma: no cover - httptools is part of uvicorn[standard]
        http = "h11"
    return uvicorn.Config(
        app if app is not None else create_app(config),
        host=config.host,
        port=config.port,
        loop=loop,
        http=http,
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=config.keep_alive_s,
        limit_concurrency=config.limit_concurrency,
        timeout_graceful_shutdown=int(config.graceful_timeout_s),
        backlog=2048,
    )


def serve(config: ServerConfig, *, sock: socket.socket | None = None) -> None:
    """Run a server until SIGINT/SIGTERM; on stop, in-flight requests finish and the logs are
    flushed.

    Args:
        config: The server's configuration.
        sock: An already bound socket to serve on (then ``config.host/port`` are ignored).

    Raises:
        ServingError: The server could not start (a model failed to load, the port is taken).
    """
    import uvicorn

    from opsloop.serve.app import create_app

    app = create_app(config)
    server = uvicorn.Server(uvicorn_config(config, app))
    where = f"{config.host}:{config.port}" if sock is None else str(sock.getsockname())
    # uvicorn exits (SystemExit) when the app's startup fails or it cannot bind.
    with contextlib.suppress(SystemExit):
        server.run(sockets=[sock] if sock is not None else None)
    if not server.started:
        cause = app.state.server.startup_error
        reason = f": {cause}" if cause is not None else "; see the log above"
        raise ServingError(f"the server on {where} could not start{reason}") from cause


def run_server(
    models: ServableModel | Sequence[ServableModel],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    **options: Any,
) -> None:
    """Serve one or more model versions; ``options`` are further :class:`ServerConfig`
    fields (``max_batch_size``, ``traffic``, ``prediction_sink`` …)."""
    listed = [models] if isinstance(models, ServableModel) else list(models)
    serve(ServerConfig(models=listed, host=host, port=port, **options))
