"""The OpenTelemetry metrics mode: semantic-convention instruments, bounded, on /metrics.

Requests go through the real middleware; the metrics are read back the way a user's
pipeline would: scraped from ``/metrics`` (opentelemetry-exporter-prometheus on the
registry), or collected from an SDK ``MeterProvider`` passed in.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ouro_obs import ObservabilityMiddleware
from ouro_obs.config import ConfigError, ObservabilitySettings, RequestLabel
from ouro_obs.contract import DEFAULT_DURATION_BUCKETS, OtelNames
from ouro_obs.demo.lifecycle import free_port
from ouro_obs.demo.processes import find_rotel
from ouro_obs.demo.receiver import ReceivedPoint
from ouro_obs.metrics.otel import EXTRA_HINT, OtelMetricsConfig, otel_meter_provider
from tests.metrics.asgi import client
from tests.support.processes import OTLPCollector
from tests.support.shop import shop_process
from tests.support.tools import missing

NAMES = OtelNames()
QUIET: dict[str, Any] = {"access_log": False, "tracing": False, "metrics_backend": "opentelemetry"}


async def item(request: Request) -> Response:
    if request.query_params.get("fail") == "raise":
        raise RuntimeError("broken item")
    if request.query_params.get("fail") == "answer":
        return PlainTextResponse("unavailable", status_code=503)
    return PlainTextResponse(f"item {request.path_params['item_id']}")


def shop(registry: CollectorRegistry, **options: Any) -> Starlette:
    app = Starlette(routes=[Route("/items/{item_id}", item, methods=["GET", "POST"])])
    app.add_middleware(ObservabilityMiddleware, registry=registry, **{**QUIET, **options})
    return app


async def get_all(app: Starlette, *paths: str) -> list[int]:
    async with client(app) as http:
        return [(await http.get(path)).status_code for path in paths]


async def scrape(app: Starlette) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> (labels, value) of every sample ``/metrics`` serves."""
    async with client(app) as http:
        text = (await http.get("/metrics")).text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def count_of(samples: dict[str, list[tuple[dict[str, str], float]]], **labels: str) -> float:
    return sum(
        value
        for found, value in samples.get("http_server_request_duration_seconds_count", [])
        if all(found.get(name) == wanted for name, wanted in labels.items())
    )


@pytest.fixture
def in_memory() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


def points(reader: InMemoryMetricReader, instrument: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == instrument
        for point in metric.data.data_points
    ]


async def test_requests_are_scraped_under_the_names_prometheus_gives_the_semconv_instruments(
    registry: CollectorRegistry,
) -> None:
    app = shop(registry)
    assert await get_all(app, "/items/1", "/items/2", "/nowhere") == [200, 200, 404]
    samples = await scrape(app)
    assert count_of(samples, http_route="/items/{item_id}", http_response_status_code="200") == 2
    assert count_of(samples, http_route="<unmatched>", http_response_status_code="404") == 1
    labels = samples["http_server_request_duration_seconds_count"][0][0]
    assert {"http_request_method", "url_scheme", "otel_scope_name"} <= labels.keys()
    assert labels["otel_scope_name"] == "ouro_obs"
    for name in ("request", "response"):
        assert count_of_family(samples, f"http_server_{name}_body_size_bytes_count") == 3
    assert samples["http_server_active_requests"][0][1] == 0
    # The Prometheus backend's families record nothing in this mode.
    assert "http_requests_total" not in samples


def count_of_family(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _labels, value in samples.get(name, []))


async def test_the_duration_histogram_has_the_configured_buckets(
    registry: CollectorRegistry,
) -> None:
    buckets = (0.05, 0.5, 2.0)
    app = shop(registry, duration_buckets=buckets, size_buckets=(10.0, 1000.0))
    await get_all(app, "/items/1")
    samples = await scrape(app)
    edges = {labels["le"] for labels, _ in samples["http_server_request_duration_seconds_bucket"]}
    assert edges == {"0.05", "0.5", "2.0", "+Inf"}
    sizes = {labels["le"] for labels, _ in samples["http_server_response_body_size_bytes_bucket"]}
    assert sizes == {"10.0", "1000.0", "+Inf"}


async def test_error_type_names_the_exception_or_the_5xx_code_and_is_absent_otherwise(
    registry: CollectorRegistry,
) -> None:
    app = shop(registry)
    statuses = await get_all(app, "/items/1?fail=raise", "/items/1?fail=answer", "/items/1")
    assert statuses == [500, 503, 200]
    samples = await scrape(app)
    assert count_of(samples, http_response_status_code="500", error_type="RuntimeError") == 1
    assert count_of(samples, http_response_status_code="503", error_type="503") == 1
    assert count_of(samples, http_response_status_code="200", error_type="") == 1


