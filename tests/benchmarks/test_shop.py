"""The server benchmarks' shop: 21 routes on Starlette and FastAPI, and what each contender records."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from benchmarks.exposition import (
    EXPOSITION_APPS,
    exposition_table,
    label_sets,
    run_exposition,
    sample_lines,
)
from benchmarks.inprocess import check, drive, get
from benchmarks.shop import RECORDED_PATH, SHOP_ROUTES, Served, shop_paths

from benchmarks import shop

METRICS_FACTORIES = [
    shop.ouro_obs_metrics_starlette,
    shop.starlette_exporter_starlette,
    shop.otel_asgi_metrics_starlette,
    shop.ouro_obs_metrics_fastapi,
    shop.instrumentator_fastapi,
]


def test_the_request_paths_cover_every_route_and_are_the_same_for_one_seed() -> None:
    paths = shop_paths(2000)
    patterns = [re.compile("^" + re.sub(r"\{\w+\}", "[0-9]+", t) + "$") for t in SHOP_ROUTES]

    assert paths == shop_paths(2000)
    assert all(any(p.match(path) for path in paths) for p in patterns)
    assert all(any(p.match(path) for p in patterns) for path in paths)


@pytest.mark.parametrize("factory", [shop.bare_starlette, shop.bare_fastapi])
async def test_every_route_of_the_bare_shop_answers_ok(factory: Callable[[], Served]) -> None:
    app = factory()
    for template in SHOP_ROUTES:
        await check(app, template, [re.sub(r"\{\w+\}", "7", template)])


@pytest.mark.parametrize("factory", METRICS_FACTORIES, ids=lambda f: f.__name__)
async def test_each_metrics_contender_records_every_request_it_serves(
    factory: Callable[[], Served],
) -> None:
    app = factory()
    before = app.recorded()["requests counted"]  # starlette-exporter's registry is global
    await drive(app, 300, shop_paths(300))

    assert app.recorded() == {"requests counted": before + 300}


@pytest.mark.parametrize(
    "factory", [shop.ouro_obs_metrics_starlette, shop.ouro_obs_metrics_fastapi]
)
async def test_ouro_obs_labels_all_21_routes_by_template_prefix_included(
    factory: Callable[[], Served],
) -> None:
    app = factory()
    await drive(app, 2000, shop_paths(2000))

    body = await _get(app, "/metrics")
    routes = set(re.findall(r'http_requests_total\{[^}]*route="([^"]+)"', body))
    assert routes == set(SHOP_ROUTES)


async def test_the_benchmark_s_own_question_is_answered_outside_the_instrumentation() -> None:
    app = shop.ouro_obs_metrics_fastapi()
    await drive(app, 5, shop_paths(5))

    first = json.loads(await _get(app, RECORDED_PATH))
    second = json.loads(await _get(app, RECORDED_PATH))

    assert first == second == {"requests counted": 5}


def test_label_sets_count_a_histogram_once_and_ignore_comments() -> None:
    body = (
        "# HELP d seconds\n# TYPE d histogram\n"
        'd_bucket{route="/a",le="0.1"} 1\nd_bucket{route="/a",le="+Inf"} 1\n'
        'd_count{route="/a"} 1\nd_sum{route="/a"} 0.05\n'
        'd_created{route="/a"} 1.7e9\nrequests_total{route="/a"} 1\nup 1\n'
    )

    assert len(sample_lines(body)) == 7
    assert label_sets(body) == 3  # d{route=/a}, requests{route=/a}, up{}


async def _get(app: Served, path: str) -> str:
    status, body = await get(app, path)
    assert status == 200
    return body.decode()


def test_an_in_process_exposition_run_scrapes_both_packages_after_their_requests() -> None:
    scrapes = run_exposition(requests=300, scrapes=2)

    assert [scrape.name for scrape in scrapes] == list(EXPOSITION_APPS)
    assert all(len(scrape.seconds) == 2 and scrape.lines > 0 for scrape in scrapes)
    ours = scrapes[0].body
    assert set(re.findall(r'http_requests_total\{[^}]*route="([^"]+)"', ours)) == set(SHOP_ROUTES)
    table = exposition_table(scrapes, 300).markdown()
    assert table.count("\n| ") == 4  # the header, its rule and a row per package
