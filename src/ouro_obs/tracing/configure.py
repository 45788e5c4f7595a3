"""``configure_tracing()``: the process's ``TracerProvider`` from the ``OTEL_*`` variables.

The standard variables are read here (:meth:`TracingConfig.from_env`, at the
application's edge), and explicit arguments win over them: a Resource naming the
service, its version, environment and Kubernetes pod; a parent-based ratio sampler; a
bounded batch processor exporting over OTLP/HTTP, whose drops are counted in
``ouro_obs_spans_dropped_total``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final
from urllib.parse import unquote

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from ouro_obs.config import ConfigError, ObservabilitySettings
from ouro_obs.config.otlp import (
    DEFAULT_OTLP_ENDPOINT,
    check_http_protobuf,
    positive_int,
    signal_endpoint,
)
from ouro_obs.tracing.export import BoundedBatchSpanProcessor, drop_counter

__all__ = [
    "DEFAULT_OTLP_ENDPOINT",
    "K8S_VARIABLES",
    "TracingConfig",
    "configure_tracing",
]


#: Downward-API variables (set them in the pod spec) and the resource attributes they fill.
K8S_VARIABLES: Final = {
    "K8S_POD_NAME": "k8s.pod.name",
    "K8S_NAMESPACE_NAME": "k8s.namespace.name",
    "K8S_NODE_NAME": "k8s.node.name",
}


def _flag(raw: str | None) -> bool:
    return (raw or "").strip().lower() == "true"


def _key_values(raw: str, variable: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` with percent-encoded values (OTEL_RESOURCE_ATTRIBUTES, W3C baggage style)."""
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise ConfigError(
                f"{variable}: {item.strip()!r} is not key=value; write e.g. "
                f"{variable}=team=payments,region=eu-west-1"
            )
        pairs[key.strip()] = unquote(value.strip())
    return pairs


_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


def _ratio(raw: str, variable: str) -> float:
    try:
        ratio = float(raw)
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} is not a number between 0 and 1") from None
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"{variable}={raw!r} must be between 0 and 1 (0.1 keeps one in ten)")
    return ratio


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """What the ``OTEL_*`` (and Kubernetes downward-API) variables ask for.

    Build it with :meth:`from_env`; :func:`configure_tracing` does when not given one.
    """

    enabled: bool = True
    exporter: str = "otlp"
    endpoint: str = DEFAULT_OTLP_ENDPOINT + "/v1/traces"
    sampler: str = "parentbased_traceidratio"
    sample_ratio: float = 1.0
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    schedule_delay_seconds: float = 5.0
    service_name: str = ""
    resource_attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TracingConfig:
        """Read the standard variables; a bad value raises :class:`ConfigError` naming it."""
        env = os.environ if environ is None else environ
        exporter = (env.get("OTEL_TRACES_EXPORTER", "").strip() or "otlp").split(",")[0].strip()
        if exporter not in {"otlp", "none", "console"}:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER={exporter!r}: use otlp (OTLP/HTTP), console or none"
            )
        if exporter == "otlp":
            check_http_protobuf(env, "traces")
        sampler = env.get("OTEL_TRACES_SAMPLER", "").strip() or "parentbased_traceidratio"
        if sampler not in _SAMPLERS:
            raise ConfigError(f"OTEL_TRACES_SAMPLER={sampler!r}: use one of {', '.join(_SAMPLERS)}")
        raw_ratio = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
        attributes = _key_values(
            env.get("OTEL_RESOURCE_ATTRIBUTES", ""), "OTEL_RESOURCE_ATTRIBUTES"
        )
        for variable, attribute in K8S_VARIABLES.items():
            value = env.get(variable, "").strip()
            if value:
                attributes[attribute] = value
        delay_ms = positive_int(env, "OTEL_BSP_SCHEDULE_DELAY", 5000)
        max_queue = positive_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        return cls(
            enabled=not _flag(env.get("OTEL_SDK_DISABLED")),
            exporter=exporter,
            endpoint=signal_endpoint(env, "traces"),
            sampler=sampler,
            sample_ratio=_ratio(raw_ratio, "OTEL_TRACES_SAMPLER_ARG") if raw_ratio else 1.0,
            max_queue_size=max_queue,
            max_export_batch_size=min(
                positive_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), max_queue
            ),
            schedule_delay_seconds=delay_ms / 1000.0,
            service_name=env.get("OTEL_SERVICE_NAME", "").strip(),
            resource_attributes=attributes,
        )


