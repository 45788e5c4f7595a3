"""The HTTP metric families of one registry, built once and shared by every middleware on it.

Metric names and labels are the contract in :mod:`ouro_obs.contract` (DESIGN.md, "Metric
contract"); the SLO generator reads the same module, so the rules query exactly what the
middleware emits. :mod:`ouro_obs.metrics.instruments` records into these families.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ouro_obs.config import ConfigError, ObservabilitySettings
from ouro_obs.contract import (
    METHOD_LABEL,
    ROUTE_LABEL,
    STATUS_LABEL,
    WEBSOCKET_DURATION_BUCKETS,
    MetricNames,
)

__all__ = ["ROUTE_LABELS", "Instruments", "instruments_for"]

ROUTE_LABELS = (METHOD_LABEL, ROUTE_LABEL)


class Instruments:
    """The metric families of one registry; built once per (registry, names, buckets).

    The HTTP request families (count, duration, in flight, sizes) are on the registry only
    once a Prometheus-backend middleware uses them (``http``, :meth:`expose_http`): in the
    OpenTelemetry mode the semantic-convention instruments stand for them, and an empty
    ``http_requests_total`` beside ``http_server_request_duration_seconds`` would be one
    more family to wonder about. The WebSocket and ``ouro_obs_*`` families are always there.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        names: MetricNames,
        settings: ObservabilitySettings,
        *,
        http: bool = True,
    ):
        self.signature = _signature(names, settings)
        self._registry = registry
        self._http_exposed = False
        extra = settings.extra_label_names
        static = tuple(name for name, _ in settings.static_label_pairs)
        #: The family names ``ouro_obs_label_overflow_total{metric}`` reports.
        self.requests_name = names.requests_total.removesuffix("_total")
        self.duration_name = names.request_duration

        def counter(
            name: str,
            documentation: str,
            labels: tuple[str, ...],
            registry: CollectorRegistry | None = registry,
        ) -> Counter:
            return Counter(name.removesuffix("_total"), documentation, labels, registry=registry)

        def route_histogram(name: str, documentation: str, buckets: Sequence[float]) -> Histogram:
            labels = (*ROUTE_LABELS, *extra)
            return Histogram(name, documentation, labels, buckets=buckets, registry=None)

        # The HTTP families, built off the registry and put on it by expose_http.
        self.requests = counter(
            self.requests_name,
            "HTTP requests completed, by method, route template and status code.",
            (*ROUTE_LABELS, STATUS_LABEL, *extra),
            None,
        )
        self.duration = route_histogram(
            names.request_duration,
            "Time from the request's arrival to its last response byte, in seconds.",
            settings.duration_buckets,
        )
        self.in_progress_name = names.requests_in_progress
        in_progress_labels = ROUTE_LABELS if settings.inflight_by_route else (METHOD_LABEL,)
        self.in_progress = Gauge(
            names.requests_in_progress,
            "HTTP requests being served right now.",
            (*in_progress_labels, *static),
            registry=None,
            multiprocess_mode="livesum",
        )
        self.request_size = route_histogram(
            names.request_size, "Request body bytes actually received.", settings.size_buckets
        )
        self.response_size = route_histogram(
            names.response_size, "Response body bytes actually sent.", settings.size_buckets
        )
        if http:  # first, so /metrics lists them first, as it always has
            self.expose_http()
        self.websockets = counter(
            names.websocket_connections_total,
            "WebSocket connections accepted or refused, by route template.",
            (ROUTE_LABEL, *static),
        )
        self.websockets_closed = counter(
            names.websocket_connections_closed_total,
            "WebSocket connections ended, by route template and close code.",
            (ROUTE_LABEL, "close_code", *static),
        )
        self.websocket_duration = Histogram(
            names.websocket_connection_duration,
            "Time from a WebSocket's connect to its close, in seconds.",
            (ROUTE_LABEL, *static),
            buckets=WEBSOCKET_DURATION_BUCKETS,
            registry=registry,
        )
        self.websocket_messages = counter(
            names.websocket_messages_total,
            "WebSocket messages, by route template and direction (in: received, out: sent).",
            (ROUTE_LABEL, "direction", *static),
        )
        self.overflow = counter(
            names.label_overflow_total,
            "Observations whose route label was replaced because a metric hit its label-set cap.",
            ("metric",),
        )
        self.request_label_overflow = counter(
            names.request_label_overflow_total,
            "Request label values replaced by the overflow value (not allowed, or over the cap).",
            ("label",),
        )
        self.errors = counter(
            names.instrumentation_errors_total,
            "Errors inside ouro-obs instrumentation, swallowed so the request went on.",
            ("stage",),
        )

    def expose_http(self) -> None:
        """Put the HTTP request families on the registry, once."""
        if self._http_exposed:
            return
        self._http_exposed = True
        for family in (
            self.requests,
            self.duration,
            self.in_progress,
            self.request_size,
            self.response_size,
        ):
            self._registry.register(family)


def _signature(names: MetricNames, settings: ObservabilitySettings) -> tuple[object, ...]:
    """What must agree for two middlewares to share one registry's families."""
    return (
        names,
        settings.duration_buckets,
        settings.route_duration_bucket_pairs,
        settings.size_buckets,
        settings.extra_label_names,
        settings.inflight_by_route,
    )


_instruments_by_registry: weakref.WeakKeyDictionary[
    CollectorRegistry, dict[MetricNames, Instruments]
]
_instruments_by_registry = weakref.WeakKeyDictionary()
_instruments_lock = threading.Lock()


def instruments_for(
    registry: CollectorRegistry, settings: ObservabilitySettings, *, http: bool = True
) -> Instruments:
    """Reuse the families already on ``registry``, so building an app twice never raises.

    ``http``: the HTTP request families are to be on the registry (the Prometheus backend).
    """
    names = MetricNames(settings.metrics_namespace)
    with _instruments_lock:
        per_registry = _instruments_by_registry.setdefault(registry, {})
        existing = per_registry.get(names)
        if existing is None:
            existing = per_registry[names] = Instruments(registry, names, settings, http=http)
        elif existing.signature != _signature(names, settings):
            raise ConfigError(
                f"metrics named {names.request_duration!r} already exist on this registry with "
                "other buckets or labels; use the same ones, another metrics_namespace, or "
                "another registry"
            )
        elif http:
            existing.expose_http()
        return existing
