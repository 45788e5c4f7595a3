"""Alert tuning: switches, extra labels and annotations, severities, urgency, and their checks.

Each tuned spec is also generated and run through ``promtool test rules``: the generated
tests prove the switched-off alerts never fire and the others still fire on time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ouro_obs.slo.alerts import AlertRule
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.conventions import rule_file_path, rule_test_path
from ouro_obs.slo.manifests import prometheus_rule, service_monitor
from ouro_obs.slo.render import write_files
from ouro_obs.slo.rules import alert_rules, rule_groups
from ouro_obs.slo.spec import ServiceSpec, SpecError, parse_spec, spec_json_schema
from tests.deploy.manifests import helm_render
from tests.slo.support import promtool
from tests.support.tools import require_tool

HEAD = """\
apiVersion: ouro-obs/v1
service: shop
runbook_base_url: https://runbooks.example.com/shop
labels: {team: storefront}
"""
AVAILABILITY = "  - {name: availability, objective: 99.9, window: 7d, sli: {kind: availability}}\n"
LATENCY = (
    "  - {name: latency, objective: 99, window: 7d, sli: {kind: latency, threshold_seconds: 0.5}}\n"
)

#: One SLO without its page, one without its ticket, no MetricsAbsent, and extras everywhere.
TUNED = (
    HEAD
    + """\
alerting:
  metrics_absent: false
  annotations:
    playbook: https://wiki.example.com/shop
slos:
  - name: availability
    objective: 99.9
    window: 7d
    sli: {kind: availability}
    alerting:
      page: false
      labels: {component: checkout}
      annotations:
        instance_hint: "first failing instance: {{ $labels.instance }}"
  - name: latency
    objective: 99
    window: 7d
    sli: {kind: latency, threshold_seconds: 0.5}
    alerting:
      ticket: false
