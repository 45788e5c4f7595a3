"""The generated Alertmanager routing: amtool accepts it and routes each alert where it belongs.

``amtool check-config`` checks the plain configuration, ``amtool config routes test``
answers which receiver an alert with given labels reaches, and the AlertmanagerConfig
object is validated against the CRD's schema.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ouro_obs.slo.alertmanager import alertmanager_config, alertmanager_config_object
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.conventions import (
    ALERTMANAGER_CONFIG_CRD_PATH,
    ALERTMANAGER_KUSTOMIZATION_PATH,
    KUSTOMIZATION_PATH,
    alertmanager_config_path,
)
from ouro_obs.slo.render import render_yaml
from ouro_obs.slo.rules import alert_rules
from ouro_obs.slo.spec import ServiceSpec, load_spec, parse_spec
from tests.deploy.manifests import helm_render
from tests.slo.support import (
    EXAMPLE_ENVIRONMENTS,
    GOLDEN_NAMES,
    example_generated,
    example_spec,
    golden_input,
    golden_output,
)
from tests.support.tools import REPO_ROOT, require_tool, schema_path

pytestmark = pytest.mark.integration

HEAD = """\
apiVersion: ouro-obs/v1
service: shop
runbook_base_url: https://runbooks.example.com/shop
"""
SLOS = """\
slos:
  - {name: availability, objective: 99.9, sli: {kind: availability}}
  - name: latency
    objective: 99
    sli: {kind: latency, threshold_seconds: 0.5}
    alerting: {labels: {team: search}}
"""
TEAMS = HEAD + "labels: {team: storefront}\n" + SLOS
NO_TEAM = HEAD + SLOS.replace("    alerting: {labels: {team: search}}\n", "")
CHOSEN = (
    HEAD
    + """\
labels: {team: storefront}
alertmanager:
  page: {receiver: pagerduty-storefront, webhook_url: 'https://hooks.example.com/page'}
  ticket: {receiver: jira-storefront, repeat_interval: 3d}
  group_wait: 10s
