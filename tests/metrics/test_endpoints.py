"""/metrics, /health/live and /health/ready: one implementation on the app's port, the metrics
port and the gunicorn master."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ouro_obs import ObservabilityMiddleware, ReadinessChecks
from ouro_obs.asgi.endpoints import ServiceEndpoints
from ouro_obs.config import ObservabilitySettings
from ouro_obs.metrics.exposition import MetricsServer
from ouro_obs.metrics.multiprocess import master_metrics_server
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
    port = unused_port()
    app = ObservabilityMiddleware(
        service, registry=registry, metrics_port=port, metrics_host="127.0.0.1", metrics_path=None
    )
    try:
        async with client(app) as http:
            await http.get("/orders")
        scrape = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/metrics")
    finally:
        await shut_down(app)
    assert 'http_requests_total{method="GET",route="<unmatched>",status="200"} 1.0' in scrape.text


async def test_liveness_answers_ok(registry: CollectorRegistry) -> None:
    async with client(ObservabilityMiddleware(hello, registry=registry)) as http:
        response = await http.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_names_the_failing_and_timed_out_checks(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
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
    caplog.set_level(logging.INFO, "ouro_obs.health")
    async with client(app) as http:
        response = await http.get("/health/ready")
        await http.get("/health/ready")  # a failure that stays the same is logged once
    # The app's port (reachable through the Ingress) names the failing checks, no more.
    assert response.status_code == 503
    assert json.loads(response.text) == {"status": "fail", "failing": ["cache", "queue", "search"]}
    # The details are in the log.
    # Only ours: an earlier test's background threads (span exporters) may log meanwhile.
    logged = sorted(
        record.getMessage() for record in caplog.records if record.name == "ouro_obs.health"
    )
    assert logged == [
        "readiness check 'cache' is failing: error: ConnectionError: cache unreachable",
        "readiness check 'queue' is failing: fail",
        "readiness check 'search' is failing: timeout after 0.05s",
    ]
    # A port of its own keeps the details.
    endpoints = ServiceEndpoints(registry=registry, readiness=readiness)
    document = json.loads((await endpoints.answer("/health/ready", "GET", "")).body)
    assert document["failing"] == ["cache", "queue", "search"]
    assert document["checks"]["database"] == "ok"
    assert document["checks"]["search"] == "timeout after 0.05s"
    assert document["checks"]["cache"] == "error: ConnectionError: cache unreachable"


async def test_a_failing_checks_text_never_reaches_the_app_ports_answer(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    readiness = ReadinessChecks()
    secret = "could not connect to db-7.internal:5432 as user payments_admin"

    @readiness.check("database")
    async def database() -> None:
        raise ConnectionError(secret)

    app = ObservabilityMiddleware(hello, registry=registry, readiness=readiness)
    caplog.set_level(logging.WARNING, "ouro_obs.health")
    async with client(app) as http:
        response = await http.get("/health/ready")
    assert response.status_code == 503
    assert "db-7" not in response.text
    assert "payments_admin" not in response.text
    assert any(secret in record.getMessage() for record in caplog.records)


async def test_readiness_is_ok_when_every_check_passes(registry: CollectorRegistry) -> None:
    readiness = ReadinessChecks()
    readiness.add("database", lambda: asyncio.sleep(0, result=True))
    async with client(
        ObservabilityMiddleware(hello, registry=registry, readiness=readiness)
    ) as http:
        response = await http.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


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
    assert response.json() == {"status": "fail", "failing": ["shutdown"]}


# -- the one implementation: ServiceEndpoints, the metrics port, the gunicorn master ----------


async def service(scope: Scope, receive: Receive, send: Send) -> None:
    """An app with a lifespan, so the middleware's start-up and shutdown can be driven."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await hello(scope, receive, send)


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """The app between its lifespan start-up and shutdown, as a server runs it."""
    incoming: asyncio.Queue[Message] = asyncio.Queue()
    outgoing: asyncio.Queue[Message] = asyncio.Queue()
    await incoming.put({"type": "lifespan.startup"})

    async def run() -> None:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, incoming.get, outgoing.put)

    task = asyncio.create_task(run())
    assert (await outgoing.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await incoming.put({"type": "lifespan.shutdown"})
        assert (await outgoing.get())["type"] == "lifespan.shutdown.complete"
        await task


async def shut_down(app: ASGIApp) -> None:
    """Only the lifespan's shutdown, as a server sends it after serving without a start-up."""
    messages = iter([{"type": "lifespan.shutdown"}])
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == [{"type": "lifespan.shutdown.complete"}]


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def failing_readiness(timeout_seconds: float = 1.0) -> ReadinessChecks:
    readiness = ReadinessChecks(timeout_seconds=timeout_seconds)

    @readiness.check("database")
    async def database() -> bool:
        return False

    return readiness


@contextlib.contextmanager
def serving(server: MetricsServer) -> Iterator[str]:
    """``server`` started (outside any event loop), its base URL, stopped afterwards."""
    assert server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


async def test_readiness_checks_run_on_the_metrics_port_too(registry: CollectorRegistry) -> None:
    app = ObservabilityMiddleware(
        service,
        registry=registry,
        readiness=failing_readiness(),
        metrics_port=unused_port(),
        metrics_host="127.0.0.1",
    )
    port = app.settings.metrics_port
    async with lifespan(app):
        response = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/health/ready")
    assert response.status_code == 503
    assert response.json() == {
        "status": "fail",
        "checks": {"database": "fail"},
        "failing": ["database"],
    }
    assert response.headers["cache-control"] == "no-store"


async def test_the_metrics_port_runs_the_checks_on_the_event_loop_that_started_it(
    registry: CollectorRegistry,
) -> None:
    """Checks may hold the app's connections, which belong to the app's event loop."""
    readiness = ReadinessChecks()
    loops: list[asyncio.AbstractEventLoop] = []

    @readiness.check("pool")
    async def pool() -> bool:
        loops.append(asyncio.get_running_loop())
        return True

    server = MetricsServer("127.0.0.1", 0, ServiceEndpoints(registry=registry, readiness=readiness))
    assert server.start()  # on this test's running loop, as the lifespan start-up does
    try:
        response = await asyncio.to_thread(
            httpx.get, f"http://127.0.0.1:{server.port}/health/ready"
        )
    finally:
        server.stop()
    assert response.status_code == 200
    assert loops == [asyncio.get_running_loop()]


def test_a_blocked_app_loop_makes_the_metrics_port_answer_not_ready_within_the_timeout(
    registry: CollectorRegistry,
) -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    endpoints = ServiceEndpoints(registry=registry, readiness=ReadinessChecks(timeout_seconds=0.05))
    server = MetricsServer("127.0.0.1", 0, endpoints)

    async def start() -> bool:
        return server.start()

    assert asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    release = threading.Event()
    loop.call_soon_threadsafe(release.wait)  # the app's loop is stuck in a blocking call
    try:
        response = httpx.get(f"http://127.0.0.1:{server.port}/health/ready", timeout=10)
    finally:
        release.set()
        server.stop()
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()
    assert response.status_code == 503
    assert response.json()["checks"] == {"event_loop": "no answer within 1.05s"}


def test_the_metrics_port_without_an_event_loop_runs_the_checks_in_its_own_thread(
    registry: CollectorRegistry,
) -> None:
    endpoints = ServiceEndpoints(registry=registry, readiness=failing_readiness())
    with serving(MetricsServer("127.0.0.1", 0, endpoints)) as url:
        response = httpx.get(url + "/health/ready")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]