"""
)


def _alerts(spec: ServiceSpec) -> dict[str, AlertRule]:
    return {rule.alert: rule for rule in alert_rules(spec)}


def test_by_default_pages_are_critical_and_tickets_warning_with_an_urgency_label() -> None:
    alerts = _alerts(parse_spec(HEAD + "slos:\n" + AVAILABILITY))
    page = alerts["ShopAvailabilityErrorBudgetBurnPage"].labels
    ticket = alerts["ShopAvailabilityErrorBudgetBurnTicket"].labels
    assert (page["severity"], page["urgency"]) == ("critical", "page")
    assert (ticket["severity"], ticket["urgency"]) == ("warning", "ticket")
    assert alerts["ShopMetricsAbsent"].labels["urgency"] == "page"
    assert alerts["ShopTargetDown"].labels["severity"] == "warning"


def test_chosen_severities_keep_the_urgency_label_alertmanager_routes_on() -> None:
    extra = "page_labels: {severity: page}\nticket_labels: {severity: ticket}\n"
    alerts = _alerts(parse_spec(HEAD + extra + "slos:\n" + AVAILABILITY))
    page = alerts["ShopAvailabilityErrorBudgetBurnPage"].labels
    assert (page["severity"], page["urgency"]) == ("page", "page")


def test_switched_off_alerts_are_not_generated_and_the_others_are() -> None:
    assert sorted(_alerts(parse_spec(TUNED))) == [
        "ShopAvailabilityErrorBudgetBurnTicket",
        "ShopLatencyErrorBudgetBurnPage",
        "ShopTargetDown",
    ]


def test_target_down_can_be_switched_off_too() -> None:
    spec = parse_spec(HEAD + "alerting: {target_down: false}\nslos:\n" + AVAILABILITY)
    assert "ShopTargetDown" not in _alerts(spec)
    assert "ShopMetricsAbsent" in _alerts(spec)


def test_an_slo_s_labels_and_annotations_go_on_its_alerts_only() -> None:
    alerts = _alerts(parse_spec(TUNED))
    ticket = alerts["ShopAvailabilityErrorBudgetBurnTicket"]
    assert ticket.labels["component"] == "checkout"
    assert ticket.annotations["instance_hint"] == "first failing instance: {{ $labels.instance }}"
    assert "component" not in alerts["ShopLatencyErrorBudgetBurnPage"].labels
    assert "instance_hint" not in alerts["ShopLatencyErrorBudgetBurnPage"].annotations


def test_service_annotations_go_on_every_alert() -> None:
    for rule in alert_rules(parse_spec(TUNED)):
        assert rule.annotations["playbook"] == "https://wiki.example.com/shop", rule.alert
        assert rule.annotations["runbook_url"].startswith("https://runbooks.example.com/shop#")


#: Every alert switched off: the rules still load (an empty alerts group) and test.
SILENT = (
    HEAD
    + "alerting: {target_down: false, metrics_absent: false}\nslos:\n"
    + AVAILABILITY.replace("}}\n", "}, alerting: {page: false, ticket: false}}\n")
)


@pytest.mark.parametrize("text", [TUNED, SILENT], ids=["tuned", "silent"])
def test_the_generated_promtool_tests_pass_for_a_tuned_spec(tmp_path: Path, text: str) -> None:
    """Switched off alerts never fire, the others fire with their extra labels and annotations."""
    binary = require_tool("promtool")
    spec = parse_spec(text)
    write_files(tmp_path, generated_files(spec))
    for action, path in (("check", rule_file_path(spec)), ("test", rule_test_path(spec))):
        run = promtool(binary, action, tmp_path / path)
        assert run.returncode == 0, f"{run.command}:\n{run.output}"
        assert "SUCCESS" in run.output
    assert len(alert_rules(spec)) == (3 if text == TUNED else 0)


def test_tuning_leaves_the_recordings_alone() -> None:
    def records(spec: ServiceSpec) -> list[str]:
        return [
            rule.record for g in rule_groups(spec) for rule in g.rules if hasattr(rule, "record")
        ]

    plain = parse_spec(HEAD + "slos:\n" + AVAILABILITY + LATENCY)
    assert records(parse_spec(TUNED)) == records(plain)


def test_manifest_labels_set_the_discovery_labels_of_the_operator_objects() -> None:
    extra = "manifest_labels: {release: monitoring, prometheus: platform}\n"
    spec = parse_spec(HEAD + extra + "slos:\n" + AVAILABILITY)
    for document in (prometheus_rule(spec, rule_groups(spec)), service_monitor(spec)):
        labels = document["metadata"]["labels"]
        assert (labels["release"], labels["prometheus"]) == ("monitoring", "platform")


def test_the_json_schema_describes_the_alerting_fields() -> None:
    schema = spec_json_schema()
    top = schema["properties"]
    assert set(top["alerting"]["properties"]) == {"target_down", "metrics_absent", "annotations"}
    assert set(top["alertmanager"]["properties"]) == {
        "page",
        "ticket",
        "group_wait",
        "group_interval",
    }
    slo = top["slos"]["items"]["properties"]
    assert set(slo["alerting"]["properties"]) == {"page", "ticket", "labels", "annotations"}
    assert top["page_labels"]["default"] == {"severity": "critical"}


BAD = [
    pytest.param(
        "alerting: {metrics_absent: 'no'}\nslos:\n" + AVAILABILITY,
        "spec.yaml:5: alerting.metrics_absent: must be true or false (false: no such alert), "
        "got 'no'",
        id="switch-not-boolean",
    ),
    pytest.param(
        "alerting: {absent: false}\nslos:\n" + AVAILABILITY,
        "spec.yaml:5: alerting.absent: unknown field; did you mean 'metrics_absent'? known "
        "fields: target_down, metrics_absent, annotations",
        id="unknown-service-alerting-field",
    ),
    pytest.param(
        "slos:\n  - name: availability\n    objective: 99.9\n    sli: {kind: availability}\n"
        "    alerting:\n      labels: {urgency: low}\n",
        "spec.yaml:10: slos[0].alerting.labels.urgency: 'urgency' is set by ouro-obs; "
        "use another label name",
        id="reserved-label",
    ),
    pytest.param(
        "slos:\n  - name: availability\n    objective: 99.9\n    sli: {kind: availability}\n"
        "    alerting:\n      annotations: {link: '{{ $externalURL }}'}\n",
        "spec.yaml:10: slos[0].alerting.annotations.link: holds a template ouro-obs cannot "
        "test; use only {{ $value }}, {{ $value | humanizePercentage }} or {{ $labels.<name> }}",
        id="untestable-template",
    ),
    pytest.param(
        "alertmanager:\n  page: {receiver: oncall}\n  ticket: {receiver: oncall}\n"
        "slos:\n" + AVAILABILITY,
        "spec.yaml:7: alertmanager.ticket.receiver: 'oncall' is also the page receiver; "
        "send tickets somewhere else",
        id="same-receiver",
    ),
    pytest.param(
        "alertmanager: {group_wait: 30 seconds}\nslos:\n" + AVAILABILITY,
        "spec.yaml:5: alertmanager.group_wait: '30 seconds' is not an Alertmanager duration; "
        "write it like 30s, 5m or 4h",
        id="bad-duration",
    ),
    pytest.param(
        "alertmanager:\n  page: {webhook_url: 'hooks.example.com'}\nslos:\n" + AVAILABILITY,
        "spec.yaml:6: alertmanager.page.webhook_url: 'hooks.example.com' is not an http(s) "
        "URL; write it like https://alerts.example.com/hook",
        id="bad-webhook",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_a_bad_alerting_field_is_named_with_its_line_and_fix(body: str, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(HEAD + body, "spec.yaml")
    assert message in str(raised.value).splitlines()


def test_helm_values_set_the_release_and_other_discovery_labels() -> None:
    values = {"monitoring": {"release": "monitoring", "labels": {"prometheus": "platform"}}}
    objects = helm_render(values)
    kinds = {"PrometheusRule", "ServiceMonitor"}
    selected = [o for o in objects if o["kind"] in kinds]
    assert {o["kind"] for o in selected} == kinds
    for manifest in selected:
        labels = manifest["metadata"]["labels"]
        assert (labels["release"], labels["prometheus"]) == ("monitoring", "platform")
