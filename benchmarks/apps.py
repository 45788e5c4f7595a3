"""The applications the overhead benchmark compares: one FastAPI app, differently instrumented.

Every variant serves the same routes with the same endpoints; only the instrumentation
differs, so the time a variant spends beyond :func:`bare` is that instrumentation's cost.
The endpoints return a prebuilt ``PlainTextResponse`` so the app itself stays cheap and
the difference is not lost in serialization noise. Several templated routes (path
parameters, a router with a prefix) sit in front of the measured ones, so route
matching and route-template resolution both do real work.

Each builder leaves on ``app.state.bench_recorded`` a function counting what its
instrumentation recorded, so the benchmark can refuse figures from a variant that
silently did nothing. Uvicorn loads the variants by ``module:function`` (``--factory``).
"""

from __future__ import annotations

import importlib
import inspect
import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY, CollectorRegistry
from starlette.applications import Starlette
from starlette.types import ASGIApp

__all__ = [
    "FULL_STACK_VARIANTS",
    "METRICS_VARIANTS",
    "ONE_LINE_VARIANTS",
    "OTEL_METRICS_VARIANTS",
    "REQUEST_PATHS",
    "Recorded",
    "Variant",
    "add_ouro_obs_metrics",
    "bare",
    "full_stack_pending",
    "instrumentator",
    "otel_asgi",
    "ouro_obs_full",
    "ouro_obs_metrics",
    "recorded",
    "requests_counted",
    "starlette_exporter",
    "variant_named",
]

#: Paths the benchmark requests, cycled; each hits a templated route.
REQUEST_PATHS: tuple[str, ...] = tuple(
    path
    for item_id in range(50)
    for path in (
        f"/items/{item_id}",
        f"/users/{item_id}/orders/{1000 + item_id}",
        f"/api/v1/products/{item_id}",
    )
)

#: BatchSpanProcessor queue size (the SDK default, 2048, drops spans in a tight loop).
SPAN_QUEUE_SIZE = 1 << 20

#: What a variant's instrumentation recorded so far: requests counted, spans, log lines.
Recorded = dict[str, int]

_OK = PlainTextResponse("ok")


async def _ok() -> PlainTextResponse:
    """The endpoint of the routes without parameters (never among the requested ones)."""
    return _OK


def _routes(app: FastAPI) -> None:
    """The same route table for every variant (earlier routes make matching do work)."""
    app.get("/", name="index")(_ok)
    app.get("/items", name="list_items")(_ok)
    app.post("/items", name="create_item")(_ok)

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> PlainTextResponse:
        return _OK

    @app.get("/users/{user_id}")
    async def get_user(user_id: int) -> PlainTextResponse:
        return _OK

    @app.get("/users/{user_id}/orders/{order_id}")
    async def get_order(user_id: int, order_id: int) -> PlainTextResponse:
        return _OK

    products = APIRouter(prefix="/api/v1")
    products.get("/products", name="list_products")(_ok)

    @products.get("/products/{product_id}")
    async def get_product(product_id: int) -> PlainTextResponse:
        return _OK

    app.include_router(products)


def _fastapi(recorded: Callable[[], Recorded]) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    _routes(app)
    app.state.bench_recorded = recorded
    return app


def recorded(app: ASGIApp) -> Recorded:
    """What ``app``'s instrumentation has recorded (see the module docstring)."""
    counter: Callable[[], Recorded] = app.state.bench_recorded  # type: ignore[attr-defined]
    return counter()


def requests_counted(registry: CollectorRegistry, sample_name: str) -> Callable[[], Recorded]:
    def count() -> Recorded:
        total = sum(
            sample.value
            for family in registry.collect()
            for sample in family.samples
            if sample.name == sample_name
        )
        return {"requests counted": int(total)}

    return count


# -- metrics-only variants ------------------------------------------------------------


def bare() -> ASGIApp:
    """The app without any instrumentation: the baseline."""
    return _fastapi(dict)


def add_ouro_obs_metrics(app: Starlette) -> Callable[[], Recorded]:
    """Add ouro-obs for metrics only, like its peers (no access log, span or request id);
    returns the count of requests it recorded.
    """
    from ouro_obs import ObservabilityMiddleware  # noqa: PLC0415 - keeps peers' imports apart

    registry = CollectorRegistry()
    app.add_middleware(
        ObservabilityMiddleware,
        registry=registry,
        access_log=False,
        tracing=False,
        request_id_header="",
    )
    return requests_counted(registry, "http_requests_total")


def ouro_obs_metrics() -> ASGIApp:
    """ouro-obs configured for metrics only (:func:`add_ouro_obs_metrics`)."""
    app = _fastapi(dict)
    app.state.bench_recorded = add_ouro_obs_metrics(app)
    return app


