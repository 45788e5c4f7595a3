"""An app uvicorn imports for the SIGTERM tests: tracing configured from the ``OTEL_*`` variables."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ouro_obs import ObservabilityMiddleware, ObservabilitySettings, configure_tracing


async def order(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app() -> Starlette:
    settings = ObservabilitySettings.from_env(access_log=False)
    configure_tracing(settings)
    app = Starlette(routes=[Route("/orders/{order_id}", order)])
    app.add_middleware(ObservabilityMiddleware, settings)
    return app
