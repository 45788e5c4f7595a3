"""/metrics, /health/live and /health/ready, on the app's port and on a port of their own."""

from __future__ import annotations

import asyncio
import json

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from ouro_obs import ObservabilityMiddleware, ReadinessChecks
from ouro_obs.processes import free_port, http_get
from tests.metrics.asgi import client


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("hello")(scope, receive, send)


async def test_metrics_speak_the_prometheus_text_format_by_default(
    registry: CollectorRegistry,
) -> None:
    async with client(ObservabilityMiddleware(hello, registry=registry)) as http:
        await http.get("/a")
        response = await http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert families["http_requests"].type == "counter"
    assert families["http_request_duration_seconds"].type == "histogram"


async def test_metrics_speak_openmetrics_when_the_scraper_asks(registry: CollectorRegistry) -> None:
    async with client(ObservabilityMiddleware(hello, registry=registry)) as http:
        await http.get("/a")
        response = await http.get(
            "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    names = {family.name for family in parse_openmetrics(response.text)}  # type: ignore[no-untyped-call]
    assert {"http_requests", "http_request_duration_seconds", "http_requests_in_progress"} <= names


async def test_the_metrics_path_is_configurable_and_can_be_switched_off(
    registry: CollectorRegistry,
) -> None:
    app = ObservabilityMiddleware(hello, registry=registry, metrics_path="/internal/metrics")
    async with client(app) as http:
        assert "http_requests_total" in (await http.get("/internal/metrics")).text
        assert (await http.get("/metrics")).text == "hello"
    off = ObservabilityMiddleware(hello, registry=CollectorRegistry(), metrics_path=None)
    async with client(off) as http:
        assert (await http.get("/metrics")).text == "hello"


async def test_metrics_on_a_separate_port_are_served_from_the_first_request(
    registry: CollectorRegistry,
) -> None:
    port = free_port()
    app = ObservabilityMiddleware(
        hello, registry=registry, metrics_port=port, metrics_host="127.0.0.1", metrics_path=None
    )
    try:
        async with client(app) as http:
            await http.get("/orders")
        body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/metrics")
    finally:
        if app._metrics_server is not None:
            app._metrics_server.stop()
    assert b'http_requests_total{method="GET",route="<unmatched>",status="200"} 1.0' in body


async def test_liveness_answers_ok(registry: CollectorRegistry) -> None:
    async with client(ObservabilityMiddleware(hello, registry=registry)) as http:
        response = await http.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_names_the_failing_and_timed_out_checks(
    registry: CollectorRegistry,
) -> None:
    readiness = ReadinessChecks(timeout_seconds=0.05)

    @readiness.check("database")
    async def database() -> bool:
        return True

    @readiness.check("cache")
    async def cache() -> bool:
        raise ConnectionError("cache unreachable")

    @readiness.check("search")
    async def search() -> None:
        await asyncio.Event().wait()  # never answers

    @readiness.check("queue")
    async def queue() -> bool:
        return False

    app = ObservabilityMiddleware(hello, registry=registry, readiness=readiness)
    async with client(app) as http:
        response = await http.get("/health/ready")
    assert response.status_code == 503
    document = json.loads(response.text)
    assert document["status"] == "fail"
    assert document["failing"] == ["cache", "queue", "search"]
    assert document["checks"]["database"] == "ok"
    assert document["checks"]["search"] == "timeout after 0.05s"
    assert document["checks"]["cache"] == "error: ConnectionError: cache unreachable"


async def test_readiness_is_ok_when_every_check_passes(registry: CollectorRegistry) -> None:
    readiness = ReadinessChecks()
    readiness.add("database", lambda: asyncio.sleep(0, result=True))
    async with client(
        ObservabilityMiddleware(hello, registry=registry, readiness=readiness)
    ) as http:
        response = await http.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_readiness_turns_503_once_shutdown_begins(registry: CollectorRegistry) -> None:
    app = ObservabilityMiddleware(hello, registry=registry)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: object) -> None:
        return None

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await receive()

    app.app = lifespan_app
    await app({"type": "lifespan"}, receive, send)
    app.app = hello
    async with client(app) as http:
        response = await http.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {"shutdown": "draining"}
