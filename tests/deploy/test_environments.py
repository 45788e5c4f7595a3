"""Each environment installs its own SLO rules and dashboards, and counts only its traffic.

The example spec declares dev, staging and prod (each its namespace). Every Kustomize
overlay includes its environment's deploy/generated/<env>/, and the Helm chart picks it by
the `environment` value: the PrometheusRule reads only that namespace's series, under
names and dashboard uids no other environment uses, so a dev load test cannot page prod.
"""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python
import pytest

from tests.deploy.manifests import (
    ENVIRONMENTS,
    Manifest,
    find,
    find_all,
    helm_render,
    prod_values,
    require_generated,
)

#: The overlay of each environment, the overlays built on it, and its namespace.
OVERLAYS = {
    "dev": (("dev",), "shop-dev"),
    "staging": (("staging",), "shop-staging"),
    "prod": (("prod", "prod-canary", "prod-blue-green"), "shop"),
}
#: A raw series a rule reads: the middleware's metrics and `up`.
_RAW_READ = re.compile(r"\b(?:http_[a-z_]+|up)\{([^}]*)\}")


def _raw_selectors(rule_object: Manifest) -> list[str]:
    return [
        matchers
        for group in rule_object["spec"]["groups"]
        for rule in group["rules"]
        for matchers in _RAW_READ.findall(rule["expr"])
    ]


def _dashboard_uids(config_map: Manifest) -> set[str]:
    return {json.loads(text)["uid"] for text in config_map["data"].values()}


def _slo_objects(objects: list[Manifest]) -> tuple[Manifest, Manifest]:
    rules = find(objects, "PrometheusRule")
    dashboards = next(
        cm
        for cm in find_all(objects, "ConfigMap")
        if cm["metadata"]["name"].endswith("-dashboards")
    )
    return rules, dashboards


def test_the_example_declares_the_environments_the_overlays_deploy() -> None:
    assert tuple(OVERLAYS) == ENVIRONMENTS


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_an_overlay_reads_only_its_own_namespace_under_its_own_names(
    environment: str, renderings: dict[str, list[Manifest]]
) -> None:
    overlays, namespace = OVERLAYS[environment]
    for overlay in overlays:
        rules, dashboards = _slo_objects(renderings[f"kustomize-{overlay}"])
        assert rules["metadata"]["name"] == f"shop-{environment}-slo"
        assert rules["metadata"]["namespace"] == namespace
        selectors = _raw_selectors(rules)
        assert len(selectors) > 10
        for matchers in selectors:
            assert f'namespace="{namespace}"' in matchers, matchers
        for group in rules["spec"]["groups"]:
            assert group["name"].startswith(f"shop-{environment}-")
            assert {rule["labels"]["env"] for rule in group["rules"]} == {environment}
        assert dashboards["metadata"]["name"] == f"shop-{environment}-dashboards"
        assert _dashboard_uids(dashboards) == {
            f"shop-{environment}-overview",
            f"shop-{environment}-slo",
        }


def test_no_two_environments_share_a_rule_group_or_a_dashboard_uid(
    renderings: dict[str, list[Manifest]],
) -> None:
    groups: list[str] = []
    uids: list[str] = []
    for environment in ENVIRONMENTS:
        rules, dashboards = _slo_objects(renderings[f"kustomize-{environment}"])
        groups += [group["name"] for group in rules["spec"]["groups"]]
        uids += sorted(_dashboard_uids(dashboards))
    assert len(groups) == len(set(groups))
    assert len(uids) == len(set(uids)) == 2 * len(ENVIRONMENTS)


def test_the_base_stays_environment_neutral(renderings: dict[str, list[Manifest]]) -> None:
    kinds = {manifest["kind"] for manifest in renderings["kustomize-base"]}
    assert "ServiceMonitor" in kinds
    assert "PrometheusRule" not in kinds


def _helm_environment(values: dict[str, Any]) -> tuple[str, set[str]]:
    rules, dashboards = _slo_objects(helm_render(values))
    (service,) = {rule["labels"]["service"] for g in rules["spec"]["groups"] for rule in g["rules"]}
    return service, _dashboard_uids(dashboards)


@pytest.mark.parametrize(
    ("values", "environment"),
    [
        ({}, "dev"),
        ({"environment": "staging"}, "staging"),
        ({"environment": "staging", "monitoring": {"environment": "prod"}}, "prod"),
    ],
    ids=["default", "environment", "monitoring-environment"],
)
def test_the_chart_installs_the_environment_its_values_name(
    values: dict[str, Any], environment: str
) -> None:
    require_generated()
    service, uids = _helm_environment(values)
    assert service == f"shop-{environment}"
    assert uids == {f"shop-{environment}-overview", f"shop-{environment}-slo"}


def test_values_prod_installs_prods_rules() -> None:
    require_generated()
    service, _ = _helm_environment(prod_values())
    assert service == "shop-prod"


def test_an_environment_the_spec_does_not_declare_fails_with_the_fix() -> None:
    require_generated()
    with pytest.raises(helm_python.HelmRenderError) as caught:
        helm_render({"environment": "qa"})
    message = str(caught.value)
    assert "files/generated/qa/prometheusrule.yaml is missing or empty" in message
    assert "set `environment` (or `monitoring.environment`)" in message
