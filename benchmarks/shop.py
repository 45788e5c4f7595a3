"""The apps the server benchmarks load: a 21-route shop, on Starlette and on FastAPI.

Every route answers a prebuilt ``PlainTextResponse("ok")``, so the app stays cheap and what
a contender costs beyond its bare app is its instrumentation. The route table is data
(:data:`SHOP_ROUTES`); the last four routes sit under a prefix (a ``Mount`` on Starlette, an
``APIRouter(prefix=...)`` on FastAPI), so route-template resolution does real work. On
FastAPI the path parameters are typed ``int``, as a real service would declare them.

Each factory here is what ``uvicorn --factory`` or gunicorn (``module:factory()``) loads.
The app it returns is wrapped by :class:`Served`, which answers ``/bench/recorded`` (what
the instrumentation recorded so far, as JSON) before the instrumented app sees the
request, so the benchmark's own questions are never counted. Tracing and the access log
are configured the way a service would: from the ``OTEL_*`` environment (the benchmark
sets it per server) and to stdout.
"""

from __future__ import annotations

import inspect
import json
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import REGISTRY, CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchmarks.apps import Recorded, add_ouro_obs_metrics, requests_counted

__all__ = [
    "RECORDED_PATH",
    "SHOP_ROUTES",
    "ResponseCounter",
    "Served",
    "bare_fastapi",
    "bare_starlette",
    "fastapi_shop",
    "floor_fastapi",
    "floor_starlette",
    "instrumentator_fastapi",
    "otel_asgi_full_fastapi",
    "otel_asgi_metrics_starlette",
    "ouro_obs_full_fastapi",
    "ouro_obs_metrics_fastapi",
    "ouro_obs_metrics_starlette",
    "ouro_obs_one_line_fastapi",
    "shop_paths",
    "starlette_exporter_starlette",
    "starlette_shop",
]

#: The path :class:`Served` answers itself, outside every variant's instrumentation.
RECORDED_PATH = "/bench/recorded"

_PREFIX = "/api/v1"

#: The shop's 21 GET routes; the last four are under :data:`_PREFIX`.
SHOP_ROUTES: tuple[str, ...] = (
    "/",
    "/items",
    "/items/{item_id}",
    "/items/{item_id}/reviews",
    "/items/{item_id}/reviews/{review_id}",
    "/users",
    "/users/{user_id}",
    "/users/{user_id}/orders",
    "/users/{user_id}/orders/{order_id}",
    "/users/{user_id}/orders/{order_id}/lines/{line_id}",
    "/carts/{cart_id}",
    "/carts/{cart_id}/items/{item_id}",
    "/categories",
    "/categories/{category_id}/items",
    "/search",
    "/stores/{store_id}",
    "/stores/{store_id}/hours",
    f"{_PREFIX}/products",
    f"{_PREFIX}/products/{{product_id}}",
    f"{_PREFIX}/products/{{product_id}}/stock",
    f"{_PREFIX}/warehouses/{{warehouse_id}}",
)

_OK = PlainTextResponse("ok")
_PARAMETER = re.compile(r"\{(\w+)\}")


def shop_paths(count: int, seed: int = 0) -> list[str]:
    """``count`` request paths over every shop route, random ids, the same for one seed."""
    chooser = random.Random(seed)
    return [
        _PARAMETER.sub(lambda _: str(chooser.randint(1, 100_000)), chooser.choice(SHOP_ROUTES))
        for _ in range(count)
    ]


def _split(templates: Sequence[str]) -> tuple[list[str], list[str]]:
    """The routes at the top level, and those under the prefix (without it)."""
    top = [template for template in templates if not template.startswith(_PREFIX)]
    under = [template[len(_PREFIX) :] for template in templates if template.startswith(_PREFIX)]
    return top, under


async def _starlette_endpoint(request: object) -> Response:
    return _OK


def starlette_shop() -> Starlette:
    top, under = _split(SHOP_ROUTES)
    routes: list[BaseRoute] = [Route(template, _starlette_endpoint) for template in top]
    routes.append(
        Mount(_PREFIX, routes=[Route(template, _starlette_endpoint) for template in under])
    )
    return Starlette(routes=routes)


def _fastapi_endpoint(template: str) -> Callable[..., Awaitable[Response]]:
    """An endpoint declaring the template's parameters as ``int`` (FastAPI validates them)."""

    async def endpoint(**parameters: int) -> Response:
        return _OK

    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=int)
            for name in _PARAMETER.findall(template)
        ]
    )
    endpoint.__name__ = "get_" + (re.sub(r"\W+", "_", template).strip("_") or "index")
    return endpoint


def fastapi_shop(telemetry: dict[str, Any] | None = None) -> FastAPI:
    """The shop on FastAPI; ``telemetry`` is FastAPI's own (default: FastAPI's default)."""
    options: dict[str, Any] = {} if telemetry is None else {"telemetry": telemetry}
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, **options)
    top, under = _split(SHOP_ROUTES)
    for template in top:
        app.get(template)(_fastapi_endpoint(template))
    router = APIRouter(prefix=_PREFIX)
    for template in under:
        router.get(template)(_fastapi_endpoint(template))
    app.include_router(router)
    return app


