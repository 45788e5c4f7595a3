"""The three signals point at each other: access line, span and exemplar share the trace id."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ouro_obs import ObservabilityMiddleware, ObservabilitySettings, configure_tracing
from ouro_obs.demo.lifecycle import ManagedProcess, free_port, http_get
from ouro_obs.demo.receiver import OTLPReceiver
from ouro_obs.tracing import TracingConfig
from tests.logs.capture import capture_logs
from tests.metrics.asgi import client
from tests.support.tools import REPO_ROOT

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def exemplar_trace_ids(exposition: str, metric: str, labels: dict[str, str]) -> set[str]:
    """trace_id of every exemplar on ``metric``'s samples that carry ``labels``."""
    found = set()
    for family in text_string_to_metric_families(exposition):  # type: ignore[no-untyped-call]
        if family.name != metric:
            continue
        for sample in family.samples:
            matches = all(sample.labels.get(key) == value for key, value in labels.items())
            if matches and sample.exemplar is not None:
                found.add(sample.exemplar.labels["trace_id"])
    return found


async def test_access_line_span_and_exemplar_carry_the_same_trace_id(
    receiver: OTLPReceiver, registry: CollectorRegistry, restore_logging: None
) -> None:
    logs = capture_logs()
    settings = ObservabilitySettings(service_name="shop")
    provider = configure_tracing(
        settings,
        config=TracingConfig.from_env({}),
        endpoint=receiver.traces_url,
        registry=registry,
        set_global=False,
        schedule_delay_seconds=0.05,
    )
    assert provider is not None

    async def payment(request: Request) -> Response:
        return PlainTextResponse("paid")

    app = Starlette(routes=[Route("/payments/{payment_id}", payment, methods=["POST"])])
    app.add_middleware(
        ObservabilityMiddleware, settings, registry=registry, tracer_provider=provider
    )
    async with client(app) as http:
        await http.post("/payments/9", headers={"x-request-id": "pay-9"})
        exposition = (await http.get("/metrics", headers={"accept": OPENMETRICS})).text
    provider.force_flush()
    (span,) = receiver.wait_for(lambda span: span.name == "POST /payments/{payment_id}")
    provider.shutdown()

    access = logs.one_access_line()
    assert access["request_id"] == "pay-9"
    labels = {"method": "POST", "route": "/payments/{payment_id}"}
    assert access["trace_id"] == span.trace_id
    assert access["span_id"] == span.span_id
    assert exemplar_trace_ids(exposition, "http_request_duration_seconds", labels) == {
        span.trace_id
    }
    assert exemplar_trace_ids(exposition, "http_requests", {**labels, "status": "200"}) == {
        span.trace_id
    }


async def test_unsampled_requests_log_their_trace_id_but_leave_no_exemplar(
    registry: CollectorRegistry, restore_logging: None
) -> None:
    logs = capture_logs()
    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)

    async def page(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/pages/{page}", page)])
    app.add_middleware(ObservabilityMiddleware, registry=registry, tracer_provider=provider)
    async with client(app) as http:
        await http.get("/pages/1")
        exposition = (await http.get("/metrics", headers={"accept": OPENMETRICS})).text
    access = logs.one_access_line()
    assert len(access["trace_id"]) == 32
    labels = {"method": "GET", "route": "/pages/{page}"}
    assert exemplar_trace_ids(exposition, "http_request_duration_seconds", labels) == set()
    assert registry.get_sample_value("http_requests_total", {**labels, "status": "200"}) == 1


def json_lines(output: str) -> list[dict[str, Any]]:
    lines = []
    for raw in output.splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


@pytest.mark.integration
def test_the_example_service_under_uvicorn_ties_its_signals_together(
    receiver: OTLPReceiver, tmp_path: Path
) -> None:
    """Real process: uvicorn, the shop's configure_logging/configure_tracing, OTLP out."""
    port = free_port()
    shop = ManagedProcess(
        argv=[
            sys.executable, "-m", "uvicorn", "shop.app:app",
            "--app-dir", str(REPO_ROOT / "examples"),
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        ],
        ready_url=f"http://127.0.0.1:{port}/health/live",
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OURO_OBS_LOG_FORMAT": "json",
            "OURO_OBS_ENVIRONMENT": "test",
        },
        log_path=tmp_path / "shop.log",
    )  # fmt: skip
    with shop:
        base = f"http://127.0.0.1:{port}"
        status, headers = get(f"{base}/items/1", {"x-request-id": "item-1"})
        assert (status, headers["x-request-id"]) == (200, "item-1")
        status, headers = get(f"{base}/boom", {})
        assert status == 500
        boom_id = headers["x-request-id"]
        exposition = http_get(f"{base}/metrics", headers={"accept": OPENMETRICS}).decode()
        (span,) = receiver.wait_for(
            lambda span: span.name == "GET /items/{item_id}" and span.kind == "SPAN_KIND_SERVER",
            timeout=20,
        )
    lines = json_lines(shop.output())
    (access,) = [line for line in lines if line.get("request_id") == "item-1"]
    assert (access["logger"], access["status"], access["route"]) == (
        "ouro_obs.access",
        200,
        "/items/{item_id}",
    )
    assert access["trace_id"] == span.trace_id
    assert exemplar_trace_ids(
        exposition, "http_request_duration_seconds", {"route": "/items/{item_id}"}
    ) == {span.trace_id}
    assert span.resource["service.name"] == "shop"
    assert span.resource["deployment.environment.name"] == "test"
    # The server's own traceback line is JSON too, and names the failed request.
    (traceback_line,) = [line for line in lines if "Exception in ASGI application" in line["event"]]
    assert traceback_line["logger"] == "uvicorn.error"
    assert f"request_id={boom_id}" in traceback_line["exception"]
    assert "InjectedFailure" in traceback_line["exception"]
    # uvicorn's startup lines went through the same renderer, without its colour codes.
    startup = [line for line in lines if line["event"].startswith("Uvicorn running on")]
    assert len(startup) == 1
    assert "color_message" not in startup[0]
