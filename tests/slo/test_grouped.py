"""Grouped SLOs (issue 14 item 2): one broken route pages even when the others are fine.

``group_by`` computes the SLI, burn rates, budget and alerts per label set; ``max_groups``
caps the label sets (each rule group's ``limit``) and a ticket says when traffic holds
more. A spec selecting by ``cluster`` keeps that label in every aggregation too.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ouro_obs.slo import conventions
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.budget import Sample, gate_exit_code, report_text, slo_budgets
from ouro_obs.slo.dashboards import slo_dashboard
from ouro_obs.slo.promtool_traffic import Traffic
from ouro_obs.slo.rules import AlertRule, RecordingRule, rule_groups
from ouro_obs.slo.spec import ServiceSpec, SpecError, parse_spec, spec_json_schema
from tests.slo.support import promtool
from tests.support.tools import require_tool

SPEC = """\
apiVersion: ouro-obs/v1
service: shop
runbook_base_url: https://runbooks.example.com/shop
labels: {team: storefront}
slos:
  - name: latency
    objective: 99
    group_by: [route]
    max_groups: 2
    sli:
      kind: latency
      threshold_seconds: 0.5
      routes: ["/items/{item_id}", /orders, /cart]
  - name: availability
    objective: 99.9
    sli: {kind: availability}
