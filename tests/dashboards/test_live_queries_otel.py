"""The OpenTelemetry metrics mode, end to end: every dashboard query returns data.

The example shop runs under uvicorn with ``OURO_OBS_METRICS_BACKEND=opentelemetry``: its
metrics are the HTTP semantic-convention instruments on a MeterProvider, served on the
metrics port by opentelemetry-exporter-prometheus. A real Prometheus scrapes them and
evaluates the rules generated from the ``otel-naming`` spec (the shop's SLOs with
``metrics: {naming: opentelemetry}``); each dashboard query then runs as Grafana would
send it. The Prometheus-mode version, whose helpers this reuses, is test_live_queries.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ouro_obs.demo.lifecycle import free_port
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.conventions import dashboard_paths, rule_file_path, series_names
from ouro_obs.slo.dashboards import ALL_VALUE
from ouro_obs.slo.spec import load_spec

# The panel checks of the Prometheus naming, collected here again: they run against this
# module's `shop` fixture, an app in the OpenTelemetry mode.
from tests.dashboards.test_live_queries import (  # noqa: F401
    JOB,
    NAMESPACE,
    LiveShop,
    Traffic,
    rules_evaluated_every_second,
    substitute,
    test_a_route_that_was_never_requested_empties_the_route_panels,
    test_every_overview_query_returns_data_for_one_selected_route,
    test_every_panel_query_returns_data_with_all_filters,
    values,
    wait_until_ready,
)
from tests.slo.support import golden_input
from tests.support.processes import PrometheusServer
from tests.support.shop import shop_process
from tests.support.tools import require_tool

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveShop]:
    prometheus_binary = require_tool("prometheus")
    spec = load_spec(golden_input("otel-naming"))
    files = generated_files(spec)
    workdir = tmp_path_factory.mktemp("live-dashboards-otel")
    rule_path = workdir / "shop.rules.yaml"
    rule_path.write_text(rules_evaluated_every_second(files[rule_file_path(spec)]))
    dashboards: dict[str, dict[str, Any]] = {
        kind: json.loads(files[path]) for kind, path in dashboard_paths(spec).items()
    }
    app_port, metrics_port = free_port(), free_port()
    app = shop_process(
        app_port,
        env={
            "OURO_OBS_METRICS_BACKEND": "opentelemetry",
            # The quiet default disables the whole SDK, metrics included; spans still
            # go nowhere (OTEL_TRACES_EXPORTER=none).
            "OTEL_SDK_DISABLED": "false",
            "OURO_OBS_METRICS_PORT": str(metrics_port),
            "OURO_OBS_METRICS_HOST": "127.0.0.1",
        },
    )
    prometheus = PrometheusServer(
        targets={JOB: [f"127.0.0.1:{metrics_port}"]},
        rule_files=[rule_path],
        binary=prometheus_binary,
        extra_labels={"namespace": NAMESPACE},
    )
    with app, prometheus, Traffic(f"http://127.0.0.1:{app_port}") as traffic:
        live = LiveShop(spec, prometheus, dashboards, traffic)
        wait_until_ready(live)
        yield live


def test_prometheus_scrapes_the_semantic_convention_series(shop: LiveShop) -> None:
    """What the names in conventions.py promise is what the exporter really exposes."""
    names = series_names(shop.spec)
    found = shop.prometheus.query(f'{names.requests}{{job="{JOB}"}}')
    labels = {name for sample in found for name in sample["metric"]}
    assert {names.method_label, names.route_label, names.status_label, "url_scheme"} <= labels
    assert {"otel_scope_name", "job", "instance", "namespace"} <= labels
    assert "error_type" in labels  # the 500s say why
    assert shop.prometheus.query(f'http_requests_total{{job="{JOB}"}}') == []
    assert values(shop.prometheus, f'count({names.requests_in_progress}{{job="{JOB}"}})') == [
        pytest.approx(len({"GET", "POST"}))
    ]


def test_the_route_variable_lists_the_http_route_values(shop: LiveShop) -> None:
    declared = {v["name"]: v for v in shop.dashboards["overview"]["templating"]["list"]}
    query = declared["route"]["query"]
    assert query.startswith("label_values(")
    assert query.endswith(", http_route)")
    selector = substitute(
        query.removeprefix("label_values(").rsplit(", ", 1)[0],
        {
            "namespace": ALL_VALUE,
            "job": ALL_VALUE,
        },
    )
    found = set(shop.prometheus.api("label/http_route/values", **{"match[]": selector}))
    assert {"/items/{item_id}", "/orders", "/orders/{order_id}", "<unmatched>"} <= found
