"""The pure ASGI middleware: timing, status capture by wrapping ``send``, dispatch to
metrics, the access log line and the request's span.

Per-request state lives in an :class:`_Exchange` object created for each request;
the middleware itself only holds configuration and the shared instruments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

import structlog
from opentelemetry import trace
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, reset_contextvars

from ouro_obs.config import ObservabilitySettings
from ouro_obs.exposition import MetricsServer
from ouro_obs.health import ReadinessChecks, send_json
from ouro_obs.logs import ACCESS_LOGGER_NAME, AccessLog
from ouro_obs.metrics import HttpMetrics, multiprocess_dir, normalize_method, render_metrics
from ouro_obs.redaction import query_names
from ouro_obs.request_id import accepted_request_id, new_request_id
from ouro_obs.routes import RouteResolver, RouteTemplates
from ouro_obs.tracing import ServerSpans, span_ids

__all__ = ["ObservabilityMiddleware"]

_log = logging.getLogger("ouro_obs")

#: Status recorded when the client went away before the response completed (nginx's code).
CLIENT_CLOSED_REQUEST = 499

_Endpoint = Callable[[Scope, Receive, Send], Awaitable[None]]

# What a request header is read for (propagation fields map to their own names).
_REQUEST_ID = 1
_USER_AGENT = 2
_HOST = 3

#: Starlette's ServerErrorMiddleware answers an unhandled exception with exactly this.
_ERROR_BODY = b"Internal Server Error"
_ERROR_HEADERS = [
    (b"content-length", str(len(_ERROR_BODY)).encode()),
    (b"content-type", b"text/plain; charset=utf-8"),
]


class _Exchange:
    """What one HTTP request did: bytes each way, the status sent, when it ended."""

    __slots__ = (
        "_receive",
        "_send",
        "client_gone",
        "complete",
        "end_time",
        "error",
        "finished",
        "log_tokens",
        "request_bytes",
        "request_id",
        "response_bytes",
        "response_started",
        "span",
        "span_token",
        "start_time",
        "status",
        "user_agent",
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
        self.error: BaseException | None = None
        self.request_id: str | None = None
        self.user_agent: bytes | None = None
        self.log_tokens: Any = None
        self.span: trace.Span | None = None
        self.span_token: object | None = None

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


def _with_header(message: Message, header: tuple[bytes, bytes]) -> Message:
    """A copy of ``message`` with ``header`` added, unless the app already sent that header.

    A copy: a response object reused across requests must not collect our headers.
    """
    headers = message.get("headers") or ()
    name = header[0]
    for existing, _value in headers:
        if existing.lower() == name:
            return message
    return {**message, "headers": [*headers, header]}


def _default_error_response(scope: Scope) -> bool:
    """Whether an unhandled exception would get a plain ``500 Internal Server Error``.

    True under a Starlette/FastAPI app without a 500/Exception handler and without
    ``debug``, and under a bare server (no app in the scope); then the middleware sends
    that same response itself, with the request id. A custom handler or the debug page
    stays Starlette's to send.
    """
    app = scope.get("app")
    if app is None:
        return True
    if not isinstance(app, Starlette) or app.debug:
        return False
    handlers = app.exception_handlers
    return 500 not in handlers and Exception not in handlers


def _leave(exchange: _Exchange) -> None:
    """Restore the context the request entered with (span, request id binding)."""
    if exchange.span_token is not None:
        ServerSpans.detach(exchange.span_token)
    if exchange.log_tokens is not None:
        with contextlib.suppress(ValueError):  # tokens made in another context
            reset_contextvars(**exchange.log_tokens)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


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
    read at the first request) and ``logger`` (the access line's structlog logger,
    default ``structlog.get_logger("ouro_obs.access")``).
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
        self._request_id_header = settings.request_id_header.encode("latin-1") or None
        self._accept_request_id = settings.accept_request_id
        self._access_log: AccessLog | None = None
        if settings.access_log:
            access_logger = structlog.get_logger(ACCESS_LOGGER_NAME) if logger is None else logger
            self._access_log = AccessLog(access_logger, settings)
        self._spans: ServerSpans | None = None
        if settings.tracing:
            self._spans = ServerSpans(tracer_provider, query_names(settings.redact_query_params))
        # Settled by the first request, once the app has configured logging and tracing.
        self._first_request = True
        self._tracing = False
        self._answers_errors = False
        self._wanted_headers: dict[bytes, int | str] = {}

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
        if self._first_request:
            self._on_first_request(scope)
        exchange = _Exchange(receive, send)
        method = normalize_method(scope["method"])
        try:
            self.metrics.started(method)
        except Exception:  # e.g. the multiprocess directory vanished: measure nothing, serve on
            self._instrumentation_error("metrics")
        route = self._route_before(scope)
        self._begin(scope, exchange, method)
        header = None
        if exchange.request_id is not None and self._request_id_header is not None:
            header = (self._request_id_header, exchange.request_id.encode("ascii"))

        async def send_wrapper(message: Message) -> None:
            if header is not None and message["type"] == "http.response.start":
                message = _with_header(message, header)
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
        except Exception as error:
            exchange.error = error
            if not exchange.response_started:
                exchange.status = 500
                if self._answers_errors:
                    await self._answer_error(send_wrapper)
            self._annotate(error, exchange)
            raise
        finally:
            if not exchange.finished:
                exchange.end_time = perf_counter()
                self._finish(scope, exchange, method, route, root_path)
            if exchange.span_token is not None or exchange.log_tokens is not None:
                _leave(exchange)

    def _on_first_request(self, scope: Scope) -> None:
        """Settle what depends on the app's start-up: tracer, logger, error handling."""
        self._first_request = False
        if self._metrics_server_pending:
            self._start_metrics_server()
        try:
            self._tracing = self._spans is not None and self._spans.resolve()
            if self._access_log is not None:
                self._access_log.resolve()
            self._wanted_headers = self._headers_to_read()
            self._answers_errors = _default_error_response(scope)
        except Exception:
            self._instrumentation_error("setup")

    def _headers_to_read(self) -> dict[bytes, int | str]:
        wanted: dict[bytes, int | str] = {}
        if self._spans is not None and self._tracing:
            for field_name in self._spans.header_fields:
                wanted[field_name.lower().encode("latin-1")] = field_name
            wanted[b"host"] = _HOST
        if self._tracing or self._access_log is not None:
            wanted[b"user-agent"] = _USER_AGENT
        if self._request_id_header is not None and self._accept_request_id:
            wanted[self._request_id_header] = _REQUEST_ID
        return wanted

    def _begin(self, scope: Scope, exchange: _Exchange, method: str) -> None:
        """Read the headers once; bind the request id for log lines; start the span."""
        try:
            incoming: bytes | None = None
            host: bytes | None = None
            carrier: dict[str, str] | None = None
            wanted = self._wanted_headers
            if wanted:
                for name, value in scope["headers"]:
                    role = wanted.get(name)
                    if role is None:
                        continue
                    if role.__class__ is str:
                        if carrier is None:
                            carrier = {}
                        carrier[role] = value.decode("latin-1")
                    elif role == _USER_AGENT:
                        exchange.user_agent = value
                    elif role == _HOST:
                        host = value
                    elif incoming is None:
                        incoming = value
            if self._request_id_header is not None:
                request_id = (accepted_request_id(incoming) if incoming else None) or (
                    new_request_id()
                )
                exchange.request_id = request_id
                exchange.log_tokens = bind_contextvars(request_id=request_id)
            if self._tracing:
                assert self._spans is not None
                exchange.span, exchange.span_token = self._spans.start(
                    scope, method, carrier, host, exchange.user_agent
                )
        except Exception:
            self._instrumentation_error("request")

    async def _answer_error(self, send: Send) -> None:
        """Send the 500 Starlette would send, through ``send`` so it carries the request id.

        The exception is re-raised afterwards: Starlette's ServerErrorMiddleware sees the
        response started and sends nothing more, and the server logs the traceback.
        """
        try:
            # A fresh list: outer middlewares may add headers to it in place.
            headers = list(_ERROR_HEADERS)
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": _ERROR_BODY})
        except Exception:
            pass  # the client is gone; the app's exception still propagates

    def _annotate(self, error: BaseException, exchange: _Exchange) -> None:
        """Name the request on the exception, so the server's traceback line is correlated."""
        try:
            if exchange.request_id is None and exchange.span is None:
                return
            note = "ouro-obs:"
            if exchange.request_id is not None:
                note += f" request_id={exchange.request_id}"
            ids = span_ids(exchange.span) if exchange.span is not None else None
            if ids is not None:
                note += f" trace_id={ids[0]} span_id={ids[1]}"
            error.add_note(note)
        except Exception:
            self._instrumentation_error("request")

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
        """Record the request once: span, metrics, access line; never raises."""
        exchange.finished = True
        try:
            status = exchange.status
            if exchange.client_gone and not exchange.complete:
                status = CLIENT_CLOSED_REQUEST
            elif status == 0:
                status = 500  # the app returned without answering; servers send 500
            if route is None:
                route = self._template_after(scope, root_path)
            ids = None if exchange.span is None else self._end_span(exchange, method, route, status)
            duration = exchange.end_time - exchange.start_time
            try:
                self.metrics.observe(
                    method,
                    route,
                    status,
                    duration,
                    exchange.request_bytes,
                    exchange.response_bytes,
                    ids[0] if ids is not None and ids[2] else None,
                )
            except Exception:
                self._instrumentation_error("metrics")
            if self._access_log is not None:
                self._write_access_line(scope, exchange, method, route, status, duration, ids)
        except Exception:
            self._instrumentation_error("metrics")
        finally:
            try:
                self.metrics.ended(method)
            except Exception:
                self._instrumentation_error("metrics")

    def _end_span(
        self, exchange: _Exchange, method: str, route: str, status: int
    ) -> tuple[str, str, bool] | None:
        """End the request's span if it is ours; its ids either way."""
        span = exchange.span
        assert span is not None
        try:
            if exchange.span_token is not None:
                sent: int | None = status
                if exchange.response_started:
                    sent = exchange.status
                elif exchange.client_gone:
                    sent = None
                ServerSpans.finish(
                    span, method, None if route == self._unmatched else route, sent, exchange.error
                )
            return span_ids(span)
        except Exception:
            self._instrumentation_error("tracing")
            return None

    def _write_access_line(
        self,
        scope: Scope,
        exchange: _Exchange,
        method: str,
        route: str,
        status: int,
        duration: float,
        ids: tuple[str, str, bool] | None,
    ) -> None:
        assert self._access_log is not None
        try:
            self._access_log.write(
                method=method,
                route=route,
                path=scope["path"],
                query=scope.get("query_string", b""),
                status=status,
                duration_seconds=duration,
                request_bytes=exchange.request_bytes,
                response_bytes=exchange.response_bytes,
                client=scope.get("client"),
                user_agent=exchange.user_agent,
                request_id=exchange.request_id,
                trace_id=None if ids is None else ids[0],
                span_id=None if ids is None else ids[1],
                error=exchange.error,
            )
        except Exception:
            self._instrumentation_error("access_log")

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