def ouro_obs_one_line() -> ASGIApp:
    """The one line with nothing else configured: request ids and the access line to stdout.

    On the global registry, as a user's app would be; logging and tracing left alone.
    """
    from ouro_obs import ObservabilityMiddleware  # noqa: PLC0415

    app = _fastapi(requests_counted(REGISTRY, "http_requests_total"))
    app.add_middleware(ObservabilityMiddleware, service_name="shop")
    return app


def starlette_exporter() -> ASGIApp:
    """starlette-exporter's ``PrometheusMiddleware`` with its defaults (templated paths).

    It always registers on the global registry.
    """
    from starlette_exporter import PrometheusMiddleware  # noqa: PLC0415

    app = _fastapi(requests_counted(REGISTRY, "starlette_requests_total"))
    app.add_middleware(PrometheusMiddleware)
    return app


def instrumentator() -> ASGIApp:
    """prometheus-fastapi-instrumentator: ``Instrumentator().instrument(app)``, defaults."""
    from prometheus_fastapi_instrumentator import Instrumentator  # noqa: PLC0415

    registry = CollectorRegistry()
    app = _fastapi(requests_counted(registry, "http_requests_total"))
    Instrumentator(registry=registry).instrument(app)
    return app


# -- full stack (metrics + access log + tracing) vs OpenTelemetry's middleware ----------


class CountingSpanExporter(SpanExporter):
    """Counts the SERVER spans it receives and keeps nothing: nothing leaves the process."""

    def __init__(self) -> None:
        self.server_spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.server_spans += sum(1 for span in spans if span.kind is SpanKind.SERVER)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class _CountingSink(io.StringIO):
    """A text stream that keeps nothing and counts access lines (the cost of a write call)."""

    def __init__(self) -> None:
        super().__init__()
        self.access_lines = 0

    def write(self, text: str) -> int:
        if "ouro_obs.access" in text:
            self.access_lines += 1
        return len(text)


def _traced() -> tuple[TracerProvider, Callable[[], Recorded]]:
    """An SDK provider sampling every request into a BatchSpanProcessor, and its span count."""
    exporter = CountingSpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    # A queue deep enough that a tight benchmark loop drops nothing: a dropped span skips
    # its export, and that would flatter whichever variant produces spans fastest.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=SPAN_QUEUE_SIZE))

    def count() -> Recorded:
        provider.force_flush()
        return {"server spans": exporter.server_spans}

    return provider, count


def full_stack_pending() -> str | None:
    """Why ouro-obs's full stack cannot be measured yet, or None when it can."""
    from ouro_obs import ObservabilityMiddleware  # noqa: PLC0415

    try:
        for module in ("ouro_obs.logs", "ouro_obs.tracing"):
            importlib.import_module(module)
    except ImportError as error:
        return f"ouro_obs.logs / ouro_obs.tracing not available yet ({error})"
    parameters = inspect.signature(ObservabilityMiddleware.__init__).parameters
    if "tracer_provider" not in parameters:
        return "ObservabilityMiddleware has no tracer_provider= yet"
    return None


def ouro_obs_full(log_stream: TextIO | None = None) -> ASGIApp:
    """ouro-obs with every signal on: metrics, a JSON access line and a span per request.

    The access log goes to ``log_stream`` (default: stdout, as in a container).
    """
    from ouro_obs import ObservabilityMiddleware, ObservabilitySettings  # noqa: PLC0415
    from ouro_obs.logs import configure_logging  # noqa: PLC0415

    stream = sys.stdout if log_stream is None else log_stream
    configure_logging(ObservabilitySettings(), level="info", log_format="json", stream=stream)
    registry = CollectorRegistry()
    provider, spans = _traced()
    requests = requests_counted(registry, "http_requests_total")

    def count() -> Recorded:
        counts = {**requests(), **spans()}
        if isinstance(stream, _CountingSink):
            counts["access lines"] = stream.access_lines
        return counts

    app = _fastapi(count)
    app.add_middleware(
        ObservabilityMiddleware,
        registry=registry,
        tracer_provider=provider,
        access_log=True,
        tracing=True,
    )
    return app


def _ouro_obs_full_in_memory() -> ASGIApp:
    """The full stack with its access log going to a counting sink (in-process runs)."""
    return ouro_obs_full(_CountingSink())


def otel_asgi() -> ASGIApp:
    """opentelemetry-instrumentation-asgi's ``OpenTelemetryMiddleware``, its defaults.

    Same tracer provider set-up as :func:`ouro_obs_full`; the meter provider is the
    API's no-op default, which only flatters it.
    """
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: PLC0415

    provider, spans = _traced()
    app = _fastapi(spans)
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider)
    return app


# -- OpenTelemetry metrics: ours vs OpenTelemetry's middleware, both scraped the same way ---


