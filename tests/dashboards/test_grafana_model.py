"""The step from grafanalib's JSON to Grafana's current dashboard model."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from grafanalib import core as grafana

from ouro_obs.slo.dashboards.grafana_model import (
    LEGACY_DASHBOARD_KEYS,
    SCHEMA_VERSION,
    datasource_ref,
    modernize_dashboard,
)
from tests.dashboards.support import schema_errors

PROMETHEUS_VARIABLE = {"type": "prometheus", "uid": "${datasource}"}


def encode(value: Any) -> Any:
    return value.to_json_data()


def two_panel_dashboard() -> dict[str, Any]:
    """What grafanalib 0.7.1 writes for two time series on a datasource variable."""
    panels = [
        grafana.TimeSeries(
            title=title,
            dataSource="${datasource}",
            targets=[grafana.Target(expr=expr, refId="A")],
            gridPos=grafana.GridPos(h=8, w=12, x=x, y=0),
            id=index + 1,
            unit="reqps",
        )
        for index, (title, expr, x) in enumerate(
            [("Requests", "sum(rate(http_requests_total[5m]))", 0), ("Up", "up", 12)]
        )
    ]
    dashboard = grafana.Dashboard(
        title="two panels",
        uid="two-panels",
        templating=grafana.Templating(
            [grafana.Template(name="datasource", query="prometheus", type="datasource")]
        ),
        panels=panels,
    )
    raw: dict[str, Any] = json.loads(json.dumps(dashboard.to_json_data(), default=encode))
    return raw


def test_grafanalib_alone_does_not_pass_the_schema() -> None:
    """The baseline the step exists for (DESIGN.md counts 14 errors)."""
    errors = schema_errors(two_panel_dashboard())
    assert len(errors) == 14, errors
    assert any("'__inputs'" in error and "'rows'" in error for error in errors)


def test_the_modern_two_panel_dashboard_passes_the_schema() -> None:
    assert schema_errors(modernize_dashboard(two_panel_dashboard())) == []


def test_legacy_dashboard_keys_and_the_numeric_id_are_gone() -> None:
    modern = modernize_dashboard(two_panel_dashboard())
    assert not LEGACY_DASHBOARD_KEYS & modern.keys()
    assert "id" not in modern
    assert "gnetId" not in modern
    assert "time_options" not in modern["timepicker"]
    assert modern["schemaVersion"] == SCHEMA_VERSION


def test_no_null_is_left_anywhere() -> None:
    text = json.dumps(modernize_dashboard(two_panel_dashboard()))
    assert "null" not in text


def test_the_null_of_a_base_threshold_step_is_kept() -> None:
    raw = two_panel_dashboard()
    raw["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"] = [
        {"color": "green", "value": None},
        {"color": "red", "value": 0.5},
    ]
    modern = modernize_dashboard(raw)
    steps = modern["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps == [{"color": "green", "value": None}, {"color": "red", "value": 0.5}]
    assert schema_errors(modern) == []


def test_string_datasources_become_references_to_the_variable() -> None:
    modern = modernize_dashboard(two_panel_dashboard())
    for panel in modern["panels"]:
        assert panel["datasource"] == PROMETHEUS_VARIABLE
        assert [target["datasource"] for target in panel["targets"]] == [PROMETHEUS_VARIABLE]


def test_prometheus_targets_lose_grafanalib_graphite_fields() -> None:
    target = modernize_dashboard(two_panel_dashboard())["panels"][0]["targets"][0]
    assert not {"query", "target", "metric", "step", "intervalFactor"} & target.keys()
    assert target["expr"] == "sum(rate(http_requests_total[5m]))"


def test_tag_fields_and_the_empty_selection_of_variables_are_gone() -> None:
    (variable,) = modernize_dashboard(two_panel_dashboard())["templating"]["list"]
    assert variable == {
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "sort": 1,
        "type": "datasource",
    }


def test_rows_keep_only_the_keys_of_the_row_model() -> None:
    raw = two_panel_dashboard()
    row = json.loads(
        json.dumps(
            grafana.RowPanel(title="Latency", id=3, gridPos=grafana.GridPos(h=1, w=24, x=0, y=8)),
            default=encode,
        )
    )
    raw["panels"].append(row)
    modern_row = modernize_dashboard(raw)["panels"][-1]
    assert modern_row == {
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": 8},
        "id": 3,
        "panels": [],
        "title": "Latency",
        "type": "row",
    }


def test_the_old_table_keys_are_dropped() -> None:
    raw = two_panel_dashboard()
    table = json.loads(
        json.dumps(
            grafana.Table(title="Top", dataSource="${datasource}", id=4, unit="s"),
            default=encode,
        )
    )
    assert {"columns", "fontSize", "mappings", "color"} <= table.keys()
    raw["panels"].append(table)
    modern = modernize_dashboard(raw)
    assert not {"columns", "fontSize", "mappings", "color"} & modern["panels"][-1].keys()
    assert schema_errors(modern) == []


def test_the_input_is_left_unchanged() -> None:
    raw = two_panel_dashboard()
    before = copy.deepcopy(raw)
    modernize_dashboard(raw)
    assert raw == before


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("$datasource", PROMETHEUS_VARIABLE),
        ("${datasource}", PROMETHEUS_VARIABLE),
        ("$other", {"uid": "${other}"}),
        ("prometheus-uid", {"uid": "prometheus-uid"}),
        ({"type": "loki", "uid": "x"}, {"type": "loki", "uid": "x"}),
    ],
)
def test_datasource_reference_of(given: Any, expected: Any) -> None:
    assert datasource_ref(given, {"datasource": "prometheus"}) == expected
