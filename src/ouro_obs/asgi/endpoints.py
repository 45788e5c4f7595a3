"""``/metrics``, ``/health/live`` and ``/health/ready``: the one implementation every port serves.

The app's own port (through the middleware), the separate metrics port
(:class:`ouro_obs.metrics.exposition.MetricsServer`), the sidecar's admin port and the
gunicorn master all answer through :meth:`ServiceEndpoints.respond`, so a scrape or a probe
gets the same answer wherever it lands::

    # the app's port: metrics only where settings.metrics_path says (None: not there)
    endpoints = ServiceEndpoints.from_settings(
        settings, registry=registry, readiness=readiness,
        serve_metrics=settings.metrics_path is not None,
    )
    endpoint = endpoints.get(path)          # None: not ours, the app answers
    # a port of its own: always /metrics (settings.metrics_path, else /metrics)
    MetricsServer(host, port, ServiceEndpoints.from_settings(
        settings, registry=registry, readiness=readiness))

- ``GET``/``HEAD`` only (``405`` otherwise); ``HEAD`` answers the headers of ``GET``.
- ``/metrics``: Prometheus text, or OpenMetrics when the scraper asks for it. In multiprocess
  mode the workers' files are read in a worker thread (disk I/O stays off the event loop). A
  render failure is logged and answered ``500`` with a short plain-text body.
- ``/health/live``: ``200 {"status":"ok"}``. ``/health/ready``: the registered
  :class:`~ouro_obs.asgi.health.ReadinessChecks`, each within its timeout: ``200`` or ``503``
  naming the failing checks; with each check's state (an exception's text) only on a port
  of its own: the app's port, which the Ingress reaches, names them and logs the details.
  Health answers are JSON with ``cache-control: no-store``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any

import anyio.to_thread
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from ouro_obs.asgi.health import HealthReport, ReadinessChecks
from ouro_obs.config import ObservabilitySettings
from ouro_obs.metrics.exposition import render_metrics

__all__ = [
    "DEFAULT_METRICS_PATH",
    "ASGIEndpoint",
    "EndpointResponse",
    "ServiceEndpoints",
    "not_found",
]

_log = logging.getLogger(__name__)

ASGIEndpoint = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where a port of its own serves metrics when the settings name no path.
DEFAULT_METRICS_PATH = "/metrics"
#: Seconds a readiness run on another thread's event loop gets beyond the checks' timeout.
_LOOP_GRACE_SECONDS = 1.0
_SERVED_METHODS = ("GET", "HEAD")
_METRICS_UNAVAILABLE = b"metrics unavailable, see the service log\n"


@dataclass(frozen=True, slots=True)
class EndpointResponse:
    """A transport-free answer; ``body`` is empty for ``HEAD``, ``content-length`` is not."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    async def send_to(self, send: Send) -> None:
        """Send this answer as the two ASGI messages of one response."""
        # A fresh list: outer middlewares may add headers to it in place.
        await send(
            {"type": "http.response.start", "status": self.status, "headers": list(self.headers)}
        )
        await send({"type": "http.response.body", "body": self.body})


def _response(
    status: int, content_type: bytes, body: bytes, head: bool, *extra: tuple[bytes, bytes]
) -> EndpointResponse:
    headers = (
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *extra,
    )
    return EndpointResponse(status, headers, b"" if head else body)


def _json(
    status: int, document: object, head: bool, *extra: tuple[bytes, bytes]
) -> EndpointResponse:
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return _response(
        status, b"application/json", body, head, (b"cache-control", b"no-store"), *extra
    )


def not_found(method: str) -> EndpointResponse:
    """The answer of a port of its own for a path that is none of the endpoints."""
    return _json(404, {"error": "not found"}, method == "HEAD")


class _Kind(Enum):
    METRICS = "metrics"
    LIVE = "live"
    READY = "ready"