def _sampler(name: str, ratio: float) -> Sampler:
    root: Sampler
    base = name.removeprefix("parentbased_")
    if base == "always_on":
        root = ALWAYS_ON
    elif base == "always_off":
        root = ALWAYS_OFF
    else:
        root = ALWAYS_ON if ratio >= 1.0 else TraceIdRatioBased(ratio)
    return ParentBased(root) if name.startswith("parentbased_") else root


def _sampler_for(config: TracingConfig, sample_ratio: float | None) -> Sampler:
    """The configured sampler, or a parent-based ``sample_ratio`` one when given."""
    if sample_ratio is None:
        return _sampler(config.sampler, config.sample_ratio)
    return ParentBased(_sampler("traceidratio", _ratio(str(sample_ratio), "sample_ratio")))


def _resource(
    settings: ObservabilitySettings,
    config: TracingConfig,
    explicit: Mapping[str, str | None],
) -> Resource:
    attributes: dict[str, str] = dict(config.resource_attributes)
    default_name = ObservabilitySettings().service_name
    chosen = {
        "service.name": explicit.get("service.name")
        or (settings.service_name if settings.service_name != default_name else None)
        or config.service_name
        or attributes.get("service.name")
        or settings.service_name,
        "service.version": explicit.get("service.version") or settings.service_version,
        "deployment.environment.name": explicit.get("deployment.environment.name")
        or settings.environment,
    }
    for key, value in chosen.items():
        if value:
            attributes[key] = value
    # The pre-1.27 name, still what many backends group by.
    environment = attributes.get("deployment.environment.name")
    if environment:
        attributes.setdefault("deployment.environment", environment)
    return Resource.create(attributes)


def _exporter(config: TracingConfig, endpoint: str | None, timeout: float | None) -> SpanExporter:
    if config.exporter == "console":
        return ConsoleSpanExporter()
    # Imported here: only an OTLP set-up pays for requests/protobuf at start-up.
    from ouro_obs.tracing.otlp import OtlpHttpSpanExporter  # noqa: PLC0415

    return OtlpHttpSpanExporter(endpoint=endpoint or config.endpoint, timeout=timeout)


def configure_tracing(
    settings: ObservabilitySettings | None = None,
    *,
    config: TracingConfig | None = None,
    service_name: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    endpoint: str | None = None,
    sample_ratio: float | None = None,
    exporter: SpanExporter | None = None,
    max_queue_size: int | None = None,
    schedule_delay_seconds: float | None = None,
    export_timeout_seconds: float | None = None,
    registry: CollectorRegistry | None = None,
    set_global: bool = True,
) -> TracerProvider | None:
    """Build (and by default install globally) the process's ``TracerProvider``.

    ``settings`` default to ``ObservabilitySettings.from_env()``, ``config`` to
    :meth:`TracingConfig.from_env`; every other argument overrides both. Returns None,
    installing nothing, when ``settings.tracing`` is off or ``OTEL_SDK_DISABLED=true``.
    With ``OTEL_TRACES_EXPORTER=none`` spans are still made (trace ids reach the logs
    and exemplars) but not exported. ``endpoint`` is the full traces URL
    (``http://collector:4318/v1/traces``). Drops are counted on ``registry``
    (default: the global one).
    """
    settings = settings or ObservabilitySettings.from_env()
    config = config or TracingConfig.from_env()
    if not settings.tracing or not config.enabled:
        return None
    sampler = _sampler_for(config, sample_ratio)
    resource = _resource(
        settings,
        config,
        {
            "service.name": service_name,
            "service.version": service_version,
            "deployment.environment.name": environment,
        },
    )
    provider = TracerProvider(resource=resource, sampler=sampler)
    if exporter is not None or config.exporter != "none":
        config = replace(
            config,
            max_queue_size=max_queue_size or config.max_queue_size,
            schedule_delay_seconds=(
                config.schedule_delay_seconds
                if schedule_delay_seconds is None
                else schedule_delay_seconds
            ),
        )
        exporter = exporter or _exporter(config, endpoint, export_timeout_seconds)
        counter = drop_counter(
            REGISTRY if registry is None else registry, settings.metrics_namespace
        )
        provider.add_span_processor(_bounded_processor(config, exporter, counter))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def _bounded_processor(
    config: TracingConfig, exporter: SpanExporter, counter: Counter
) -> BoundedBatchSpanProcessor:
    return BoundedBatchSpanProcessor(
        exporter,
        max_queue_size=config.max_queue_size,
        max_export_batch_size=config.max_export_batch_size,
        schedule_delay_seconds=config.schedule_delay_seconds,
        on_drop=lambda reason, count: counter.labels(reason).inc(count),
    )
