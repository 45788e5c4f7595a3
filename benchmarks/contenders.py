"""What the server benchmark runs: each contender, its server, and the tables they form.

A table (:class:`Group`) sets its contenders against its first, the bare app of the same
framework. One run holds the metrics-only tables on both uvicorn stacks, the full stack
with export, and multiprocess (:func:`server_groups`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "FLOOR",
    "GROUP_KINDS",
    "SPAN_QUEUE_SIZE",
    "STACKS",
    "Contender",
    "Group",
    "server_groups",
]

#: uvicorn's options for each server stack, and how the tables name it.
STACKS: Mapping[str, tuple[tuple[str, ...], str]] = {
    "h11": (("--http", "h11", "--loop", "asyncio"), "uvicorn with h11 + asyncio"),
    "uvloop": (
        ("--http", "httptools", "--loop", "uvloop"),
        "uvicorn with httptools + uvloop (what `uvicorn[standard]` installs)",
    ),
}

#: The span processor's queue: deep enough that no contender drops spans under wrk (a
#: dropped span skips its export and would flatter whoever drops most).
SPAN_QUEUE_SIZE = 65_536


@dataclass(frozen=True)
class Contender:
    """One server to load: which app, on which server, and what it must have recorded."""

    name: str
    #: A zero-argument function in :mod:`benchmarks.shop` that builds the app.
    factory: str
    stack: str = "uvloop"
    #: 0: one uvicorn process; N: gunicorn with N uvicorn workers (multiprocess metrics).
    workers: int = 0
    #: Its access lines (carrying the benchmark's User-Agent) go to its output.
    access_lines: bool = False
    #: It exports spans to the collector under this service name, sampling this share.
    span_service: str | None = None
    sample_ratio: float = 1.0

    @property
    def instrumented(self) -> bool:
        return not self.factory.startswith("bare_")


@dataclass(frozen=True)
class Group:
    """One table: contenders set against the first, the bare app of the same framework."""

    key: str
    title: str
    contenders: tuple[Contender, ...]
    setup: str


#: The reference contender: a middleware that only counts responses (benchmarks/shop.py).
FLOOR = "floor: a middleware that only counts responses"
_FLOOR_NOTE = (
    "The floor is the least any middleware that looks at every response costs on this "
    "stack (one `send` wrapper, nothing recorded): the part of the gap no instrumentation "
    "can close."
)

#: The metrics-only tables, run on each stack: (key, framework, contenders, set-up).
_METRICS_TABLES: tuple[tuple[str, str, tuple[Contender, ...], str], ...] = (
    (
        "starlette",
        "Starlette",
        (
            Contender("bare Starlette", "bare_starlette"),
            Contender(FLOOR, "floor_starlette"),
            Contender("ouro-obs, metrics only", "ouro_obs_metrics_starlette"),
            Contender("starlette-exporter", "starlette_exporter_starlette"),
            Contender("opentelemetry-instrumentation-asgi", "otel_asgi_metrics_starlette"),
        ),
        "opentelemetry-instrumentation-asgi records into an SDK MeterProvider "
        f"(in-memory reader); its tracer is the API default. {_FLOOR_NOTE}",
    ),
    (
        "fastapi",
        "FastAPI",
        (
            Contender("bare FastAPI", "bare_fastapi"),
            Contender(FLOOR, "floor_fastapi"),
            Contender("ouro-obs, metrics only", "ouro_obs_metrics_fastapi"),
            Contender("prometheus-fastapi-instrumentator", "instrumentator_fastapi"),
            Contender(
                "ouro-obs, the one line (nothing else configured)",
                "ouro_obs_one_line_fastapi",
                access_lines=True,
            ),
        ),
        'The one line is `app.add_middleware(ObservabilityMiddleware, service_name="shop")` '
        f"with nothing else configured: its access lines go to the server's stdout. {_FLOOR_NOTE}",
    ),
)


def _metrics_groups(stack: str) -> list[Group]:
    return [
        Group(
            f"{key}-{stack}",
            f"Metrics only, {framework}, {STACKS[stack][1]}",
            tuple(replace(contender, stack=stack) for contender in contenders),
            setup,
        )
        for key, framework, contenders, setup in _METRICS_TABLES
    ]


#: opentelemetry-instrumentation-asgi exporting as ouro-obs does: the like-for-like peer.
OTEL_SAME_ENCODING = "otel-asgi alone, 100 %, ouro-obs's exporter"


def _full_stack_group() -> Group:
    def full(name: str, factory: str, service: str, ratio: float, lines: bool) -> Contender:
        return Contender(
            name, factory, access_lines=lines, span_service=service, sample_ratio=ratio
        )

    return Group(
        "fullstack",
        f"Full stack with export, FastAPI, {STACKS['uvloop'][1]}",
        (
            Contender("bare FastAPI", "bare_fastapi"),
            full("ouro-obs full stack, 100 %", "ouro_obs_full_fastapi", "ouro-full-100", 1.0, True),
            full("otel-asgi alone, 100 %", "otel_asgi_full_fastapi", "otel-asgi-100", 1.0, False),
            full(
                OTEL_SAME_ENCODING,
                "otel_asgi_full_ouro_encoding_fastapi",
                "otel-asgi-ouro-100",
                1.0,
                False,
            ),
            full("ouro-obs full stack, 10 %", "ouro_obs_full_fastapi", "ouro-full-10", 0.1, True),
            full("otel-asgi alone, 10 %", "otel_asgi_full_fastapi", "otel-asgi-10", 0.1, False),
        ),
        "Full stack = metrics + one JSON access line per request to stdout + a span per "
        "sampled request; spans go through the SDK's batch processor and the OTLP/HTTP "
        "protobuf exporter to a rotel collector on loopback (queue "
        f"{SPAN_QUEUE_SIZE:,}, other OTEL_BSP_* defaults; parent-based ratio sampling from "
        "OTEL_TRACES_SAMPLER). ouro-obs exports with its own `OtlpHttpSpanExporter` (the "
        "SDK's OTLP/HTTP exporter with its encoding written straight to protobuf bytes, the "
        "same bytes), as `configure_tracing()` sets it up. opentelemetry-instrumentation-asgi "
        "runs its defaults (three spans per request) with the same provider set-up and the "
        "SDK's `OTLPSpanExporter`, and once more with ouro-obs's exporter.",
    )


def _multiprocess_group(workers: int = 2) -> Group:
    return Group(
        "multiprocess",
        f"Multiprocess: gunicorn, {workers} uvicorn workers, PROMETHEUS_MULTIPROC_DIR",
        (
            Contender("bare FastAPI", "bare_fastapi", workers=workers),
            Contender("ouro-obs, metrics only", "ouro_obs_metrics_fastapi", workers=workers),
            Contender(
                "prometheus-fastapi-instrumentator", "instrumentator_fastapi", workers=workers
            ),
        ),
        f"`gunicorn -w {workers} -k uvicorn_worker.UvicornWorker` (httptools + uvloop), "
        "prometheus_client's `mark_process_dead` in `child_exit`; each server has its own "
        "empty multiprocess directory. Server CPU counts the master and the workers.",
    )


#: The kinds of table :func:`server_groups` can build.
GROUP_KINDS = ("starlette", "fastapi", "fullstack", "multiprocess")


def server_groups(
    kinds: Sequence[str] = GROUP_KINDS, stacks: Sequence[str] = tuple(STACKS)
) -> list[Group]:
    """The tables of one run: metrics on each stack, the full stack, multiprocess."""
    groups = [
        group
        for stack in stacks
        for group in _metrics_groups(stack)
        if group.key.split("-")[0] in kinds
    ]
    if "fullstack" in kinds:
        groups.append(_full_stack_group())
    if "multiprocess" in kinds:
        groups.append(_multiprocess_group())
    return groups
