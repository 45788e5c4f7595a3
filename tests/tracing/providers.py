"""Tracer providers the tracing tests export through: configure_tracing's, to a URL."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from ouro_obs import ObservabilitySettings, configure_tracing
from ouro_obs.tracing import BoundedBatchSpanProcessor, TracingConfig

SETTINGS = ObservabilitySettings(service_name="shop", service_version="1.0.0", environment="test")


def otlp_provider(endpoint: str, registry: CollectorRegistry, **options: object) -> TracerProvider:
    provider = configure_tracing(
        SETTINGS,
        config=TracingConfig.from_env({}),
        endpoint=endpoint,
        registry=registry,
        set_global=False,
        **{"schedule_delay_seconds": 0.05, **options},  # type: ignore[arg-type]
    )
    assert provider is not None
    return provider


def batch_processor(provider: TracerProvider) -> BoundedBatchSpanProcessor:
    (processor,) = provider._active_span_processor._span_processors
    assert isinstance(processor, BoundedBatchSpanProcessor)
    return processor
