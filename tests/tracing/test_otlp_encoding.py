"""The OTLP span encoding writes the bytes the SDK's exporter would send, for every span."""

from __future__ import annotations

import gc
import math
import random
import socket
import threading
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from prometheus_client import CollectorRegistry

from ouro_obs.demo.lifecycle import LOOPBACK
from ouro_obs.demo.receiver import OTLPReceiver
from ouro_obs.tracing import BoundedBatchSpanProcessor, otlp
from ouro_obs.tracing.otlp import OtlpHttpSpanExporter, encode_spans, exporter_problem
from tests.tracing.providers import batch_processor, otlp_provider

REMOTE = SpanContext(
    0x4BF92F3577B34DA6A3CE929D0E0E4736,
    0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("vendor", "value"), ("other", "x")]),
)
LONG = "é" * 70 + "x" * 20_000  # lengths of two and three varint bytes


def assert_encoded_as_the_sdk_does(spans: Sequence[ReadableSpan]) -> None:
    ours = encode_spans(spans)
    theirs = sdk_encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(ours) == theirs
    assert ours == theirs.SerializePartialToString()


@pytest.fixture
def finished() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def provider_for(
    spans: InMemorySpanExporter, resource: Resource, limits: SpanLimits | None = None
) -> TracerProvider:
    provider = TracerProvider(resource=resource, span_limits=limits, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider


def test_spans_with_every_field_the_sdk_sets_encode_to_the_sdks_bytes(
    finished: InMemorySpanExporter,
) -> None:
    resource = Resource.create(
        {"service.name": "shop", "k8s.pod.uid": LONG}, schema_url="https://s/1"
    )
    provider = provider_for(finished, resource)
    tracer = provider.get_tracer(
        "ouro_obs", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.26.0"
    )
    other = provider.get_tracer("app", attributes={"scope.attribute": 7})
    parent_context = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    for kind in SpanKind:
        with tracer.start_as_current_span(
            f"GET /{kind.name}", context=parent_context, kind=kind
        ) as span:
            span.set_attributes(
                {
                    "text": "GET",
                    "empty": "",
                    "long": LONG,
                    "flag": False,
                    "yes": True,
                    "zero": 0,
                    "negative": -42,
                    "smallest": -(2**63),
                    "largest": 2**63 - 1,
                    "float": 0.25,
                    "negative zero": -0.0,
                    "infinity": math.inf,
                    "nan": math.nan,
                    "strings": ["a", "", LONG],
                    "ints": [1, -1, 2**40],
                    "floats": [1.5],
                    "bools": [True, False],
                    "no values": [],
                }
            )
            span.add_event("retry", {"attempt": 2, "why": "timeout"}, timestamp=123)
            span.add_event("")
            span.add_link(REMOTE, {"link.kind": "follows"})
            with other.start_as_current_span("child") as child:
                child.set_status(Status(StatusCode.ERROR, "boom: ünïcode"))
            span.set_status(Status(StatusCode.OK))
    assert len(finished.get_finished_spans()) == 10
    assert_encoded_as_the_sdk_does(finished.get_finished_spans())


def test_dropped_counts_and_unset_status_encode_as_the_sdk_does(
    finished: InMemorySpanExporter,
) -> None:
    limits = SpanLimits(
        max_span_attributes=2,
        max_events=1,
        max_links=1,
        max_event_attributes=1,
        max_link_attributes=1,
    )
    provider = provider_for(finished, Resource.create({}), limits)
    tracer = provider.get_tracer("t")
    for index in range(3):
        with tracer.start_as_current_span(
            "s", links=[Link(REMOTE), Link(REMOTE, {"a": 1, "b": 2})], attributes={"a": index}
        ) as span:
            span.set_attributes({"b": str(index), "c": 3, "d": 4})
            span.add_event("dropped")
            span.add_event("kept", {"x": 1, "y": 2})
    spans = finished.get_finished_spans()
    assert spans[0].dropped_attributes == 2
    assert spans[0].dropped_events == 1
    assert spans[0].dropped_links == 1
    assert spans[0].links[0].dropped_attributes == 1
    assert spans[0].events[0].dropped_attributes == 1
    assert_encoded_as_the_sdk_does(spans)


def test_repeating_and_ever_new_values_encode_as_the_sdk_does(
    finished: InMemorySpanExporter,
) -> None:
    """Values that repeat (their fields kept) beside values new in every span (a path, a
    port: kept until their key has had its share, then made each time)."""
    tracer = provider_for(finished, Resource.create({})).get_tracer("t")
    for index in range(300):
        attributes = {
            "http.response.status_code": (200, 404, 500)[index % 3],
            "http.route": f"/routes/{index % 5}",
            "url.path": f"/items/{index}",
            "client.port": 40_000 + index,
            "doubled": index * 2,
        }
        with tracer.start_as_current_span("s", attributes=attributes):
            pass
    assert_encoded_as_the_sdk_does(finished.get_finished_spans())


def test_equal_resources_and_scopes_group_as_the_sdk_groups_them(
    finished: InMemorySpanExporter,
) -> None:
    """Two providers with equal resources, interleaved, and a scope-less span."""
    first = provider_for(finished, Resource.create({"service.name": "a"}))
    second = provider_for(finished, Resource.create({"service.name": "a"}))
    third = provider_for(finished, Resource.create({"service.name": "b"}))
    for provider in (first, second, third, first, third, second):
        for name in ("x", "y"):
            with provider.get_tracer(name).start_as_current_span(name):
                pass
    spans = list(finished.get_finished_spans())
    unscoped = ReadableSpan(
        name="unscoped",
        context=REMOTE,
        resource=spans[0].resource,
        instrumentation_scope=None,
        start_time=1,
        end_time=2,
    )
    spans.insert(3, unscoped)
    assert spans[0].resource is not spans[2].resource
    assert spans[0].resource == spans[2].resource
    assert_encoded_as_the_sdk_does(spans)


def test_attributes_otlp_cannot_carry_are_left_out_as_the_sdk_leaves_them_out() -> None:
    """Attributes set on a span directly, past the SDK's checks: mappings, bytes, None,
    subclasses, an empty key, and what OTLP has no value for (a set, an integer past
    int64, an unpaired surrogate) next to good ones."""
    attributes: dict[Any, Any] = {
        "mapping": {"nested": {"deeper": [1, "two"]}, 3: "int key"},
        "bytes": b"\x00\xff",
        "none": None,
        "status": HTTPStatus.NOT_FOUND,
        "": "empty key",
        "set": {1, 2},
        "huge": 2**64,
        "huge in a list": [1, 2**64],
        "surrogate": "\ud800",
        "tuple": ("a", "b"),
        7: "a key that is not a string",
        "good": "kept",
    }
    scope = InstrumentationScope("raw", "0", None, {"scope": ["x"]})
    span = ReadableSpan(
        name="raw",
        context=REMOTE,
        parent=REMOTE,
        resource=Resource({"bytes": b"\x01"}),
        attributes=attributes,
        instrumentation_scope=scope,
        kind=SpanKind.CLIENT,
        start_time=2**63,
        end_time=2**64 - 1,
    )
    ours = ExportTraceServiceRequest.FromString(encode_spans([span]))
    (encoded,) = ours.resource_spans[0].scope_spans[0].spans
    kept = [attribute.key for attribute in encoded.attributes]
    assert kept == ["mapping", "bytes", "none", "status", "", "tuple", "good"]
    assert_encoded_as_the_sdk_does([span])


def test_many_distinct_attribute_keys_still_encode_as_the_sdk_does() -> None:
    """Past the number of keys whose fields are kept."""
    span = ReadableSpan(
        name="wide",
        context=REMOTE,
        resource=Resource({}),
        attributes={f"key.{index}": index % 3 for index in range(600)},
        start_time=1,
        end_time=2,
    )
    assert_encoded_as_the_sdk_does([span, span])


def test_an_empty_batch_is_an_empty_request() -> None:
    assert encode_spans([]) == sdk_encode_spans([]).SerializePartialToString() == b""


def test_the_installed_sdk_exporter_has_the_shape_the_fast_encoding_relies_on() -> None:
    """Fails naming what changed when an exporter release moves its internals."""
    exporter = OtlpHttpSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    assert exporter_problem(exporter) is None
    assert exporter.encoding_problem is None
    exporter.shutdown()


def test_an_exporter_of_another_shape_is_named_and_left_to_the_sdk(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert exporter_problem(object()) == "OTLPSpanExporter has no '_client' with export(data)"  # type: ignore[arg-type]
    monkeypatch.setattr(otlp, "exporter_problem", lambda exporter: "a release of another shape")
    exporter = OtlpHttpSpanExporter(endpoint=receiver.traces_url)
    assert exporter.encoding_problem == "a release of another shape"
    assert not exporter.encodes_ahead
    monkeypatch.setattr(otlp, "encode_span", None)  # our encoding would fail: the SDK's is used
    span = ReadableSpan(
        name="by the sdk", context=REMOTE, resource=Resource({}), start_time=1, end_time=2
    )
    assert exporter.export([span]) is SpanExportResult.SUCCESS
    assert [received.name for received in receiver.wait_for(lambda s: True)] == ["by the sdk"]
    exporter.shutdown()


def test_configure_tracing_exports_the_fast_encoding_to_a_real_receiver(
    receiver: OTLPReceiver,
) -> None:
    provider = otlp_provider(receiver.traces_url, CollectorRegistry())
    exporter = batch_processor(provider)._exporter
    assert type(exporter) is OtlpHttpSpanExporter
    assert exporter.encoding_problem is None
    with provider.get_tracer("ouro_obs").start_as_current_span(
        "GET /orders/{order_id}", attributes={"http.route": "/orders/{order_id}", "long": LONG}
    ):
        pass
    provider.force_flush()
    (span,) = receiver.wait_for(lambda span: span.name == "GET /orders/{order_id}")
    provider.shutdown()
    assert span.attributes == {"http.route": "/orders/{order_id}", "long": LONG}
    assert span.resource["service.name"] == "shop"
    assert span.scope == "ouro_obs"


def test_gzip_compression_and_the_request_size_limit_hold(receiver: OTLPReceiver) -> None:
    span = ReadableSpan(
        name="compressed", context=REMOTE, resource=Resource({}), start_time=1, end_time=2
    )
    gzipped = OtlpHttpSpanExporter(endpoint=receiver.traces_url, compression=Compression.Gzip)
    assert gzipped.export([span]) is SpanExportResult.SUCCESS
    assert [received.name for received in receiver.wait_for(lambda s: True)] == ["compressed"]
    too_small = OtlpHttpSpanExporter(endpoint=receiver.traces_url, max_request_size=10)
    assert too_small.export([span]) is SpanExportResult.FAILURE
    too_small.shutdown()
    assert too_small.export([span]) is SpanExportResult.FAILURE  # shut down
    gzipped.shutdown()
    assert len(receiver.spans) == 1


@pytest.fixture
def stuck_collector() -> Iterator[str]:
    """The traces URL of a port that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(64)
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}/v1/traces"


class StuckExporter(SpanExporter):
    """An export that waits until released: a collector that never answers, in-process."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.released.wait()
        return SpanExportResult.SUCCESS


@dataclass(frozen=True)
class Held:
    """What a batch processor holds per span queued behind a stuck export."""

    bytes: float
    #: Objects the garbage collector tracks (and walks at every full collection).
    objects: float


def held_per_queued_span(processor: SpanProcessor, spans: int = 2000) -> Held:
    """Memory and tracked objects ``processor`` holds per span queued behind a stuck export.

    Its exporter must be stuck and its first batch at most 100 spans; the caller lets it go.
    """
    provider = TracerProvider(
        resource=Resource.create({"service.name": "shop"}), shutdown_on_exit=False
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("ouro_obs")
    attributes = {"http.request.method": "GET", "url.scheme": "http", "client.address": "::1"}

    def serve(count: int) -> None:
        for number in range(count):
            with tracer.start_as_current_span(
                "GET /items/{item_id}", attributes=attributes
            ) as span:
                span.set_attribute("url.path", f"/items/{number}")

    serve(100)  # the first batch leaves for the stuck collector; a backlog forms
    gc.collect()
    objects_before = len(gc.get_objects())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        serve(spans)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    objects = len(gc.get_objects()) - objects_before
    return Held(held / spans, objects / spans)


def ours(exporter: SpanExporter, spans: int = 2000) -> Held:
    """:func:`held_per_queued_span` for ouro-obs's batch processor with ``exporter``."""
    processor = BoundedBatchSpanProcessor(
        exporter,
        max_queue_size=spans * 2,
        max_export_batch_size=16,
        schedule_delay_seconds=3600,
        shutdown_timeout_seconds=0.1,
    )
    try:
        held = held_per_queued_span(processor, spans)
        assert processor.queue_length >= spans
    finally:
        processor._let_go()
        processor.shutdown()
    return held


def test_spans_queued_behind_a_stuck_collector_are_kept_as_their_bytes(
    stuck_collector: str,
) -> None:
    """The backlog is kept as bytes: what piles up while the collector does not answer."""
    encoded = ours(OtlpHttpSpanExporter(endpoint=stuck_collector, timeout=3))
    objects = ours(OTLPSpanExporter(endpoint=stuck_collector, timeout=3))
    assert encoded.bytes < objects.bytes / 2, (encoded, objects)
    assert encoded.objects < objects.objects / 2, (encoded, objects)


def test_a_queued_span_holds_a_quarter_of_the_sdk_processors_memory_and_objects() -> None:
    """Queued as span objects (any exporter), a span keeps only what it still needs."""
    stuck = StuckExporter()
    sdk = BatchSpanProcessor(
        stuck, max_queue_size=4000, max_export_batch_size=16, schedule_delay_millis=3_600_000
    )
    try:
        theirs = held_per_queued_span(sdk)
        compacted = ours(stuck)
    finally:
        stuck.released.set()
        sdk.shutdown()  # type: ignore[no-untyped-call]
    assert compacted.bytes < theirs.bytes / 3, (compacted, theirs)
    assert compacted.objects < theirs.objects / 3, (compacted, theirs)


def test_a_span_that_cannot_be_encoded_is_dropped_and_counted_not_raised(
    receiver: OTLPReceiver,
) -> None:
    registry = CollectorRegistry()
    provider = otlp_provider(receiver.traces_url, registry)
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("unpaired \ud800 surrogate"):
        pass
    with tracer.start_as_current_span("fine"):
        pass
    provider.force_flush()
    (span,) = receiver.wait_for(lambda span: True)
    provider.shutdown()
    assert span.name == "fine"
    dropped = registry.get_sample_value("ouro_obs_spans_dropped_total", {"reason": "export_failed"})
    assert dropped == 1


def random_value(chance: random.Random, depth: int = 0) -> Any:
    kind = chance.randrange(10 if depth < 2 else 7)
    if kind == 0:
        return chance.choice(["", "GET", "é" * chance.randrange(200), "\ud800", "x" * 300])
    if kind == 1:
        return chance.choice([0, 1, -1, 2**63 - 1, -(2**63), 2**63, chance.getrandbits(70)])
    if kind == 2:
        return chance.choice([0.0, -0.0, 1e300, math.inf, -math.inf, chance.random()])
    if kind == 3:
        return chance.random() < 0.5
    if kind == 4:
        return bytes(chance.getrandbits(8) for _ in range(chance.randrange(5)))
    if kind == 5:
        return None
    if kind == 6:
        return chance.choice([{1, 2}, object(), HTTPStatus.OK])
    if kind == 7:
        return [random_value(chance, depth + 1) for _ in range(chance.randrange(4))]
    if kind == 8:
        return tuple(random_value(chance, depth + 1) for _ in range(chance.randrange(4)))
    return {f"k{index}": random_value(chance, depth + 1) for index in range(chance.randrange(3))}


def test_random_attribute_values_encode_as_the_sdk_encodes_them() -> None:
    """500 spans of random values of every kind, nested two deep, set past the SDK's
    checks: each attribute is encoded, or left out, exactly as the SDK does."""
    chance = random.Random(16)
    resource = Resource({"service.name": "shop"})
    spans = [
        ReadableSpan(
            name=f"span {number}",
            context=REMOTE,
            resource=resource,
            attributes={f"key.{chance.randrange(40)}": random_value(chance) for _ in range(8)},
            start_time=number,
            end_time=number + 1,
        )
        for number in range(500)
    ]
    assert_encoded_as_the_sdk_does(spans)
