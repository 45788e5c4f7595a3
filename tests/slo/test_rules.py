"""The generated recording and alerting rules, read as data."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from ouro_obs.slo.conventions import alert_names, dashboard_uid
from ouro_obs.slo.promql import decimal_text
from ouro_obs.slo.rules import AlertRule, RecordingRule, Rule, rule_groups, sli_error_expr
from ouro_obs.slo.spec import ServiceSpec, parse_spec
from ouro_obs.slo.windows import all_windows

BASE = """
apiVersion: ouro-obs/v1
service: shop
runbook_base_url: https://runbooks.example.com/shop
grafana_url: https://grafana.example.com
labels: {team: storefront}
"""


def _spec(slos: str, extra: str = "") -> ServiceSpec:
    return parse_spec(BASE + extra + "slos:\n" + slos)


AVAILABILITY = "  - {name: availability, objective: 99.9, sli: {kind: availability}}\n"
LATENCY = (
    "  - {name: latency, objective: 99, window: 28d, "
    "sli: {kind: latency, threshold_seconds: 0.5, routes: ['/items/{item_id}', /orders]}}\n"
)


def _rules(spec: ServiceSpec) -> list[Rule]:
    return [rule for group in rule_groups(spec) for rule in group.rules]


def _recordings(spec: ServiceSpec) -> list[RecordingRule]:
    return [rule for rule in _rules(spec) if isinstance(rule, RecordingRule)]


def _alerts(spec: ServiceSpec) -> dict[str, AlertRule]:
    return {rule.alert: rule for rule in _rules(spec) if isinstance(rule, AlertRule)}


def test_thirty_day_slo_records_every_window_the_alerts_need_and_the_period() -> None:
    names = {rule.record for rule in _recordings(_spec(AVAILABILITY))}
    windows = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]
    assert names == {
        *(f"slo:sli_error:ratio_rate{w}" for w in windows),
        *(f"slo:burn_rate:ratio_rate{w}" for w in windows),
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:error_budget_remaining:ratio",
        # The SLO window's events ratio is summed from these recorded rates.
        "slo:sli_bad_events:rate30m",
        "slo:sli_events:rate30m",
        "slo:info",
        "slo:period:seconds",
    }


def test_scaled_windows_name_their_own_durations() -> None:
    names = {rule.record for rule in _recordings(_spec(LATENCY))}
    assert {f"slo:sli_error:ratio_rate{w.duration}" for w in all_windows(28)} <= names
    assert "slo:sli_error:ratio_rate2d19h12m" in names
    assert "slo:sli_error:ratio_rate3d" not in names


def test_every_recording_carries_the_service_slo_and_spec_labels() -> None:
    for rule in _recordings(_spec(AVAILABILITY + LATENCY)):
        described = {"objective", "window", "sli"} if rule.record == "slo:info" else set()
        assert set(rule.labels) == {"service", "slo", "team", *described}
        assert rule.labels["team"] == "storefront"
        assert rule.labels["service"] == "shop"
        assert rule.labels["slo"] in {"availability", "latency"}


def test_rule_groups_record_before_they_alert() -> None:
    groups = [group.name for group in rule_groups(_spec(AVAILABILITY + LATENCY))]
    assert groups == [
        "shop-slo-availability",
        "shop-slo-availability-events",
        "shop-slo-availability-period",
        "shop-slo-latency",
        "shop-slo-latency-events",
        "shop-slo-latency-period",
        "shop-alerts",
    ]


def test_numbers_are_exact_decimals_without_float_noise() -> None:
    spec = _spec(
        "  - {name: a, objective: 99.95, sli: {kind: availability}}\n"
        "  - {name: b, objective: 99.9, sli: {kind: availability}}\n"
    )
    text = "\n".join(rule.expr for rule in _rules(spec))
    assert not re.search(r"\d\.\d*(0000|9999)\d", text), "float noise in an expression"
    alerts = _alerts(spec)
    assert "> 0.0072" in alerts["ShopAErrorBudgetBurnPage"].expr  # 14.4 * 0.0005
    assert "> 0.0144" in alerts["ShopBErrorBudgetBurnPage"].expr  # 14.4 * 0.001
    assert "> 0.006" in alerts["ShopBErrorBudgetBurnPage"].expr
    assert "> 0.003" in alerts["ShopBErrorBudgetBurnTicket"].expr
    records = {(r.record, r.labels["slo"]): r.expr for r in _recordings(spec)}
    assert records[("slo:objective:ratio", "a")] == "vector(0.9995)"
    assert records[("slo:error_budget:ratio", "a")] == "vector(0.0005)"
    assert records[("slo:burn_rate:ratio_rate1h", "b")].endswith("/\n0.001")


@pytest.mark.parametrize(
    ("value", "text"),
    [("14.4", "14.4"), ("0.00100", "0.001"), ("6E+1", "60"), ("1E-7", "0.0000001")],
)
def test_decimal_text_is_plain_notation(value: str, text: str) -> None:
    assert decimal_text(Decimal(value)) == text


def test_availability_counts_error_statuses_over_all_requests_of_the_service() -> None:
    spec = _spec(AVAILABILITY)
    expr = sli_error_expr(spec, spec.slos[0], all_windows(30)[0])
    assert 'sum(rate(http_requests_total{job="shop",status=~"5.."}[5m]))' in expr
    assert "or vector(0)" in expr
    # Only windows with traffic have a ratio: 0 / 0 would be NaN.
    assert expr.endswith('(\n  sum(rate(http_requests_total{job="shop"}[5m])) > 0\n)')


def test_latency_counts_requests_above_the_bucket_with_prometheus_le_labels() -> None:
    spec = _spec(LATENCY)
    expr = sli_error_expr(spec, spec.slos[0], all_windows(28)[0])
    routes = r'route=~"/items/\\{item_id\\}|/orders"'
    assert f'http_request_duration_seconds_bucket{{job="shop",{routes},le="0.5"}}[5m]' in expr
    assert f'http_request_duration_seconds_count{{job="shop",{routes}}}[5m]' in expr
    whole = _spec("  - {name: l, objective: 99, sli: {kind: latency, threshold_seconds: 1}}\n")
    assert 'le="1.0"' in sli_error_expr(whole, whole.slos[0], all_windows(30)[0])


def test_selector_metrics_namespace_and_methods_reach_every_query() -> None:
    spec = _spec(
        "  - {name: a, objective: 99.9, sli: {kind: availability, methods: [GET, POST]}}\n",
        extra="selector: {namespace: prod, job: api}\nmetrics_namespace: myapp\n",
    )
    expr = sli_error_expr(spec, spec.slos[0], all_windows(30)[0])
    assert 'myapp_http_requests_total{namespace="prod",job="api",method=~"GET|POST"}' in expr
    assert 'absent(myapp_http_requests_total{namespace="prod",job="api"})' in [
        rule.expr for rule in _alerts(spec).values()
    ]


def test_page_and_ticket_alerts_have_distinct_names_per_slo() -> None:
    spec = _spec(AVAILABILITY + LATENCY)
    names = [alert_names(spec, slo) for slo in spec.slos]
    flat = [name for pair in names for name in (pair.page, pair.ticket)]
    assert len(set(flat)) == 4
    assert names[0].page == "ShopAvailabilityErrorBudgetBurnPage"
    assert names[1].ticket == "ShopLatencyErrorBudgetBurnTicket"
    assert set(_alerts(spec)) == {*flat, "ShopTargetDown", "ShopMetricsAbsent"}


def test_page_is_the_workbook_pair_of_multiwindow_conditions_with_the_traffic_guard() -> None:
    expr = _alerts(_spec(AVAILABILITY))["ShopAvailabilityErrorBudgetBurnPage"].expr
    conditions = expr.split("\nor\n")
    assert len(conditions) == 2
    assert 'ratio_rate5m{service="shop",slo="availability"} > 0.0144' in conditions[0]
    assert 'ratio_rate1h{service="shop",slo="availability"} > 0.0144' in conditions[0]
    assert 'sum(increase(http_requests_total{job="shop"}[1h])) >= 100' in conditions[0]
    assert 'ratio_rate30m{service="shop",slo="availability"} > 0.006' in conditions[1]
    assert 'sum(increase(http_requests_total{job="shop"}[6h])) >= 100' in conditions[1]
    # The short window comes first so that {{ $value }} is the current error ratio.
    assert conditions[0].index("ratio_rate5m") < conditions[0].index("ratio_rate1h")


def test_the_low_traffic_guard_follows_the_spec_and_never_guards_tickets() -> None:
    guarded = _alerts(_spec(AVAILABILITY, extra="page_min_requests: 25\n"))
    assert ">= 25" in guarded["ShopAvailabilityErrorBudgetBurnPage"].expr
    assert "increase" not in guarded["ShopAvailabilityErrorBudgetBurnTicket"].expr
    unguarded = _alerts(_spec(AVAILABILITY, extra="page_min_requests: 0\n"))
    assert "increase" not in unguarded["ShopAvailabilityErrorBudgetBurnPage"].expr


def test_every_alert_has_summary_description_with_value_runbook_and_dashboard() -> None:
    spec = _spec(AVAILABILITY + LATENCY)
    for name, rule in _alerts(spec).items():
        annotations = rule.annotations
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
        assert "{{ $value" in annotations["description"], name
        assert annotations["runbook_url"] == f"https://runbooks.example.com/shop#{name.lower()}"
        uid = dashboard_uid("shop", "slo")
        assert annotations["dashboard_url"] == f"https://grafana.example.com/d/{uid}"


def test_alert_labels_route_pages_and_tickets_and_carry_the_team() -> None:
    spec = _spec(AVAILABILITY, extra="page_labels: {severity: critical, pager: 'yes'}\n")
    alerts = _alerts(spec)
    assert alerts["ShopAvailabilityErrorBudgetBurnPage"].labels == {
        "service": "shop",
        "slo": "availability",
        "team": "storefront",
        "severity": "critical",
        "pager": "yes",
        "urgency": "page",
    }
    assert alerts["ShopAvailabilityErrorBudgetBurnTicket"].labels["severity"] == "warning"
    assert alerts["ShopTargetDown"].expr == 'up{job="shop"} == 0'
    assert alerts["ShopTargetDown"].labels["severity"] == "warning"
    assert alerts["ShopMetricsAbsent"].labels["severity"] == "critical"
