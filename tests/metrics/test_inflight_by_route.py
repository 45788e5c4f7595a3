"""The in-flight gauge by route, opt-in (``inflight_by_route``; issue 13, item 4)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ouro_obs import ObservabilityMiddleware, ObservabilitySettings
from tests.metrics.asgi import client, label_sets
from tests.sidecar.servers import ThreadedUvicorn

IN_FLIGHT = "http_requests_in_progress"
SLOW = "/reports/{report_id}"


class Unauthorized:
    """An auth layer inside ours: answers 401 before the router runs, for ``/private/...``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/private/"):
            in_flight = scope["app"].state.read_in_flight()
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": in_flight.encode()})
            return
        await self.app(scope, receive, send)


def app(
    registry: CollectorRegistry, release: threading.Event | None = None, **options: Any
) -> Starlette:
    async def slow(request: Request) -> Response:
        while release is not None and not release.is_set():
            await asyncio.sleep(0.005)
        return PlainTextResponse(request.app.state.read_in_flight())

    async def private(request: Request) -> Response:
        return PlainTextResponse("never reached")

    application = Starlette(
        routes=[Route(SLOW, slow), Route("/private/{item_id}", private)],
        middleware=[
            Middleware(
                ObservabilityMiddleware,
                registry=registry,
                access_log=False,
                tracing=False,
                inflight_by_route=True,
                **options,
            ),
            Middleware(Unauthorized),
        ],
    )
    application.state.read_in_flight = lambda: in_flight_text(registry)
    return application


def in_flight_text(registry: CollectorRegistry) -> str:
    """The in-flight samples as ``method route value`` lines, sorted."""
    return "\n".join(
        sorted(
            f"{sample.labels['method']} {sample.labels['route']} {sample.value:g}"
            for metric in registry.collect()
            for sample in metric.samples
            if sample.name == IN_FLIGHT
        )
    )


def scraped_in_flight(url: str) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    (family,) = (f for f in text_string_to_metric_families(text) if f.name == IN_FLIGHT)
    return {(s.labels["method"], s.labels["route"]): s.value for s in family.samples}


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: str = response.read().decode()
    return body


def test_a_scrape_mid_request_sees_it_in_flight_on_its_route() -> None:
    release = threading.Event()
    with ThreadedUvicorn(app(CollectorRegistry(), release)) as server:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(get_text, f"{server.url}/reports/42")
            deadline = time.monotonic() + 10
            during = scraped_in_flight(server.url)
            while during.get(("GET", SLOW)) != 1.0 and time.monotonic() < deadline:
                during = scraped_in_flight(server.url)
            release.set()
            pending.result(timeout=10)
        after = scraped_in_flight(server.url)

    assert during == {("GET", SLOW): 1.0}
    assert after == {("GET", SLOW): 0.0}


async def test_the_app_sees_its_own_request_in_flight_on_its_route(
    registry: CollectorRegistry,
) -> None:
    async with client(app(registry)) as http:
        response = await http.get("/reports/7")

    assert response.text == f"GET {SLOW} 1"
    assert in_flight_text(registry) == f"GET {SLOW} 0"


async def test_a_request_answered_before_routing_is_in_flight_on_its_route(
    registry: CollectorRegistry,
) -> None:
    """The route is found from the app's routes before the app runs, so a 401 has it too."""
    async with client(app(registry)) as http:
        response = await http.get("/private/3")

    assert response.status_code == 401
    assert response.text == "GET /private/{item_id} 1"
    assert in_flight_text(registry) == "GET /private/{item_id} 0"
    assert ("route", "/private/{item_id}") in next(iter(label_sets(registry)))


async def test_a_path_of_no_route_is_in_flight_as_unmatched(registry: CollectorRegistry) -> None:
    async with client(app(registry)) as http:
        response = await http.get("/nowhere")

    assert response.status_code == 404
    assert in_flight_text(registry) == "GET <unmatched> 0"


async def test_routes_over_the_cap_share_the_overflow_series_and_are_counted(
    registry: CollectorRegistry,
) -> None:
    async with client(app(registry, max_label_sets=1)) as http:
        first = await http.get("/reports/1")
        second = await http.get("/private/1")

    assert first.text == f"GET {SLOW} 1"
    assert second.text == f"GET {SLOW} 0\nGET <overflow> 1"
    assert in_flight_text(registry) == f"GET {SLOW} 0\nGET <overflow> 0"
    overflowed = registry.get_sample_value("ouro_obs_label_overflow_total", {"metric": IN_FLIGHT})
    assert overflowed == 1.0


async def test_a_middleware_wrapping_the_app_itself_finds_the_route_too(
    registry: CollectorRegistry,
) -> None:
    """Wrapped from outside, the app is not in the scope yet when the request arrives."""
    inner = Starlette(routes=[Route(SLOW, lambda request: PlainTextResponse("ok"))])
    wrapped = ObservabilityMiddleware(
        inner, registry=registry, tracing=False, access_log=False, inflight_by_route=True
    )
    async with client(wrapped) as http:
        await http.get("/reports/1")

    assert in_flight_text(registry) == f"GET {SLOW} 0"


async def test_by_default_the_gauge_is_by_method_only(registry: CollectorRegistry) -> None:
    application = Starlette(
        routes=[Route("/r", lambda request: PlainTextResponse("ok"))],
        middleware=[Middleware(ObservabilityMiddleware, registry=registry, tracing=False)],
    )
    async with client(application) as http:
        await http.get("/r")

    assert label_sets(registry, IN_FLIGHT) == {(("method", "GET"),)}


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("off", False)])
def test_the_environment_turns_it_on(raw: str, expected: bool) -> None:
    settings = ObservabilitySettings.from_env({"OURO_OBS_INFLIGHT_BY_ROUTE": raw})

    assert settings.inflight_by_route is expected


def test_a_malformed_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="OURO_OBS_INFLIGHT_BY_ROUTE='sometimes'"):
        ObservabilitySettings.from_env({"OURO_OBS_INFLIGHT_BY_ROUTE": "sometimes"})


def test_a_client_that_leaves_mid_request_does_not_leave_the_gauge_raised() -> None:
    release = threading.Event()
    with ThreadedUvicorn(app(CollectorRegistry(), release)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(b"GET /reports/1 HTTP/1.1\r\nHost: test\r\n\r\n")
            deadline = time.monotonic() + 10
            while scraped_in_flight(server.url) != {("GET", SLOW): 1.0}:
                assert time.monotonic() < deadline, "the request was never in flight"
        release.set()  # the client has gone; the app now returns
        after = scraped_in_flight(server.url)
        while after != {("GET", SLOW): 0.0} and time.monotonic() < deadline:
            after = scraped_in_flight(server.url)

    assert after == {("GET", SLOW): 0.0}
