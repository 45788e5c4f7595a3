"""A broken piece of instrumentation is counted per stage, logged once, and never fails a request."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ouro_obs import ObservabilityMiddleware
from tests.metrics.asgi import client, requests_total


async def item(request: Request) -> Response:
    return PlainTextResponse("item")


def app_with(registry: CollectorRegistry, **options: Any) -> Starlette:
    app = Starlette(routes=[Route("/items/{item_id}", item)])
    app.add_middleware(ObservabilityMiddleware, registry=registry, **options)
    return app


def errors(registry: CollectorRegistry, stage: str) -> float | None:
    return registry.get_sample_value("ouro_obs_instrumentation_errors_total", {"stage": stage})


class BrokenLogger:
    def info(self, event: str, **fields: Any) -> None:
        raise RuntimeError("log sink gone")

    error = info


class BrokenTracerProvider(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer provider bug")


async def test_a_failing_recorder_is_counted_per_request_and_the_others_still_record(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ouro_obs")
    async with client(app_with(registry, logger=BrokenLogger(), tracing=False)) as http:
        responses = [await http.get(f"/items/{index}") for index in range(3)]
    assert [(r.status_code, r.text) for r in responses] == [(200, "item")] * 3
    assert errors(registry, "access_log") == 3
    assert requests_total(registry, "GET", "/items/{item_id}", 200) == 3
    logged = [r for r in caplog.records if "instrumentation error" in r.getMessage()]
    assert len(logged) == 1
    assert "'access_log'" in logged[0].getMessage()
    assert logged[0].exc_info is not None


async def test_a_tracer_provider_that_fails_at_the_first_request_leaves_metrics_and_logs_on(
    registry: CollectorRegistry,
) -> None:
    received: list[str] = []

    class Recorder:
        def info(self, event: str, **fields: Any) -> None:
            received.append(fields["route"])

    app = app_with(registry, tracer_provider=BrokenTracerProvider(), logger=Recorder())
    async with client(app) as http:
        first = await http.get("/items/1")
        second = await http.get("/items/2")
    assert (first.status_code, second.status_code) == (200, 200)
    assert "x-request-id" in second.headers
    assert errors(registry, "setup") == 1  # settled once, not retried per request
    assert requests_total(registry, "GET", "/items/{item_id}", 200) == 2
    assert received == ["/items/{item_id}"] * 2
