"""Running the app under uvicorn (uvloop + httptools), with slow-client protection."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from typing import TYPE_CHECKING, Any

from opsloop.errors import MissingDependencyError, ServingError
from opsloop.serve.app import create_app
from opsloop.serve.auth import is_loopback
from opsloop.serve.base import ServableModel
from opsloop.serve.config import ServerConfig

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Sequence

__all__ = ["bind_socket", "run_server", "serve", "uvicorn_config"]

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
    # Lazy imports here and below (noqa: PLC0415) of uvicorn, uvloop: each loads only where it is
    # used, so importing this module stays light.
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415

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
        import uvicorn  # noqa: PLC0415
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise MissingDependencyError("uvicorn", "serve") from None

    try:
        import uvloop  # noqa: PLC0415, F401

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


def bind_socket(host: str, port: int, *, advice: str | None = None) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``SO_REUSEADDR``, as uvicorn binds), for
    :func:`serve`.

    Binding before the server starts turns a taken port into one clear error instead of
    uvicorn's log lines and exit.

    Args:
        host: Address (or name) to listen on.
        port: Port; 0 picks a free one.
        advice: How to choose another port, appended to the message of a taken port.

    Raises:
        ServingError: The port is taken, needs privileges, or the host cannot be listened on.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ServingError(f"cannot listen on {where}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # As asyncio's create_server: an IPv6 socket does not take the IPv4 port too.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            tail = f"; {advice}" if advice else ""
            raise ServingError(f"port {port} on {host} is already in use{tail}") from None
        if exc.errno == errno.EACCES:
            raise ServingError(
                f"port {port} on {host} needs privileges this process does not have"
                + (f"; {advice}" if advice else "")
            ) from None
        raise ServingError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"


def serve(
    config: ServerConfig,
    *,
    sock: socket.socket | None = None,
    on_started: Callable[[str], None] | None = None,
    on_stopped: Callable[[str], None] | None = None,
) -> None:
    """Run a server until SIGINT/SIGTERM; on stop, in-flight requests finish and the logs are
    flushed.

    Args:
        config: The server's configuration.
        sock: An already bound socket to serve on (then ``config.host/port`` are ignored).
        on_started: Called with the server's URL once its models are loaded and it listens.
        on_stopped: Called with the URL once a started server has shut down (uvicorn then
            raises the signal that stopped it again, so code after this call may not run).

    Raises:
        ServingError: The server could not start (a model failed to load, the port is taken).
    """
    import uvicorn  # noqa: PLC0415

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
    owned = sock is None
    if sock is None:
        sock = bind_socket(config.host, config.port, advice="choose another port")
    url = _url(sock)
    app = create_app(config)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if on_started is not None:
                on_started(url)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            if on_stopped is not None and self.started:
                on_stopped(url)

    server = _Server(uvicorn_config(config, app))
    try:
        # uvicorn exits (SystemExit) when the app's startup fails.
        with contextlib.suppress(SystemExit):
            server.run(sockets=[sock])
    finally:
        if owned:
            sock.close()
    if not server.started:
        cause = app.state.server.startup_error
        reason = f": {cause}" if cause is not None else "; see the log above"
        raise ServingError(f"the server on {url} could not start{reason}") from cause


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
