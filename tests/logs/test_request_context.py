"""Every line the app logs while serving a request carries its request id and trace ids."""

from __future__ import annotations

import logging

import pytest
import structlog
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from ouro_obs import ObservabilityMiddleware
from tests.logs.capture import LogCapture
from tests.metrics.asgi import client

app_log = logging.getLogger("shop.handlers")


def traced_app(registry: CollectorRegistry, exporter: InMemorySpanExporter) -> FastAPI:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI()

    @app.get("/async/{item}")
    async def in_event_loop(item: int) -> dict[str, int]:
        app_log.info("async handler")
        structlog.get_logger("shop.handlers").info("async structlog")
        return {"item": item}

    @app.get("/sync/{item}")
    def in_threadpool(item: int) -> dict[str, int]:
        app_log.info("sync handler")
        with provider.get_tracer("shop").start_as_current_span("lookup"):
            app_log.info("inside a child span")
        return {"item": item}

    app.add_middleware(ObservabilityMiddleware, registry=registry, tracer_provider=provider)
    return app


@pytest.mark.parametrize("path", ["/async/1", "/sync/1"])
async def test_app_lines_carry_request_id_trace_id_and_span_id(
    logs: LogCapture, registry: CollectorRegistry, path: str
) -> None:
    exporter = InMemorySpanExporter()
    async with client(traced_app(registry, exporter)) as http:
        response = await http.get(path, headers={"x-request-id": "req-42"})
    server_span = next(s for s in exporter.get_finished_spans() if s.name.startswith("GET"))
    assert server_span.context is not None
    trace_id = format(server_span.context.trace_id, "032x")
    app_lines = logs.by_logger("shop.handlers")
    assert app_lines
    for line in app_lines:
        assert line["request_id"] == "req-42" == response.headers["x-request-id"]
        assert line["trace_id"] == trace_id
    assert app_lines[0]["span_id"] == format(server_span.context.span_id, "016x")


async def test_a_line_inside_a_child_span_names_the_child(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    exporter = InMemorySpanExporter()
    async with client(traced_app(registry, exporter)) as http:
        await http.get("/sync/2")
    child = next(s for s in exporter.get_finished_spans() if s.name == "lookup")
    assert child.context is not None
    (line,) = [line for line in logs.lines if line["event"] == "inside a child span"]
    assert line["span_id"] == format(child.context.span_id, "016x")


async def test_lines_after_the_request_carry_no_request_context(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    async with client(traced_app(registry, InMemorySpanExporter())) as http:
        await http.get("/async/3")
    app_log.info("between requests")
    (line,) = [line for line in logs.lines if line["event"] == "between requests"]
    assert "request_id" not in line
    assert "trace_id" not in line
