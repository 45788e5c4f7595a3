"""``configure_tracing``: the provider the standard OTEL_* variables describe; arguments win."""

from __future__ import annotations

import re

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased
from prometheus_client import CollectorRegistry

from ouro_obs import ConfigError, ObservabilitySettings, configure_tracing
from ouro_obs.tracing import BoundedBatchSpanProcessor, TracingConfig

ENV = {
    "OTEL_SERVICE_NAME": "checkout",
    "OTEL_RESOURCE_ATTRIBUTES": "team=payments,region=eu%2Dwest,service.name=ignored",
    "K8S_POD_NAME": "checkout-7d9f-abcde",
    "K8S_NAMESPACE_NAME": "shop",
    "K8S_NODE_NAME": "node-3",
    "OURO_OBS_SERVICE_VERSION": "1.4.2",
    "OURO_OBS_ENVIRONMENT": "staging",
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0.25",
    "OTEL_BSP_MAX_QUEUE_SIZE": "64",
    "OTEL_BSP_SCHEDULE_DELAY": "250",
}


def build(
    environ: dict[str, str], registry: CollectorRegistry | None = None, **overrides: object
) -> TracerProvider | None:
    return configure_tracing(
        ObservabilitySettings.from_env(environ),
        config=TracingConfig.from_env(environ),
        exporter=InMemorySpanExporter(),
        registry=registry or CollectorRegistry(),
        set_global=False,
        **overrides,  # type: ignore[arg-type]
    )


def processor_of(provider: TracerProvider) -> BoundedBatchSpanProcessor:
    (processor,) = provider._active_span_processor._span_processors
    assert isinstance(processor, BoundedBatchSpanProcessor)
    return processor


def test_resource_names_service_version_environment_and_pod() -> None:
    provider = build(ENV)
    assert provider is not None
    attributes = dict(provider.resource.attributes)
    assert attributes["service.name"] == "checkout"
    assert attributes["service.version"] == "1.4.2"
    assert attributes["deployment.environment.name"] == "staging"
    assert attributes["deployment.environment"] == "staging"
    assert attributes["k8s.pod.name"] == "checkout-7d9f-abcde"
    assert attributes["k8s.namespace.name"] == "shop"
    assert attributes["k8s.node.name"] == "node-3"
    assert attributes["team"] == "payments"
    assert attributes["region"] == "eu-west"
    processor_of(provider).shutdown()


def test_sampler_and_queue_come_from_the_standard_variables() -> None:
    provider = build(ENV)
    assert provider is not None
    assert isinstance(provider.sampler, ParentBased)
    assert "TraceIdRatioBased{0.25}" in provider.sampler.get_description()  # type: ignore[no-untyped-call]
    processor = processor_of(provider)
    assert processor.max_queue_size == 64
    processor.shutdown()


def test_explicit_arguments_win_over_the_environment() -> None:
    provider = build(
        ENV,
        service_name="override",
        service_version="9.9.9",
        environment="prod",
        sample_ratio=0.5,
        max_queue_size=8,
    )
    assert provider is not None
    attributes = provider.resource.attributes
    assert (attributes["service.name"], attributes["service.version"]) == ("override", "9.9.9")
    assert attributes["deployment.environment.name"] == "prod"
    assert "TraceIdRatioBased{0.5}" in provider.sampler.get_description()
    processor = processor_of(provider)
    assert processor.max_queue_size == 8
    processor.shutdown()


def test_resource_attributes_name_the_service_when_nothing_else_does() -> None:
    provider = build({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes"})
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "from-attributes"
    processor_of(provider).shutdown()


def test_default_is_parent_based_always_sampling() -> None:
    provider = build({})
    assert provider is not None
    assert isinstance(provider.sampler, ParentBased)
    assert "AlwaysOnSampler" in provider.sampler.get_description()  # type: ignore[no-untyped-call]
    processor_of(provider).shutdown()


def test_disabled_sdk_or_setting_installs_nothing() -> None:
    assert build({"OTEL_SDK_DISABLED": "true"}) is None
    assert build({"OURO_OBS_TRACING": "false"}) is None


def test_exporter_none_still_makes_spans_with_ids() -> None:
    environ = {"OTEL_TRACES_EXPORTER": "none"}
    provider = configure_tracing(
        ObservabilitySettings.from_env(environ),
        config=TracingConfig.from_env(environ),
        registry=CollectorRegistry(),
        set_global=False,
    )
    assert provider is not None
    assert provider._active_span_processor._span_processors == ()
    with provider.get_tracer("t").start_as_current_span("s") as span:
        assert span.get_span_context().is_valid


def test_endpoint_variables_resolve_to_the_traces_url() -> None:
    assert TracingConfig.from_env({}).endpoint == "http://localhost:4318/v1/traces"
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}
    assert TracingConfig.from_env(base).endpoint == "http://collector:4318/v1/traces"
    specific = {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/otlp/v1/traces"}
    assert TracingConfig.from_env(specific).endpoint == "http://tempo:4318/otlp/v1/traces"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER='sometimes': use one of"),
        ({"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG='2' must be between 0 and 1"),
        ({"OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG='half' is not a number"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL='grpc'"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin'"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "team"}, "OTEL_RESOURCE_ATTRIBUTES: 'team' is not key=value"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE=0 must be at least 1"),
    ],
)
def test_bad_variables_raise_errors_naming_the_variable(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        TracingConfig.from_env(environ)


def test_configuring_twice_on_one_registry_never_raises() -> None:
    registry = CollectorRegistry()
    for _ in range(2):
        provider = build({}, registry)
        assert provider is not None
        processor_of(provider).shutdown()
    assert (
        registry.get_sample_value("ouro_obs_spans_dropped_total", {"reason": "queue_full"}) is None
    )