"""
ROUTES = ("/items/{item_id}", "/orders", "/cart")


def _spec(text: str = SPEC) -> ServiceSpec:
    return parse_spec(text)


def _rules(spec: ServiceSpec, slo_name: str) -> list[RecordingRule | AlertRule]:
    return [
        rule
        for group in rule_groups(spec)
        if group.name.startswith(f"{spec.service}-slo-{slo_name}")
        for rule in group.rules
    ]


# ---------------------------------------------------------------- the spec


def test_group_by_and_max_groups_load() -> None:
    latency, availability = _spec().slos
    assert (latency.group_by, latency.max_groups) == (("route",), 2)
    assert (availability.group_by, availability.max_groups) == ((), 100)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("group_by: [route]", None),
        ("group_by: [status]", "slos[0].group_by[0]: 'status' cannot be a group label"),
        ("group_by: [instance]", "slos[0].group_by[0]: 'instance' cannot be a group label"),
        ("group_by: [2x]", "slos[0].group_by[0]: '2x' is not a Prometheus label name"),
        ("group_by: []", "slos[0].group_by: must be a non-empty list of label names"),
        ("group_by: [route, route]", "slos[0].group_by: 'route' is listed twice"),
        ("max_groups: 0", "slos[0].max_groups: 0 is not between 1 and 10000"),
        ("max_groups: lots", "slos[0].max_groups: must be a whole number of groups"),
    ],
)
def test_a_bad_grouping_is_refused_with_its_place(change: str, message: str | None) -> None:
    key = change.split(":", maxsplit=1)[0]
    text = re.sub(rf"^    {key}: .*$", f"    {change}", SPEC, count=1, flags=re.M)
    if message is None:
        parse_spec(text)
        return
    with pytest.raises(SpecError) as raised:
        parse_spec(text)
    assert message in str(raised.value)


def test_grouping_by_a_route_the_sli_selects_alone_is_refused() -> None:
    text = SPEC.replace('routes: ["/items/{item_id}", /orders, /cart]', "routes: [/orders]")
    with pytest.raises(SpecError, match=r"slos\[0\].group_by: the SLI selects one route only"):
        parse_spec(text)


def test_max_groups_without_group_by_is_refused() -> None:
    text = SPEC.replace(
        "    sli: {kind: availability}", "    max_groups: 5\n    sli: {kind: availability}"
    )
    with pytest.raises(
        SpecError,
        match=r"slos\[1\].max_groups: only applies to a grouped SLO; add slos\[1\].group_by$",
    ):
        parse_spec(text)


def test_the_json_schema_knows_the_grouping() -> None:
    schema = spec_json_schema()
    document = yaml.safe_load(SPEC)
    jsonschema.validate(document, schema)
    document["slos"][0]["group_by"] = ["status"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


# ---------------------------------------------------------------- the rules


def test_every_aggregation_of_a_grouped_slo_keeps_its_group_labels() -> None:
    sums = 0
    for rule in _rules(_spec(), "latency"):
        for aggregation in re.findall(r"\bsum(?: by \(([^)]*)\))? \(?", rule.expr):
            assert "route" in aggregation, rule
            sums += 1
    assert sums > 20


def test_an_ungrouped_slo_keeps_one_series() -> None:
    for rule in _rules(_spec(), "availability"):
        assert " by (" not in rule.expr.replace("sum by (service, slo)", "")


def test_the_low_traffic_guard_counts_each_groups_own_requests() -> None:
    spec = _spec()
    page = next(r for r in _rules(spec, "latency") if isinstance(r, AlertRule))
    assert page.alert == "ShopLatencyErrorBudgetBurnPage"
    assert page.expr.count("and on (route)") == 2
    assert "and on ()" not in page.expr
    assert "route={{ $labels.route }}" in page.annotations["summary"]


def test_a_grouped_slos_rule_groups_are_limited_to_max_groups() -> None:
    limits = {group.name: group.limit for group in rule_groups(_spec())}
    assert limits == {
        "shop-slo-latency": 2,
        "shop-slo-latency-events": 2,
        "shop-slo-latency-period": 2,
        "shop-slo-availability": None,
        "shop-slo-availability-events": None,
        "shop-slo-availability-period": None,
        "shop-alerts": None,
    }
    rule_file = yaml.safe_load(generated_files(_spec())["alerts/shop.rules.yaml"])
    assert [g.get("limit") for g in rule_file["groups"]] == list(limits.values())


def test_too_many_groups_is_a_ticket_outside_the_limited_groups() -> None:
    service = {
        rule.alert: rule for rule in rule_groups(_spec())[-1].rules if isinstance(rule, AlertRule)
    }
    ticket = service["ShopLatencyTooManyGroups"]
    assert ticket.expr.startswith("count(\n  sum by (route) (increase(")
    assert ticket.expr.endswith(") > 2")
    assert ticket.labels["urgency"] == "ticket"


CLUSTER_SPEC = SPEC.replace(
    "labels: {team: storefront}", "labels: {team: storefront}\nselector: {job: shop, cluster: eu-1}"
)


def test_a_spec_that_selects_a_cluster_keeps_it_in_every_aggregation() -> None:
    spec = _spec(CLUSTER_SPEC)
    for rule in _rules(spec, "availability"):
        for aggregation in re.findall(r"\bsum(?: by \(([^)]*)\))? \(", rule.expr):
            assert "cluster" in aggregation, rule
    page = next(r for r in _rules(spec, "availability") if isinstance(r, AlertRule))
    assert "and on (cluster)" in page.expr
    latency_page = next(r for r in _rules(spec, "latency") if isinstance(r, AlertRule))
    assert "and on (route, cluster)" in latency_page.expr


# ---------------------------------------------------------------- the dashboards


def _variables(spec: ServiceSpec) -> dict[str, str]:
    dashboard = slo_dashboard(spec)
    return {v["name"]: v.get("query", "") for v in dashboard["templating"]["list"]}


def _expressions(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["expr"]] if isinstance(value.get("expr"), str) else []
        return found + [e for item in value.values() for e in _expressions(item)]
    if isinstance(value, list):
        return [e for item in value for e in _expressions(item)]
    return []


def test_the_slo_dashboard_has_a_variable_per_group_label_and_narrows_by_it() -> None:
    spec = _spec()
    variables = _variables(spec)
    assert "cluster" not in variables
    assert variables["route"] == (
        'label_values(slo:sli_error:ratio_rate30d{service="shop"}, route)'
    )
    latency = [e for e in _expressions(slo_dashboard(spec)) if 'slo="latency"' in e]
    narrowed = [e for e in latency if 'route=~"$route"' in e]
    # Every latency query but the objective (one for every group) picks the routes.
    assert len(narrowed) == len(latency) - 1 > 5
    availability = [e for e in _expressions(slo_dashboard(spec)) if 'slo="availability"' in e]
    assert not any("$route" in e for e in availability)


def test_a_spec_that_selects_a_cluster_gets_a_cluster_variable() -> None:
    variables = _variables(_spec(CLUSTER_SPEC))
    assert list(variables)[1:3] == ["cluster", "route"]


# ---------------------------------------------------------------- the budget


def test_the_budget_gate_judges_every_group() -> None:
    spec = _spec()
    labels = conventions.slo_labels(spec, spec.slos[0])
    remaining = conventions.BUDGET_REMAINING_RECORD
    recordings = [
        Sample({"__name__": remaining, **labels, "route": "/orders"}, 0.8),
        Sample({"__name__": remaining, **labels, "route": "/cart"}, -0.5),
        Sample({"__name__": remaining, **conventions.slo_labels(spec, spec.slos[1])}, 0.9),
    ]
    budgets = slo_budgets(spec, recordings, [])
    assert [(dict(b.group), b.verdict) for b in budgets] == [
        ({"route": "/cart"}, "budget spent"),
        ({"route": "/orders"}, "ok"),
        ({}, "ok"),
    ]
    assert gate_exit_code(budgets) == 1
    assert "shop latency (route=/cart): 99 % over 30d" in report_text(spec, budgets)


# ---------------------------------------------------------------- promtool


def _write_rules(tmp_path: Path, spec: ServiceSpec) -> Path:
    files = generated_files(spec)
    for relative in (conventions.rule_file_path(spec), conventions.rule_test_path(spec)):
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files[relative])
    return tmp_path / conventions.rule_test_path(spec)


@pytest.mark.integration
def test_the_generated_tests_prove_one_broken_group_pages_alone(tmp_path: Path) -> None:
    binary = require_tool("promtool")
    spec = _spec(SPEC.replace("max_groups: 2", "max_groups: 10"))
    tests = _write_rules(tmp_path, spec)
    names = [t["name"] for t in yaml.safe_load(tests.read_text())["tests"]]
    assert any("pages alone; group route=/orders stays healthy" in n for n in names)
    assert any("does not lift its low-traffic guard" in n for n in names)
    run = promtool(binary, "test", tests)
    assert run.returncode == 0, f"{run.command}:\n{run.output}"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("broken", "failing"),
    [
        # One SLI for every route: the healthy route's traffic dilutes the broken one's.
        (("sum by (route) (rate(", "sum(rate("), "pages alone"),
        # One guard for every route: the busy clean route lifts the quiet failing one's.
        (("and on (route)", "and on ()"), "low-traffic guard"),
    ],
    ids=["aggregate-sli", "aggregate-guard"],
)
def test_the_group_scenarios_fail_when_the_rules_lose_the_groups(
    tmp_path: Path, broken: tuple[str, str], failing: str
) -> None:
    binary = require_tool("promtool")
    spec = _spec(SPEC.replace("max_groups: 2", "max_groups: 10"))
    tests = _write_rules(tmp_path, spec)
    rules = tmp_path / conventions.rule_file_path(spec)
    text = rules.read_text().replace(*broken)
    if broken[1] == "and on ()":
        text = text.replace("sum by (route) (increase(", "sum(increase(")
    rules.write_text(text)
    run = promtool(binary, "test", tests)
    assert run.returncode != 0
    assert failing in run.output


def _three_routes(spec: ServiceSpec) -> list[dict[str, str]]:
    """Traffic on every route; the first fails completely."""
    series: list[dict[str, str]] = []
    for index, route in enumerate(ROUTES):
        labels = {"route": route, "instance": f"10.0.0.{index + 1}:9464"}
        traffic = Traffic(spec, spec.slos[0], labels)
        traffic.add(120, Decimal(1000), Decimal(1) if index == 0 else Decimal(0))
        series += traffic.series()
    return series


def _cap_test(tmp_path: Path, rule_file: str, checks: list[dict[str, Any]]) -> Path:
    document = {
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "three routes, two allowed",
                "interval": "1m",
                "input_series": _three_routes(_spec()),
                "alert_rule_test": checks,
            }
        ],
    }
    test_file = tmp_path / "alerts" / "cap.test.yaml"
    test_file.write_text(yaml.safe_dump(document, sort_keys=False))
    return test_file


@pytest.mark.integration
def test_beyond_max_groups_every_rule_of_the_slo_fails_its_limit(tmp_path: Path) -> None:
    """Three routes with traffic against max_groups 2: Prometheus refuses the results of
    the latency rules (promtool reports each evaluation error), so even the route that
    fails completely cannot page."""
    binary = require_tool("promtool")
    spec = _spec()
    _write_rules(tmp_path, spec)
    page = {"eval_time": "2h", "alertname": "ShopLatencyErrorBudgetBurnPage", "exp_alerts": []}
    test_file = _cap_test(tmp_path, Path(conventions.rule_file_path(spec)).name, [page])
    run = promtool(binary, "test", test_file)
    assert run.returncode != 0
    refused = set(
        re.findall(r"rule: (\S+), time: \S+, err: exceeded limit of 2 with 3 series", run.output)
    )
    assert {
        "slo:sli_error:ratio_rate5m",
        "slo:sli_error:ratio_rate1h",
        "slo:sli_events:rate30m",
    } <= refused
    assert not re.search(
        r"rule: \S+, time: \S+, err: (?!exceeded limit of 2 with 3 series)", run.output
    )


@pytest.mark.integration
def test_beyond_max_groups_the_too_many_groups_ticket_fires(tmp_path: Path) -> None:
    """The ticket sits in the service alerts' group, which has no limit."""
    binary = require_tool("promtool")
    spec = _spec()
    rules = yaml.safe_load(generated_files(spec)[conventions.rule_file_path(spec)])
    service = [group for group in rules["groups"] if group["name"] == "shop-alerts"]
    assert "limit" not in service[0]
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "service.rules.yaml").write_text(yaml.safe_dump({"groups": service}))
    ticket = next(
        r
        for r in rule_groups(spec)[-1].rules
        if isinstance(r, AlertRule) and r.alert == "ShopLatencyTooManyGroups"
    )
    check = {
        "eval_time": "2h",
        "alertname": ticket.alert,
        "exp_alerts": [
            {
                "exp_labels": dict(ticket.labels),
                "exp_annotations": {
                    key: text.replace("{{ $value }}", str(len(ROUTES)))
                    for key, text in ticket.annotations.items()
                },
            }
        ],
    }
    run = promtool(binary, "test", _cap_test(tmp_path, "service.rules.yaml", [check]))
    assert run.returncode == 0, f"{run.command}:\n{run.output}"