async def test_a_passed_meter_provider_gets_the_semconv_attributes_and_advised_buckets(
    registry: CollectorRegistry, in_memory: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = in_memory
    app = shop(registry, meter_provider=provider, static_labels={"version": "1.4.2"})
    await get_all(app, "/items/7")
    (point,) = points(reader, NAMES.request_duration)
    assert isinstance(point, HistogramDataPoint)
    assert dict(point.attributes or {}) == {
        "http.request.method": "GET",
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
        "url.scheme": "http",
        "version": "1.4.2",
    }
    assert tuple(point.explicit_bounds) == DEFAULT_DURATION_BUCKETS
    (active,) = points(reader, NAMES.active_requests)
    assert dict(active.attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "version": "1.4.2",
    }
    assert active.value == 0


async def test_a_request_is_counted_active_while_the_app_runs(
    registry: CollectorRegistry, in_memory: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = in_memory
    seen: list[float] = []

    async def watched(_request: Request) -> Response:
        seen.extend(point.value for point in points(reader, NAMES.active_requests))
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/watched", watched)])
    app.add_middleware(ObservabilityMiddleware, registry=registry, meter_provider=provider, **QUIET)
    await get_all(app, "/watched")
    assert seen == [1]
    assert [point.value for point in points(reader, NAMES.active_requests)] == [0]


async def test_request_labels_are_bounded_attributes(
    registry: CollectorRegistry, in_memory: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = in_memory
    tenant = RequestLabel("tenant", "header:x-tenant", allowed=frozenset({"acme"}))
    app = shop(registry, meter_provider=provider, request_labels=(tenant,))
    async with client(app) as http:
        for name in ("acme", "evil"):
            await http.get("/items/1", headers={"x-tenant": name})
    tenants = sorted(
        str((point.attributes or {})["tenant"]) for point in points(reader, NAMES.request_duration)
    )
    assert tenants == ["<overflow>", "acme"]


async def test_label_sets_beyond_the_cap_go_to_the_overflow_route_and_are_counted(
    registry: CollectorRegistry, in_memory: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = in_memory
    app = Starlette(
        routes=[Route(f"/r{index}", lambda _request: PlainTextResponse("ok")) for index in range(5)]
    )
    app.add_middleware(
        ObservabilityMiddleware,
        registry=registry,
        meter_provider=provider,
        max_label_sets=2,
        **QUIET,
    )
    await get_all(app, "/r0", "/r1", "/r2", "/r3", "/r4", "/r0")
    routes = {
        str((point.attributes or {})["http.route"]): point.count
        for point in points(reader, NAMES.request_duration)
    }
    assert routes == {"/r0": 2, "/r1": 1, "<overflow>": 3}
    overflowed = registry.get_sample_value(
        "ouro_obs_label_overflow_total", {"metric": NAMES.request_duration}
    )
    assert overflowed == 3


class _BrokenInstrument:
    def record(self, *_args: object) -> None:
        raise RuntimeError("broken exporter")

    add = record


class _BrokenMeter:
    def __getattr__(self, name: str) -> Any:
        return lambda *_args, **_kwargs: _BrokenInstrument()


class _BrokenProvider:
    def get_meter(self, *_args: object, **_kwargs: object) -> _BrokenMeter:
        return _BrokenMeter()


async def test_a_failing_meter_never_breaks_the_request_and_is_counted(
    registry: CollectorRegistry,
) -> None:
    app = shop(registry, meter_provider=_BrokenProvider())
    async with client(app) as http:
        response = await http.get("/items/5")
    assert (response.status_code, response.text) == (200, "item 5")
    errors = registry.get_sample_value(
        "ouro_obs_instrumentation_errors_total", {"stage": "metrics"}
    )
    assert errors == 2  # the in-flight count before the app, the record after it


def test_without_the_extra_the_mode_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, registry: CollectorRegistry
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.prometheus", None)
    settings = ObservabilitySettings(metrics_backend="opentelemetry")
    with pytest.raises(ConfigError) as raised:
        otel_meter_provider(settings, registry, OtelMetricsConfig())
    assert str(raised.value) == EXTRA_HINT
    assert "pip install 'ouro-obs[otel-metrics]'" in EXTRA_HINT


def test_the_backend_comes_from_the_environment() -> None:
    settings = ObservabilitySettings.from_env({"OURO_OBS_METRICS_BACKEND": "OpenTelemetry"})
    assert settings.metrics_backend == "opentelemetry"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metrics_backend": "statsd"}, "use one of prometheus, opentelemetry"),
        (
            {"metrics_backend": "opentelemetry", "metrics_namespace": "shop"},
            "metrics_namespace='shop' does not apply",
        ),
        (
            {"metrics_backend": "opentelemetry", "status_class_label": True},
            "status_class_label does not apply",
        ),
    ],
)
def test_settings_the_mode_cannot_honour_are_refused_with_the_fix(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ObservabilitySettings(**options)


def test_otlp_is_pushed_only_when_otel_metrics_exporter_asks() -> None:
    assert OtelMetricsConfig.from_env({}).exporters == ()
    config = OtelMetricsConfig.from_env(
        {
            "OTEL_METRICS_EXPORTER": "otlp,prometheus",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
        }
    )
    assert config.exporters == ("otlp",)
    assert config.endpoint == "http://collector:4318/v1/metrics"
    assert config.export_interval_seconds == 0.5


def test_the_metrics_endpoint_variable_wins_over_the_base_one() -> None:
    config = OtelMetricsConfig.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:4318/custom",
        }
    )
    assert config.endpoint == "http://metrics:4318/custom"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_METRICS_EXPORTER": "zipkin"}, "zipkin unknown"),
        (
            {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "set it to 'http/protobuf'",
        ),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "not a whole number of milliseconds"),
    ],
)
def test_bad_otel_metrics_variables_name_the_variable_and_the_fix(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        OtelMetricsConfig.from_env(environ)


async def test_building_the_app_twice_on_one_registry_serves_each_series_once(
    registry: CollectorRegistry,
) -> None:
    first, second = shop(registry), shop(registry)
    await get_all(first, "/items/1")
    await get_all(second, "/items/1")
    samples = await scrape(second)
    assert len(samples["target_info"]) == 1
    assert count_of(samples, http_route="/items/{item_id}") == 2


PROMETHEUS_HTTP_FAMILIES = {
    "http_requests",
    "http_request_duration_seconds",
    "http_requests_in_progress",
    "http_request_size_bytes",
    "http_response_size_bytes",
}


async def families_served(app: Starlette) -> set[str]:
    async with client(app) as http:
        text = (await http.get("/metrics")).text
    return {family.name for family in text_string_to_metric_families(text)}


async def test_the_prometheus_backends_http_families_are_served_only_beside_that_backend(
    registry: CollectorRegistry,
) -> None:
    otel = shop(registry)
    await get_all(otel, "/items/1")
    served = await families_served(otel)
    assert not served & PROMETHEUS_HTTP_FAMILIES
    assert {"http_server_request_duration_seconds", "ouro_obs_instrumentation_errors"} <= served
    assert "websocket_connections" in served
    # A Prometheus-backend app on the same registry brings them, and records into them.
    prometheus = shop(registry, metrics_backend="prometheus")
    await get_all(prometheus, "/items/2")
    assert await families_served(prometheus) >= PROMETHEUS_HTTP_FAMILIES
    labels = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    assert registry.get_sample_value("http_requests_total", labels) == 1
    assert count_of(await scrape(otel), http_route="/items/{item_id}") == 1


async def test_concurrent_requests_all_end_up_counted(registry: CollectorRegistry) -> None:
    app = shop(registry)
    async with client(app) as http:
        responses = await asyncio.gather(*(http.get(f"/items/{n}") for n in range(20)))
    assert {response.status_code for response in responses} == {200}
    samples = await scrape(app)
    assert count_of(samples, http_route="/items/{item_id}") == 20


# ---------------------------------------------------------------- OTLP through rotel


@pytest.fixture(scope="module")
def collector() -> Iterator[OTLPCollector]:
    """A real rotel collector forwarding to its own receiver."""
    if find_rotel() is None:
        missing("rotel is not installed (pip install rotel)")
    with OTLPCollector() as running:
        yield running


@pytest.mark.integration
def test_the_shop_pushes_its_metrics_over_otlp_through_the_rotel_collector(
    collector: OTLPCollector,
) -> None:
    assert collector.receiver is not None
    port = free_port()
    env = {
        "OURO_OBS_METRICS_BACKEND": "opentelemetry",
        "OTEL_SDK_DISABLED": "false",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
    }
    with shop_process(port, env=env):
        for path in ("/items/1", "/items/2", "/boom"):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
            except urllib.error.HTTPError as error:
                with error:
                    error.read()

        def served(route: str, count: float) -> Callable[[ReceivedPoint], bool]:
            return lambda point: (
                point.metric == NAMES.request_duration
                and point.attributes.get("http.route") == route
                and point.value >= count
            )

        (item, *_) = collector.receiver.wait_for_points(served("/items/{item_id}", 2), 30)
        (boom, *_) = collector.receiver.wait_for_points(served("/boom", 1), 30)
    assert (item.unit, item.kind, item.scope) == ("s", "histogram", "ouro_obs")
    assert item.attributes["http.response.status_code"] == 200
    assert item.bounds == DEFAULT_DURATION_BUCKETS
    assert item.resource["service.name"] == "shop"
    assert boom.attributes["http.response.status_code"] == 500
    assert str(boom.attributes["error.type"]).endswith("InjectedFailure")
    active = {p.metric for p in collector.receiver.points if p.kind == "sum"}
    assert NAMES.active_requests in active


@pytest.mark.integration
def test_the_last_metrics_are_pushed_when_the_app_shuts_down(collector: OTLPCollector) -> None:
    """With an interval no test waits for, only the lifespan shutdown's flush delivers them."""
    assert collector.receiver is not None
    port = free_port()
    env = {
        "OURO_OBS_METRICS_BACKEND": "opentelemetry",
        "OTEL_SDK_DISABLED": "false",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
    }

    def order_served(point: ReceivedPoint) -> bool:
        return (
            point.metric == NAMES.request_duration
            and point.attributes.get("http.route") == "/orders/{order_id}"
        )

    with shop_process(port, env=env):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/orders/7", timeout=10) as response:
            response.read()
        assert not any(order_served(point) for point in collector.receiver.points)
    (point, *_) = collector.receiver.wait_for_points(order_served, 30)
    assert point.value == 1
