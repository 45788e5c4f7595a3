"""One frozen settings object for the middleware, built explicitly or from the environment.

This is the only runtime module that reads environment variables: the ``OURO_OBS_*`` ones in
:meth:`ObservabilitySettings.from_env`, which the application calls at its edge
(``main``/factory), never inside a request; and ``PROMETHEUS_MULTIPROC_DIR``, resolved when a
settings object is built (see :func:`multiprocess_dir_from_environment`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ouro_obs.config import parsing
from ouro_obs.config.values import (
    LABEL_SOURCES,
    ConfigError,
    RequestLabel,
    check_label_name,
    checked_route_buckets,
    frozen,
)
from ouro_obs.contract import DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS

__all__ = [
    "ENV_VARIABLES",
    "LABEL_SOURCES",
    "METRICS_BACKENDS",
    "MULTIPROCESS_DIR_VARIABLE",
    "ConfigError",
    "ObservabilitySettings",
    "RequestLabel",
    "multiprocess_dir_from_environment",
]

#: prometheus_client's own switch to multiprocess mode (one directory shared by the workers).
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir_from_environment() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` from the process environment; None when unset or empty.

    prometheus_client picks its value class from this variable of the process environment
    when it is imported, not from any mapping given to :meth:`ObservabilitySettings.from_env`;
    the settings read the same place so that their ``multiprocess_dir`` agrees with the mode
    the instruments really are in.
    """
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None


#: Level names ``log_level`` accepts, lowest first.
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")
#: Renderers ``log_format`` accepts.
LOG_FORMATS: tuple[str, ...] = ("auto", "json", "console")
MIN_LOG_FIELD_LENGTH = 64


class _DefaultMetricsPath(str):
    """``metrics_path`` left at its default, told apart from an explicit ``"/metrics"``."""

    __slots__ = ()


_DEFAULT_METRICS_PATH = _DefaultMetricsPath("/metrics")