def test_the_gunicorn_masters_server_is_ready_with_no_checks_and_serves_metrics() -> None:
    settings = ObservabilitySettings.from_env(
        {"OURO_OBS_METRICS_PORT": str(unused_port()), "OURO_OBS_METRICS_HOST": "127.0.0.1"}
    )
    server = master_metrics_server(settings)
    assert server is not None
    with serving(server) as url:
        ready = httpx.get(url + "/health/ready")
        live = httpx.get(url + "/health/live")
        scrape = httpx.get(url + "/metrics")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "checks": {}})
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=")


def test_the_gunicorn_master_serves_nothing_without_a_metrics_port() -> None:
    assert master_metrics_server(ObservabilitySettings(metrics_port=None)) is None


async def test_a_render_failure_answers_500_in_a_few_words_and_is_logged(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Collector):
        def collect(self) -> Iterable[Metric]:
            raise OSError("the multiprocess directory vanished")

    registry.register(Broken())
    endpoints = ServiceEndpoints(registry=registry, readiness=ReadinessChecks())
    with caplog.at_level(logging.ERROR):
        response = await endpoints.respond("/metrics", "GET", "")
    assert response is not None
    assert (response.status, response.body) == (500, b"metrics unavailable, see the service log\n")
    assert dict(response.headers)[b"content-type"] == b"text/plain; charset=utf-8"
    (record,) = [r for r in caplog.records if r.exc_info is not None]
    assert "vanished" in str(record.exc_info[1])  # type: ignore[index]


async def test_head_answers_the_headers_of_get_without_the_body(
    registry: CollectorRegistry,
) -> None:
    endpoints = ServiceEndpoints(registry=registry, readiness=failing_readiness())
    for path in ("/metrics", "/health/live", "/health/ready"):
        got = await endpoints.respond(path, "GET", "")
        head = await endpoints.respond(path, "HEAD", "")
        assert got is not None
        assert head is not None
        assert (head.status, head.headers, head.body) == (got.status, got.headers, b"")
        assert dict(head.headers)[b"content-length"] == str(len(got.body)).encode()


