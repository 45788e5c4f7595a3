"""Where the middleware meets other middleware, odd ASGI apps and the server (issue 12, 2-4, 7-8)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ouro_obs import ObservabilityMiddleware
from tests.metrics.asgi import call, client, http_scope, requests_total, routes_seen

GENERATED = re.compile(r"^[0-9a-f]{32}$")


async def bad_value(request: Request) -> Response:
    raise ValueError("not a number")


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


class ValueErrorAs400(BaseHTTPMiddleware):
    """An outer error handler written the Starlette way."""

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            return await call_next(request)
        except ValueError as error:
            return PlainTextResponse(f"bad input: {error}", status_code=400)


class PureErrorHandler:
    """An outer error handler in plain ASGI: answers 422 for a ValueError before any response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except ValueError:
            if started:
                raise
            await PlainTextResponse("handled outside", status_code=422)(scope, receive, send)


@pytest.mark.parametrize(
    ("outer", "status", "body"),
    [(ValueErrorAs400, 400, "bad input: not a number"), (PureErrorHandler, 422, "handled outside")],
    ids=["base-http-middleware", "pure-asgi"],
)
async def test_an_outer_error_handler_gets_the_exception_not_our_500(
    registry: CollectorRegistry, outer: Any, status: int, body: str
) -> None:
    app = Starlette(routes=[Route("/bad", bad_value)])
    app.add_middleware(ObservabilityMiddleware, registry=registry, tracing=False)
    app.add_middleware(outer)  # added last: outside ours
    async with client(app) as http:
        response = await http.get("/bad")
    assert (response.status_code, response.text) == (status, body)
    # What we saw: the app raised and answered nothing; the outer handler answered after.
    assert requests_total(registry, "GET", "/bad", 500) == 1


async def test_directly_inside_starlettes_error_middleware_our_500_carries_the_id(
    registry: CollectorRegistry,
) -> None:
    app = Starlette(
        routes=[Route("/bad", bad_value)],
        middleware=[Middleware(ValueErrorAs400)],  # inside ours: it answers first
    )
    app.add_middleware(ObservabilityMiddleware, registry=registry, tracing=False)
    async with client(app) as http:
        handled = await http.get("/bad")
    assert handled.status_code == 400
    assert GENERATED.match(handled.headers["x-request-id"])

    plain = Starlette(routes=[Route("/bad", bad_value)])
    plain.add_middleware(ObservabilityMiddleware, registry=CollectorRegistry(), tracing=False)
    async with client(plain) as http:
        crashed = await http.get("/bad")
    assert (crashed.status_code, crashed.text) == (500, "Internal Server Error")
    assert GENERATED.match(crashed.headers["x-request-id"])


def header_generator(message: Message) -> Iterator[tuple[bytes, bytes]]:
    yield from message["headers"]


async def test_response_headers_given_as_a_generator_keep_every_header(
    registry: CollectorRegistry,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain"), (b"x-custom", b"kept")]
        await send({"type": "http.response.start", "status": 200, "headers": iter(headers)})
        await send({"type": "http.response.body", "body": b"ok"})

    recorded = await call(ObservabilityMiddleware(app, registry=registry), http_scope("/"))
    (start,) = [m for m in recorded.messages if m["type"] == "http.response.start"]
    names = [name for name, _ in start["headers"]]
    assert names == [b"content-type", b"x-custom", b"x-request-id"]


REUSED = ValueError("always the same object")


async def raise_reused(request: Request) -> Response:
    raise REUSED


async def test_a_reused_exception_object_carries_one_note_however_often_it_is_raised(
    registry: CollectorRegistry,
) -> None:
    app = Starlette(routes=[Route("/reused", raise_reused)])
    app.add_middleware(ObservabilityMiddleware, registry=registry, tracing=False)
    async with client(app) as http:
        for _ in range(50):
            await http.get("/reused")
    notes = [note for note in REUSED.__notes__ if note.startswith("ouro-obs:")]
    assert len(notes) == 1


async def test_a_mounted_sub_app_with_its_own_middleware_is_recorded_once_with_one_id(
    registry: CollectorRegistry,
) -> None:
    inner_registry = CollectorRegistry()
    sub = Starlette(routes=[Route("/items/{item_id}", ok)])
    sub.add_middleware(ObservabilityMiddleware, registry=inner_registry, tracing=False)
    app = Starlette(routes=[Mount("/api", app=sub)])
    app.add_middleware(ObservabilityMiddleware, registry=registry, tracing=False)
    recorded = await call(app, http_scope("/api/items/3"))
    (start,) = [m for m in recorded.messages if m["type"] == "http.response.start"]
    ids = [value for name, value in start["headers"] if name == b"x-request-id"]
    assert len(ids) == 1
    assert routes_seen(registry) == {("GET", "/api/items/{item_id}", "200")}
    assert routes_seen(inner_registry) == set()


class ReturnsWithoutAnswering:
    """A raw ASGI endpoint (an instance, so Starlette's Route calls it as ASGI) that forgets."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


returns_without_answering = ReturnsWithoutAnswering()


@pytest.mark.parametrize("wrapped", ["bare", "starlette"])
async def test_an_app_that_returns_without_answering_gets_a_500_with_the_id(
    registry: CollectorRegistry, wrapped: str
) -> None:
    app: Any = ObservabilityMiddleware(returns_without_answering, registry=registry)
    if wrapped == "starlette":
        app = Starlette(routes=[Route("/silent", returns_without_answering)])
        app.add_middleware(ObservabilityMiddleware, registry=registry)
    recorded = await call(app, http_scope("/silent"))
    assert recorded.status == 500
    (start,) = [m for m in recorded.messages if m["type"] == "http.response.start"]
    assert GENERATED.match(dict(start["headers"])[b"x-request-id"].decode())
    assert recorded.body == b"Internal Server Error"
    route = "<unmatched>" if wrapped == "bare" else "/silent"
    assert requests_total(registry, "GET", route, 500) == 1


async def test_head_records_the_bytes_that_reach_the_wire(registry: CollectorRegistry) -> None:
    app = Starlette(routes=[Route("/page", ok, methods=["GET", "HEAD"])])
    app.add_middleware(ObservabilityMiddleware, registry=registry, tracing=False)
    await call(app, http_scope("/page", "HEAD"))
    await call(app, http_scope("/page", "GET"))
    head = {"method": "HEAD", "route": "/page"}
    get = {"method": "GET", "route": "/page"}
    assert registry.get_sample_value("http_response_size_bytes_count", head) == 1
    assert registry.get_sample_value("http_response_size_bytes_sum", head) == 0
    assert registry.get_sample_value("http_response_size_bytes_sum", get) == 2
