"""The spec's ``metrics.naming``: which names the rules, promtool tests and dashboards query.

``opentelemetry`` is the middleware's OpenTelemetry metrics mode as Prometheus scrapes it
through opentelemetry-exporter-prometheus; the live proof is
tests/dashboards/test_live_queries_otel.py, the promtool proof the ``otel-naming`` golden.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from ouro_obs.slo import conventions
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.spec import SpecError, load_spec, parse_spec, spec_json_schema
from tests.slo.support import golden_input

HEAD = """\
apiVersion: ouro-obs/v1
service: shop
runbook_base_url: https://runbooks.example.com/shop
"""
SLOS = """\
slos:
  - {name: availability, objective: 99.9, sli: {kind: availability}}
"""
#: Names and labels of the Prometheus backend, which an OpenTelemetry-named spec never reads.
PROMETHEUS_ONLY = re.compile(
    r"http_requests_total|http_request_duration_seconds|http_requests_in_progress"
    r"|http_re(?:quest|sponse)_size_bytes|[{,(]\s*(?:route|status|method)\s*(?:=|!=|=~|,|\))"
)


def test_the_naming_is_prometheus_unless_the_spec_says_otherwise() -> None:
    assert parse_spec(HEAD + SLOS).metrics.naming == "prometheus"
    spec = parse_spec(HEAD + "metrics:\n  naming: opentelemetry\n" + SLOS)
    assert spec.metrics.naming == "opentelemetry"
    names = conventions.series_names(spec)
    assert (names.requests, names.route_label, names.status_label) == (
        "http_server_request_duration_seconds_count",
        "http_route",
        "http_response_status_code",
    )
    assert names.requests_are_durations


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            HEAD + "metrics:\n  naming: statsd\n" + SLOS,
            "spec.yaml:5: metrics.naming: 'statsd' is not a naming; use prometheus (the "
            "middleware's default metrics) or opentelemetry (metrics_backend: opentelemetry, "
            "scraped through opentelemetry-exporter-prometheus)",
            id="unknown-naming",
        ),
        pytest.param(
            HEAD + "metrics_namespace: shop\nmetrics:\n  naming: opentelemetry\n" + SLOS,
            "spec.yaml:6: metrics.naming: opentelemetry names are the semantic conventions' "
            "and take no metrics_namespace; remove metrics_namespace (tell services apart "
            "with the selector)",
            id="namespace-with-opentelemetry",
        ),
        pytest.param(
            HEAD + "metrics:\n  nameing: opentelemetry\n" + SLOS,
            "spec.yaml:5: metrics.nameing: unknown field; did you mean 'naming'? known "
            "fields: naming",
            id="misspelt-field",
        ),
        pytest.param(
            HEAD + "selector: {http_route: /items}\n" + SLOS,
            "spec.yaml:4: selector.http_route: 'http_route' is set by ouro-obs; use another "
            "label name",
            id="selector-on-an-sli-label",
        ),
    ],
)
def test_a_bad_metrics_field_gets_the_exact_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert str(raised.value).replace(str(tmp_path) + "/", "") == message


def test_an_opentelemetry_spec_generates_no_query_over_the_prometheus_names() -> None:
    files = generated_files(load_spec(golden_input("otel-naming")))
    queried = [
        (path, line)
        for path, text in files.items()
        if path.startswith(("alerts/", "dashboards/"))
        for line in text.splitlines()
        if PROMETHEUS_ONLY.search(line)
    ]
    assert queried == []
    overview = json.loads(files["dashboards/shop-overview.json"])
    variables = {item["name"]: item for item in overview["templating"]["list"]}
    assert variables["route"]["query"].endswith(", http_route)")


def test_the_json_schema_knows_the_naming() -> None:
    validator = Draft7Validator(spec_json_schema())
    base = {
        "apiVersion": "ouro-obs/v1",
        "service": "shop",
        "runbook_base_url": "https://runbooks.example.com/shop",
        "slos": [{"name": "a", "objective": 99.9, "sli": {"kind": "availability"}}],
    }
    assert list(validator.iter_errors({**base, "metrics": {"naming": "opentelemetry"}})) == []
    assert list(validator.iter_errors({**base, "metrics": {"naming": "statsd"}})) != []


def test_an_opentelemetry_spec_groups_by_http_route_not_route(tmp_path: Path) -> None:
    text = (
        HEAD
        + "metrics:\n  naming: opentelemetry\n"
        + (
            "slos:\n"
            "  - name: latency\n"
            "    objective: 99\n"
            "    group_by: [route]\n"
            "    sli: {kind: latency, threshold_seconds: 0.5}\n"
        )
    )
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert str(raised.value).replace(str(tmp_path) + "/", "") == (
        "spec.yaml:9: slos[0].group_by: 'route' is called 'http_route' in the opentelemetry "
        "naming (metrics.naming); group by 'http_route'"
    )
    grouped = parse_spec(path.read_text().replace("[route]", "[http_route]"))
    assert grouped.slos[0].group_by == ("http_route",)