def _families_counted(registry: CollectorRegistry, *names: str) -> Callable[[], Recorded]:
    """Requests counted by the ``_count`` samples of the named histogram families."""

    def count() -> Recorded:
        total = sum(
            sample.value
            for family in registry.collect()
            if family.name in names
            for sample in family.samples
            if sample.name.endswith("_count")
        )
        return {"requests counted": int(total)}

    return count


def ouro_obs_otel_metrics() -> ASGIApp:
    """ouro-obs with ``metrics_backend="opentelemetry"``, metrics only: its own
    MeterProvider, read by opentelemetry-exporter-prometheus on a registry of its own."""
    from ouro_obs import ObservabilityMiddleware  # noqa: PLC0415

    registry = CollectorRegistry()
    app = _fastapi(_families_counted(registry, "http_server_request_duration_seconds"))
    app.add_middleware(
        ObservabilityMiddleware,
        registry=registry,
        metrics_backend="opentelemetry",
        access_log=False,
        tracing=False,
        request_id_header="",
    )
    return app


def otel_asgi_metrics() -> ASGIApp:
    """opentelemetry-instrumentation-asgi recording its own HTTP metrics on an SDK
    MeterProvider (the same exporter-prometheus reader), spans to the no-op provider."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: PLC0415
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.trace import NoOpTracerProvider  # noqa: PLC0415

    registry = CollectorRegistry()
    meters = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    # Its default (pre-stable) semantic conventions: http.server.duration in milliseconds.
    families = ("http_server_duration_milliseconds", "http_server_request_duration_seconds")
    app = _fastapi(_families_counted(registry, *families))
    app.add_middleware(
        OpenTelemetryMiddleware, tracer_provider=NoOpTracerProvider(), meter_provider=meters
    )
    return app


# -- the catalogue ----------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One instrumented app: a short name for tables, how to build it, what it is."""

    name: str
    build: Callable[[], ASGIApp]
    description: str
    #: ``module:function`` uvicorn loads with ``--factory``.
    factory: str


def _factory(function: Callable[..., Any]) -> str:
    return f"{__name__}:{function.__name__}"


METRICS_VARIANTS: tuple[Variant, ...] = (
    Variant("bare", bare, "FastAPI app, no instrumentation", _factory(bare)),
    Variant(
        "ouro-obs",
        ouro_obs_metrics,
        "ObservabilityMiddleware, metrics only",
        _factory(ouro_obs_metrics),
    ),
    Variant(
        "starlette-exporter",
        starlette_exporter,
        "PrometheusMiddleware, defaults",
        _factory(starlette_exporter),
    ),
    Variant(
        "instrumentator",
        instrumentator,
        "prometheus-fastapi-instrumentator, defaults",
        _factory(instrumentator),
    ),
)

ONE_LINE_VARIANTS: tuple[Variant, ...] = (
    METRICS_VARIANTS[0],
    METRICS_VARIANTS[1],
    Variant(
        "ouro-obs one line",
        ouro_obs_one_line,
        "add_middleware(ObservabilityMiddleware, service_name=...), nothing else configured",
        _factory(ouro_obs_one_line),
    ),
)

FULL_STACK_VARIANTS: tuple[Variant, ...] = (
    METRICS_VARIANTS[0],
    Variant(
        "ouro-obs full stack",
        _ouro_obs_full_in_memory,
        "metrics + JSON access log + span per request (100 % sampled)",
        _factory(ouro_obs_full),
    ),
    Variant(
        "otel-asgi",
        otel_asgi,
        "OpenTelemetryMiddleware alone, defaults (100 % sampled)",
        _factory(otel_asgi),
    ),
)


OTEL_METRICS_VARIANTS: tuple[Variant, ...] = (
    METRICS_VARIANTS[0],
    METRICS_VARIANTS[1],
    Variant(
        "ouro-obs otel metrics",
        ouro_obs_otel_metrics,
        'ObservabilityMiddleware, metrics_backend="opentelemetry", metrics only',
        _factory(ouro_obs_otel_metrics),
    ),
    Variant(
        "otel-asgi metrics",
        otel_asgi_metrics,
        "OpenTelemetryMiddleware's own metrics on an SDK MeterProvider, no-op tracing",
        _factory(otel_asgi_metrics),
    ),
)


def variant_named(name: str) -> Variant:
    every = METRICS_VARIANTS + ONE_LINE_VARIANTS + FULL_STACK_VARIANTS + OTEL_METRICS_VARIANTS
    for variant in every:
        if variant.name == name:
            return variant
    known = ", ".join(v.name for v in METRICS_VARIANTS + FULL_STACK_VARIANTS)
    raise KeyError(f"unknown variant {name!r}; known: {known}")
