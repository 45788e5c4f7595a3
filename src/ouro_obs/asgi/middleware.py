"""``ObservabilityMiddleware``: dispatch by scope type, its own endpoints, the lifespan.

An HTTP request to one of the service endpoints (``/metrics``, ``/health/live``,
``/health/ready``) is answered here; one to an excluded path goes straight to the app;
any other goes through the :class:`~ouro_obs.asgi.pipeline.RequestPipeline` inside a
per-request :class:`~ouro_obs.asgi.exchange.Exchange`. WebSocket connections are counted
when accepted; lifespan start-up binds the metrics port, shutdown turns readiness to
"draining". The middleware holds configuration only: per-request state lives in the
exchange.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from prometheus_client import REGISTRY, CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ouro_obs.asgi.endpoints import ServiceEndpoints
from ouro_obs.asgi.exchange import Exchange
from ouro_obs.asgi.exclusions import Exclusions
from ouro_obs.asgi.health import ReadinessChecks
from ouro_obs.asgi.pipeline import RequestPipeline
from ouro_obs.asgi.recorders import (
    Failsafe,
    MetricsRecorder,
    OtelMetricsRecorder,
    RequestMetrics,
)
from ouro_obs.asgi.routes import RouteResolver
from ouro_obs.asgi.websocket import WebSocketObserver
from ouro_obs.config import ObservabilitySettings
from ouro_obs.contract import OTHER_METHOD, STANDARD_METHODS
from ouro_obs.metrics import HttpMetrics
from ouro_obs.metrics.exposition import MetricsServer

__all__ = ["ObservabilityMiddleware"]

_log = logging.getLogger("ouro_obs")

#: Set in the scope of a request an instance observes, so that an inner one (a mounted
#: sub-app's) passes it through: one record, one request id.
_OBSERVED = "ouro_obs.observed"
_SHUTDOWN_ENDS = frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"})


class ObservabilityMiddleware:
    """RED metrics, an access log line and a span per request, health and ``/metrics``.

    ``app.add_middleware(ObservabilityMiddleware, service_name="shop")`` is the whole
    integration. Keyword ``options`` are :class:`ObservabilitySettings` fields, applied on
    top of ``settings`` (default: the defaults, not the environment; use
    ``ObservabilitySettings.from_env()`` at the edge for that).

    Dependencies come in: ``registry`` (default: the global one), ``readiness`` (checks
    run by the readiness endpoint), ``route_resolver`` (templates known before the app
    runs, e.g. from an OpenAPI document; otherwise Starlette's routing is read),
    ``tracer_provider`` (default: the global one, as ``configure_tracing()`` installs it;
    read at the first request), ``meter_provider`` (``metrics_backend="opentelemetry"``
    only; default: one of its own, scraped on ``registry`` and pushed as the ``OTEL_*``
    variables say, see :func:`~ouro_obs.metrics.otel.otel_meter_provider`) and ``logger``
    (the access line's structlog logger, default ``structlog.get_logger("ouro_obs.access")``).
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
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: otel_metrics.MeterProvider | None = None,
        logger: Any = None,
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
        endpoints = ServiceEndpoints.from_settings(
            settings,
            registry=registry,
            readiness=self.readiness,
            serve_metrics=settings.app_metrics_path is not None,
            readiness_details=False,  # the Ingress reaches this port: failing names only
        )
        # Looked up on every request: a plain dict, not a method call.
        self._endpoints = {path: endpoints.get(path) for path in endpoints.paths}
        self._excluded = settings.effective_excluded_paths
        #: Prefixes, patterns and methods not measured; None when none are configured.
        self._exclusions = Exclusions.from_settings(settings)
        self._failsafe = Failsafe(self.metrics.instrumentation_error)
        self._metrics_server = self._metrics_port(settings, registry)
        self._metrics_server_pending = self._metrics_server is not None
        self._unsettled = RequestPipeline.from_settings(
            settings,
            failsafe=self._failsafe,
            metrics=self._request_metrics(settings, registry, meter_provider),
            route_resolver=route_resolver,
            tracer_provider=tracer_provider,
            logger=logger,
            route_in_flight=self.metrics.route_in_flight,
        )
        #: Settled by the first request, once the app has configured logging and tracing.
        self._pipeline: RequestPipeline | None = None
        self._websockets: WebSocketObserver | None = None

    def _request_metrics(
        self,
        settings: ObservabilitySettings,
        registry: CollectorRegistry | None,
        meter_provider: otel_metrics.MeterProvider | None,
    ) -> RequestMetrics:
        """The recorder of the configured backend (the OpenTelemetry one imported on demand)."""
        #: The provider this middleware built itself, flushed at shutdown.
        self._own_meter_provider: Any = None
        if settings.metrics_backend != "opentelemetry":
            return MetricsRecorder(self.metrics)
        from ouro_obs.metrics.otel import OtelHttpMetrics, shared_meter_provider  # noqa: PLC0415

        if meter_provider is None:
            meter_provider = shared_meter_provider(settings, registry or REGISTRY)
            self._own_meter_provider = meter_provider
        recorder = OtelHttpMetrics(
            settings, meter_provider, count_overflow=self.metrics.label_sets_overflowed
        )
        return OtelMetricsRecorder(recorder, self.metrics.request_labels)

    def _metrics_port(
        self, settings: ObservabilitySettings, registry: CollectorRegistry | None
    ) -> MetricsServer | None:
        """The server of the metrics port of its own, if the settings ask for one."""
        if not settings.metrics_port:
            return None
        endpoints = ServiceEndpoints.from_settings(
            settings, registry=registry, readiness=self.readiness
        )
        return MetricsServer(settings.metrics_host, settings.metrics_port, endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        root_path: str = scope.get("root_path", "")
        path: str = scope["path"]
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :] or "/"
        endpoint = self._endpoints.get(path)
        if endpoint is not None:
            await endpoint(scope, receive, send)
            return
        if (
            path in self._excluded
            or (self._exclusions is not None and self._exclusions(path, scope))
            or _OBSERVED in scope  # a mounted app's own instance: the outer one observes it
        ):
            await self.app(scope, receive, send)
            return
        # The observed request, here rather than in a coroutine of its own: one frame less
        # per request.
        scope[_OBSERVED] = True
        pipeline = self._pipeline or self._settle(scope)
        method: str = scope["method"]
        if method not in STANDARD_METHODS:
            method = OTHER_METHOD
        exchange = Exchange(scope, receive, send, method, root_path, pipeline.finish)
        pipeline.begin(exchange)
        try:
            await self.app(scope, exchange.receive, exchange.send)
            if exchange.status_sent is None:
                await pipeline.app_returned_unanswered(exchange)
        except asyncio.CancelledError:
            exchange.cancelled()
            raise
        except Exception as error:
            await pipeline.app_raised(exchange, error)
            raise
        finally:
            if not exchange.finished:  # the app returned before its response's last byte
                exchange.finish()
            if exchange.span_token is not None or exchange.request_id_binding is not None:
                pipeline.leave(exchange)

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "websocket":
            observer = self._websockets or self._websocket_observer(scope)
            await observer(self.app, scope, receive, send)
        elif scope_type == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), self._lifespan_send(send))
        else:
            await self.app(scope, receive, send)

    def _settle(self, scope: Scope) -> RequestPipeline:
        """Build the pipeline once, for the app as the first request finds it."""
        if self._metrics_server_pending:
            self._start_metrics_server()
        pipeline = self._failsafe.call("setup", self._unsettled.settled, scope, self)
        if pipeline is None:  # settle what does not depend on the app, and serve on
            pipeline = self._unsettled.settled(None)
        self._pipeline = pipeline
        return pipeline

    # -- websocket and lifespan ---------------------------------------------------------

    def _websocket_observer(self, scope: Scope) -> WebSocketObserver:
        """Built once, by the first connection, from the settled pipeline."""
        pipeline = self._pipeline or self._settle(scope)
        observer = WebSocketObserver.for_pipeline(self.metrics, self._failsafe, pipeline)
        self._websockets = observer
        return observer

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

    def _lifespan_send(self, send: Send) -> Send:
        async def send_wrapper(message: Message) -> None:
            if message["type"] in _SHUTDOWN_ENDS:  # after the app's own shutdown code
                await self._flush_spans()
                await self._flush_metrics()
            await send(message)

        return send_wrapper

    async def _flush_spans(self) -> None:
        """Export the queued spans before the server exits, within the configured timeout.

        uvicorn re-raises SIGTERM once the lifespan has ended, so no ``atexit`` hook (the
        SDK's own flush) runs after this: what is not delivered now is counted, not lost.
        """
        span_source = self._unsettled.span_source
        if span_source is None:
            return
        timeout = self.settings.span_flush_timeout_seconds
        try:
            await asyncio.to_thread(span_source.flush_for_exit, timeout)
        except Exception:  # the app's shutdown goes on
            self._failsafe.failed("tracing")

    async def _flush_metrics(self) -> None:
        """Push the last OpenTelemetry metrics (their OTLP readers), within the span timeout."""
        provider = self._own_meter_provider
        if provider is None:
            return
        timeout_millis = self.settings.span_flush_timeout_seconds * 1000
        try:
            await asyncio.to_thread(provider.force_flush, timeout_millis)
        except Exception:  # the app's shutdown goes on
            self._failsafe.failed("metrics")

    def _start_metrics_server(self) -> None:
        """Bind the metrics port once (at lifespan start-up, or on the first request).

        In multiprocess mode the first worker to bind it serves every worker's metrics;
        in a single process, a port already held means Prometheus scrapes whatever holds
        it: logged as an error and counted (``stage="metrics_port"``).
        """
        self._metrics_server_pending = False
        server = self._metrics_server
        if server is None:
            return
        bound = self._failsafe.call("metrics_server", server.start)
        if bound is False and self.settings.multiprocess_dir is None:
            self.metrics.instrumentation_error("metrics_port")
            _log.error(
                "metrics port %s:%s is held by another process: this service's metrics are "
                "NOT served there (Prometheus scrapes whatever holds it); free the port or "
                "set metrics_port to another one",
                server.host,
                server.port,
            )
