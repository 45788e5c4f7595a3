"""What the middleware records for each request: counts, bytes, status, duration, in-flight."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import BackgroundTasks, FastAPI
from prometheus_client import REGISTRY, CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from ouro_obs import ConfigError, ObservabilityMiddleware
from tests.metrics.asgi import call, client, http_scope, label_sets, requests_total, routes_seen


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body, media_type="application/octet-stream")


async def chunks(request: Request) -> Response:
    async def generate() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 1000

    return StreamingResponse(generate(), headers={"content-length": "1"})  # a lying header


async def crash(request: Request) -> Response:
    raise ValueError("handler bug")


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("bare")(scope, receive, send)


def app_with(registry: CollectorRegistry, **options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/echo/{kind}", echo, methods=["POST"]),
            Route("/chunks", chunks),
            Route("/crash", crash),
        ]
    )
    app.add_middleware(ObservabilityMiddleware, registry=registry, **options)
    return app


async def test_request_and_response_sizes_count_the_bytes_actually_streamed(
    registry: CollectorRegistry,
) -> None:
    async with client(app_with(registry)) as http:
        await http.post("/echo/a", content=b"y" * 2500)
        await http.get("/chunks")
    labels_echo = {"method": "POST", "route": "/echo/{kind}"}
    labels_chunks = {"method": "GET", "route": "/chunks"}
    assert registry.get_sample_value("http_request_size_bytes_sum", labels_echo) == 2500
    assert registry.get_sample_value("http_response_size_bytes_sum", labels_echo) == 2500
    # 5 chunks of 1000 bytes were streamed, whatever Content-Length claimed.
    assert registry.get_sample_value("http_response_size_bytes_sum", labels_chunks) == 5000


async def test_request_body_sent_in_chunks_is_summed(registry: CollectorRegistry) -> None:
    recorded = await call(app_with(registry), http_scope("/echo/b", "POST"), [b"ab", b"cde", b"f"])
    assert recorded.body == b"abcdef"
    labels = {"method": "POST", "route": "/echo/{kind}"}
    assert registry.get_sample_value("http_request_size_bytes_sum", labels) == 6


async def test_an_exception_before_the_response_is_a_500_and_still_propagates(
    registry: CollectorRegistry,
) -> None:
    app = ObservabilityMiddleware(
        Starlette(routes=[Route("/crash", crash)]).router, registry=registry
    )
    with pytest.raises(ValueError, match="handler bug"):
        await call(app, http_scope("/crash"))
    assert routes_seen(registry) == {("GET", "/crash", "500")}
    assert registry.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0


async def test_an_exception_in_a_full_app_is_a_500_for_the_client_and_the_metric(
    registry: CollectorRegistry,
) -> None:
    async with client(app_with(registry)) as http:
        response = await http.get("/crash")
    assert response.status_code == 500
    assert requests_total(registry, "GET", "/crash", 500) == 1


async def test_a_client_that_disconnects_mid_stream_is_recorded_as_499(
    registry: CollectorRegistry,
) -> None:
    started = asyncio.Event()

    async def endless(request: Request) -> Response:
        async def generate() -> AsyncIterator[bytes]:
            while True:
                yield b"tick\n"
                started.set()
                await asyncio.sleep(0.001)

        return StreamingResponse(generate())

    app = ObservabilityMiddleware(Starlette(routes=[Route("/ticks", endless)]), registry=registry)
    disconnect = asyncio.Event()
    sent: list[Message] = []

    async def receive() -> Message:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    task = asyncio.create_task(app(http_scope("/ticks"), receive, send))
    await started.wait()
    disconnect.set()
    await asyncio.wait_for(task, timeout=10)
    assert sent[0]["status"] == 200
    assert routes_seen(registry) == {("GET", "/ticks", "499")}


async def test_a_send_that_fails_because_the_socket_closed_is_499(
    registry: CollectorRegistry,
) -> None:
    async def hello(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("hello")(scope, receive, send)

    app = ObservabilityMiddleware(hello, registry=registry)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection reset by peer")

    with pytest.raises(OSError, match="reset"):
        await app(http_scope("/"), receive, send)
    assert routes_seen(registry) == {("GET", "<unmatched>", "499")}


async def test_duration_ends_at_the_last_body_byte_and_excludes_background_tasks(
    registry: CollectorRegistry,
) -> None:
    release = asyncio.Event()
    recorded_while_background_ran: list[float | None] = []

    async def background_job() -> None:
        # The request must already be counted, and no longer in flight, while this runs.
        recorded_while_background_ran.append(
            registry.get_sample_value(
                "http_request_duration_seconds_count", {"method": "POST", "route": "/orders"}
            )
        )
        recorded_while_background_ran.append(
            registry.get_sample_value("http_requests_in_progress", {"method": "POST"})
        )
        await release.wait()

    api = FastAPI()

    @api.post("/orders")
    async def create(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(background_job)
        return {"ok": True}

    api.add_middleware(ObservabilityMiddleware, registry=registry)
    async with client(api) as http:
        task = asyncio.create_task(http.post("/orders"))
        while not recorded_while_background_ran:
            await asyncio.sleep(0.001)
        release.set()
        response = await task
    assert response.status_code == 200
    assert recorded_while_background_ran == [1.0, 0.0]


async def test_in_flight_gauge_counts_requests_being_served(registry: CollectorRegistry) -> None:
    entered = asyncio.Event()
    leave = asyncio.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        await leave.wait()
        return PlainTextResponse("done")

    app = app_with(registry)
    app.router.routes.append(Route("/slow", slow))
    async with client(app) as http:
        pending = asyncio.create_task(http.get("/slow"))
        await entered.wait()
        during = registry.get_sample_value("http_requests_in_progress", {"method": "GET"})
        leave.set()
        await pending
    assert during == 1.0
    assert registry.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0.0


async def test_twenty_thousand_random_ids_do_not_grow_the_series_count(
    registry: CollectorRegistry,
) -> None:
    async def user(request: Request) -> Response:
        return PlainTextResponse("u")

    app = Starlette(routes=[Route("/users/{user_id}", user)])
    app.add_middleware(ObservabilityMiddleware, registry=registry)
    rng = random.Random(7)
    async with client(app) as http:
        await http.get(f"/users/{uuid.UUID(int=rng.getrandbits(128))}")
        before = {
            name: len(label_sets(registry, name))
            for name in ("http_requests_total", "http_request_duration_seconds_bucket")
        }
        for _ in range(20_000):
            await http.get(
                f"/users/{uuid.UUID(int=rng.getrandbits(128))}"
                if rng.random() < 0.5
                else f"/random/{rng.getrandbits(64)}"
            )
        after = {name: len(label_sets(registry, name)) for name in before}
    # One more label set at most: the first unmatched path.
    assert after["http_requests_total"] == before["http_requests_total"] + 1
    assert (
        after["http_request_duration_seconds_bucket"]
        == 2 * before["http_request_duration_seconds_bucket"]
    )
    total = sum(
        requests_total(registry, "GET", r, 200) for r in ("/users/{user_id}",)
    ) + requests_total(registry, "GET", "<unmatched>", 404)
    assert total == 20_001


async def test_the_label_set_cap_sends_the_excess_to_the_overflow_label(
    registry: CollectorRegistry,
) -> None:
    async def anything(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    # A resolver that (wrongly) returns raw paths: the cap is what keeps the series bounded.
    app = ObservabilityMiddleware(
        anything, registry=registry, max_label_sets=10, route_resolver=lambda scope: scope["path"]
    )
    async with client(app) as http:
        for index in range(50):
            await http.get(f"/raw/{index}")
    routes = {route for _, route, _ in routes_seen(registry)}
    assert len(routes) == 11
    assert "<overflow>" in routes
    assert requests_total(registry, "GET", "<overflow>", 200) == 40
    assert (
        registry.get_sample_value(
            "ouro_obs_label_overflow_total", {"metric": "http_request_duration_seconds"}
        )
        == 40
    )


def test_building_the_app_twice_on_one_registry_does_not_raise(registry: CollectorRegistry) -> None:
    first = app_with(registry)
    second = app_with(registry)
    with TestClient(first) as one, TestClient(second) as two:
        one.post("/echo/x", content=b"1")
        two.post("/echo/x", content=b"1")
    assert requests_total(registry, "POST", "/echo/{kind}", 200) == 2


def test_two_apps_on_the_default_registry_do_not_raise() -> None:
    apps = [Starlette(routes=[Route("/echo/{kind}", echo, methods=["POST"])]) for _ in range(2)]
    for app in apps:
        app.add_middleware(ObservabilityMiddleware)
    before = (
        REGISTRY.get_sample_value(
            "http_requests_total", {"method": "POST", "route": "/echo/{kind}", "status": "200"}
        )
        or 0.0
    )
    for app in apps:
        with TestClient(app) as http:
            http.post("/echo/y", content=b"z")
    after = REGISTRY.get_sample_value(
        "http_requests_total", {"method": "POST", "route": "/echo/{kind}", "status": "200"}
    )
    assert after == before + 2


def test_conflicting_buckets_on_one_registry_are_refused_with_the_fix(
    registry: CollectorRegistry,
) -> None:
    ObservabilityMiddleware(bare, registry=registry)
    with pytest.raises(ConfigError, match="another metrics_namespace, or another registry"):
        ObservabilityMiddleware(bare, registry=registry, duration_buckets=(0.1, 1.0))


def test_websocket_connections_are_counted_but_never_enter_the_http_histogram(
    registry: CollectorRegistry,
) -> None:
    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws/{room}", ws_echo)])
    app.add_middleware(ObservabilityMiddleware, registry=registry)
    with TestClient(app) as http, http.websocket_connect("/ws/lobby") as socket:
        socket.send_text("ping")
        assert socket.receive_text() == "ping"
    assert registry.get_sample_value("websocket_connections_total", {"route": "/ws/{room}"}) == 1
    assert label_sets(registry, "http_request_duration_seconds_count") == set()


def test_lifespan_messages_pass_through_untouched(registry: CollectorRegistry) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(lifespan=lifespan)
    app.add_middleware(ObservabilityMiddleware, registry=registry)
    with TestClient(app):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


async def test_excluded_paths_are_not_measured(registry: CollectorRegistry) -> None:
    async def anything(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    app = ObservabilityMiddleware(anything, registry=registry, excluded_paths={"/internal/ping"})
    async with client(app) as http:
        assert (await http.get("/internal/ping")).text == "ok"
        await http.get("/measured")
        await http.get("/metrics")
    assert routes_seen(registry) == {("GET", "<unmatched>", "200")}


async def test_health_and_metrics_paths_are_excluded_by_default(
    registry: CollectorRegistry,
) -> None:
    async with client(app_with(registry)) as http:
        for path in ("/metrics", "/health/live", "/health/ready"):
            assert (await http.get(path)).status_code == 200
    assert routes_seen(registry) == set()