class Served:
    """The ASGI app a benchmark server runs: ``/bench/recorded`` here, the rest to ``app``."""

    def __init__(self, app: ASGIApp, recorded: Callable[[], Recorded]) -> None:
        self.app = app
        self.recorded = recorded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == RECORDED_PATH:
            await Response(json.dumps(self.recorded()), media_type="application/json")(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


def _nothing() -> Recorded:
    return {}


# -- the bare apps ---------------------------------------------------------------------


def bare_starlette() -> Served:
    return Served(starlette_shop(), _nothing)


def bare_fastapi() -> Served:
    return Served(fastapi_shop(), _nothing)


# -- the floor: the least a middleware that sees every response costs ---------------------


class ResponseCounter:
    """The cheapest middleware that sees each response: a ``send`` wrapper counting them.

    Not instrumentation anyone would run (no route, no time, no size, no error handling):
    the reference line for what any ASGI middleware that looks at responses costs on a
    stack, before it records anything.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.responses = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.responses += 1
            await send(message)

        await self.app(scope, receive, counting_send)


def _with_floor(app: Starlette) -> Served:
    counters: list[ResponseCounter] = []

    def counter(inner: ASGIApp) -> ResponseCounter:
        counters.append(ResponseCounter(inner))
        return counters[-1]

    app.add_middleware(counter)

    def recorded() -> Recorded:
        return {"requests counted": sum(counter.responses for counter in counters)}

    return Served(app, recorded)


def floor_starlette() -> Served:
    return _with_floor(starlette_shop())


def floor_fastapi() -> Served:
    return _with_floor(fastapi_shop())


# -- ouro-obs --------------------------------------------------------------------------


def ouro_obs_metrics_starlette() -> Served:
    app = starlette_shop()
    return Served(app, add_ouro_obs_metrics(app))


def ouro_obs_metrics_fastapi() -> Served:
    app = fastapi_shop()
    return Served(app, add_ouro_obs_metrics(app))


def ouro_obs_one_line_fastapi() -> Served:
    """The one line a user adds, with nothing else configured (its access line to stdout)."""
    from ouro_obs import ObservabilityMiddleware  # noqa: PLC0415

    app = fastapi_shop()
    app.add_middleware(ObservabilityMiddleware, service_name="shop")
    return Served(app, requests_counted(REGISTRY, "http_requests_total"))


def ouro_obs_full_fastapi() -> Served:
    """Every signal, set up as documented: settings, logs and tracing from the environment.

    Metrics, one JSON access line per request to stdout, and a span per sampled request
    exported over OTLP/HTTP (protobuf) to the ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``.
    FastAPI's own tracing is off, as docs/logs-and-traces.md says to do for ouro-obs's
    span: left on, it sees the global provider ``configure_tracing()`` installs and makes
    the SERVER span and four operation spans per request itself (the middleware then
    reuses its server span), which measures FastAPI's tracing, not ouro-obs's.
    """
    from ouro_obs import (  # noqa: PLC0415
        ObservabilityMiddleware,
        ObservabilitySettings,
        configure_logging,
        configure_tracing,
    )

    settings = ObservabilitySettings.from_env()
    registry = CollectorRegistry()
    configure_logging(settings, log_format="json")
    provider = configure_tracing(settings, registry=registry)
    app = fastapi_shop(telemetry={"tracing": False})
    app.add_middleware(
        ObservabilityMiddleware, settings, registry=registry, tracer_provider=provider
    )
    return Served(app, requests_counted(registry, "http_requests_total"))


# -- its peers -------------------------------------------------------------------------


def starlette_exporter_starlette() -> Served:
    """starlette-exporter's ``PrometheusMiddleware``, its defaults (the global registry)."""
    from starlette_exporter import PrometheusMiddleware  # noqa: PLC0415

    app = starlette_shop()
    app.add_middleware(PrometheusMiddleware)
    return Served(app, requests_counted(REGISTRY, "starlette_requests_total"))


def instrumentator_fastapi() -> Served:
    """prometheus-fastapi-instrumentator: ``Instrumentator().instrument(app).expose(app)``."""
    from prometheus_fastapi_instrumentator import Instrumentator  # noqa: PLC0415

    registry = CollectorRegistry()
    app = fastapi_shop()
    Instrumentator(registry=registry).instrument(app).expose(app)
    return Served(app, requests_counted(registry, "http_requests_total"))


def _histogram_counts(reader: InMemoryMetricReader) -> Callable[[], Recorded]:
    """Requests in the OpenTelemetry SDK's server duration histogram."""

    def count() -> Recorded:
        data = reader.get_metrics_data()
        total = 0
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name.startswith("http.server") and "duration" in metric.name:
                        total += sum(
                            point.count
                            for point in metric.data.data_points
                            if isinstance(point, HistogramDataPoint)
                        )
        return {"requests counted": total}

    return count


def otel_asgi_metrics_starlette() -> Served:
    """opentelemetry-instrumentation-asgi with an SDK ``MeterProvider`` (metrics only).

    The tracer is the API's default (no SDK installed), as in a service that only wants
    the middleware's metrics.
    """
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: PLC0415

    reader = InMemoryMetricReader()
    app = starlette_shop()
    app.add_middleware(OpenTelemetryMiddleware, meter_provider=MeterProvider([reader]))
    return Served(app, _histogram_counts(reader))


def otel_asgi_full_fastapi() -> Served:
    """opentelemetry-instrumentation-asgi alone, its defaults, with the SDK and its
    exporter: ``TracerProvider()`` (sampler and resource from ``OTEL_*``) into a
    ``BatchSpanProcessor(OTLPSpanExporter())`` (endpoint and queue from ``OTEL_*``).
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    return _otel_asgi_full(OTLPSpanExporter())


def otel_asgi_full_ouro_encoding_fastapi() -> Served:
    """The same, exporting through ouro-obs's exporter (the SDK's, with ouro-obs's
    encoding), so that both full stacks export the same way."""
    from ouro_obs.tracing.otlp import OtlpHttpSpanExporter  # noqa: PLC0415

    return _otel_asgi_full(OtlpHttpSpanExporter())


def _otel_asgi_full(exporter: SpanExporter) -> Served:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    app = fastapi_shop()
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider)
    return Served(app, _nothing)
