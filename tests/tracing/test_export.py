"""Spans leave over OTLP/HTTP; an exporter that is down or stuck never touches a request."""

from __future__ import annotations

import gc
import linecache
import socket
import tokenize
import tracemalloc
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, TraceFlags
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ouro_obs import ObservabilityMiddleware, configure_tracing
from ouro_obs.demo.lifecycle import LOOPBACK, free_port
from ouro_obs.demo.processes import find_rotel
from ouro_obs.demo.receiver import OTLPReceiver
from ouro_obs.tracing import BoundedBatchSpanProcessor, TracingConfig
from ouro_obs.tracing.otlp import encode_spans
from tests.metrics.asgi import client
from tests.support.processes import OTLPCollector
from tests.support.tools import missing
from tests.tracing.providers import SETTINGS, batch_processor, otlp_provider

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def order(request: Request) -> Response:
    return PlainTextResponse("ok")


def app_with(registry: CollectorRegistry, provider: TracerProvider) -> Starlette:
    app = Starlette(routes=[Route("/orders/{order_id}", order)])
    app.add_middleware(
        ObservabilityMiddleware,
        SETTINGS,
        registry=registry,
        tracer_provider=provider,
        access_log=False,
    )
    return app


async def test_spans_reach_a_real_otlp_receiver_with_names_attributes_and_parent(
    receiver: OTLPReceiver, registry: CollectorRegistry
) -> None:
    provider = otlp_provider(receiver.traces_url, registry)
    async with client(app_with(registry, provider)) as http:
        await http.get("/orders/17", headers={"traceparent": TRACEPARENT})
        await http.get("/orders/18")
    provider.force_flush()
    first, second = sorted(
        receiver.wait_for(lambda span: span.kind == "SPAN_KIND_SERVER", count=2),
        key=lambda span: span.attributes["url.path"],
    )
    provider.shutdown()
    assert first.name == second.name == "GET /orders/{order_id}"
    assert first.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first.parent_span_id == "00f067aa0ba902b7"
    assert second.parent_span_id == ""
    assert second.trace_id != first.trace_id
    assert first.attributes["http.route"] == "/orders/{order_id}"
    assert first.attributes["http.response.status_code"] == 200
    assert first.attributes["http.request.method"] == "GET"
    assert first.attributes["url.path"] == "/orders/17"
    assert first.resource["service.name"] == "shop"
    assert first.resource["service.version"] == "1.0.0"
    assert first.resource["deployment.environment.name"] == "test"
    assert first.scope == "ouro_obs"


@pytest.mark.integration
async def test_spans_pass_through_the_rotel_collector_intact(registry: CollectorRegistry) -> None:
    if find_rotel() is None:
        missing("rotel is not installed (pip install rotel)")
    with OTLPCollector() as collector:
        provider = otlp_provider(collector.traces_url, registry)
        async with client(app_with(registry, provider)) as http:
            await http.get("/orders/5", headers={"traceparent": TRACEPARENT})
        provider.force_flush()
        (span,) = collector.wait_for(lambda span: span.kind == "SPAN_KIND_SERVER", timeout=20)
        provider.shutdown()
    assert span.name == "GET /orders/{order_id}"
    assert (span.trace_id, span.parent_span_id) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
    )
    assert span.attributes["http.route"] == "/orders/{order_id}"
    assert span.resource["service.name"] == "shop"


@pytest.fixture
def unanswering_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a stuck collector)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(1024)
        yield listener.getsockname()[1]


