"""The generated dashboards, checked as Grafana would read them, for both specs."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from ouro_obs.contract import MetricNames
from ouro_obs.slo.conventions import DashboardKind, alert_names, dashboard_uid
from ouro_obs.slo.dashboards import (
    ALL_VALUE,
    DATASOURCE_VARIABLE,
    FILTER_VARIABLES,
    TRACES_VARIABLE,
    dashboard_artifacts,
)
from ouro_obs.slo.dashboards.grafana_model import SCHEMA_VERSION
from ouro_obs.slo.rules import RecordingRule, rule_groups
from tests.dashboards.support import SPECS, dashboards_of, panels, schema_errors, spec, targets

KINDS: tuple[DashboardKind, ...] = ("overview", "slo")
Case = tuple[str, DashboardKind, dict[str, Any]]
CASES = [(name, kind) for name in SPECS for kind in KINDS]
MODERN_PANEL_TYPES = {
    "timeseries",
    "stat",
    "gauge",
    "bargauge",
    "table",
    "heatmap",
    "state-timeline",
    "text",
    "row",
}
ANGULAR_PANEL_TYPES = {"graph", "singlestat", "table-old", "grafana-piechart-panel"}
DATASOURCE = {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE}}}"}
# A metric name right before a label selector or a range, as PromQL writes it.
METRIC_NAME = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
RANGE = re.compile(r"\[([^\]]+)\]")


def case_id(case: tuple[str, DashboardKind]) -> str:
    return "-".join(case)


@pytest.fixture(params=CASES, ids=case_id)
def case(request: pytest.FixtureRequest) -> Case:
    name, kind = request.param
    return name, kind, dashboards_of(spec(name))[kind]


@pytest.fixture(params=list(SPECS))
def overview(request: pytest.FixtureRequest) -> Case:
    return request.param, "overview", dashboards_of(spec(request.param))["overview"]


@pytest.fixture(params=list(SPECS))
def slos(request: pytest.FixtureRequest) -> Case:
    return request.param, "slo", dashboards_of(spec(request.param))["slo"]


def test_validates_against_grafanas_dashboard_schema(case: Case) -> None:
    _, _, dashboard = case
    assert schema_errors(dashboard) == []


def test_uses_the_current_schema_version_and_the_stable_uid(case: Case) -> None:
    name, kind, dashboard = case
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    assert dashboard["uid"] == dashboard_uid(spec(name).service, kind)


def test_panel_ids_are_unique(case: Case) -> None:
    _, _, dashboard = case
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), ids


def test_panels_do_not_overlap_and_fit_the_grid(case: Case) -> None:
    _, _, dashboard = case
    boxes = {panel["id"]: panel["gridPos"] for panel in panels(dashboard)}
    for box in boxes.values():
        assert box["x"] + box["w"] <= 24, box
    overlapping = [
        (first, second)
        for (first, a), (second, b) in itertools.combinations(boxes.items(), 2)
        if a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    ]
    assert overlapping == []


def test_every_panel_and_query_reads_the_datasource_variable(case: Case) -> None:
    _, _, dashboard = case
    content = [panel for panel in panels(dashboard) if panel["type"] != "row"]
    assert content
    assert [p["title"] for p in content if p.get("datasource") != DATASOURCE] == []
    assert [
        f"{panel['title']} {target['refId']}"
        for panel, target in targets(dashboard)
        if target.get("datasource") != DATASOURCE
    ] == []


def test_every_panel_has_queries_and_a_unit(case: Case) -> None:
    _, _, dashboard = case
    content = [panel for panel in panels(dashboard) if panel["type"] not in {"row", "text"}]
    assert [p["title"] for p in content if not p.get("targets")] == []
    assert [p["title"] for p in content if not p["fieldConfig"]["defaults"].get("unit")] == []


def test_only_modern_panel_types(case: Case) -> None:
    _, _, dashboard = case
    types = {panel["type"] for panel in panels(dashboard)}
    assert types <= MODERN_PANEL_TYPES
    assert not types & ANGULAR_PANEL_TYPES


def test_rows_group_the_panels(case: Case) -> None:
    _, _, dashboard = case
    top = dashboard["panels"]
    assert top[0]["type"] == "row"
    assert sum(panel["type"] == "row" for panel in top) >= 2


def test_has_no_export_inputs_and_declares_the_datasource_variable(case: Case) -> None:
    _, _, dashboard = case
    assert "__inputs" not in dashboard
    assert "__requires" not in dashboard
    variable = dashboard["templating"]["list"][0]
    assert (variable["name"], variable["type"], variable["query"]) == (
        DATASOURCE_VARIABLE,
        "datasource",
        "prometheus",
    )


def test_links_to_the_other_dashboard_keeping_time_and_variables(case: Case) -> None:
    name, kind, dashboard = case
    other: DashboardKind = "slo" if kind == "overview" else "overview"
    (link,) = dashboard["links"]
    assert link["url"] == f"/d/{dashboard_uid(spec(name).service, other)}"
    assert link["keepTime"]
    assert link["includeVars"]


def test_queries_name_only_the_services_metric_namespace(overview: Case) -> None:
    name, _, dashboard = overview
    names = MetricNames(spec(name).metrics_namespace)
    allowed = {
        names.requests_total,
        f"{names.request_duration}_bucket",
        f"{names.request_size}_bucket",
        f"{names.response_size}_bucket",
        names.requests_in_progress,
    }
    used = {m for _, t in targets(dashboard) for m in METRIC_NAME.findall(t["expr"])}
    assert used == allowed


def test_every_query_keeps_the_specs_selector(case: Case) -> None:
    name, kind, dashboard = case
    service_spec = spec(name)
    if kind == "overview":
        required = [
            f'{label}="{value}"' for label, value in service_spec.effective_selector.items()
        ]
    else:
        required = [f'service="{service_spec.service}"']
    missing = [
        f"{panel['title']}: {selector}"
        for panel, target in targets(dashboard)
        for selector in re.findall(r"\{[^}]*\}", re.sub(r"\{\{[^}]*\}\}", "", target["expr"]))
        if not all(matcher in selector for matcher in required)
    ]
    assert missing == []


def test_rates_follow_the_dashboard_interval(overview: Case) -> None:
    _, _, dashboard = overview
    for panel, target in targets(dashboard):
        expected = "$__range" if target["instant"] else "$__rate_interval"
        assert set(RANGE.findall(target["expr"])) <= {expected}, panel["title"]
    windows = {w for _, target in targets(dashboard) for w in RANGE.findall(target["expr"])}
    assert windows == {"$__range", "$__rate_interval"}


def test_the_overview_filters_by_namespace_job_and_route(overview: Case) -> None:
    name, _, dashboard = overview
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert set(variables) == {DATASOURCE_VARIABLE, *FILTER_VARIABLES, TRACES_VARIABLE}
    requests = MetricNames(spec(name).metrics_namespace).requests_total
    for label in FILTER_VARIABLES:
        variable = variables[label]
        assert variable["query"].startswith(f"label_values({requests}{{")
        assert variable["query"].endswith(f", {label})")
        assert (variable["includeAll"], variable["multi"], variable["allValue"]) == (
            True,
            True,
            ALL_VALUE,
        )
    for panel, target in targets(dashboard):
        assert '$namespace"' in target["expr"], panel["title"]
        assert '$job"' in target["expr"], panel["title"]


def test_latency_panels_ask_for_exemplars_and_link_to_traces(overview: Case) -> None:
    _, _, dashboard = overview
    exemplar_panels = {
        panel["title"] for panel, target in targets(dashboard) if target.get("exemplar")
    }
    assert exemplar_panels == {"Latency percentiles by route", "Latency distribution"}
    latency = next(p for p in panels(dashboard) if p["title"] == "Latency percentiles by route")
    (link,) = latency["links"]
    assert f"${{{TRACES_VARIABLE}}}" in link["url"]
    assert link["url"].startswith("/explore?")


def test_the_slo_dashboard_reads_only_rules_the_generator_writes(slos: Case) -> None:
    name, _, dashboard = slos
    service_spec = spec(name)
    records = {
        rule.record
        for group in rule_groups(service_spec)
        for rule in group.rules
        if isinstance(rule, RecordingRule)
    }
    used = {m for _, t in targets(dashboard) for m in METRIC_NAME.findall(t["expr"])}
    assert used - {"ALERTS"} <= records
    alerts = {
        alert
        for slo in service_spec.slos
        for alert in (alert_names(service_spec, slo).page, alert_names(service_spec, slo).ticket)
    }
    shown = {
        m for _, t in targets(dashboard) for m in re.findall(r'alertname="([^"]+)"', t["expr"])
    }
    assert shown == alerts


def test_the_slo_dashboard_has_a_row_per_slo(slos: Case) -> None:
    name, _, dashboard = slos
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert [row.split(":")[0] for row in rows[1:]] == [f"SLO {slo.name}" for slo in spec(name).slos]


def test_output_is_deterministic_with_sorted_keys() -> None:
    for name in SPECS:
        first, second = dashboard_artifacts(spec(name)), dashboard_artifacts(spec(name))
        assert json.dumps(first) == json.dumps(second)
        for path, document in first.items():
            if path.endswith(".json"):
                assert json.dumps(document) == json.dumps(document, sort_keys=True), path
