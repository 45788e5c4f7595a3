"""One SERVER span per request: named after its route, with the HTTP semantic conventions."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from ouro_obs import ObservabilityMiddleware
from tests.metrics.asgi import client

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Broken(RuntimeError):
    pass


async def item(request: Request) -> Response:
    return PlainTextResponse(f"item {request.path_params['item_id']}")


async def unavailable(request: Request) -> Response:
    return PlainTextResponse("down", status_code=503)


async def broken(request: Request) -> Response:
    raise Broken("no")


def app_with(registry: CollectorRegistry, provider: TracerProvider, **options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Route("/unavailable", unavailable),
            Route("/broken", broken),
            Mount("/admin", routes=[Route("/tenants/{tenant}", item)]),
        ]
    )
    app.add_middleware(
        ObservabilityMiddleware,
        registry=registry,
        tracer_provider=provider,
        access_log=False,
        **options,
    )
    return app


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]


async def test_span_is_named_after_the_route_template_with_semconv_attributes(
    registry: CollectorRegistry, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with client(app_with(registry, provider)) as http:
        await http.get("/items/42?color=red&token=hide", headers={"user-agent": "probe/2"})
    (span,) = server_spans(exporter)
    assert span.name == "GET /items/{item_id}"
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
        "url.path": "/items/42",
        "url.scheme": "http",
        "url.query": "color=red&token=[REDACTED]",
        "server.address": "testserver",
        "client.address": "127.0.0.1",
        "user_agent.original": "probe/2",
        "network.protocol.version": "1.1",
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "ouro_obs"


@pytest.mark.parametrize(
    ("host", "address", "port"),
    [
        ("shop.example:8443", "shop.example", 8443),
        ("[::1]:8000", "::1", 8000),
        ("[::1]", "::1", None),
    ],
)
async def test_server_address_and_port_come_from_the_host_header(
    registry: CollectorRegistry,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    host: str,
    address: str,
    port: int | None,
) -> None:
    async with client(app_with(registry, provider)) as http:
        await http.get("/items/1", headers={"host": host})
    (span,) = server_spans(exporter)
    attributes = span.attributes or {}
    assert attributes["server.address"] == address
    assert attributes.get("server.port") == port


async def test_mounted_routes_name_the_full_template(
    registry: CollectorRegistry, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with client(app_with(registry, provider)) as http:
        await http.get("/admin/tenants/acme")
    (span,) = server_spans(exporter)
    assert span.name == "GET /admin/tenants/{tenant}"


async def test_unmatched_requests_are_named_by_method_alone_without_a_route(
    registry: CollectorRegistry, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with client(app_with(registry, provider)) as http:
        await http.get("/no/such/page")
        await http.request("PURGE", "/items/1")
    unmatched, other = server_spans(exporter)
    assert unmatched.name == "GET"
    assert "http.route" not in (unmatched.attributes or {})
    assert (unmatched.attributes or {})["http.response.status_code"] == 404
    assert other.name.startswith("HTTP")  # a method outside the standard set
    assert (other.attributes or {})["http.request.method"] == "_OTHER"
    assert (other.attributes or {})["http.request.method_original"] == "PURGE"


async def test_incoming_traceparent_and_tracestate_make_the_span_a_remote_child(
    registry: CollectorRegistry, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=opaque"}
    async with client(app_with(registry, provider)) as http:
        await http.get("/items/1", headers=headers)
    (span,) = server_spans(exporter)
    assert span.context is not None
    assert span.parent is not None
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert span.parent.is_remote
    assert span.context.trace_state.get("vendor") == "opaque"


async def test_a_malformed_traceparent_starts_a_new_trace(
    registry: CollectorRegistry, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with client(app_with(registry, provider)) as http:
        response = await http.get("/items/1", headers={"traceparent": "00-zz-bad\n-01"})
    assert response.status_code == 200
    (span,) = server_spans(exporter)
    assert span.parent is None


async def test_server_errors_and_exceptions_set_error_type_and_status(
    registry: CollectorRegistry, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with client(app_with(registry, provider)) as http:
        await http.get("/unavailable")
        await http.get("/broken")
    unavailable_span, broken_span = server_spans(exporter)
    assert (unavailable_span.attributes or {})["error.type"] == "503"
    assert unavailable_span.status.status_code is StatusCode.ERROR
    attributes = broken_span.attributes or {}
    assert attributes["error.type"] == "tests.tracing.test_server_spans.Broken"
    assert attributes["http.response.status_code"] == 500
    assert broken_span.status.status_code is StatusCode.ERROR
    assert [event.name for event in broken_span.events] == ["exception"]


async def test_client_errors_are_not_span_errors(
    registry: CollectorRegistry, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with client(app_with(registry, provider)) as http:
        await http.get("/missing")
    (span,) = server_spans(exporter)
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in (span.attributes or {})


async def test_excluded_paths_and_own_endpoints_make_no_span(
    registry: CollectorRegistry, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with client(app_with(registry, provider, excluded_paths={"/unavailable"})) as http:
        for path in ("/unavailable", "/health/live", "/health/ready", "/metrics"):
            await http.get(path)
    assert exporter.get_finished_spans() == ()


async def test_tracing_false_makes_no_span(
    registry: CollectorRegistry, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with client(app_with(registry, provider, tracing=False)) as http:
        await http.get("/items/1")
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("endpoint_kind", ["async", "sync"])
async def test_spans_the_app_starts_are_children_of_the_request_span(
    registry: CollectorRegistry,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    endpoint_kind: str,
) -> None:
    tracer = provider.get_tracer("shop")
    app = FastAPI()

    if endpoint_kind == "async":

        @app.get("/work/{n}")
        async def work_async(n: int) -> dict[str, int]:
            with tracer.start_as_current_span("query"):
                return {"n": n}
    else:

        @app.get("/work/{n}")
        def work_sync(n: int) -> dict[str, int]:
            with tracer.start_as_current_span("query"):
                return {"n": n}

    app.add_middleware(ObservabilityMiddleware, registry=registry, tracer_provider=provider)
    async with client(app) as http:
        await http.get("/work/3")
    child = next(span for span in exporter.get_finished_spans() if span.name == "query")
    (server,) = server_spans(exporter)
    assert server.name == "GET /work/{n}"
    assert child.parent is not None
    assert server.context is not None
    assert child.parent.span_id == server.context.span_id


async def test_fastapis_own_server_span_is_used_not_duplicated(
    registry: CollectorRegistry, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """FastAPI (>= 0.13x) traces requests itself when given a provider; one SERVER span only."""
    try:
        app = FastAPI(telemetry={"tracer_provider": provider})
    except TypeError:
        pytest.skip("this FastAPI has no native telemetry")

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    app.add_middleware(ObservabilityMiddleware, registry=registry, tracer_provider=provider)
    async with client(app) as http:
        response = await http.get("/things/7")
    assert response.status_code == 200
    (span,) = server_spans(exporter)
    assert span.name == "GET /things/{thing_id}"
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "fastapi"
    trace_ids = {
        format(s.context.trace_id, "032x") for s in exporter.get_finished_spans() if s.context
    }
    assert len(trace_ids) == 1
