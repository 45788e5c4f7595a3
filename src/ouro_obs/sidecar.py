"""The sidecar: a reverse proxy ASGI app inside the same :class:`ObservabilityMiddleware`.

``ouro-obs sidecar`` runs it in front of a service that is not Python (or cannot be
changed) so that it gets the same metrics, access logs and traces. Two uvicorn servers
share one event loop: the proxy on the service's port, and ``/metrics``, ``/health/live``
and ``/health/ready`` on a separate port, where readiness asks the upstream.

The proxy forwards every path unchanged. Bodies stream both ways; hop-by-hop headers
(RFC 9110 section 7.6.1) are removed; ``X-Forwarded-For/Proto/Host`` are set; the
current trace context is injected (``traceparent``) so the upstream's spans join the
trace, and the request id the middleware logs is sent along (``X-Request-ID``). An unreachable upstream gives 502, a slow one 504, each counted in
``ouro_obs_sidecar_upstream_errors_total{reason}`` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

import uvicorn
from opentelemetry.propagate import inject
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.contextvars import get_contextvars

from ouro_obs.config import ObservabilitySettings
from ouro_obs.health import ReadinessCheck, ReadinessChecks, send_json
from ouro_obs.metrics import render_metrics
from ouro_obs.middleware import ObservabilityMiddleware
from ouro_obs.routes import RouteResolver
from ouro_obs.upstream import (
    UPSTREAM_ERROR_REASONS,
    BodySource,
    Upstream,
    UpstreamClient,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeouts,
)

__all__ = [
    "HOP_BY_HOP_HEADERS",
    "PROXY_HEALTH_LIVE_PATH",
    "PROXY_HEALTH_READY_PATH",
    "AdminApp",
    "ForwardedMode",
    "ProxyApp",
    "Sidecar",
    "SidecarConfig",
    "SidecarMetrics",
    "SidecarStartError",
    "end_to_end_headers",
    "request_headers",
    "upstream_readiness",
]

_log = logging.getLogger("ouro_obs.sidecar")

#: Headers that describe one connection, not the message (RFC 9110 7.6.1), plus every
#: ``Proxy-*`` header; those named in ``Connection`` are removed as well.
HOP_BY_HOP_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

#: The middleware answers its health paths itself; on the proxy port they live out of the
#: way, so the upstream's own /health/* stay reachable through the sidecar.
PROXY_HEALTH_LIVE_PATH = "/.ouro-obs/health/live"
PROXY_HEALTH_READY_PATH = "/.ouro-obs/health/ready"

#: ``append``: keep X-Forwarded-Proto/Host set by the hop before (an ingress) and append
#: to X-Forwarded-For; ``replace``: trust nothing received and describe this hop only.
ForwardedMode = Literal["append", "replace"]

_X_FORWARDED_FOR = b"x-forwarded-for"
_X_FORWARDED_PROTO = b"x-forwarded-proto"
_X_FORWARDED_HOST = b"x-forwarded-host"
_HOST = b"host"
_CONTENT_LENGTH = b"content-length"
#: uvicorn answered any ``Expect: 100-continue`` itself when the body was read.
_DROPPED_REQUEST_HEADERS = HOP_BY_HOP_HEADERS | {
    b"expect",
    _CONTENT_LENGTH,
    _X_FORWARDED_FOR,
    _X_FORWARDED_PROTO,
    _X_FORWARDED_HOST,
}


def _connection_tokens(value: bytes) -> set[bytes]:
    return {token.strip().lower() for token in value.split(b",") if token.strip()}


def end_to_end_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (lower-case names) without hop-by-hop ones and those named in Connection."""
    kept: list[tuple[bytes, bytes]] = []
    named: set[bytes] = set()
    for name, value in headers:
        if name in HOP_BY_HOP_HEADERS or name.startswith(b"proxy-"):
            if name == b"connection":
                named |= _connection_tokens(value)
            continue
        kept.append((name, value))
    if named:
        kept = [(name, value) for name, value in kept if name not in named]
    return kept


@dataclass(slots=True)
class _RequestHead:
    """What the proxy sends upstream, derived from one ASGI scope."""

    headers: list[tuple[bytes, bytes]]
    content_length: bytes | None = None
    chunked: bool = False


