"""The sidecar assembled: the proxy in the middleware, the admin port, the two uvicorn servers.

Two uvicorn servers share one event loop: the proxy on the service's port, and the shared
endpoints (:class:`~ouro_obs.asgi.endpoints.ServiceEndpoints`: ``/metrics``,
``/health/live`` and ``/health/ready``) on a separate port, where readiness asks the
upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from ouro_obs.asgi.endpoints import ServiceEndpoints
from ouro_obs.asgi.health import ReadinessCheck, ReadinessChecks
from ouro_obs.asgi.middleware import ObservabilityMiddleware
from ouro_obs.asgi.routes import RouteResolver
from ouro_obs.config import ObservabilitySettings
from ouro_obs.sidecar.headers import HOST, ForwardedMode
from ouro_obs.sidecar.proxy import ProxyApp, SidecarMetrics
from ouro_obs.sidecar.upstream import Upstream, UpstreamClient, UpstreamTimeouts

__all__ = [
    "PROXY_HEALTH_LIVE_PATH",
    "PROXY_HEALTH_READY_PATH",
    "HttpParser",
    "Sidecar",
    "SidecarConfig",
    "SidecarStartError",
    "UpstreamUnhealthy",
    "upstream_readiness",
]

#: The middleware answers its health paths itself; on the proxy port they live out of the
#: way, so the upstream's own /health/* stay reachable through the sidecar.
PROXY_HEALTH_LIVE_PATH = "/.ouro-obs/health/live"
PROXY_HEALTH_READY_PATH = "/.ouro-obs/health/ready"


#: uvicorn's parser of client requests: ``auto`` is httptools when installed, else h11.
HttpParser = Literal["auto", "h11", "httptools"]


class UpstreamUnhealthy(Exception):
    """The upstream answered its health path with an error status."""


def upstream_readiness(client: UpstreamClient, health_path: str | None = None) -> ReadinessCheck:
    """A readiness check: a TCP connect to the upstream, or a GET of ``health_path`` < 400."""

    async def check() -> bool:
        if health_path is None:
            await client.probe()
            return True
        response = await client.request(
            b"GET",
            health_path.encode("ascii"),
            [(HOST, client.upstream.authority), (b"user-agent", b"ouro-obs-sidecar")],
        )
        try:
            more = not response.complete
            read = 0
            while more and read < 65536:
                data, more = await response.read()
                read += len(data)
        finally:
            await response.aclose()
        if response.status >= 400:
            raise UpstreamUnhealthy(f"GET {health_path} answered {response.status}")
        return True

    return check


@dataclass(frozen=True, slots=True)
class SidecarConfig:
    """How the sidecar listens, reaches its upstream and shuts down."""

    upstream: str
    host: str = "0.0.0.0"
    port: int = 8000
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9464
    timeouts: UpstreamTimeouts = field(default_factory=UpstreamTimeouts)
    #: Idle seconds before a pooled upstream connection is dropped (below the upstream's own).
    upstream_keepalive: float = 4.0
    max_idle_connections: int = 100
    #: Upstream path whose status decides readiness; None: a TCP connect does.
    health_path: str | None = None
    forwarded: ForwardedMode = "append"
    #: Idle seconds a client connection is kept; above the ingress's upstream idle timeout.
    client_keepalive: float = 75.0
    #: Seconds in-flight requests get to finish after SIGTERM before they are cancelled.
    drain_timeout: float = 20.0
    log_level: str = "info"
    http: HttpParser = "auto"

    def __post_init__(self) -> None:
        Upstream.parse(self.upstream)  # fail at start-up with the parser's message
        if self.forwarded not in ("append", "replace"):
            raise ValueError(f"forwarded={self.forwarded!r}: use 'append' or 'replace'")
        if self.http not in get_args(HttpParser):
            raise ValueError(f"http={self.http!r}: use 'auto', 'h11' or 'httptools'")
        if self.health_path is not None and not self.health_path.startswith("/"):
            raise ValueError(f"health path {self.health_path!r} must start with '/'")


class SidecarStartError(RuntimeError):
    """A port could not be bound; the message names the address and the reason."""


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it Nagle's algorithm holds each response body back for a delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise SidecarStartError(
            f"cannot listen on {host}:{port}: {error.strerror or error}"
        ) from None
    return sock


def _client_url(host: str, port: int) -> str:
    """``http://host:port`` as a client on this host reaches a server listening there."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to :class:`Sidecar` (it runs two servers)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Sidecar:
    """The proxy app in the middleware, the admin app, and the two servers that run them.

    On SIGTERM (or :meth:`shutdown`) readiness turns to "draining", the proxy port stops
    accepting, in-flight requests finish (up to ``drain_timeout``), then both ports close.
    """

    def __init__(
        self,
        config: SidecarConfig,
        settings: ObservabilitySettings | None = None,
        *,
        registry: CollectorRegistry | None = None,
        route_resolver: RouteResolver | None = None,
    ) -> None:
        settings = settings or ObservabilitySettings()
        self.config = config
        self.settings = settings
        self.registry = registry
        self.client = UpstreamClient(
            Upstream.parse(config.upstream),
            config.timeouts,
            keepalive=config.upstream_keepalive,
            max_idle=config.max_idle_connections,
        )
        self.readiness = ReadinessChecks(timeout_seconds=settings.readiness_timeout_seconds)
        self.readiness.add("upstream", upstream_readiness(self.client, config.health_path))
        self.metrics = SidecarMetrics(registry, settings.metrics_namespace)
        self.proxy_app: ASGIApp = ObservabilityMiddleware(
            ProxyApp(
                self.client,
                self.metrics,
                forwarded=config.forwarded,
                request_id_header=settings.request_id_header,
            ),
            settings.replace(
                metrics_path=None,
                metrics_port=None,
                health_live_path=PROXY_HEALTH_LIVE_PATH,
                health_ready_path=PROXY_HEALTH_READY_PATH,
            ),
            registry=registry,
            readiness=self.readiness,
            route_resolver=route_resolver,
        )
        self.admin_app = ServiceEndpoints.from_settings(
            settings, registry=registry, readiness=self.readiness
        )
        #: The proxy's address and the admin port's, as a client on this host reaches them.
        self.url = _client_url(config.host, config.port)
        self.metrics_url = _client_url(config.metrics_host, config.metrics_port)
        self._proxy_server: _Server | None = None
        self._admin_server: _Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def started(self) -> bool:
        servers = (self._proxy_server, self._admin_server)
        return all(server is not None and server.started for server in servers)

    async def serve(self, *, handle_signals: bool = True) -> None:
        """Serve both ports until :meth:`shutdown` (or SIGTERM/SIGINT) and the drain end.

        Raises :class:`SidecarStartError` when a port cannot be bound.
        """
        config = self.config
        # Bound here, not by uvicorn: a taken port becomes one clear error, not an exit
        # from inside the event loop.
        proxy_socket = _listen(config.host, config.port)
        try:
            admin_socket = _listen(config.metrics_host, config.metrics_port)
        except SidecarStartError:
            proxy_socket.close()
            raise
        self._loop = asyncio.get_running_loop()
        self._proxy_server = proxy = self._server(
            self.proxy_app,
            host=config.host,
            port=config.port,
            lifespan="on",
            http=config.http,
            # The proxy forwards headers rather than acting on them, and the upstream
            # already sends its own Server and Date headers.
            proxy_headers=False,
            server_header=False,
            date_header=False,
            timeout_keep_alive=int(config.client_keepalive),
            timeout_graceful_shutdown=int(config.drain_timeout),
        )
        self._admin_server = admin = self._server(
            self.admin_app, host=config.metrics_host, port=config.metrics_port, lifespan="off"
        )
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(signum, self._shutdown_now)
        admin_task = asyncio.create_task(admin.serve(sockets=[admin_socket]))
        try:
            await proxy.serve(sockets=[proxy_socket])
        finally:
            admin.should_exit = True
            await admin_task
            await self.client.aclose()  # a forced exit skips the lifespan shutdown that does it
            if handle_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    self._loop.remove_signal_handler(signum)

    def _server(self, app: ASGIApp, **options: Any) -> _Server:
        """A uvicorn server of ``app`` on the sockets :meth:`serve` bound, logging as configured."""
        return _Server(
            uvicorn.Config(
                app, access_log=False, log_config=None, log_level=self.config.log_level, **options
            )
        )

    def run(self) -> None:
        """:meth:`serve` on a new event loop in this thread: uvloop's when it is installed."""
        config = uvicorn.Config(self.proxy_app, loop="auto", log_config=None)
        get_loop_factory = getattr(config, "get_loop_factory", None)  # uvicorn >= 0.36
        loop_factory = get_loop_factory() if get_loop_factory is not None else None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(self.serve())

    def shutdown(self) -> None:
        """Begin the graceful stop; callable from any thread. A second call forces it."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended: nothing to stop
                loop.call_soon_threadsafe(self._shutdown_now)

    def _shutdown_now(self) -> None:
        self.readiness.draining = True
        proxy = self._proxy_server
        if proxy is None:
            return
        if proxy.should_exit:
            proxy.force_exit = True
        proxy.should_exit = True
