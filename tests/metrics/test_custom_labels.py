"""Static and per-request labels, each bounded (issue 13, item 2)."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ouro_obs import ConfigError, ObservabilityMiddleware, ObservabilitySettings
from ouro_obs.config import RequestLabel
from tests.metrics.asgi import client, label_sets
from tests.sidecar.servers import ThreadedUvicorn


async def tenant_item(request: Request) -> Response:
    request.state.plan = request.query_params.get("plan", "free")
    cache = request.query_params.get("cache", "miss")
    return PlainTextResponse("ok", headers={"x-cache": cache})


def app(registry: CollectorRegistry, **options: Any) -> Starlette:
    return Starlette(
        routes=[Route("/t/{tenant}/items/{item_id}", tenant_item)],
        middleware=[Middleware(ObservabilityMiddleware, registry=registry, **options)],
    )


def samples(registry: CollectorRegistry, name: str = "http_requests_total") -> list[dict[str, str]]:
    return sorted((dict(items) for items in label_sets(registry, name)), key=str)


async def test_static_labels_are_on_every_http_series(registry: CollectorRegistry) -> None:
    options = {"static_labels": {"version": "1.4.2", "track": "canary"}}
    async with client(app(registry, **options)) as http:
        await http.get("/t/acme/items/1")
    for name in (
        "http_requests_total",
        "http_request_duration_seconds_count",
        "http_request_size_bytes_count",
        "http_response_size_bytes_count",
        "http_requests_in_progress",
    ):
        found = samples(registry, name)
        assert found, name
        assert all(s["version"] == "1.4.2" and s["track"] == "canary" for s in found), name


async def test_each_source_supplies_its_label(registry: CollectorRegistry) -> None:
    labels = (
        RequestLabel("tenant", "path_param:tenant", max_values=10),
        RequestLabel("api_version", "header:x-api-version", allowed=frozenset({"1", "2"})),
        RequestLabel("plan", "state:plan", allowed=frozenset({"free", "pro"})),
        RequestLabel("cache", "response_header:x-cache", allowed=frozenset({"hit", "miss"})),
        RequestLabel("scheme", "scope:scheme", allowed=frozenset({"http", "https"})),
        RequestLabel("client_kind", lambda scope: "bot" * ("bot" in scope["path"]), max_values=2),
    )
    async with client(app(registry, request_labels=labels)) as http:
        await http.get("/t/acme/items/1?plan=pro&cache=hit", headers={"x-api-version": "2"})
    (sample,) = samples(registry)
    assert {k: sample[k] for k in ("tenant", "api_version", "plan", "cache", "scheme")} == {
        "tenant": "acme",
        "api_version": "2",
        "plan": "pro",
        "cache": "hit",
        "scheme": "http",
    }
    assert sample["client_kind"] == ""


async def test_values_outside_the_allow_list_go_to_overflow_and_are_counted(
    registry: CollectorRegistry,
) -> None:
    labels = (RequestLabel("api_version", "header:x-api-version", allowed=frozenset({"1"})),)
    async with client(app(registry, request_labels=labels)) as http:
        for version in ("1", "7", "evil-" * 10, ""):
            headers = {"x-api-version": version} if version else {}
            await http.get("/t/a/items/1", headers=headers)
    assert {s["api_version"] for s in samples(registry)} == {"1", "<overflow>", ""}
    overflowed = registry.get_sample_value(
        "ouro_obs_request_label_overflow_total", {"label": "api_version"}
    )
    assert overflowed == 2.0


async def test_a_value_cap_keeps_the_first_values_and_overflows_the_rest(
    registry: CollectorRegistry,
) -> None:
    labels = (RequestLabel("tenant", "path_param:tenant", max_values=3),)
    async with client(app(registry, request_labels=labels)) as http:
        for tenant in ("a", "b", "c", "d", "e", "a"):
            await http.get(f"/t/{tenant}/items/1")
    counts = {s["tenant"]: s for s in samples(registry)}
    assert set(counts) == {"a", "b", "c", "<overflow>"}
    assert (
        registry.get_sample_value(
            "http_requests_total",
            {
                "method": "GET",
                "route": "/t/{tenant}/items/{item_id}",
                "status": "200",
                "tenant": "a",
            },
        )
        == 2.0
    )
    assert (
        registry.get_sample_value("ouro_obs_request_label_overflow_total", {"label": "tenant"})
        == 2.0
    )


async def test_a_failing_extractor_gives_the_missing_value_and_keeps_the_metrics(
    registry: CollectorRegistry,
) -> None:
    def broken(scope: Any) -> str:
        raise RuntimeError("extractor bug")

    labels = (RequestLabel("kind", broken, max_values=5, missing="unknown"),)
    async with client(app(registry, request_labels=labels)) as http:
        response = await http.get("/t/a/items/1")
    assert response.status_code == 200
    assert [s["kind"] for s in samples(registry)] == ["unknown"]
    errors = registry.get_sample_value("ouro_obs_instrumentation_errors_total", {"stage": "labels"})
    assert errors == 1.0


def test_labels_come_from_the_environment() -> None:
    settings = ObservabilitySettings.from_env(
        {
            "OURO_OBS_STATIC_LABELS": "version=1.4.2, track=canary",
            "OURO_OBS_REQUEST_LABELS": (
                "tenant=header:x-tenant;max_values=50,cache=response_header:x-cache;allowed=hit|miss"
            ),
        }
    )
    assert settings.static_labels == (("track", "canary"), ("version", "1.4.2"))
    assert settings.request_labels == (
        RequestLabel("tenant", "header:x-tenant", max_values=50),
        RequestLabel("cache", "response_header:x-cache", allowed=frozenset({"hit", "miss"})),
    )
    assert settings.extra_label_names == ("track", "version", "tenant", "cache")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"request_labels": (RequestLabel("t", "header:x", max_values=1),) * 2}, "more than once"),
        ({"static_labels": {"route": "x"}}, "a label ouro-obs writes itself"),
        ({"static_labels": {"9lives": "x"}}, "is not a usable label name"),
    ],
)
def test_a_bad_label_declaration_names_the_problem(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ObservabilitySettings(**options)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"source": "header:x-tenant"}, "give allowed=... (the values to keep) or max_values=N"),
        ({"source": "cookie:sid", "max_values": 3}, "must be kind:key"),
        ({"source": "header:x", "max_values": 0}, "must be at least 1"),
    ],
)
def test_an_unbounded_or_unknown_request_label_is_refused(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        RequestLabel("tenant", **arguments)


def test_through_uvicorn_request_labels_reach_the_scrape(registry: CollectorRegistry) -> None:
    labels = (RequestLabel("cache", "response_header:x-cache", allowed=frozenset({"hit", "miss"})),)
    options = {"request_labels": labels, "static_labels": {"version": "2"}}
    with ThreadedUvicorn(app(registry, **options)) as server:
        for cache in ("hit", "hit", "miss"):
            with urllib.request.urlopen(f"{server.url}/t/a/items/1?cache={cache}", timeout=10):
                pass
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
            scrape = response.read().decode()
    assert (
        'http_requests_total{cache="hit",method="GET",route="/t/{tenant}/items/{item_id}",'
        'status="200",version="2"} 2.0'
    ) in _sorted_label_lines(scrape)


def _sorted_label_lines(scrape: str) -> set[str]:
    """Each sample line with its labels sorted by name, so the assertion reads plainly."""
    lines = set()
    for line in scrape.splitlines():
        match = re.fullmatch(r"(\w+)\{(.*)\} (\S+)", line)
        if match:
            labels = ",".join(sorted(re.findall(r'\w+="[^"]*"', match.group(2))))
            lines.add(f"{match.group(1)}{{{labels}}} {match.group(3)}")
    return lines
