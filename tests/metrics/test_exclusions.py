"""Exclusions by prefix, pattern and method, and the opt-in status-class label (issue 13, item 3)."""

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
from ouro_obs.slo.spec.model import DEFAULT_ERROR_STATUS_REGEX
from tests.metrics.asgi import client, routes_seen
from tests.sidecar.servers import ThreadedUvicorn


async def answer(request: Request) -> Response:
    return PlainTextResponse("ok", status_code=int(request.query_params.get("status", "200")))


ROUTES = ["/admin", "/admin/stats", "/administrators", "/internal/{x}", "/items/{item_id}"]


def app(registry: CollectorRegistry, **options: Any) -> Starlette:
    return Starlette(
        routes=[Route(path, answer, methods=["GET", "OPTIONS", "POST"]) for path in ROUTES],
        middleware=[Middleware(ObservabilityMiddleware, registry=registry, **options)],
    )


async def test_a_prefix_excludes_the_path_and_everything_below_it_only(
    registry: CollectorRegistry,
) -> None:
    async with client(app(registry, excluded_path_prefixes=("/admin",))) as http:
        for path in ("/admin", "/admin/stats", "/administrators"):
            assert (await http.get(path)).status_code == 200
    assert routes_seen(registry) == {("GET", "/administrators", "200")}


async def test_a_pattern_excludes_the_paths_it_matches_in_full(
    registry: CollectorRegistry,
) -> None:
    async with client(app(registry, excluded_path_patterns=(r"/internal/\d+",))) as http:
        await http.get("/internal/42")
        await http.get("/internal/abc")
    assert routes_seen(registry) == {("GET", "/internal/{x}", "200")}


async def test_an_excluded_method_is_not_measured(registry: CollectorRegistry) -> None:
    async with client(app(registry, excluded_methods=frozenset({"options"}))) as http:
        await http.options("/items/1")
        await http.get("/items/1")
    assert routes_seen(registry) == {("GET", "/items/{item_id}", "200")}


def test_exclusions_come_from_the_environment() -> None:
    settings = ObservabilitySettings.from_env(
        {
            "OURO_OBS_EXCLUDED_PATH_PREFIXES": "/admin, /debug",
            "OURO_OBS_EXCLUDED_PATH_PATTERNS": r"/internal/\d{1,3} /tmp/.*",
            "OURO_OBS_EXCLUDED_METHODS": "OPTIONS,head",
            "OURO_OBS_STATUS_CLASS_LABEL": "true",
        }
    )
    assert settings.excluded_path_prefixes == ("/admin", "/debug")
    assert settings.excluded_path_patterns == (r"/internal/\d{1,3}", "/tmp/.*")
    assert settings.excluded_methods == frozenset({"OPTIONS", "HEAD"})
    assert settings.status_class_label is True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"excluded_path_prefixes": ("admin",)}, "must start with '/'"),
        ({"excluded_path_patterns": ("/items/(",)}, "is not a regular expression"),
    ],
)
def test_a_bad_exclusion_names_the_setting(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ObservabilitySettings(**options)


async def test_the_status_class_label_groups_codes_by_class(registry: CollectorRegistry) -> None:
    async with client(app(registry, status_class_label=True)) as http:
        for status in (200, 201, 204, 404, 503, 500):
            await http.get(f"/items/1?status={status}")
    counts = {
        status: registry.get_sample_value(
            "http_requests_total", {"method": "GET", "route": "/items/{item_id}", "status": status}
        )
        for status in ("2xx", "4xx", "5xx")
    }
    assert counts == {"2xx": 3.0, "4xx": 1.0, "5xx": 2.0}


def test_the_slo_error_selector_still_counts_only_the_5xx_class() -> None:
    """PromQL regexes are anchored like re.fullmatch: ``5..`` matches ``5xx`` and no other."""
    classes = ["1xx", "2xx", "3xx", "4xx", "5xx"]
    assert [c for c in classes if re.fullmatch(DEFAULT_ERROR_STATUS_REGEX, c)] == ["5xx"]


def test_through_uvicorn_exclusions_and_status_classes_apply(registry: CollectorRegistry) -> None:
    options = {"excluded_path_prefixes": ("/admin",), "status_class_label": True}
    with ThreadedUvicorn(app(registry, **options)) as server:
        for path in ("/admin/stats", "/items/3", "/items/4?status=201"):
            with urllib.request.urlopen(server.url + path, timeout=10) as response:
                assert response.status in (200, 201)
    assert routes_seen(registry) == {("GET", "/items/{item_id}", "2xx")}