async def test_methods_other_than_get_and_head_are_refused_naming_the_allowed_ones(
    registry: CollectorRegistry,
) -> None:
    endpoints = ServiceEndpoints(registry=registry, readiness=ReadinessChecks())
    response = await endpoints.respond("/health/ready", "POST", "")
    assert response is not None
    assert response.status == 405
    assert dict(response.headers)[b"allow"] == b"GET, HEAD"


async def test_a_path_not_served_is_left_to_the_app_and_a_port_of_its_own_answers_404(
    registry: CollectorRegistry,
) -> None:
    endpoints = ServiceEndpoints(registry=registry, readiness=ReadinessChecks())
    assert endpoints.get("/orders") is None
    assert await endpoints.respond("/orders", "GET", "") is None
    async with client(endpoints) as http:
        response = await http.get("/orders")
    assert (response.status_code, response.json()) == (404, {"error": "not found"})


async def test_the_endpoints_are_a_whole_asgi_app_with_a_lifespan(
    registry: CollectorRegistry,
) -> None:
    endpoints = ServiceEndpoints(registry=registry, readiness=ReadinessChecks())
    async with lifespan(endpoints), client(endpoints, root_path="/admin") as http:
        live = await http.get("/admin/health/live")
        scrape = await http.get(
            "/admin/metrics", headers={"accept": "application/openmetrics-text"}
        )
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert scrape.headers["content-type"].startswith("application/openmetrics-text")


def test_settings_say_where_metrics_are_served() -> None:
    readiness = ReadinessChecks()

    def paths(settings: ObservabilitySettings, serve_metrics: bool = True) -> frozenset[str]:
        return ServiceEndpoints.from_settings(
            settings, registry=None, readiness=readiness, serve_metrics=serve_metrics
        ).paths

    health = {"/health/live", "/health/ready"}
    assert paths(ObservabilitySettings(metrics_path="/internal/metrics")) == {
        "/internal/metrics",
        *health,
    }
    assert paths(ObservabilitySettings(metrics_path=None)) == {"/metrics", *health}
    assert paths(ObservabilitySettings(), serve_metrics=False) == health


def test_a_metrics_port_takes_metrics_off_the_app_port_unless_a_path_is_set() -> None:
    assert ObservabilitySettings().app_metrics_path == "/metrics"
    assert ObservabilitySettings(metrics_port=9100).app_metrics_path is None
    # Built the way from_env builds them: the default survives replace().
    assert ObservabilitySettings().replace(metrics_port=9100).app_metrics_path is None
    env = {"OURO_OBS_METRICS_PORT": "9100"}
    assert ObservabilitySettings.from_env(env).app_metrics_path is None
    explicit = {**env, "OURO_OBS_METRICS_PATH": "/metrics"}
    assert ObservabilitySettings.from_env(explicit).app_metrics_path == "/metrics"
    assert ObservabilitySettings(metrics_port=9100, metrics_path="/m").app_metrics_path == "/m"


async def test_with_a_metrics_port_the_app_port_serves_no_metrics_by_default(
    registry: CollectorRegistry,
) -> None:
    port = unused_port()
    app = ObservabilityMiddleware(
        service, registry=registry, metrics_port=port, metrics_host="127.0.0.1"
    )
    try:
        async with client(app) as http:
            await http.get("/orders")
            on_app_port = await http.get("/metrics")
        scrape = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/metrics")
    finally:
        await shut_down(app)
    assert "http_requests_total" not in on_app_port.text
    assert "http_requests_total" in scrape.text


async def test_a_metrics_port_held_by_another_process_is_an_error_and_counted(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        app = ObservabilityMiddleware(
            service,
            registry=registry,
            metrics_port=port,
            metrics_host="127.0.0.1",
            multiprocess_dir=None,
        )
        caplog.set_level(logging.INFO, "ouro_obs")
        async with lifespan(app):
            pass
    errors = [
        r for r in caplog.records if r.levelno == logging.ERROR and r.name.startswith("ouro_obs")
    ]
    assert len(errors) == 1
    assert f"127.0.0.1:{port} is held by another process" in errors[0].getMessage()
    stage = {"stage": "metrics_port"}
    assert registry.get_sample_value("ouro_obs_instrumentation_errors_total", stage) == 1


async def test_multiprocess_mode_answers_the_workers_aggregate_read_off_the_event_loop(
    tmp_path: Path,
) -> None:
    writer = (
        "from prometheus_client import Counter\n"
        "Counter('jobs', 'x', ['queue']).labels('mail').inc(2)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _worker in range(2):
        subprocess.run([sys.executable, "-c", writer], env=env, check=True)
    endpoints = ServiceEndpoints.from_settings(
        ObservabilitySettings(multiprocess_dir=str(tmp_path)),
        registry=CollectorRegistry(),
        readiness=ReadinessChecks(),
    )
    response = await endpoints.respond("/metrics", "GET", "")
    assert response is not None
    assert response.status == 200
    assert b'jobs_total{queue="mail"} 4.0' in response.body
