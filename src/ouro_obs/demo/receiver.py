"""A small OTLP/HTTP receiver on loopback: where the demo's spans (and metrics) end up.

It is a real HTTP server (in a thread of the calling process) that decodes
``ExportTraceServiceRequest`` and ``ExportMetricsServiceRequest`` protobuf bodies with
opentelemetry-proto, exactly what a collector's OTLP/HTTP receiver accepts on
``/v1/traces`` and ``/v1/metrics`` (gzip included), and keeps the spans and metric points
in memory to count and inspect them (the integration tests assert on them too).
Not for production: it keeps everything it gets.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ouro_obs.demo.lifecycle import LOOPBACK, ServedInThread

__all__ = ["OTLPReceiver", "ReceivedPoint", "ReceivedSpan"]

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
_MAX_BODY_BYTES = 64 * 1024 * 1024


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One span as the receiver decoded it; ids are lower-case hex, kind/status are names."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    status: str
    attributes: Mapping[str, Any]
    resource: Mapping[str, Any]
    scope: str
    events: tuple[str, ...] = field(default=())
    trace_state: str = ""

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name", ""))


def _received(span: Span, resource: dict[str, Any], scope: str) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        kind=Span.SpanKind.Name(span.kind),
        status=Status.StatusCode.Name(span.status.code),
        attributes=_attributes(span.attributes),
        resource=resource,
        scope=scope,
        events=tuple(event.name for event in span.events),
        trace_state=span.trace_state,
    )


@dataclass(frozen=True, slots=True)
class ReceivedPoint:
    """One data point of a received metric: a histogram's count and sum, a sum's or gauge's value."""

    metric: str
    unit: str
    #: ``histogram``, ``sum`` or ``gauge`` (others are kept with value 0).
    kind: str
    attributes: Mapping[str, Any]
    value: float
    resource: Mapping[str, Any]
    scope: str
    #: A histogram's sum and bucket boundaries (empty for the other kinds).
    total: float = 0.0
    bounds: tuple[float, ...] = ()


def _points(request: ExportMetricsServiceRequest) -> list[ReceivedPoint]:
    points = []
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope.name
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data") or ""
                for point in getattr(metric, kind).data_points if kind else ():
                    if kind == "histogram":
                        value, total = float(point.count), point.sum
                        bounds = tuple(point.explicit_bounds)
                    else:
                        which = point.WhichOneof("value")
                        value, total, bounds = float(getattr(point, which or "as_int")), 0.0, ()
                    points.append(
                        ReceivedPoint(
                            metric.name,
                            metric.unit,
                            kind,
                            _attributes(point.attributes),
                            value,
                            resource,
                            scope,
                            total,
                            bounds,
                        )
                    )
    return points


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        if path not in {TRACES_PATH, METRICS_PATH}:
            self._answer(404, b"only /v1/traces and /v1/metrics are received here")
            return
        length = int(self.headers.get("content-length") or 0)
        if not 0 <= length <= _MAX_BODY_BYTES:
            self._answer(413, b"body too large")
            return
        body = self.rfile.read(length)
        if self.headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        if "protobuf" not in self.headers.get("content-type", ""):
            self._answer(415, b"send application/x-protobuf")
            return
        if path == METRICS_PATH:
            self._metrics(body)
            return
        try:
            request = ExportTraceServiceRequest.FromString(body)
        except Exception:  # protobuf.message.DecodeError; its stubs are not installed
            self._answer(400, b"not an ExportTraceServiceRequest")
            return
        self.server.receive(request)
        self._answer(200, ExportTraceServiceResponse().SerializeToString())

    def _metrics(self, body: bytes) -> None:
        try:
            request = ExportMetricsServiceRequest.FromString(body)
        except Exception:  # protobuf.message.DecodeError
            self._answer(400, b"not an ExportMetricsServiceRequest")
            return
        self.server.receive_metrics(request)
        self._answer(200, ExportMetricsServiceResponse().SerializeToString())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None  # one line per export would drown the test output


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        on_request: Callable[[Any], None],
        on_metrics: Callable[[Any], None],
    ) -> None:
        super().__init__(address, _Handler)
        self.receive = on_request
        self.receive_metrics = on_metrics


class OTLPReceiver(ServedInThread):
    """Receive OTLP/HTTP trace exports on ``http://127.0.0.1:<port>/v1/traces``.

    ``endpoint`` is the base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``traces_url``
    the full one for an exporter's ``endpoint=``. Use it as a context manager, or
    ``start()`` / ``stop()``.
    """

    thread_name = "otlp-receiver"

    def __init__(self, port: int = 0, host: str = LOOPBACK) -> None:
        super().__init__(port, host)
        self._spans: list[ReceivedSpan] = []
        self._points: list[ReceivedPoint] = []
        self._lock = threading.Condition()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def traces_url(self) -> str:
        return self.endpoint + TRACES_PATH

    def make_server(self, address: tuple[str, int]) -> ThreadingHTTPServer:
        return _Server(address, self._receive, self._receive_metrics)

    def _receive_metrics(self, request: ExportMetricsServiceRequest) -> None:
        points = _points(request)
        with self._lock:
            self._points.extend(points)
            self._lock.notify_all()

    @property
    def points(self) -> list[ReceivedPoint]:
        """Every metric data point received, in arrival order (each export adds its own)."""
        with self._lock:
            return list(self._points)

    def wait_for_points(
        self, predicate: Callable[[ReceivedPoint], bool], timeout: float = 10.0
    ) -> list[ReceivedPoint]:
        """Block until a received data point satisfies ``predicate``; return all that do."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [point for point in self._points if predicate(point)]
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    break
                self._lock.wait(remaining)
        if not found:
            names = sorted({point.metric for point in self.points})
            raise TimeoutError(f"no such metric point within {timeout:.0f}s; received: {names}")
        return found

    def _receive(self, request: ExportTraceServiceRequest) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(_received(span, resource, scope_spans.scope.name))
        with self._lock:
            self._spans.extend(spans)
            self._lock.notify_all()

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, predicate: Callable[[ReceivedSpan], bool], count: int = 1, timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """Block until ``count`` received spans satisfy ``predicate``; return them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [span for span in self._spans if predicate(span)]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    break
                self._lock.wait(remaining)
        if len(found) < count:
            names = sorted({span.name for span in self.spans})
            raise TimeoutError(
                f"{len(found)} of {count} expected spans within {timeout:.0f}s; received: {names}"
            )
        return found