def dropped(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("ouro_obs_spans_dropped_total", {"reason": reason}) or 0.0


@pytest.mark.parametrize("collector", ["refusing", "stuck"])
async def test_a_down_or_stuck_collector_fails_no_request_and_the_queue_stays_bounded(
    registry: CollectorRegistry, collector: str, request: pytest.FixtureRequest
) -> None:
    port = free_port() if collector == "refusing" else request.getfixturevalue("unanswering_port")
    provider = otlp_provider(
        f"http://{LOOPBACK}:{port}/v1/traces",
        registry,
        max_queue_size=16,
        export_timeout_seconds=0.3,
    )
    processor = batch_processor(provider)
    requests = 400
    statuses = []
    longest_queue = 0
    async with client(app_with(registry, provider)) as http:
        for number in range(requests):
            statuses.append((await http.get(f"/orders/{number}")).status_code)
            longest_queue = max(longest_queue, processor.queue_length)
    provider.shutdown()
    assert statuses == [200] * requests
    assert longest_queue <= 16
    assert dropped(registry, "queue_full") > 0
    assert processor.exported == 0
    # Every span is accounted for: refused by the full queue, in a failed batch, or left
    # in the queue when the bounded shutdown gave up.
    reasons = ("queue_full", "export_failed", "shutdown")
    assert sum(dropped(registry, reason) for reason in reasons) == requests


async def test_memory_stays_flat_while_the_collector_is_unreachable(
    registry: CollectorRegistry,
) -> None:
    provider = otlp_provider(
        f"http://{LOOPBACK}:{free_port()}/v1/traces",
        registry,
        max_queue_size=32,
        export_timeout_seconds=0.2,
    )
    app = app_with(registry, provider)

    async def serve(count: int) -> None:
        async with client(app) as http:
            for number in range(count):
                await http.get(f"/orders/{number}")

    tracemalloc.start()
    try:
        await serve(150)
        gc.collect()
        after_warm_up = tracemalloc.take_snapshot()
        await serve(1200)
        gc.collect()
        after_many_more = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        provider.shutdown()
    # 1200 retained spans would take megabytes; a bounded queue keeps the growth small.
    # Source lines read for the first traceback of a new kind of export failure (a timeout
    # after refusals) are the logging module's cache, not spans: not counted.
    cache = [
        tracemalloc.Filter(False, linecache.__file__),
        tracemalloc.Filter(False, tokenize.__file__),
    ]
    growth = after_many_more.filter_traces(cache).compare_to(
        after_warm_up.filter_traces(cache), "filename"
    )
    grown = sum(stat.size_diff for stat in growth)
    assert grown < 512 * 1024, [str(stat) for stat in growth[:5]]
    reasons = ("queue_full", "export_failed", "shutdown")
    assert sum(dropped(registry, reason) for reason in reasons) == 1350


async def test_exporter_errors_are_counted_not_raised(registry: CollectorRegistry) -> None:
    class RaisingExporter:
        def export(self, spans: object) -> object:
            raise RuntimeError("exporter bug")

        def shutdown(self) -> None:
            return None

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    provider = configure_tracing(
        SETTINGS,
        config=TracingConfig.from_env({}),
        exporter=RaisingExporter(),  # type: ignore[arg-type]
        registry=registry,
        set_global=False,
        schedule_delay_seconds=0.05,
    )
    assert provider is not None
    async with client(app_with(registry, provider)) as http:
        assert (await http.get("/orders/1")).status_code == 200
    provider.force_flush()
    provider.shutdown()
    assert dropped(registry, "export_failed") == 1


def test_shutdown_gives_up_on_a_stuck_collector_instead_of_waiting_for_it(
    unanswering_port: int,
) -> None:
    stuck = OTLPSpanExporter(endpoint=f"http://{LOOPBACK}:{unanswering_port}/v1/traces", timeout=60)
    processor = BoundedBatchSpanProcessor(
        stuck, max_export_batch_size=4, schedule_delay_seconds=0.01, shutdown_timeout_seconds=0.3
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for number in range(12):
        tracer.start_span(f"span {number}").end()
    processor.shutdown()
    # The export of the first batch is still waiting for its 60 s timeout: nobody waited for it.
    assert processor._worker.is_alive()
    assert processor.dropped["shutdown"] > 0


class Snapshots(SpanProcessor):
    """Reads each ended span as processors and exporters read it, before the next processor."""

    def __init__(self) -> None:
        self.views: list[dict[str, object]] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.views.append(public_view(span))


def public_view(span: ReadableSpan) -> dict[str, object]:
    return {
        "attributes": dict(span.attributes or {}),
        "events": [(e.name, dict(e.attributes or {}), e.dropped_attributes) for e in span.events],
        "links": [(link.context, dict(link.attributes or {})) for link in span.links],
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "json": span.to_json(),
        "otlp": sdk_encode_spans([span]).SerializePartialToString(),
    }


def test_a_queued_span_reads_and_encodes_as_it_ended() -> None:
    """The batch processor keeps queued spans lean (see the memory test in
    test_otlp_encoding.py); every processor and exporter after it reads the same span."""
    snapshots, exported = Snapshots(), InMemorySpanExporter()
    provider = TracerProvider(
        span_limits=SpanLimits(max_span_attributes=4, max_events=2, max_links=1),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(snapshots)
    provider.add_span_processor(BoundedBatchSpanProcessor(exported, schedule_delay_seconds=60))
    tracer = provider.get_tracer("ouro_obs")
    with tracer.start_as_current_span("nothing"):
        pass
    link = Link(SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(1)), {"a": 1})
    with tracer.start_as_current_span("within limits", links=[link]) as span:
        span.set_attributes({"http.route": "/items/{id}", "tags": ("a", "b")})
        span.add_event("retry", {"attempt": 2})
    with tracer.start_as_current_span("past limits", links=[link, link]) as span:
        span.set_attributes({f"key{number}": number for number in range(6)})
        for number in range(3):
            span.add_event(f"event {number}")
    provider.force_flush()
    spans = exported.get_finished_spans()
    assert [span.name for span in spans] == ["nothing", "within limits", "past limits"]
    assert [public_view(span) for span in spans] == snapshots.views
    assert spans[2].dropped_attributes == 2
    assert (spans[2].dropped_events, spans[2].dropped_links) == (1, 1)
    assert encode_spans(spans) == sdk_encode_spans(spans).SerializePartialToString()
    provider.shutdown()