def request_headers(
    scope: Scope,
    forwarded: ForwardedMode = "append",
    request_id: tuple[bytes, bytes] | None = None,
) -> _RequestHead:
    """The upstream request's headers: end-to-end ones, X-Forwarded-*, trace context.

    ``Content-Length`` is taken out (the client frames the body it streams); the client's
    ``Host`` is kept, so the upstream sees the name it was called by. ``request_id``
    (header name, value) replaces whatever id the client sent.
    """
    headers: list[tuple[bytes, bytes]] = []
    head = _RequestHead(headers)
    named: set[bytes] = set()
    forwarded_for: list[bytes] = []
    proto = forwarded_host = host = None
    for name, value in scope["headers"]:
        if name not in _DROPPED_REQUEST_HEADERS and not name.startswith(b"proxy-"):
            if name == _HOST:
                host = value
            headers.append((name, value))
        elif name == _CONTENT_LENGTH:
            head.content_length = value
        elif name == b"transfer-encoding":
            head.chunked = True
        elif name == b"connection":
            named |= _connection_tokens(value)
        elif name == _X_FORWARDED_FOR:
            forwarded_for.append(value)
        elif name == _X_FORWARDED_PROTO:
            proto = value
        elif name == _X_FORWARDED_HOST:
            forwarded_host = value
    if request_id is not None:
        named.add(request_id[0])
    if named:
        headers[:] = [(name, value) for name, value in headers if name not in named]
    if request_id is not None:
        headers.append(request_id)
    if forwarded == "replace":
        forwarded_for.clear()
        proto = forwarded_host = None
    client = scope.get("client")
    if client:
        forwarded_for.append(str(client[0]).encode("latin-1"))
    if forwarded_for:
        headers.append((_X_FORWARDED_FOR, b", ".join(forwarded_for)))
    headers.append((_X_FORWARDED_PROTO, proto or scope.get("scheme", "http").encode("latin-1")))
    if forwarded_host or host:
        headers.append((_X_FORWARDED_HOST, forwarded_host or host or b""))
    _inject_trace_context(headers)
    return head


def _inject_trace_context(headers: list[tuple[bytes, bytes]]) -> None:
    """Put the current span's context (W3C traceparent/tracestate, baggage) on ``headers``."""
    carrier: dict[str, str] = {}
    inject(carrier)
    if not carrier:
        return  # no span is current: whatever context the client sent passes unchanged
    replaced = {name.lower().encode("latin-1") for name in carrier}
    if b"traceparent" in replaced:
        replaced.add(b"tracestate")  # the client's state belongs to the parent it sent
    headers[:] = [(name, value) for name, value in headers if name not in replaced]
    headers.extend(
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in carrier.items()
    )


class _ClientGone(Exception):
    """The client disconnected before it finished sending the request body."""


def _body_reader(receive: Receive) -> BodySource:
    async def read() -> tuple[bytes, bool]:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        return message.get("body", b""), message.get("more_body", False)

    return read


#: One counter per (registry, name), so building a sidecar twice on a registry never raises.
_counters: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Counter]]
_counters = weakref.WeakKeyDictionary()


