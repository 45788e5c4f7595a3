"""One frozen settings object for the middleware, built explicitly or from the environment.

Environment variables are read in exactly one place, :meth:`ObservabilitySettings.from_env`,
which the application calls at its edge (``main``/factory), never inside a request.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_DURATION_BUCKETS",
    "DEFAULT_SIZE_BUCKETS",
    "ConfigError",
    "ObservabilitySettings",
]

#: OpenTelemetry's advice for ``http.server.request.duration`` (seconds).
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip

#: Body sizes in bytes: 100 B to 10 MB, roughly x4 apart.
DEFAULT_SIZE_BUCKETS: tuple[float, ...] = (
    100.0, 1_000.0, 4_000.0, 16_000.0, 64_000.0, 256_000.0, 1_000_000.0, 4_000_000.0, 10_000_000.0,
)  # fmt: skip


#: Level names ``log_level`` accepts, lowest first.
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")
#: Renderers ``log_format`` accepts.
LOG_FORMATS: tuple[str, ...] = ("auto", "json", "console")
MIN_LOG_FIELD_LENGTH = 64


class ConfigError(ValueError):
    """A setting has a value the middleware cannot use; the message names it and the fix."""


def _frozen(paths: Any) -> frozenset[str]:
    return frozenset(paths)


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
    #: Path serving /metrics on the app's own port; ``None`` serves it nowhere on that port.
    metrics_path: str | None = "/metrics"
    #: A separate port for /metrics (``0`` or ``None``: none), so scrapes bypass the Ingress.
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    health_live_path: str = "/health/live"
    health_ready_path: str = "/health/ready"
    readiness_timeout_seconds: float = 2.0
    #: Paths that are not measured or access-logged; ``None`` means the metrics and health paths.
    excluded_paths: frozenset[str] | None = None
    duration_buckets: tuple[float, ...] = DEFAULT_DURATION_BUCKETS
    size_buckets: tuple[float, ...] = DEFAULT_SIZE_BUCKETS
    #: Hard cap on distinct label sets per metric; the excess goes to ``overflow_label``.
    max_label_sets: int = 1000
    unmatched_route_label: str = "<unmatched>"
    overflow_label: str = "<overflow>"
    #: Record exemplars (trace_id) on the duration histogram and request counter.
    exemplars: bool = True
    #: Write one structured access log line per request.
    access_log: bool = True
    request_id_header: str = "x-request-id"
    #: Extra header names (lower case) and query parameters never written to logs.
    redact_headers: frozenset[str] = field(default_factory=frozenset)
    redact_query_params: frozenset[str] = field(default_factory=frozenset)
    #: Create one SERVER span per request when a tracer provider is configured.
    tracing: bool = True
    #: Trust a well-formed incoming request id header (else every request gets a new id).
    accept_request_id: bool = True
    #: Minimum level written by ``configure_logging`` (debug, info, warning, error, critical).
    log_level: str = "info"
    #: ``json``, ``console`` (readable, for a terminal) or ``auto`` (console on a TTY).
    log_format: str = "auto"
    #: Longest string value written to a log line; longer ones are cut and marked.
    log_max_field_length: int = 2048

    def __post_init__(self) -> None:
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
        object.__setattr__(self, "redact_headers", _frozen(h.lower() for h in self.redact_headers))
        object.__setattr__(self, "redact_query_params", _frozen(self.redact_query_params))
        if self.excluded_paths is not None:
            object.__setattr__(self, "excluded_paths", _frozen(self.excluded_paths))

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


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _optional_path(raw: str) -> str | None:
    return None if raw.strip().lower() in {"none", "off", "false"} else raw.strip()


def _csv(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _floats(raw: str) -> tuple[float, ...]:
    return tuple(float(part) for part in raw.split(",") if part.strip())


#: Every environment variable ``from_env`` reads, with the setting it fills.
ENV_VARIABLES: dict[str, tuple[str, Any]] = {
    "OTEL_SERVICE_NAME": ("service_name", str),
    "OURO_OBS_SERVICE_NAME": ("service_name", str),
    "OURO_OBS_SERVICE_VERSION": ("service_version", str),
    "OURO_OBS_ENVIRONMENT": ("environment", str),
    "OURO_OBS_METRICS_NAMESPACE": ("metrics_namespace", str),
    "OURO_OBS_METRICS_PATH": ("metrics_path", _optional_path),
    "OURO_OBS_METRICS_PORT": ("metrics_port", int),
    "OURO_OBS_METRICS_HOST": ("metrics_host", str),
    "OURO_OBS_HEALTH_LIVE_PATH": ("health_live_path", str),
    "OURO_OBS_HEALTH_READY_PATH": ("health_ready_path", str),
    "OURO_OBS_READINESS_TIMEOUT_SECONDS": ("readiness_timeout_seconds", float),
    "OURO_OBS_EXCLUDED_PATHS": ("excluded_paths", _csv),
    "OURO_OBS_DURATION_BUCKETS": ("duration_buckets", _floats),
    "OURO_OBS_MAX_LABEL_SETS": ("max_label_sets", int),
    "OURO_OBS_EXEMPLARS": ("exemplars", _bool),
    "OURO_OBS_ACCESS_LOG": ("access_log", _bool),
    "OURO_OBS_REQUEST_ID_HEADER": ("request_id_header", str),
    "OURO_OBS_REDACT_HEADERS": ("redact_headers", _csv),
    "OURO_OBS_REDACT_QUERY_PARAMS": ("redact_query_params", _csv),
    "OURO_OBS_TRACING": ("tracing", _bool),
    "OURO_OBS_ACCEPT_REQUEST_ID": ("accept_request_id", _bool),
    "OURO_OBS_LOG_LEVEL": ("log_level", str),
    "OURO_OBS_LOG_FORMAT": ("log_format", str),
    "OURO_OBS_LOG_MAX_FIELD_LENGTH": ("log_max_field_length", int),
}
