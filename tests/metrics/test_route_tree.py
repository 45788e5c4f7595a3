"""Requests a middleware answers before routing keep their route template (issue 13, item 1).

An auth layer's 401, a rate limiter's 429, a body guard's 413 and a CORS preflight inside
our middleware never reach the router; the template comes from the app's own routes.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Host, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from ouro_obs import ObservabilityMiddleware
from ouro_obs.asgi import route_tree
from ouro_obs.asgi.route_tree import CACHE_LIMIT, RouteTree, _included_candidates
from tests.metrics.asgi import client, routes_seen
from tests.sidecar.servers import ThreadedUvicorn


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def static_files(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("body { }")(scope, receive, send)


class Refuse:
    """Answers every request without a ``pass`` header itself: an auth layer, a limiter."""

    def __init__(self, app: ASGIApp, status: int = 401) -> None:
        self.app = app
        self.status = status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (b"pass", b"1") not in scope["headers"]:
            await PlainTextResponse("refused", status_code=self.status)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def starlette_app(registry: CollectorRegistry, status: int = 401) -> Starlette:
    sub_app = Starlette(routes=[Mount("/nested/{tenant}", routes=[Route("/x/{y}", ok)])])
    return Starlette(
        routes=[
            Route("/users/{user_id}", ok, methods=["GET"]),
            Mount(
                "/v1",
                routes=[
                    Route("/things/{thing_id}", ok),
                    Mount("/inner", app=Router(routes=[Route("/deep/{leaf}", ok)])),
                ],
            ),
            Mount("/sub", app=sub_app),
            Mount("/static", app=static_files),
            Host("api.example.com", app=Router(routes=[Route("/host/{x}", ok)])),
        ],
        middleware=[
            Middleware(ObservabilityMiddleware, registry=registry),
            Middleware(Refuse, status=status),
        ],
    )


STARLETTE_CASES = [
    ("GET", "/users/42", {}, "/users/{user_id}"),
    ("POST", "/users/42", {}, "/users/{user_id}"),
    ("GET", "/v1/things/abc", {}, "/v1/things/{thing_id}"),
    ("GET", "/v1/inner/deep/z", {}, "/v1/inner/deep/{leaf}"),
    ("GET", "/sub/nested/acme/x/1", {}, "/sub/nested/{tenant}/x/{y}"),
    ("GET", "/static/css/site.css", {}, "/static/{path}"),
    ("GET", "/host/1", {"host": "api.example.com"}, "/host/{x}"),
    ("GET", "/v1/inner/nothing", {}, "<unmatched>"),
    ("GET", "/no/such/path", {}, "<unmatched>"),
]


@pytest.mark.parametrize(("method", "path", "headers", "route"), STARLETTE_CASES)
async def test_a_starlette_request_refused_before_routing_keeps_its_template(
    registry: CollectorRegistry, method: str, path: str, headers: dict[str, str], route: str
) -> None:
    async with client(starlette_app(registry)) as http:
        response = await http.request(method, path, headers=headers)
    assert response.status_code == 401
    assert routes_seen(registry) == {(method, route, "401")}


@pytest.mark.parametrize("status", [413, 429])
async def test_limiters_answers_keep_the_template(registry: CollectorRegistry, status: int) -> None:
    async with client(starlette_app(registry, status)) as http:
        await http.get("/users/7")
    assert routes_seen(registry) == {("GET", "/users/{user_id}", str(status))}


async def test_the_root_path_a_proxy_set_is_not_part_of_the_template(
    registry: CollectorRegistry,
) -> None:
    async with client(starlette_app(registry), root_path="/api") as http:
        await http.get("/api/users/5")
    assert routes_seen(registry) == {("GET", "/users/{user_id}", "401")}


def fastapi_app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()
    items = APIRouter(prefix="/items")

    @items.get("/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    users = APIRouter(prefix="/users")

    @users.get("/{user_id}/orders/{order_id}")
    async def get_order(user_id: str, order_id: int) -> dict[str, str]:
        return {"user": user_id}

    api = APIRouter(prefix="/api/v1")
    api.include_router(users)
    app.include_router(items)
    app.include_router(api)
    sub = FastAPI()

    @sub.get("/reports/{report_id}")
    async def report(report_id: str) -> dict[str, str]:
        return {"report": report_id}

    app.mount("/admin", sub)
    app.add_route("/plain/{name}", ok)
    app.add_middleware(Refuse)
    app.add_middleware(
        CORSMiddleware, allow_origins=["https://shop.example"], allow_methods=["GET"]
    )
    app.add_middleware(ObservabilityMiddleware, registry=registry)
    return app


FASTAPI_CASES = [
    ("/items/3", "/items/{item_id}"),
    ("/api/v1/users/u1/orders/9", "/api/v1/users/{user_id}/orders/{order_id}"),
    ("/admin/reports/r-17", "/admin/reports/{report_id}"),
    ("/plain/alice", "/plain/{name}"),
    ("/nothing-here", "<unmatched>"),
]


@pytest.mark.parametrize(("path", "route"), FASTAPI_CASES)
async def test_a_fastapi_request_refused_before_routing_keeps_its_template(
    registry: CollectorRegistry, path: str, route: str
) -> None:
    async with client(fastapi_app(registry)) as http:
        response = await http.get(path)
    assert response.status_code == 401
    assert routes_seen(registry) == {("GET", route, "401")}


async def test_a_cors_preflight_keeps_the_template(registry: CollectorRegistry) -> None:
    preflight = {
        "origin": "https://shop.example",
        "access-control-request-method": "GET",
    }
    async with client(fastapi_app(registry)) as http:
        response = await http.options("/api/v1/users/u1/orders/9", headers=preflight)
    assert response.status_code == 200
    assert routes_seen(registry) == {
        ("OPTIONS", "/api/v1/users/{user_id}/orders/{order_id}", "200")
    }


async def test_requests_that_pass_are_still_named_by_the_router(
    registry: CollectorRegistry,
) -> None:
    async with client(fastapi_app(registry)) as http:
        response = await http.get("/items/3", headers={"pass": "1"})
    assert response.status_code == 200
    assert routes_seen(registry) == {("GET", "/items/{item_id}", "200")}


def test_through_uvicorn_a_refused_request_is_counted_under_its_template(
    registry: CollectorRegistry,
) -> None:
    with (
        ThreadedUvicorn(fastapi_app(registry)) as server,
        pytest.raises(urllib.error.HTTPError) as refused,
    ):
        urllib.request.urlopen(f"{server.url}/items/12345", timeout=10)
    refused.value.close()
    assert refused.value.code == 401
    assert routes_seen(registry) == {("GET", "/items/{item_id}", "401")}


def test_the_cache_of_unrouted_paths_stays_bounded(registry: CollectorRegistry) -> None:
    tree = RouteTree()
    app = starlette_app(registry)
    for number in range(CACHE_LIMIT + 10):
        scope = {"type": "http", "method": "GET", "path": f"/users/{number}", "app": app}
        assert tree(scope, "") == "/users/{user_id}"
    assert len(tree._cache) <= CACHE_LIMIT
    long_path = "/users/" + "x" * route_tree.CACHED_PATH_LENGTH
    before = len(tree._cache)
    assert tree({"type": "http", "method": "GET", "path": long_path, "app": app}, "") == (
        "/users/{user_id}"
    )
    assert len(tree._cache) == before


def test_fastapi_still_exposes_its_included_routers_candidates() -> None:
    """Fails loudly if FastAPI changes the included-router internals route_tree reads."""
    app = FastAPI()
    router = APIRouter(prefix="/p")

    @router.get("/{x}")
    async def handler(x: str) -> str:
        return x

    app.include_router(router)
    included = [
        candidates
        for candidates in (_included_candidates(route) for route in app.router.routes)
        if candidates is not None
    ]
    assert [candidate.path_format for candidate in included[0]] == ["/p/{x}"]