class SidecarMetrics:
    """The sidecar's own series: upstream failures by reason (all reasons start at 0)."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "") -> None:
        registry = REGISTRY if registry is None else registry
        name = f"{namespace}_" if namespace else ""
        name += "ouro_obs_sidecar_upstream_errors"
        counters = _counters.setdefault(registry, {})
        counter = counters.get(name)
        if counter is None:
            counter = counters[name] = Counter(
                name,
                "Requests the sidecar could not complete with the upstream, by reason "
                "(timeouts answered 504, the rest 502 unless the response had started).",
                ("reason",),
                registry=registry,
            )
        self.upstream_errors = counter
        self._children = {reason: counter.labels(reason) for reason in UPSTREAM_ERROR_REASONS}

    def upstream_error(self, reason: str) -> None:
        child = self._children.get(reason)
        (child or self.upstream_errors.labels(reason)).inc()


class ProxyApp:
    """ASGI app forwarding every HTTP request to one upstream, streaming both ways.

    WebSocket connections are refused (403): the upstream is spoken to in HTTP/1.1 only.
    """

    def __init__(
        self,
        client: UpstreamClient,
        metrics: SidecarMetrics,
        *,
        forwarded: ForwardedMode = "append",
        request_id_header: str = "",
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.forwarded: ForwardedMode = forwarded
        self._request_id_header = request_id_header.lower().encode("latin-1") or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "http":
            await self._proxy(scope, receive, send)
        elif scope_type == "lifespan":
            await self._lifespan(receive, send)
        elif scope_type == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = request_headers(scope, self.forwarded, self._request_id())
        body: BodySource | None = None
        if head.chunked or (head.content_length is not None and head.content_length != b"0"):
            body = _body_reader(receive)
        elif head.content_length is not None:
            head.headers.append((_CONTENT_LENGTH, head.content_length))
        target: bytes = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
        query: bytes = scope.get("query_string", b"")
        if query:
            target += b"?" + query
        method: bytes = scope["method"].encode("ascii")
        try:
            response = await self.client.request(
                method,
                target,
                head.headers,
                body,
                head.content_length if body is not None and not head.chunked else None,
            )
        except UpstreamError as error:
            self._failed(scope, error)
            await _answer_error(send, error, head_only=method == b"HEAD")
            return
        except _ClientGone:
            return  # nobody to answer; the middleware records 499
        try:
            await self._relay(scope, response, receive, send)
        finally:
            await response.aclose()

    async def _relay(
        self, scope: Scope, response: UpstreamResponse, receive: Receive, send: Send
    ) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": end_to_end_headers(response.headers),
                }
            )
            data, more = await response.read()
            if not more:
                await send({"type": "http.response.body", "body": data})
                return
            await self._stream(response, data, receive, send)
        except UpstreamError as error:
            # The status line is gone: the client sees the connection close mid-body.
            self._failed(scope, error)
        except OSError:
            pass  # the client went away while we wrote; the middleware records 499

    async def _stream(
        self, response: UpstreamResponse, first: bytes, receive: Receive, send: Send
    ) -> None:
        """Relay a body of several chunks while watching for the client to leave."""
        client_gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, response, client_gone))
        try:
            data, more = first, True
            while more:
                await send({"type": "http.response.body", "body": data, "more_body": True})
                data, more = await response.read()
            await send({"type": "http.response.body", "body": data})
        except UpstreamError:
            if not client_gone.is_set():
                raise
        finally:
            watcher.cancel()

    def _request_id(self) -> tuple[bytes, bytes] | None:
        """The id the middleware logs this request under, so the upstream logs the same."""
        if self._request_id_header is None:
            return None
        request_id = get_contextvars().get("request_id")
        if not isinstance(request_id, str) or not request_id:
            return None
        return self._request_id_header, request_id.encode("latin-1")

    def _failed(self, scope: Scope, error: UpstreamError) -> None:
        self.metrics.upstream_error(error.reason)
        _log.warning(
            "upstream %s for %s %s: %s",
            error.reason,
            scope["method"],
            scope["path"],
            error.detail,
            extra={"upstream_error": error.reason},
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _watch_disconnect(
    receive: Receive, response: UpstreamResponse, client_gone: asyncio.Event
) -> None:
    """Close the upstream exchange when the client disconnects, so no one streams to no one."""
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                client_gone.set()
                await response.aclose()
                return
    except Exception:  # the server's receive failed: the relay itself will notice or finish
        _log.debug("disconnect watcher stopped", exc_info=True)


async def _answer_error(send: Send, error: UpstreamError, *, head_only: bool) -> None:
    title = "Gateway Timeout" if error.status == 504 else "Bad Gateway"
    body = f"{error.status} {title}: upstream {error.reason.replace('_', ' ')}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head_only else body})


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
            [(_HOST, client.upstream.authority), (b"user-agent", b"ouro-obs-sidecar")],
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


class AdminApp:
    """``/metrics``, liveness and readiness for the separate port; 404 for anything else."""

    def __init__(
        self,
        readiness: ReadinessChecks,
        registry: CollectorRegistry | None = None,
        settings: ObservabilitySettings | None = None,
    ) -> None:
        settings = settings or ObservabilitySettings()
        self.readiness = readiness
        self.registry = registry
        self._live = settings.health_live_path
        self._ready = settings.health_ready_path
        self._metrics = settings.metrics_path or "/metrics"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        head_only = scope["method"] == "HEAD"
        if scope["method"] not in ("GET", "HEAD"):
            await send_json(send, 405, {"error": "method not allowed"}, head_only)
        elif path == self._metrics:
            await self._serve_metrics(scope, send, head_only)
        elif path == self._live:
            await send_json(send, 200, {"status": "ok"}, head_only)
        elif path == self._ready:
            report = await self.readiness.run()
            await send_json(send, 200 if report.ready else 503, report.body(), head_only)
        else:
            await send_json(send, 404, {"error": "not found"}, head_only)

    async def _serve_metrics(self, scope: Scope, send: Send, head_only: bool) -> None:
        accept = ""
        for name, value in scope["headers"]:
            if name == b"accept":
                accept = value.decode("latin-1")
        body, content_type = render_metrics(self.registry, accept)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if head_only else body})


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

    def __post_init__(self) -> None:
        Upstream.parse(self.upstream)  # fail at start-up with the parser's message
        if self.forwarded not in ("append", "replace"):
            raise ValueError(f"forwarded={self.forwarded!r}: use 'append' or 'replace'")
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


def _client_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


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
        self.admin_app = AdminApp(self.readiness, registry, settings)
        self._proxy_server: _Server | None = None
        self._admin_server: _Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        """The proxy's address, as a client on this host reaches it."""
        return f"http://{_client_host(self.config.host)}:{self.config.port}"

    @property
    def metrics_url(self) -> str:
        """The metrics and health port's address, as a client on this host reaches it."""
        return f"http://{_client_host(self.config.metrics_host)}:{self.config.metrics_port}"

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
        self._proxy_server = proxy = _Server(
            uvicorn.Config(
                self.proxy_app,
                host=config.host,
                port=config.port,
                lifespan="on",
                # The proxy forwards headers rather than acting on them, and the upstream
                # already sends its own Server and Date headers.
                proxy_headers=False,
                server_header=False,
                date_header=False,
                access_log=False,
                log_config=None,
                log_level=config.log_level,
                timeout_keep_alive=int(config.client_keepalive),
                timeout_graceful_shutdown=int(config.drain_timeout),
            )
        )
        self._admin_server = admin = _Server(
            uvicorn.Config(
                self.admin_app,
                host=config.metrics_host,
                port=config.metrics_port,
                lifespan="off",
                access_log=False,
                log_config=None,
                log_level=config.log_level,
            )
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
