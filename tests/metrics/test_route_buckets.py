"""Duration buckets of a route's own, under the one duration metric (issue 13, item 4)."""

from __future__ import annotations

import math
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ouro_obs import ConfigError, ObservabilityMiddleware, ObservabilitySettings
from ouro_obs.contract import DEFAULT_DURATION_BUCKETS
from ouro_obs.demo.lifecycle import ManagedProcess, free_port
from ouro_obs.metrics import HttpMetrics
from tests.sidecar.servers import ThreadedUvicorn
from tests.support.tools import REPO_ROOT

EXPORT = "/export/{report_id}"
EXPORT_BUCKETS = (1.0, 5.0, 30.0, 60.0, 120.0)
DURATION = "http_request_duration_seconds"


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def app(registry: CollectorRegistry | None = None) -> Starlette:
    return Starlette(
        routes=[Route(EXPORT, ok), Route("/items/{item_id}", ok)],
        middleware=[
            Middleware(
                ObservabilityMiddleware,
                registry=registry,
                access_log=False,
                tracing=False,
                route_duration_buckets={EXPORT: EXPORT_BUCKETS},
            )
        ],
    )


def multiprocess_app() -> Starlette:
    """uvicorn's factory in the multiprocess test (on the global registry, as workers are)."""
    return app()