#: What ``metrics_backend`` accepts: prometheus_client families, or the OpenTelemetry SDK.
METRICS_BACKENDS: tuple[str, ...] = ("prometheus", "opentelemetry")


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    """Everything the middleware can be told; every field has a working default.

    Environment variable names are in :data:`ENV_VARIABLES` (``from_env``).
    """

    service_name: str = "app"
    service_version: str = ""
    environment: str = ""
    #: Prepended to every metric name with ``_`` (``shop`` -> ``shop_http_requests_total``).
    metrics_namespace: str = ""
    #: ``prometheus`` (the ``http_requests_total`` family) or ``opentelemetry``: the HTTP
    #: semantic-convention instruments on a MeterProvider, scraped on ``/metrics`` and pushed
    #: over OTLP when ``OTEL_METRICS_EXPORTER=otlp`` (needs the ``otel-metrics`` extra).
    metrics_backend: str = "prometheus"
    #: Path serving /metrics on the app's own port; ``None`` serves it nowhere on that port.
    #: Left at its default, a ``metrics_port`` takes it off the app port (see
    #: :attr:`app_metrics_path`); set explicitly, it is served on both.
    metrics_path: str | None = _DEFAULT_METRICS_PATH
    #: A separate port for /metrics (``0`` or ``None``: none), so scrapes bypass the Ingress.
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    health_live_path: str = "/health/live"
    health_ready_path: str = "/health/ready"
    readiness_timeout_seconds: float = 2.0
    #: Paths that are not measured or access-logged; ``None`` means the metrics and health paths.
    excluded_paths: frozenset[str] | None = None
    #: Path prefixes not measured (``/admin`` excludes ``/admin`` and ``/admin/stats``).
    excluded_path_prefixes: tuple[str, ...] = ()
    #: Regular expressions; a path that one matches in full is not measured.
    excluded_path_patterns: tuple[str, ...] = ()
    #: Request methods not measured (``OPTIONS``); upper case.
    excluded_methods: frozenset[str] = field(default_factory=frozenset)
    #: Record the ``status`` label as its class (``2xx``, ``5xx``) instead of the code.
    status_class_label: bool = False
    #: Labels with one value on every HTTP series (``{"version": "1.4.2"}``); stored sorted.
    static_labels: Mapping[str, str] | tuple[tuple[str, str], ...] = ()
    #: Labels each request supplies (:class:`RequestLabel`), each bounded.
    request_labels: tuple[RequestLabel, ...] = ()
    duration_buckets: tuple[float, ...] = DEFAULT_DURATION_BUCKETS
    #: Duration buckets of named route templates, instead of ``duration_buckets`` on that
    #: route's series (``{"/export": (1, 5, 30, 60, 120)}``); stored sorted by template.
    route_duration_buckets: (
        Mapping[str, Sequence[float]] | tuple[tuple[str, tuple[float, ...]], ...]
    ) = ()
    size_buckets: tuple[float, ...] = DEFAULT_SIZE_BUCKETS
    #: Label the in-flight gauge by route template too; the route is then resolved from
    #: the app's routes before the app runs, and labels all of the request's metrics.
    inflight_by_route: bool = False
    #: Hard cap on distinct label sets per metric; the excess goes to ``overflow_label``.
    max_label_sets: int = 1000
    unmatched_route_label: str = "<unmatched>"
    overflow_label: str = "<overflow>"
    #: Record exemplars (trace_id) on the duration histogram and request counter.
    exemplars: bool = True
    #: Expose the ``<name>_created`` series of counters and histograms on ``/metrics``.
    created_series: bool = False
    #: Write one structured access log line per request.
    access_log: bool = True
    request_id_header: str = "x-request-id"
    #: Extra header names (lower case) and query parameters never written to logs.
    redact_headers: frozenset[str] = field(default_factory=frozenset)
    redact_query_params: frozenset[str] = field(default_factory=frozenset)
    #: Create one SERVER span per request when a tracer provider is configured.
    tracing: bool = True
    #: Seconds the end of the app's lifespan waits for queued spans to be exported; what
    #: is still undelivered then is counted in ``ouro_obs_spans_dropped_total{reason="shutdown"}``.
    span_flush_timeout_seconds: float = 5.0
    #: Trust a well-formed incoming request id header (else every request gets a new id).
    accept_request_id: bool = True
    #: Minimum level written by ``configure_logging`` (debug, info, warning, error, critical).
    log_level: str = "info"
    #: ``json``, ``console`` (readable, for a terminal) or ``auto`` (console on a TTY).
    log_format: str = "auto"
    #: Longest string value written to a log line; longer ones are cut and marked.
    log_max_field_length: int = 2048
    #: prometheus_client's multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``, read from the
    #: process environment when the settings are built); None: single-process metrics.
    multiprocess_dir: str | None = field(default_factory=multiprocess_dir_from_environment)

    def __post_init__(self) -> None:
        if not self.span_flush_timeout_seconds >= 0:
            raise ConfigError(
                f"span_flush_timeout_seconds={self.span_flush_timeout_seconds} must be 0 or more"
            )
        for name in ("metrics_path", "health_live_path", "health_ready_path"):
            value = getattr(self, name)
            if value is not None and not value.startswith("/"):
                raise ConfigError(f"{name}={value!r} must start with '/', e.g. '/{value}'")
        if self.max_label_sets < 1:
            raise ConfigError(f"max_label_sets={self.max_label_sets} must be at least 1")
        if list(self.duration_buckets) != sorted(set(self.duration_buckets)):
            raise ConfigError("duration_buckets must be strictly increasing")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port={self.metrics_port} is not a TCP port (0-65535)")
        self._check_logging()
        object.__setattr__(self, "request_id_header", self.request_id_header.strip().lower())
        object.__setattr__(self, "redact_headers", frozen(h.lower() for h in self.redact_headers))
        object.__setattr__(self, "redact_query_params", frozen(self.redact_query_params))
        if self.excluded_paths is not None:
            object.__setattr__(self, "excluded_paths", frozen(self.excluded_paths))
        self._check_exclusions()
        self._check_labels()
        self._check_metrics_backend()
        self._check_route_options()
        if not self.multiprocess_dir:
            object.__setattr__(self, "multiprocess_dir", None)

    def _check_exclusions(self) -> None:
        prefixes = tuple(self.excluded_path_prefixes)
        for prefix in prefixes:
            if not prefix.startswith("/"):
                raise ConfigError(f"excluded_path_prefixes: {prefix!r} must start with '/'")
        object.__setattr__(self, "excluded_path_prefixes", prefixes)
        patterns = tuple(self.excluded_path_patterns)
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ConfigError(
                    f"excluded_path_patterns: {pattern!r} is not a regular expression: {error}"
                ) from None
        object.__setattr__(self, "excluded_path_patterns", patterns)
        methods = frozen(method.strip().upper() for method in self.excluded_methods)
        object.__setattr__(self, "excluded_methods", methods)

    def _check_metrics_backend(self) -> None:
        backend = self.metrics_backend.strip().lower()
        object.__setattr__(self, "metrics_backend", backend)
        if backend not in METRICS_BACKENDS:
            raise ConfigError(
                f"metrics_backend={backend!r}; use one of {', '.join(METRICS_BACKENDS)}"
            )
        if backend == "prometheus":
            return
        # The semantic-convention names and attributes are fixed, and the status is a code.
        if self.metrics_namespace:
            raise ConfigError(
                f"metrics_namespace={self.metrics_namespace!r} does not apply to "
                "metrics_backend='opentelemetry' (its names are the semantic conventions'); "
                "drop it, or tell services apart by the job label or the resource"
            )
        if self.status_class_label:
            raise ConfigError(
                "status_class_label does not apply to metrics_backend='opentelemetry' "
                "(http.response.status_code is the code sent); drop it"
            )

    def _check_route_options(self) -> None:
        object.__setattr__(
            self, "route_duration_buckets", checked_route_buckets(self.route_duration_buckets)
        )
        if self.metrics_backend != "opentelemetry":
            return
        # An OpenTelemetry View picks buckets per instrument, not per attribute value, and
        # http.server.active_requests has no http.route by the semantic conventions.
        for name in ("route_duration_buckets", "inflight_by_route"):
            if getattr(self, name):
                raise ConfigError(
                    f"{name} does not apply to metrics_backend='opentelemetry'; drop it, "
                    "or use the prometheus backend"
                )

    def _check_labels(self) -> None:
        items = self.static_labels
        pairs = tuple(sorted(items.items() if isinstance(items, Mapping) else items))
        object.__setattr__(self, "static_labels", pairs)
        object.__setattr__(self, "request_labels", tuple(self.request_labels))
        names = [name for name, _ in pairs] + [label.name for label in self.request_labels]
        for name, _ in pairs:
            check_label_name(name, "static_labels")
        for label in self.request_labels:
            if not isinstance(label, RequestLabel):
                raise ConfigError(f"request_labels: {label!r} is not a RequestLabel")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"label(s) {', '.join(duplicates)} declared more than once")

    @property
    def extra_label_names(self) -> tuple[str, ...]:
        """The static labels' names, then the request labels', as every HTTP series has them."""
        static = tuple(name for name, _ in self.static_label_pairs)
        return static + tuple(label.name for label in self.request_labels)

    @property
    def static_label_pairs(self) -> tuple[tuple[str, str], ...]:
        items = self.static_labels
        return tuple(sorted(items.items())) if isinstance(items, Mapping) else tuple(items)

    @property
    def route_duration_bucket_pairs(self) -> tuple[tuple[str, tuple[float, ...]], ...]:
        """``route_duration_buckets`` as (template, buckets) pairs, sorted by template."""
        items = self.route_duration_buckets
        return items if isinstance(items, tuple) else checked_route_buckets(items)

    def _check_logging(self) -> None:
        object.__setattr__(self, "log_level", self.log_level.strip().lower())
        object.__setattr__(self, "log_format", self.log_format.strip().lower())
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(
                f"log_level={self.log_level!r} is not a level; use one of {', '.join(LOG_LEVELS)}"
            )
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(
                f"log_format={self.log_format!r}; use one of {', '.join(LOG_FORMATS)}"
            )
        if self.log_max_field_length < MIN_LOG_FIELD_LENGTH:
            raise ConfigError(
                f"log_max_field_length={self.log_max_field_length} is too short to be useful; "
                f"use at least {MIN_LOG_FIELD_LENGTH}"
            )

    @property
    def app_metrics_path(self) -> str | None:
        """Where the app's own port serves metrics: ``metrics_path``, except that a
        ``metrics_port`` of its own takes them off the app port unless ``metrics_path``
        was set explicitly (the app port is the one the Ingress reaches)."""
        if self.metrics_port and type(self.metrics_path) is _DefaultMetricsPath:
            return None
        return self.metrics_path

    @property
    def effective_excluded_paths(self) -> frozenset[str]:
        """The paths not measured: ``excluded_paths`` or, by default, metrics and health."""
        if self.excluded_paths is not None:
            return self.excluded_paths
        defaults = {self.health_live_path, self.health_ready_path}
        if self.metrics_path is not None:
            defaults.add(self.metrics_path)
        return frozenset(defaults)

    def replace(self, **changes: Any) -> ObservabilitySettings:
        """A copy with ``changes`` applied; unknown names raise :class:`ConfigError`."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        defaults: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> ObservabilitySettings:
        """Settings from ``OURO_OBS_*`` and the standard ``OTEL_SERVICE_NAME``.

        Precedence: ``overrides`` > environment > ``defaults`` > built-in defaults.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = dict(defaults or {})
        for variable, (name, parse) in ENV_VARIABLES.items():
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            try:
                values[name] = parse(raw)
            except ValueError as error:
                raise ConfigError(f"{variable}={raw!r}: {error}") from None
        values.update(overrides)
        return cls().replace(**values)


