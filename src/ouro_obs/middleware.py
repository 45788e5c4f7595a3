"""The pure ASGI middleware: timing, status capture by wrapping ``send``, dispatch to metrics.

Per-request state lives in an :class:`_Exchange` object created for each request;
the middleware itself only holds configuration and the shared instruments.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ouro_obs.config import ObservabilitySettings
from ouro_obs.exposition import MetricsServer
from ouro_obs.health import ReadinessChecks, send_json
from ouro_obs.metrics import HttpMetrics, multiprocess_dir, normalize_method, render_metrics
from ouro_obs.routes import RouteResolver, RouteTemplates

__all__ = ["ObservabilityMiddleware"]

_log = logging.getLogger("ouro_obs")

#: Status recorded when the client went away before the response completed (nginx's code).
CLIENT_CLOSED_REQUEST = 499

_Endpoint = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Exchange:
    """What one HTTP request did: bytes each way, the status sent, when it ended."""

    __slots__ = (
        "_receive",
        "_send",
        "client_gone",
        "complete",
        "end_time",
        "finished",
        "request_bytes",
        "response_bytes",
        "response_started",
        "start_time",
        "status",
    )

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.start_time = perf_counter()
        self.end_time = 0.0
        self.status = 0
        self.request_bytes = 0
        self.response_bytes = 0
        self.response_started = False
        self.complete = False
        self.client_gone = False
        self.finished = False

    async def receive(self) -> Message:
        message = await self._receive()
        message_type = message["type"]
        if message_type == "http.request":
            self.request_bytes += len(message.get("body", b""))
        elif message_type == "http.disconnect" and not self.complete:
            self.client_gone = True
        return message

    def on_send(self, message: Message) -> bool:
        """Account for ``message``; True when it is the last one of the response."""
        message_type = message["type"]
        if message_type == "http.response.start":
            self.status = message["status"]
            self.response_started = True
            return False
        if message_type == "http.response.body":
            self.response_bytes += len(message.get("body", b""))
            if message.get("more_body", False):
                return False
        elif message_type == "http.response.pathsend":
            self.response_bytes += _file_size(message.get("path", ""))
        else:
            return False
        return True


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class ObservabilityMiddleware:
    """Prometheus RED metrics, health endpoints and ``/metrics`` for any ASGI app.

    ``app.add_middleware(ObservabilityMiddleware, service_name="shop")`` is the whole
    integration. Keyword ``options`` are :class:`ObservabilitySettings` fields, applied on
    top of ``settings`` (default: the defaults, not the environment; use
    ``ObservabilitySettings.from_env()`` at the edge for that).

    Dependencies come in: ``registry`` (default: the global one), ``readiness`` (checks
    run by the readiness endpoint), ``route_resolver`` (templates known before the app
    runs, e.g. from an OpenAPI document; otherwise Starlette's routing is read).
    """

    def __init__(
        self,
        app: ASGIApp,
        /,
        settings: ObservabilitySettings | None = None,
        *,
        registry: CollectorRegistry | None = None,
        readiness: ReadinessChecks | None = None,
        route_resolver: RouteResolver | None = None,
        **options: Any,
    ) -> None:
        settings = settings or ObservabilitySettings()
        if options:
            settings = settings.replace(**options)
        self.app = app
        self.settings = settings
        self.registry = registry
        self.metrics = HttpMetrics(settings, registry)
        self.readiness = readiness or ReadinessChecks(
            timeout_seconds=settings.readiness_timeout_seconds
        )
        self._route_resolver = route_resolver
        self._route_templates = RouteTemplates()
        self._unmatched = settings.unmatched_route_label
        self._excluded = settings.effective_excluded_paths
        self._endpoints = self._own_endpoints(settings)
        self._metrics_server: MetricsServer | None = None
        if settings.metrics_port:
            self._metrics_server = MetricsServer(
                settings.metrics_host,
                settings.metrics_port,
                registry,
                settings.metrics_path or "/metrics",
            )
        self._metrics_server_pending = self._metrics_server is not None
        self._logged_stages: set[str] = set()

    def _own_endpoints(self, settings: ObservabilitySettings) -> dict[str, _Endpoint]:
        endpoints: dict[str, _Endpoint] = {
            settings.health_live_path: self._live,
            settings.health_ready_path: self._ready,
        }
        if settings.metrics_path is not None:
            endpoints[settings.metrics_path] = self._serve_metrics
        return endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "http":
            root_path: str = scope.get("root_path", "")
            path: str = scope["path"]
            if root_path and path.startswith(root_path):
                path = path[len(root_path) :] or "/"
            endpoint = self._endpoints.get(path)
            if endpoint is not None:
                await endpoint(scope, receive, send)
            elif path in self._excluded:
                await self.app(scope, receive, send)
            else:
                await self._observe(scope, receive, send, root_path)
        elif scope_type == "websocket":
            await self.app(
                scope, receive, self._websocket_send(scope, send, scope.get("root_path", ""))
            )
        elif scope_type == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
        else:
            await self.app(scope, receive, send)

    # -- HTTP ---------------------------------------------------------------------------

    async def _observe(self, scope: Scope, receive: Receive, send: Send, root_path: str) -> None:
        if self._metrics_server_pending:
            self._start_metrics_server()
        exchange = _Exchange(receive, send)
        method = normalize_method(scope["method"])
        self.metrics.started(method)
        route = self._route_before(scope)

        async def send_wrapper(message: Message) -> None:
            last = exchange.on_send(message)
            try:
                await send(message)
            except OSError:
                exchange.client_gone = True
                raise
            if last:
                exchange.complete = True
                exchange.end_time = perf_counter()
                self._finish(scope, exchange, method, route, root_path)

        try:
            await self.app(scope, exchange.receive, send_wrapper)
        except asyncio.CancelledError:
            if not exchange.complete:
                exchange.client_gone = True
            raise
        except Exception:
            if not exchange.response_started:
                exchange.status = 500
            raise
        finally:
            if not exchange.finished:
                exchange.end_time = perf_counter()
                self._finish(scope, exchange, method, route, root_path)

    def _route_before(self, scope: Scope) -> str | None:
        if self._route_resolver is None:
            return None
        try:
            return self._route_resolver(scope)
        except Exception:
            self._instrumentation_error("route")
            return None

    def _finish(
        self, scope: Scope, exchange: _Exchange, method: str, route: str | None, root_path: str
    ) -> None:
        """Record the request once; never raises."""
        exchange.finished = True
        try:
            status = exchange.status
            if exchange.client_gone and not exchange.complete:
                status = CLIENT_CLOSED_REQUEST
            elif status == 0:
                status = 500  # the app returned without answering; servers send 500
            if route is None:
                route = self._template_after(scope, root_path)
            self.metrics.observe(
                method,
                route,
                status,
                exchange.end_time - exchange.start_time,
                exchange.request_bytes,
                exchange.response_bytes,
            )
        except Exception:
            self._instrumentation_error("metrics")
        finally:
            try:
                self.metrics.ended(method)
            except Exception:
                self._instrumentation_error("metrics")

    def _template_after(self, scope: Scope, root_path: str) -> str:
        try:
            template = self._route_templates(scope, root_path)
        except Exception:
            self._instrumentation_error("route")
            return self._unmatched
        return self._unmatched if template is None else template

    def _instrumentation_error(self, stage: str) -> None:
        """Count an instrumentation failure and log it once per stage; the request goes on."""
        try:
            self.metrics.instrumentation_error(stage)
            if stage not in self._logged_stages:
                self._logged_stages.add(stage)
                _log.exception("ouro-obs instrumentation error in stage %r (logged once)", stage)
        except Exception:  # pragma: no cover - counting must not fail the request either
            pass

    # -- own endpoints ------------------------------------------------------------------

    async def _serve_metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        accept = ""
        for name, value in scope.get("headers", ()):
            if name == b"accept":
                accept = value.decode("latin-1")
                break
        if multiprocess_dir() is not None:
            # Reading every worker's files is disk I/O: keep it off the event loop.
            body, content_type = await run_in_threadpool(render_metrics, self.registry, accept)
        else:
            body, content_type = render_metrics(self.registry, accept)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _live(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, {"status": "ok"}, head_only=scope["method"] == "HEAD")

    async def _ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        report = await self.readiness.run()
        await send_json(
            send, 200 if report.ready else 503, report.body(), head_only=scope["method"] == "HEAD"
        )

    # -- websocket and lifespan ---------------------------------------------------------

    def _websocket_send(self, scope: Scope, send: Send, root_path: str) -> Send:
        async def send_wrapper(message: Message) -> None:
            await send(message)
            if message["type"] == "websocket.accept":
                try:
                    self.metrics.websocket(self._template_after(scope, root_path))
                except Exception:
                    self._instrumentation_error("websocket")

        return send_wrapper

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def receive_wrapper() -> Message:
            message = await receive()
            message_type = message["type"]
            if message_type == "lifespan.startup":
                self._start_metrics_server()
            elif message_type == "lifespan.shutdown":
                self.readiness.draining = True
                if self._metrics_server is not None:
                    self._metrics_server.stop()
            return message

        return receive_wrapper

    def _start_metrics_server(self) -> None:
        """Bind the metrics port once (at lifespan start-up, or on the first request)."""
        self._metrics_server_pending = False
        if self._metrics_server is None:
            return
        try:
            self._metrics_server.start()
        except OSError:
            self._instrumentation_error("metrics_server")
