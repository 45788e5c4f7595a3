"""The metric contract the runtime emits and the SLO generator reads (DESIGN.md).

Names, label names, methods and default buckets live here and only here. This module
imports nothing outside the standard library, so ``ouro_obs.slo`` can read it without
loading Starlette, OpenTelemetry or prometheus_client.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_DURATION_BUCKETS",
    "DEFAULT_SIZE_BUCKETS",
    "METHOD_LABEL",
    "OTHER_METHOD",
    "ROUTE_LABEL",
    "STANDARD_METHODS",
    "STATUS_LABEL",
    "WEBSOCKET_DURATION_BUCKETS",
    "MetricNames",
    "OtelNames",
    "normalize_method",
]

#: OpenTelemetry's advice for ``http.server.request.duration`` (seconds).
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip

#: Body sizes in bytes: 100 B to 10 MB, roughly x4 apart.
DEFAULT_SIZE_BUCKETS: tuple[float, ...] = (
    100.0, 1_000.0, 4_000.0, 16_000.0, 64_000.0, 256_000.0, 1_000_000.0, 4_000_000.0, 10_000_000.0,
)  # fmt: skip

#: WebSocket connection lifetimes in seconds: a tenth of a second to an hour.
WEBSOCKET_DURATION_BUCKETS: tuple[float, ...] = (
    0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
)  # fmt: skip

#: Methods kept as label values; any other becomes ``_OTHER`` (OTel semantic conventions).
STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER_METHOD = "_OTHER"

METHOD_LABEL = "method"
ROUTE_LABEL = "route"
STATUS_LABEL = "status"


def normalize_method(method: str) -> str:
    """``method`` when it is a standard one, else ``_OTHER`` (bounded label values)."""
    return method if method in STANDARD_METHODS else OTHER_METHOD


@dataclass(frozen=True, slots=True)
class MetricNames:
    """The exposed metric names, with an optional namespace prefix."""

    namespace: str = ""

    def _name(self, base: str) -> str:
        return f"{self.namespace}_{base}" if self.namespace else base

    @property
    def requests_total(self) -> str:
        return self._name("http_requests_total")

    @property
    def request_duration(self) -> str:
        return self._name("http_request_duration_seconds")

    @property
    def requests_in_progress(self) -> str:
        return self._name("http_requests_in_progress")

    @property
    def request_size(self) -> str:
        return self._name("http_request_size_bytes")

    @property
    def response_size(self) -> str:
        return self._name("http_response_size_bytes")

    @property
    def websocket_connections_total(self) -> str:
        return self._name("websocket_connections_total")

    @property
    def websocket_connections_closed_total(self) -> str:
        return self._name("websocket_connections_closed_total")

    @property
    def websocket_connection_duration(self) -> str:
        return self._name("websocket_connection_duration_seconds")

    @property
    def websocket_messages_total(self) -> str:
        return self._name("websocket_messages_total")

    @property
    def label_overflow_total(self) -> str:
        return self._name("ouro_obs_label_overflow_total")

    @property
    def request_label_overflow_total(self) -> str:
        return self._name("ouro_obs_request_label_overflow_total")

    @property
    def instrumentation_errors_total(self) -> str:
        return self._name("ouro_obs_instrumentation_errors_total")


@dataclass(frozen=True, slots=True)
class OtelNames:
    """The OpenTelemetry metrics mode: HTTP semantic-convention instruments and attributes.

    ``scraped_*`` are the names Prometheus gives them when it scrapes them through
    ``opentelemetry-exporter-prometheus`` (dots become ``_``, the unit ``s`` adds
    ``_seconds`` and ``By`` adds ``_bytes``; ``{request}`` adds nothing, and no ``_total``
    is added because none of them is a counter). There is no request counter: requests are
    counted by the duration histogram's ``_count``, which carries the status code.
    """

    request_duration: str = "http.server.request.duration"
    active_requests: str = "http.server.active_requests"
    request_body_size: str = "http.server.request.body.size"
    response_body_size: str = "http.server.response.body.size"
    method_attribute: str = "http.request.method"
    route_attribute: str = "http.route"
    status_attribute: str = "http.response.status_code"
    scheme_attribute: str = "url.scheme"
    error_type_attribute: str = "error.type"
    scraped_request_duration: str = "http_server_request_duration_seconds"
    scraped_active_requests: str = "http_server_active_requests"
    scraped_request_body_size: str = "http_server_request_body_size_bytes"
    scraped_response_body_size: str = "http_server_response_body_size_bytes"
    scraped_method_label: str = "http_request_method"
    scraped_route_label: str = "http_route"
    scraped_status_label: str = "http_response_status_code"