#: Every environment variable ``from_env`` reads, with the setting it fills.
ENV_VARIABLES: dict[str, tuple[str, Any]] = {
    "OTEL_SERVICE_NAME": ("service_name", str),
    "OURO_OBS_SERVICE_NAME": ("service_name", str),
    "OURO_OBS_SERVICE_VERSION": ("service_version", str),
    "OURO_OBS_ENVIRONMENT": ("environment", str),
    "OURO_OBS_METRICS_NAMESPACE": ("metrics_namespace", str),
    "OURO_OBS_METRICS_BACKEND": ("metrics_backend", str),
    "OURO_OBS_METRICS_PATH": ("metrics_path", parsing.optional_path),
    "OURO_OBS_METRICS_PORT": ("metrics_port", int),
    "OURO_OBS_METRICS_HOST": ("metrics_host", str),
    "OURO_OBS_HEALTH_LIVE_PATH": ("health_live_path", str),
    "OURO_OBS_HEALTH_READY_PATH": ("health_ready_path", str),
    "OURO_OBS_READINESS_TIMEOUT_SECONDS": ("readiness_timeout_seconds", float),
    "OURO_OBS_EXCLUDED_PATHS": ("excluded_paths", parsing.csv),
    "OURO_OBS_EXCLUDED_PATH_PREFIXES": ("excluded_path_prefixes", parsing.csv_tuple),
    "OURO_OBS_EXCLUDED_PATH_PATTERNS": ("excluded_path_patterns", parsing.words),
    "OURO_OBS_EXCLUDED_METHODS": ("excluded_methods", parsing.csv),
    "OURO_OBS_STATUS_CLASS_LABEL": ("status_class_label", parsing.bool_),
    "OURO_OBS_STATIC_LABELS": ("static_labels", parsing.static_labels),
    "OURO_OBS_REQUEST_LABELS": ("request_labels", parsing.request_labels),
    "OURO_OBS_DURATION_BUCKETS": ("duration_buckets", parsing.floats),
    "OURO_OBS_ROUTE_DURATION_BUCKETS": ("route_duration_buckets", parsing.route_floats),
    "OURO_OBS_INFLIGHT_BY_ROUTE": ("inflight_by_route", parsing.bool_),
    "OURO_OBS_MAX_LABEL_SETS": ("max_label_sets", int),
    "OURO_OBS_EXEMPLARS": ("exemplars", parsing.bool_),
    "OURO_OBS_CREATED_SERIES": ("created_series", parsing.bool_),
    "OURO_OBS_ACCESS_LOG": ("access_log", parsing.bool_),
    "OURO_OBS_REQUEST_ID_HEADER": ("request_id_header", str),
    "OURO_OBS_REDACT_HEADERS": ("redact_headers", parsing.csv),
    "OURO_OBS_REDACT_QUERY_PARAMS": ("redact_query_params", parsing.csv),
    "OURO_OBS_TRACING": ("tracing", parsing.bool_),
    "OURO_OBS_SPAN_FLUSH_TIMEOUT_SECONDS": ("span_flush_timeout_seconds", float),
    "OURO_OBS_ACCEPT_REQUEST_ID": ("accept_request_id", parsing.bool_),
    "OURO_OBS_LOG_LEVEL": ("log_level", str),
    "OURO_OBS_LOG_FORMAT": ("log_format", str),
    "OURO_OBS_LOG_MAX_FIELD_LENGTH": ("log_max_field_length", int),
}
