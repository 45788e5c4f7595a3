"""The example service: a small shop API instrumented with one line.

Run it: ``uvicorn shop.app:app --app-dir examples``. Its routes cover every routing
case the middleware handles: path parameters, routers with prefixes (nested), a
mounted sub-application, streaming, an endpoint that raises, a websocket, and a
background task. ``?fail=true`` answers 500 and ``?delay=SECONDS`` sleeps, so a load
generator can drive error bursts and slow requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, BackgroundTasks, FastAPI, HTTPException, Query, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ouro_obs import (
    ObservabilityMiddleware,
    ObservabilitySettings,
    ReadinessChecks,
    configure_logging,
    configure_tracing,
)

__all__ = ["app", "create_app"]

log = logging.getLogger("shop")

ITEMS = {1: "teapot", 2: "kettle", 3: "mug"}
MAX_DELAY_SECONDS = 15.0


class InjectedFailure(RuntimeError):
    """Raised on purpose by ``?fail=true`` so load tests can produce 5xx responses."""


async def maybe_misbehave(fail: bool, delay: float) -> None:
    if delay > 0:
        await asyncio.sleep(min(delay, MAX_DELAY_SECONDS))
    if fail:
        raise HTTPException(status_code=500, detail="injected failure")


items = APIRouter(prefix="/items", tags=["items"])


@items.get("/{item_id}")
async def get_item(
    item_id: int, fail: bool = False, delay: float = Query(0.0, ge=0)
) -> dict[str, object]:
    await maybe_misbehave(fail, delay)
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail="no such item")
    return {"id": item_id, "name": ITEMS[item_id]}


orders = APIRouter(prefix="/orders", tags=["orders"])


def send_confirmation(order_id: int) -> None:
    log.info("confirmation sent", extra={"order_id": order_id})


@orders.post("", status_code=201)
async def create_order(
    background: BackgroundTasks, fail: bool = False, delay: float = Query(0.0, ge=0)
) -> dict[str, int]:
    await maybe_misbehave(fail, delay)
    order_id = 1000 + len(ITEMS)
    background.add_task(send_confirmation, order_id)
    return {"order_id": order_id}


@orders.get("/{order_id}")
def get_order(order_id: int) -> dict[str, object]:
    """A sync endpoint: FastAPI runs it in the threadpool."""
    return {"order_id": order_id, "status": "shipped"}


users = APIRouter(prefix="/users", tags=["users"])


@users.get("/{user_id}/orders/{order_id}")
async def get_user_order(user_id: str, order_id: int) -> dict[str, object]:
    return {"user": user_id, "order_id": order_id}


api_v1 = APIRouter(prefix="/api/v1")
api_v1.include_router(users)


async def admin_stats(request: Request) -> Response:
    return JSONResponse({"orders": 3})


async def admin_tenant(request: Request) -> Response:
    return PlainTextResponse(f"tenant {request.path_params['tenant']}")


def create_admin_app() -> Starlette:
    """A Starlette sub-application, mounted at /admin."""
    return Starlette(
        routes=[
            Route("/stats", admin_stats),
            Route("/tenants/{tenant}", admin_tenant),
        ]
    )


async def countdown(chunks: int, interval: float) -> AsyncIterator[bytes]:
    for remaining in range(chunks, 0, -1):
        yield f"{remaining}\n".encode()
        await asyncio.sleep(interval)


def create_app(settings: ObservabilitySettings | None = None) -> FastAPI:
    """The shop app; ``settings`` default to the environment with service name ``shop``."""
    settings = settings or ObservabilitySettings.from_env(defaults={"service_name": "shop"})
    readiness = ReadinessChecks(timeout_seconds=settings.readiness_timeout_seconds)
    app = FastAPI(title="shop", version="1.0.0")

    @readiness.check("inventory")
    async def inventory_loaded() -> bool:
        return bool(ITEMS)

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"service": "shop"}

    @app.get("/stream")
    async def stream(
        chunks: int = Query(3, ge=1, le=100), interval: float = Query(0.01, ge=0, le=1)
    ) -> StreamingResponse:
        return StreamingResponse(countdown(chunks, interval), media_type="text/plain")

    @app.get("/boom")
    async def boom() -> None:
        raise InjectedFailure("the /boom endpoint always raises")

    @app.websocket("/ws/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(text)
        await websocket.close()

    app.include_router(items)
    app.include_router(orders)
    app.include_router(api_v1)
    app.mount("/admin", create_admin_app())
    app.add_middleware(ObservabilityMiddleware, settings, readiness=readiness)
    return app


def main() -> FastAPI:
    """The edge: settings from the environment, logging and tracing set up once, the app.

    JSON log lines on stdout (uvicorn's own lines included; run uvicorn with
    ``--no-access-log``, the middleware writes the access line), spans over OTLP/HTTP
    to ``OTEL_EXPORTER_OTLP_ENDPOINT``.
    """
    settings = ObservabilitySettings.from_env(defaults={"service_name": "shop"})
    configure_logging(settings)
    configure_tracing(settings)
    return create_app(settings)


app = main()