def le_text(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def bucket_bounds(exposition: str, route: str) -> list[str]:
    """The ``le`` values of the duration histogram's buckets of ``route``, as exposed."""
    (family,) = (f for f in text_string_to_metric_families(exposition) if f.name == DURATION)
    return [
        sample.labels["le"]
        for sample in family.samples
        if sample.name == f"{DURATION}_bucket" and sample.labels["route"] == route
    ]


def bucket_counts(registry: CollectorRegistry, route: str) -> dict[str, float]:
    return {
        sample.labels["le"]: sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == f"{DURATION}_bucket" and sample.labels["route"] == route
    }


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text: str = response.read().decode()
    return text


def get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200


def test_a_scrape_shows_the_routes_own_buckets_and_the_default_ones_elsewhere() -> None:
    with ThreadedUvicorn(app(CollectorRegistry())) as server:
        get(f"{server.url}/export/7")
        get(f"{server.url}/items/7")
        exposition = scrape(server.url)

    assert bucket_bounds(exposition, EXPORT) == [*map(le_text, EXPORT_BUCKETS), "+Inf"]
    assert bucket_bounds(exposition, "/items/{item_id}") == [
        *map(le_text, DEFAULT_DURATION_BUCKETS),
        "+Inf",
    ]
    assert exposition.count(f"# TYPE {DURATION} histogram") == 1


@pytest.mark.parametrize("trace_id", [None, "4bf92f3577b34da6a3ce929d0e0e4736"])
def test_an_observation_lands_in_the_routes_own_bucket(trace_id: str | None) -> None:
    """Both recording paths: the lock-free one and the exemplar one (a sampled trace)."""
    registry = CollectorRegistry()
    settings = ObservabilitySettings(route_duration_buckets={EXPORT: EXPORT_BUCKETS})
    metrics = HttpMetrics(settings, registry)

    metrics.observe("GET", EXPORT, 200, 45.0, 0, 10, trace_id)

    counts = bucket_counts(registry, EXPORT)
    assert (counts["30.0"], counts["60.0"], counts["+Inf"]) == (0.0, 1.0, 1.0)


def test_the_overflow_route_keeps_the_default_buckets() -> None:
    registry = CollectorRegistry()
    settings = ObservabilitySettings(route_duration_buckets={EXPORT: EXPORT_BUCKETS})
    metrics = HttpMetrics(settings.replace(max_label_sets=1), registry)

    metrics.observe("GET", "/items/{item_id}", 200, 0.2, 0, 10)
    metrics.observe("GET", EXPORT, 200, 45.0, 0, 10)

    assert list(bucket_counts(registry, "<overflow>")) == [
        *map(le_text, DEFAULT_DURATION_BUCKETS),
        "+Inf",
    ]


def test_middlewares_sharing_a_registry_must_agree_on_route_buckets() -> None:
    registry = CollectorRegistry()
    HttpMetrics(ObservabilitySettings(route_duration_buckets={EXPORT: (1, 5)}), registry)

    with pytest.raises(ConfigError, match="other buckets or labels"):
        HttpMetrics(ObservabilitySettings(route_duration_buckets={EXPORT: (1, 10)}), registry)


def test_two_uvicorn_workers_in_multiprocess_mode_expose_the_routes_own_buckets(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ManagedProcess(
        argv=[
            sys.executable, "-m", "uvicorn", "--factory",
            "tests.metrics.test_route_buckets:multiprocess_app",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
            "--no-access-log", "--log-level", "warning",
        ],
        ready_url=f"{url}/health/live",
        env={"PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(REPO_ROOT)},
        cwd=REPO_ROOT,
        log_path=tmp_path / "uvicorn.log",
    )  # fmt: skip
    with server:
        for report_id in range(20):
            get(f"{url}/export/{report_id}")
        get(f"{url}/items/1")
        exposition = scrape(url)

    assert list(directory.glob("histogram_*.db")), "the workers wrote no multiprocess files"
    assert bucket_bounds(exposition, EXPORT) == [*map(le_text, EXPORT_BUCKETS), "+Inf"]
    assert bucket_bounds(exposition, "/items/{item_id}")[-2:] == ["10.0", "+Inf"]
    (family,) = (f for f in text_string_to_metric_families(exposition) if f.name == DURATION)
    exported = {
        sample.labels["le"]: sample.value
        for sample in family.samples
        if sample.name == f"{DURATION}_bucket" and sample.labels["route"] == EXPORT
    }
    assert exported["+Inf"] == 20.0


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        ({"export": (1, 5)}, r"route_duration_buckets\['export'\]: not a route template"),
        ({"/items/{item_id:int}": (1,)}, "without the converter"),
        ({EXPORT: ()}, "give a non-empty list of bounds"),
        ({EXPORT: "1,5"}, "give a non-empty list of bounds"),
        ({EXPORT: (5, 1)}, "strictly increasing"),
        ({EXPORT: (1, 1)}, "strictly increasing"),
        ({EXPORT: (0, 1)}, "0 is not a positive, finite number"),
        ({EXPORT: (1, math.inf)}, "inf is not a positive, finite number"),
        ({EXPORT: (1, math.nan)}, "nan is not a positive, finite number"),
        ({EXPORT: (1, "5")}, "'5' is not a number of seconds"),
    ],
)
def test_bad_route_buckets_are_refused_naming_the_setting(
    buckets: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ObservabilitySettings(route_duration_buckets=buckets)  # type: ignore[arg-type]


def test_route_buckets_come_from_the_environment() -> None:
    settings = ObservabilitySettings.from_env(
        {"OURO_OBS_ROUTE_DURATION_BUCKETS": f"{EXPORT}=1,5,30; /reports=0.5,2"}
    )

    assert settings.route_duration_buckets == ((EXPORT, (1.0, 5.0, 30.0)), ("/reports", (0.5, 2.0)))


def test_a_malformed_environment_value_names_the_variable() -> None:
    with pytest.raises(
        ConfigError, match=r"OURO_OBS_ROUTE_DURATION_BUCKETS='1,5,30': .* is not /route"
    ):
        ObservabilitySettings.from_env({"OURO_OBS_ROUTE_DURATION_BUCKETS": "1,5,30"})


@pytest.mark.parametrize(
    "option", [{"route_duration_buckets": {EXPORT: (1, 5)}}, {"inflight_by_route": True}]
)
def test_the_route_options_are_refused_with_opentelemetry_metrics(
    option: dict[str, object],
) -> None:
    """A View picks buckets per instrument, and OTel's active requests have no route."""
    with pytest.raises(ConfigError, match="does not apply to metrics_backend='opentelemetry'"):
        ObservabilitySettings(metrics_backend="opentelemetry", **option)  # type: ignore[arg-type]
