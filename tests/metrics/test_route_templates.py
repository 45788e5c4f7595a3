"""The ``route`` label is the route template for every routing construct, never the raw path."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Host, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from ouro_obs import ObservabilityMiddleware, OpenAPIRouteResolver
from tests.metrics.asgi import client, routes_seen


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def missing(request: Request) -> Response:
    raise StarletteHTTPException(status_code=404)


async def static_files(scope: Scope, receive: Receive, send: Send) -> None:
    """A mounted plain ASGI app that is not a router (like StaticFiles)."""
    await PlainTextResponse("body { }")(scope, receive, send)


def starlette_app(registry: CollectorRegistry) -> Starlette:
    inner = Router(routes=[Route("/deep/{leaf}", ok)])
    sub_app = Starlette(
        routes=[
            Route("/stats", ok),
            Mount("/nested/{tenant}", routes=[Route("/x/{y}", ok)]),
        ]
    )
    app = Starlette(
        routes=[
            Route("/users/{user_id}", ok, methods=["GET"]),
            Route("/items/{item_id:int}", ok),
            Route("/gone/{thing}", missing),
            Mount("/v1", routes=[Route("/things/{thing_id}", ok), Mount("/inner", app=inner)]),
            Mount("/sub", app=sub_app),
            Mount("/static", app=static_files),
            Host("api.example.com", app=Router(routes=[Route("/host/{x}", ok)])),
        ]
    )
    app.add_middleware(ObservabilityMiddleware, registry=registry)
    return app


STARLETTE_CASES = [
    ("GET", "/users/42", {}, ("GET", "/users/{user_id}", "200")),
    ("GET", "/items/7", {}, ("GET", "/items/{item_id}", "200")),
    ("GET", "/v1/things/abc", {}, ("GET", "/v1/things/{thing_id}", "200")),
    ("GET", "/v1/inner/deep/z", {}, ("GET", "/v1/inner/deep/{leaf}", "200")),
    ("GET", "/sub/stats", {}, ("GET", "/sub/stats", "200")),
    ("GET", "/sub/nested/acme/x/1", {}, ("GET", "/sub/nested/{tenant}/x/{y}", "200")),
    ("GET", "/static/css/site.css", {}, ("GET", "/static/{path}", "200")),
    ("GET", "/host/1", {"host": "api.example.com"}, ("GET", "/host/{x}", "200")),
    ("POST", "/users/1", {}, ("POST", "/users/{user_id}", "405")),
    ("GET", "/gone/hat", {}, ("GET", "/gone/{thing}", "404")),
    ("GET", "/no/such/path", {}, ("GET", "<unmatched>", "404")),
    ("GET", "/users/42/", {}, ("GET", "<unmatched>", "307")),
    ("BREW", "/users/1", {}, ("_OTHER", "/users/{user_id}", "405")),
]


@pytest.mark.parametrize(("method", "path", "headers", "expected"), STARLETTE_CASES)
async def test_starlette_routing_gives_the_template(
    registry: CollectorRegistry,
    method: str,
    path: str,
    headers: dict[str, str],
    expected: tuple[str, str, str],
) -> None:
    async with client(starlette_app(registry)) as http:
        await http.request(method, path, headers=headers, follow_redirects=False)
    assert routes_seen(registry) == {expected}


async def test_root_path_set_by_a_proxy_is_not_part_of_the_template(
    registry: CollectorRegistry,
) -> None:
    async with client(starlette_app(registry), root_path="/api") as http:
        response = await http.get("/api/users/5")
    assert response.status_code == 200
    assert routes_seen(registry) == {("GET", "/users/{user_id}", "200")}


def fastapi_app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()
    items = APIRouter(prefix="/items")

    @items.get("/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise HTTPException(status_code=404, detail="no such item")
        return {"id": item_id}

    users = APIRouter(prefix="/users")

    @users.get("/{user_id}/orders/{order_id}")
    async def get_order(user_id: str, order_id: int) -> dict[str, str]:
        return {"user": user_id}

    api = APIRouter(prefix="/api/v1")
    api.include_router(users)
    app.include_router(items)
    app.include_router(api)
    app.include_router(APIRouter(), prefix="/empty")

    sub = FastAPI()

    @sub.get("/reports/{report_id}")
    async def report(report_id: str) -> dict[str, str]:
        return {"report": report_id}

    app.mount("/admin", sub)
    app.add_route("/plain/{name}", ok)
    app.add_middleware(ObservabilityMiddleware, registry=registry)
    return app


FASTAPI_CASES = [
    ("GET", "/items/3", ("GET", "/items/{item_id}", "200")),
    ("GET", "/items/0", ("GET", "/items/{item_id}", "404")),
    ("GET", "/items/not-a-number", ("GET", "/items/{item_id}", "422")),
    ("DELETE", "/items/3", ("DELETE", "/items/{item_id}", "405")),
    (
        "GET",
        "/api/v1/users/u1/orders/9",
        ("GET", "/api/v1/users/{user_id}/orders/{order_id}", "200"),
    ),
    ("GET", "/admin/reports/r-17", ("GET", "/admin/reports/{report_id}", "200")),
    ("GET", "/admin/missing", ("GET", "<unmatched>", "404")),
    ("GET", "/plain/alice", ("GET", "/plain/{name}", "200")),
    ("GET", "/nothing-here", ("GET", "<unmatched>", "404")),
]


@pytest.mark.parametrize(("method", "path", "expected"), FASTAPI_CASES)
async def test_fastapi_routing_gives_the_template(
    registry: CollectorRegistry, method: str, path: str, expected: tuple[str, str, str]
) -> None:
    async with client(fastapi_app(registry)) as http:
        await http.request(method, path)
    assert routes_seen(registry) == {expected}


async def test_a_plain_asgi_app_without_a_router_is_unmatched(registry: CollectorRegistry) -> None:
    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("hi")(scope, receive, send)

    async with client(ObservabilityMiddleware(bare, registry=registry)) as http:
        await http.get("/anything/123")
    assert routes_seen(registry) == {("GET", "<unmatched>", "200")}


async def test_a_route_resolver_names_routes_before_the_app_runs(
    registry: CollectorRegistry,
) -> None:
    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("hi")(scope, receive, send)

    resolver = OpenAPIRouteResolver(["/pets/{pet_id}", "/pets/mine"])
    app = ObservabilityMiddleware(bare, registry=registry, route_resolver=resolver)
    async with client(app) as http:
        await http.get("/pets/7")
        await http.get("/pets/mine")
        await http.get("/cats")
    assert routes_seen(registry) == {
        ("GET", "/pets/{pet_id}", "200"),
        ("GET", "/pets/mine", "200"),
        ("GET", "<unmatched>", "200"),
    }


async def test_a_failing_route_resolver_never_fails_the_request(
    registry: CollectorRegistry,
) -> None:
    def broken(scope: Scope) -> str | None:
        raise RuntimeError("resolver bug")

    app = starlette_app(registry)
    app.user_middleware.clear()
    app.add_middleware(ObservabilityMiddleware, registry=registry, route_resolver=broken)
    async with client(app) as http:
        response = await http.get("/users/1")
    assert response.status_code == 200
    assert response.text == "ok"
    assert routes_seen(registry) == {("GET", "/users/{user_id}", "200")}
    assert (
        registry.get_sample_value("ouro_obs_instrumentation_errors_total", {"stage": "route"})
        == 1.0
    )
