"""The OpenTelemetry metrics mode: the RED signals on a ``MeterProvider``, semconv names.

With ``metrics_backend="opentelemetry"`` the middleware records each request with
:class:`OtelHttpMetrics` instead of the Prometheus families: the HTTP semantic-convention
instruments of :class:`~ouro_obs.contract.OtelNames` (``http.server.request.duration``,
``http.server.active_requests``, ``http.server.request.body.size``,
``http.server.response.body.size``) with the attributes ``http.request.method``,
``http.route``, ``http.response.status_code``, ``url.scheme`` and ``error.type``.

The same bounds as the Prometheus mode apply before anything is recorded: the configured
buckets (an explicit-bucket View on the provider built here, and the advisory boundaries
on the instruments for a provider passed in), and the cap on label sets, whose excess gets
the overflow route and is counted in ``ouro_obs_label_overflow_total``.

:func:`otel_meter_provider` builds the provider of the mode: a
``PrometheusMetricReader`` on the registry ``/metrics`` serves, always, and an OTLP/HTTP
push when :class:`OtelMetricsConfig` (the standard ``OTEL_METRICS_EXPORTER`` and
``OTEL_EXPORTER_OTLP_*`` variables) asks for one.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.metrics import MeterProvider
from prometheus_client import CollectorRegistry

from ouro_obs.config import ConfigError, ObservabilitySettings
from ouro_obs.config.otlp import (
    DEFAULT_OTLP_ENDPOINT,
    check_http_protobuf,
    positive_int,
    signal_endpoint,
)
from ouro_obs.contract import OtelNames

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader

__all__ = [
    "DEFAULT_OTLP_ENDPOINT",
    "EXTRA_HINT",
    "METER_NAME",
    "METRICS_EXPORTERS",
    "OtelHttpMetrics",
    "OtelMetricsConfig",
    "otel_meter_provider",
    "shared_meter_provider",
]

NAMES: Final = OtelNames()
#: The instrumentation scope of every instrument (``otel_scope_name`` once scraped).
METER_NAME: Final = "ouro_obs"
#: What ``OTEL_METRICS_EXPORTER`` may list. ``prometheus`` is always on: ``/metrics``
#: serves the mode's metrics whatever else is configured.
METRICS_EXPORTERS: Final = ("otlp", "prometheus", "console", "none")
EXTRA_HINT: Final = (
    "metrics_backend='opentelemetry' needs the otel-metrics extra: "
    "pip install 'ouro-obs[otel-metrics]'"
)


@dataclass(frozen=True, slots=True)
class OtelMetricsConfig:
    """Where the mode's metrics go besides ``/metrics``, from the standard variables.

    ``exporters`` holds ``otlp`` (push over OTLP/HTTP to ``endpoint`` every
    ``export_interval_seconds``) and ``console``. Unlike the SDK's own default, an unset
    ``OTEL_METRICS_EXPORTER`` pushes nothing: ``/metrics`` is the default way out, and a
    pod without a collector should not log an export error a minute.
    """

    exporters: tuple[str, ...] = ()
    endpoint: str = DEFAULT_OTLP_ENDPOINT + "/v1/metrics"
    export_interval_seconds: float = 60.0
    export_timeout_seconds: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OtelMetricsConfig:
        """Read ``OTEL_METRICS_EXPORTER``, ``OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT`` and
        ``_PROTOCOL``, ``OTEL_METRIC_EXPORT_INTERVAL`` and ``OTEL_METRIC_EXPORT_TIMEOUT``.

        Headers, compression and temporality (``OTEL_EXPORTER_OTLP_[METRICS_]HEADERS``, ...)
        are read by the OTLP exporter itself. A bad value raises :class:`ConfigError`.
        """
        env = os.environ if environ is None else environ
        listed = [part.strip() for part in env.get("OTEL_METRICS_EXPORTER", "").split(",")]
        exporters = tuple(part for part in listed if part)
        unknown = [part for part in exporters if part not in METRICS_EXPORTERS]
        if unknown:
            raise ConfigError(
                f"OTEL_METRICS_EXPORTER={env.get('OTEL_METRICS_EXPORTER')!r}: "
                f"{', '.join(unknown)} unknown; use a comma-separated list of "
                f"{', '.join(METRICS_EXPORTERS)}"
            )
        pushed = tuple(part for part in exporters if part in {"otlp", "console"})
        if "otlp" in pushed:
            check_http_protobuf(env, "metrics")
        interval = positive_int(env, "OTEL_METRIC_EXPORT_INTERVAL", 60_000, "milliseconds")
        timeout = positive_int(env, "OTEL_METRIC_EXPORT_TIMEOUT", 30_000, "milliseconds")
        return cls(
            exporters=pushed,
            endpoint=signal_endpoint(env, "metrics"),
            export_interval_seconds=interval / 1000.0,
            export_timeout_seconds=timeout / 1000.0,
        )


def _scope_version() -> str:
    try:
        return metadata.version("ouro-obs")
    except metadata.PackageNotFoundError:  # a source tree without an install
        return ""


def _pushing_readers(config: OtelMetricsConfig) -> list[MetricReader]:
    from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
        ConsoleMetricExporter,
        MetricExporter,
        PeriodicExportingMetricReader,
    )

    readers: list[MetricReader] = []
    for name in config.exporters:
        exporter: MetricExporter
        if name == "console":
            exporter = ConsoleMetricExporter()
        else:
            # Imported here: only an OTLP set-up pays for requests/protobuf at start-up.
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
                OTLPMetricExporter,
            )

            exporter = OTLPMetricExporter(
                endpoint=config.endpoint, timeout=config.export_timeout_seconds
            )
        readers.append(
            PeriodicExportingMetricReader(
                exporter,
                export_interval_millis=config.export_interval_seconds * 1000,
                export_timeout_millis=config.export_timeout_seconds * 1000,
            )
        )
    return readers


def otel_meter_provider(
    settings: ObservabilitySettings,
    registry: CollectorRegistry,
    config: OtelMetricsConfig | None = None,
) -> SdkMeterProvider:
    """The OpenTelemetry metrics mode's own provider: scraped on ``registry``, pushed as
    ``config`` says (default :meth:`OtelMetricsConfig.from_env`).

    Its resource names the service (``service.name``, ``service.version``,
    ``deployment.environment.name``, over ``OTEL_RESOURCE_ATTRIBUTES``); its Views give
    the histograms the settings' buckets. Raises :class:`ConfigError` naming the extra when
    ``opentelemetry-exporter-prometheus`` is not installed.
    """
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415
    except ImportError:
        raise ConfigError(EXTRA_HINT) from None
    from opentelemetry.sdk.metrics import MeterProvider as SdkProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.view import (  # noqa: PLC0415
        ExplicitBucketHistogramAggregation,
        View,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415

    config = config or OtelMetricsConfig.from_env()
    attributes = {
        "service.name": settings.service_name,
        "service.version": settings.service_version,
        "deployment.environment.name": settings.environment,
    }
    resource = Resource.create({key: value for key, value in attributes.items() if value})

    def buckets(instrument: str, boundaries: Sequence[float]) -> View:
        return View(
            instrument_name=instrument,
            meter_name=METER_NAME,
            aggregation=ExplicitBucketHistogramAggregation(tuple(boundaries)),
        )

    readers: list[MetricReader] = [PrometheusMetricReader(registry=registry)]
    readers += _pushing_readers(config)
    return SdkProvider(
        metric_readers=readers,
        resource=resource,
        views=[
            buckets(NAMES.request_duration, settings.duration_buckets),
            buckets(NAMES.request_body_size, settings.size_buckets),
            buckets(NAMES.response_body_size, settings.size_buckets),
        ],
    )


_providers: weakref.WeakKeyDictionary[CollectorRegistry, tuple[object, SdkMeterProvider]]
_providers = weakref.WeakKeyDictionary()
_providers_lock = threading.Lock()


def shared_meter_provider(
    settings: ObservabilitySettings, registry: CollectorRegistry
) -> SdkMeterProvider:
    """One provider per registry, so that building the app twice exposes each series once.

    A second middleware on the same registry must agree on the buckets and the service.
    """
    signature = (
        settings.service_name,
        settings.service_version,
        settings.environment,
        settings.duration_buckets,
        settings.size_buckets,
    )
    with _providers_lock:
        existing = _providers.get(registry)
        if existing is None:
            provider = otel_meter_provider(settings, registry)
            _providers[registry] = (signature, provider)
            return provider
        if existing[0] != signature:
            raise ConfigError(
                "OpenTelemetry metrics with other buckets or another service already report "
                "to this registry; use the same settings, another registry, or pass "
                "meter_provider= yourself"
            )
        return existing[1]


#: The attributes of one recorded label set, built once; the SDK reads them per call.
_Attributes = Mapping[str, str | int]
_SeriesKey = tuple[str, str, int, str, str | None, tuple[str, ...]]


class OtelHttpMetrics:
    """Records finished requests on ``meter_provider``, at most ``max_label_sets`` sets each.

    A label set beyond the cap has its ``http.route`` replaced by ``overflow_label`` and is
    counted through ``count_overflow(instrument name)``. Static labels are on every set;
    the request labels' values are given to :meth:`observe`, in declaration order.
    """

    def __init__(
        self,
        settings: ObservabilitySettings,
        meter_provider: MeterProvider,
        *,
        count_overflow: Callable[[str], None],
    ) -> None:
        meter = meter_provider.get_meter(METER_NAME, _scope_version())
        self.duration = meter.create_histogram(
            NAMES.request_duration,
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=settings.duration_buckets,
        )
        self.active_requests = meter.create_up_down_counter(
            NAMES.active_requests,
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        self.request_body_size = meter.create_histogram(
            NAMES.request_body_size,
            unit="By",
            description="Size of HTTP server request bodies (bytes actually received).",
            explicit_bucket_boundaries_advisory=settings.size_buckets,
        )
        self.response_body_size = meter.create_histogram(
            NAMES.response_body_size,
            unit="By",
            description="Size of HTTP server response bodies (bytes actually sent).",
            explicit_bucket_boundaries_advisory=settings.size_buckets,
        )
        self._cap = settings.max_label_sets
        self._overflow_label = settings.overflow_label
        self._count_overflow = count_overflow
        self._static = dict(settings.static_label_pairs)
        self._request_label_names = tuple(label.name for label in settings.request_labels)
        self._series: dict[_SeriesKey, _Attributes] = {}
        self._route_label_sets: set[tuple[str, str, tuple[str, ...]]] = set()
        self._active: dict[tuple[str, str], _Attributes] = {}
        self._lock = threading.Lock()

    def started(self, method: str, scheme: str) -> None:
        """Count a request of this (normalized) method in flight."""
        self.active_requests.add(1, self._active_attributes(method, scheme))

    def ended(self, method: str, scheme: str) -> None:
        self.active_requests.add(-1, self._active_attributes(method, scheme))

    def _active_attributes(self, method: str, scheme: str) -> _Attributes:
        attributes = self._active.get((method, scheme))
        if attributes is None:  # methods are normalized and schemes few: bounded
            attributes = self._active[(method, scheme)] = {
                NAMES.method_attribute: method,
                NAMES.scheme_attribute: scheme,
                **self._static,
            }
        return attributes

    def observe(
        self,
        method: str,
        route: str,
        status: int,
        scheme: str,
        error_type: str | None,
        duration_seconds: float,
        request_bytes: int,
        response_bytes: int,
        labels: tuple[str, ...] = (),
    ) -> None:
        """Record one finished request; ``labels`` are the request labels' values."""
        key: _SeriesKey = (method, route, status, scheme, error_type, labels)
        attributes = self._series.get(key)
        if attributes is None:
            attributes = self._admit(key)
        self.duration.record(duration_seconds, attributes)
        self.request_body_size.record(request_bytes, attributes)
        self.response_body_size.record(response_bytes, attributes)

    def _admit(self, key: _SeriesKey) -> _Attributes:
        method, route, status, scheme, error_type, labels = key
        with self._lock:
            attributes = self._series.get(key)
            if attributes is not None:
                return attributes
            new_route_set = (method, route, labels) not in self._route_label_sets
            if (new_route_set and len(self._route_label_sets) >= self._cap) or len(
                self._series
            ) >= self._cap:
                self._count_overflow(NAMES.request_duration)
                key = (method, self._overflow_label, status, scheme, error_type, labels)
                attributes = self._series.get(key)
                if attributes is not None:
                    return attributes
                # Overflow sets are few (methods x statuses x bounded request-label values)
                # and deliberately exceed the cap.
            attributes = self._series[key] = self._attributes(key)
            self._route_label_sets.add((key[0], key[1], labels))
            return attributes

    def _attributes(self, key: _SeriesKey) -> _Attributes:
        method, route, status, scheme, error_type, labels = key
        attributes: dict[str, Any] = {
            NAMES.method_attribute: method,
            NAMES.route_attribute: route,
            NAMES.status_attribute: status,
            NAMES.scheme_attribute: scheme,
            **self._static,
            **dict(zip(self._request_label_names, labels, strict=True)),
        }
        if error_type is not None:
            attributes[NAMES.error_type_attribute] = error_type
        return attributes