class ServiceEndpoints:
    """/metrics, /health/live and /health/ready: the one implementation every port serves
    (the app port through the middleware, the separate metrics port, the sidecar's admin
    port, the gunicorn master).

    ``registry=None`` renders the global registry; ``multiprocess_dir`` (the settings'
    ``multiprocess_dir``) renders the aggregate of every worker's files instead;
    ``metrics_path=None`` serves no metrics (health only); ``created_series`` exposes the
    ``<name>_created`` series (off by default).
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None,
        readiness: ReadinessChecks,
        metrics_path: str | None = DEFAULT_METRICS_PATH,
        live_path: str = "/health/live",
        ready_path: str = "/health/ready",
        multiprocess_dir: str | None = None,
        readiness_details: bool = True,
        created_series: bool = False,
    ) -> None:
        self.registry = registry
        #: Whether ``/health/ready`` shows each check's state, or names the failing ones
        #: only (the app's own port: the details go to the log instead).
        self.readiness_details = readiness_details
        self.readiness = readiness
        self.metrics_path = metrics_path
        self.multiprocess_dir = multiprocess_dir
        self.created_series = created_series
        kinds = {live_path: _Kind.LIVE, ready_path: _Kind.READY}
        if metrics_path is not None:
            kinds[metrics_path] = _Kind.METRICS
        self._kinds = kinds
        self._asgi = {path: self._asgi_endpoint(path) for path in kinds}

    @classmethod
    def from_settings(
        cls,
        settings: ObservabilitySettings,
        *,
        registry: CollectorRegistry | None,
        readiness: ReadinessChecks,
        serve_metrics: bool = True,
        readiness_details: bool = True,
    ) -> ServiceEndpoints:
        """The endpoints ``settings`` describe.

        ``serve_metrics=True`` serves metrics at ``settings.metrics_path``, or at
        ``/metrics`` when that is ``None`` (a port of its own always serves them); the app's
        port passes ``serve_metrics=settings.metrics_path is not None`` and
        ``readiness_details=False``.
        """
        return cls(
            registry=registry,
            readiness=readiness,
            metrics_path=(settings.metrics_path or DEFAULT_METRICS_PATH) if serve_metrics else None,
            live_path=settings.health_live_path,
            ready_path=settings.health_ready_path,
            multiprocess_dir=settings.multiprocess_dir,
            readiness_details=readiness_details,
            created_series=settings.created_series,
        )

    @property
    def paths(self) -> frozenset[str]:
        """Every path these endpoints answer."""
        return frozenset(self._kinds)

    def get(self, path: str) -> ASGIEndpoint | None:
        """The ASGI endpoint serving ``path`` (already stripped of ``root_path``), or None."""
        return self._asgi.get(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A whole ASGI app: the endpoints, ``404`` for any other path, lifespan answered."""
        scope_type = scope["type"]
        if scope_type == "http":
            response = await self.answer(_path(scope), scope["method"], _accept(scope))
            await response.send_to(send)
        elif scope_type == "lifespan":
            await _lifespan(receive, send)
        elif scope_type == "websocket":
            await receive()  # websocket.connect; closing before accepting refuses it (403)
            await send({"type": "websocket.close", "code": 1008})

    async def respond(
        self,
        path: str,
        method: str,
        accept: str,
        *,
        checks_loop: asyncio.AbstractEventLoop | None = None,
    ) -> EndpointResponse | None:
        """The answer to ``method path`` with ``Accept: accept``; None when ``path`` is not ours.

        ``checks_loop``: the event loop the readiness checks belong to, when this runs on
        another one (the metrics port's thread); the run is bounded by the checks' timeout.
        """
        kind = self._kinds.get(path)
        if kind is None:
            return None
        if method not in _SERVED_METHODS:
            return _json(405, {"error": "method not allowed"}, False, (b"allow", b"GET, HEAD"))
        head = method == "HEAD"
        if kind is _Kind.METRICS:
            return await self._metrics(accept, head)
        if kind is _Kind.LIVE:
            return _json(200, {"status": "ok"}, head)
        report = await self._readiness_report(checks_loop)
        details = self.readiness_details
        if not details:
            self.readiness.log_failures(report)
        return _json(200 if report.ready else 503, report.body(details), head)

    async def answer(
        self,
        path: str,
        method: str,
        accept: str,
        *,
        checks_loop: asyncio.AbstractEventLoop | None = None,
    ) -> EndpointResponse:
        """What a port of its own answers: :meth:`respond`, or ``404`` for any other path."""
        response = await self.respond(path, method, accept, checks_loop=checks_loop)
        return not_found(method) if response is None else response

    async def _metrics(self, accept: str, head: bool) -> EndpointResponse:
        try:
            if self.multiprocess_dir is None:
                body, content_type = render_metrics(
                    self.registry, accept, created_series=self.created_series
                )
            else:
                body, content_type = await anyio.to_thread.run_sync(
                    render_metrics, self.registry, accept, self.multiprocess_dir
                )
        except Exception:
            _log.exception("rendering %s failed", self.metrics_path)
            return _response(500, b"text/plain; charset=utf-8", _METRICS_UNAVAILABLE, head)
        return _response(200, content_type.encode("latin-1"), body, head)

    async def _readiness_report(
        self, checks_loop: asyncio.AbstractEventLoop | None
    ) -> HealthReport:
        if checks_loop is None or checks_loop is asyncio.get_running_loop():
            return await self.readiness.run()
        timeout = self.readiness.timeout_seconds + _LOOP_GRACE_SECONDS
        return await _run_on(checks_loop, self.readiness.run(), timeout)

    def _asgi_endpoint(self, path: str) -> ASGIEndpoint:
        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            response = await self.answer(path, scope["method"], _accept(scope))
            await response.send_to(send)

        return endpoint


async def _run_on(
    loop: asyncio.AbstractEventLoop,
    coroutine: Coroutine[Any, Any, HealthReport],
    timeout: float,
) -> HealthReport:
    """``coroutine`` run on ``loop`` (another thread's), awaited here for ``timeout`` at most."""
    if loop.is_closed() or not loop.is_running():
        coroutine.close()
        return HealthReport(ready=False, checks={"event_loop": "stopped"})
    future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except TimeoutError:
        future.cancel()
        return HealthReport(ready=False, checks={"event_loop": f"no answer within {timeout:g}s"})


def _path(scope: Scope) -> str:
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path) :] or "/"
    return path


def _accept(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            accept: str = value.decode("latin-1")
            return accept
    return ""


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