"""
    + SLOS
)


def _write(tmp_path: Path, spec: ServiceSpec) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(render_yaml(alertmanager_config(spec)), encoding="utf-8")
    return path


def _amtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("amtool"), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _receiver(config: Path, labels: dict[str, str]) -> str:
    pairs = [f"{name}={value}" for name, value in labels.items()]
    run = _amtool("config", "routes", "test", f"--config.file={config}", *pairs)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


@pytest.mark.parametrize("text", [TEAMS, NO_TEAM, CHOSEN], ids=["teams", "no-team", "chosen"])
def test_amtool_check_config_accepts_the_generated_configuration(tmp_path: Path, text: str) -> None:
    run = _amtool("check-config", str(_write(tmp_path, parse_spec(text))))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_amtool_check_config_accepts_the_committed_example(tmp_path: Path) -> None:
    for environment in EXAMPLE_ENVIRONMENTS:
        committed = REPO_ROOT / alertmanager_config_path(example_spec(environment))
        run = _amtool("check-config", str(committed))
        assert run.returncode == 0, run.stdout + run.stderr


def test_every_generated_alert_reaches_its_team_s_page_or_ticket_receiver(tmp_path: Path) -> None:
    """Routed with the labels each alert really carries, not hand-written ones."""
    spec = parse_spec(TEAMS)
    config = _write(tmp_path, spec)
    reached = {rule.alert: _receiver(config, dict(rule.labels)) for rule in alert_rules(spec)}
    assert reached == {
        "ShopAvailabilityErrorBudgetBurnPage": "storefront-page",
        "ShopAvailabilityErrorBudgetBurnTicket": "storefront-ticket",
        "ShopLatencyErrorBudgetBurnPage": "search-page",
        "ShopLatencyErrorBudgetBurnTicket": "search-ticket",
        "ShopTargetDown": "storefront-ticket",
        "ShopMetricsAbsent": "storefront-page",
    }


def test_without_a_team_the_receivers_are_named_after_the_service(tmp_path: Path) -> None:
    config = _write(tmp_path, parse_spec(NO_TEAM))
    assert _receiver(config, {"service": "shop", "urgency": "page"}) == "shop-page"
    assert _receiver(config, {"service": "shop", "urgency": "ticket"}) == "shop-ticket"


def test_chosen_receivers_get_every_page_and_ticket_and_other_services_none(
    tmp_path: Path,
) -> None:
    config = _write(tmp_path, parse_spec(CHOSEN))
    page = {"service": "shop", "team": "search", "urgency": "page", "slo": "latency"}
    assert _receiver(config, page) == "pagerduty-storefront"
    assert _receiver(config, {**page, "urgency": "ticket"}) == "jira-storefront"
    assert _receiver(config, {**page, "service": "cart"}) == "unrouted"


def test_chosen_receivers_carry_the_webhook_and_timers() -> None:
    config = alertmanager_config(parse_spec(CHOSEN))
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    assert receivers["pagerduty-storefront"]["webhook_configs"] == [
        {"url": "https://hooks.example.com/page", "send_resolved": True}
    ]
    assert "webhook_configs" not in receivers["jira-storefront"]
    service_route = config["route"]["routes"][0]
    assert (service_route["group_wait"], service_route["group_interval"]) == ("10s", "5m")
    team_route = service_route["routes"][0]
    assert [r["repeat_interval"] for r in team_route["routes"]] == ["4h", "3d"]


def test_a_page_inhibits_the_ticket_of_the_same_service_and_slo() -> None:
    (rule,) = alertmanager_config(parse_spec(TEAMS))["inhibit_rules"]
    assert rule == {
        "source_matchers": ['service="shop"', 'urgency="page"'],
        "target_matchers": ['service="shop"', 'urgency="ticket"'],
        "equal": ["service", "slo"],
    }


def test_alerts_are_grouped_per_alert_name_and_slo() -> None:
    service_route = alertmanager_config(parse_spec(TEAMS))["route"]["routes"][0]
    assert service_route["group_by"] == ["alertname", "service", "slo"]


def _crd_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(schema_path("crds/alertmanagerconfig_v1alpha1.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [error.message for error in validator.iter_errors(document)]


@pytest.mark.parametrize("text", [TEAMS, NO_TEAM, CHOSEN], ids=["teams", "no-team", "chosen"])
def test_the_alertmanager_config_object_is_valid_for_its_crd(text: str) -> None:
    document = yaml.safe_load(render_yaml(alertmanager_config_object(parse_spec(text))))
    assert _crd_errors(document) == []
    receivers = [receiver["name"] for receiver in document["spec"]["receivers"]]
    assert document["spec"]["route"]["receiver"] in receivers  # the Operator requires it


def test_the_object_holds_the_same_tree_as_the_plain_configuration() -> None:
    spec = parse_spec(CHOSEN)
    plain, crd = alertmanager_config(spec), alertmanager_config_object(spec)["spec"]
    assert [r["name"] for r in plain["receivers"]] == [r["name"] for r in crd["receivers"]]
    plain_team = plain["route"]["routes"][0]["routes"][0]
    crd_team = crd["route"]["routes"][0]
    assert [r["receiver"] for r in plain_team["routes"]] == [
        r["receiver"] for r in crd_team["routes"]
    ]
    assert crd["route"]["groupWait"] == "10s"
    assert crd["inhibitRules"][0]["equal"] == ["service", "slo"]


def test_generate_writes_both_and_keeps_the_object_out_of_the_main_kustomization() -> None:
    spec = parse_spec(HEAD + "manifest_labels: {release: monitoring}\n" + SLOS)
    files = generated_files(spec)
    assert alertmanager_config_path(spec) in files
    crd = yaml.safe_load(files[ALERTMANAGER_CONFIG_CRD_PATH])
    assert crd["metadata"]["labels"]["release"] == "monitoring"
    assert yaml.safe_load(files[ALERTMANAGER_KUSTOMIZATION_PATH])["resources"] == [
        "alertmanagerconfig.yaml"
    ]
    main = yaml.safe_load(files[KUSTOMIZATION_PATH])["resources"]
    assert not any("alertmanager" in resource for resource in main)


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_every_golden_alertmanager_output_passes_amtool_and_the_crd_schema(name: str) -> None:
    spec = load_spec(golden_input(name))
    run = _amtool("check-config", str(golden_output(name) / alertmanager_config_path(spec)))
    assert run.returncode == 0, run.stdout + run.stderr
    crd = golden_output(name) / ALERTMANAGER_CONFIG_CRD_PATH
    assert _crd_errors(yaml.safe_load(crd.read_text(encoding="utf-8"))) == []


def test_the_helm_chart_copies_the_generated_object_when_asked() -> None:
    """Off by default; on, the generated spec under the release's name, labels and namespace."""
    assert not [o for o in helm_render() if o["kind"] == "AlertmanagerConfig"]
    values = {"monitoring": {"alertmanagerConfig": {"enabled": True}, "labels": {"team": "x"}}}
    (rendered,) = [o for o in helm_render(values) if o["kind"] == "AlertmanagerConfig"]
    # The chart's defaults are a development install: dev's routing.
    crd = example_generated("dev") / "alertmanager/alertmanagerconfig.yaml"
    generated = yaml.safe_load(crd.read_text())
    assert rendered["spec"] == generated["spec"]
    assert rendered["metadata"]["name"] == "shop-slo"
    assert rendered["metadata"]["namespace"] == "shop"
    assert rendered["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert _crd_errors(rendered) == []
