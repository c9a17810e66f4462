"""Running the app under uvicorn (uvloop + httptools), with slow-client protection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from typing import Any

from opsloop.errors import MissingDependencyError, ServingError
from opsloop.serve.auth import is_loopback
from opsloop.serve.base import ServableModel
from opsloop.serve.config import ServerConfig

__all__ = ["run_server", "serve", "uvicorn_config"]

logger = logging.getLogger("opsloop.serve")


# Probes must tell "busy" from "dead": these paths are answered even past limit_concurrency.
_HEALTH_PATHS = (b"/v2/health/", b"/ping", b"/health")


def _guarded_protocol(header_timeout: float, max_per_client: int | None) -> type[Any]:
    """uvicorn's httptools protocol with three guards against clients that hoard connections.

    * A deadline for receiving a request's headers, from the moment a connection opens or a
      request begins: uvicorn times out idle keep-alive connections but neither a connection
      that never sends a byte nor one that sends its headers a byte at a time (slowloris);
      such connections would pile up until the connection limit.
    * At most ``max_per_client`` open connections per client address; further ones are closed
      as soon as they are accepted, so one client cannot take the server's connection limit.
    * Health and readiness requests are answered even past uvicorn's ``limit_concurrency``
      (which answers every request 503 beyond it), so an orchestrator does not restart a
      server that is only busy.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    # Per server (each call builds a class), touched only on the event loop: no lock.
    open_by_client: dict[str, int] = {}

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _counted: str | None = None

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
            if max_per_client is not None and self.client is not None:
                host = self.client[0]
                count = open_by_client.get(host, 0)
                if count >= max_per_client:
                    # A reset rather than a close: nothing lingers in TIME_WAIT on our side.
                    transport.abort()
                    return
                open_by_client[host] = count + 1
                self._counted = host
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            host = self._counted
            if host is not None:
                self._counted = None
                left = open_by_client.get(host, 1) - 1
                if left > 0:
                    open_by_client[host] = left
                else:
                    open_by_client.pop(host, None)
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            limit = self.limit_concurrency
            if limit is not None and self.url.startswith(_HEALTH_PATHS):
                self.limit_concurrency = None
                try:
                    super().on_headers_complete()
                finally:
                    self.limit_concurrency = limit
                return
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
        http: Any = _guarded_protocol(config.header_timeout_s, config.max_connections_per_client)
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

    host = config.host if sock is None else str(sock.getsockname()[0])
    if not is_loopback(host):
        if config.token is None and not config.insecure:
            raise ServingError(
                f"the socket is bound to {host}, reachable from other machines, and the server "
                "has no token",
                hint="set a token (OPSLOOP_SERVE_TOKEN or --token-file), or --insecure",
            )
        if config.token is None:
            logger.warning(
                "serving on %s without a token: anyone who reaches it may predict and send "
                "feedback labels",
                host,
            )
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
