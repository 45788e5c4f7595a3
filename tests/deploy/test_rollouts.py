"""Progressive delivery: a Rollout replaces the Deployment, its steps are judged by the SLO.

The AnalysisTemplate the steps run is generated from the SLO spec by `ouro-obs generate`
(named ``<service>-slo-canary``). It tells the new version's requests from the stable
one's by ``rollouts_pod_template_hash``: the ``rollouts-pod-template-hash`` label Argo
Rollouts gives every pod of a version for the pod's life, which the ServiceMonitor copies
onto the scraped series. The ``ouro.dev/track`` labels (canary/stable, preview/active)
are for people; Argo Rollouts rewrites them in place on promotion, so a query keyed on
them would lose the new version at the moment it is judged after a blue-green switch.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ouro_obs.slo import conventions
from ouro_obs.slo.spec import load_spec
from tests.deploy.manifests import (
    ROLLOUT_RENDERINGS,
    Manifest,
    find,
    find_all,
    schema_errors,
    service,
    workload,
)
from tests.support.tools import REPO_ROOT

SPEC = REPO_ROOT / "examples" / "shop" / "slo.yaml"
VERSION_LABEL = "rollouts-pod-template-hash"
#: What every analysis is told, and where the value comes from.
ANALYSIS_ARGS = {
    "namespace": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    "canary-hash": {"podTemplateHashValue": "Latest"},
    "stable-hash": {"podTemplateHashValue": "Stable"},
}
#: Where `ouro-obs generate` writes the AnalysisTemplate.
GENERATED_ANALYSIS = REPO_ROOT / conventions.ANALYSIS_TEMPLATE_PATH
CANARIES_WITH_ANALYSIS = ("kustomize-prod-canary", "helm-canary")
BLUE_GREENS = ("kustomize-prod-blue-green", "helm-blue-green")


def analysis_template_name() -> str:
    """The name the Rollouts refer to: the generator's ``<service>-slo-canary``."""
    return conventions.analysis_template_name(load_spec(SPEC))


def _strategy(objects: list[Manifest]) -> dict[str, Any]:
    strategy: dict[str, Any] = workload(objects)["spec"]["strategy"]
    return strategy


def _assert_judged_by_the_slo(analysis: dict[str, Any]) -> None:
    assert analysis["templates"] == [{"templateName": analysis_template_name()}]
    assert {arg["name"]: arg["valueFrom"] for arg in analysis["args"]} == ANALYSIS_ARGS


@pytest.mark.parametrize("name", ROLLOUT_RENDERINGS)
def test_a_rollout_replaces_the_deployment(
    name: str, renderings: dict[str, list[Manifest]]
) -> None:
    objects = renderings[name]
    assert find_all(objects, "Deployment") == []
    rollout = find(objects, "Rollout")
    target = find(objects, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert target == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": rollout["metadata"]["name"],
    }


@pytest.mark.parametrize("name", ROLLOUT_RENDERINGS)
def test_an_update_that_stalls_aborts_by_itself(
    name: str, renderings: dict[str, list[Manifest]]
) -> None:
    spec = workload(renderings[name])["spec"]
    assert spec["progressDeadlineAbort"] is True
    assert spec["progressDeadlineSeconds"] == 600


@pytest.mark.parametrize("name", ROLLOUT_RENDERINGS)
def test_going_back_to_a_recent_version_skips_the_steps(
    name: str, renderings: dict[str, list[Manifest]]
) -> None:
    """A reverted promotion returns at once: that version was judged before."""
    spec = workload(renderings[name])["spec"]
    assert spec["rollbackWindow"] == {"revisions": 3}
    assert spec["revisionHistoryLimit"] >= spec["rollbackWindow"]["revisions"]


@pytest.mark.parametrize("name", CANARIES_WITH_ANALYSIS)
def test_the_canary_grows_its_share_and_is_judged_after_each_step(
    name: str, renderings: dict[str, list[Manifest]]
) -> None:
    steps = _strategy(renderings[name])["canary"]["steps"]
    assert [next(iter(step)) for step in steps] == ["setWeight", "pause", "analysis"] * 2
    weights = [step["setWeight"] for step in steps if "setWeight" in step]
    assert weights == sorted(weights)
    assert weights[0] > 0
    assert weights[-1] < 100
    # Each share runs for a while before it is judged: the analysis reads rates.
    assert all(step["pause"].get("duration") for step in steps if "pause" in step)
    for step in steps:
        if "analysis" in step:
            _assert_judged_by_the_slo(step["analysis"])


def test_staging_canaries_without_analysis_and_finishes_by_itself(
    renderings: dict[str, list[Manifest]],
) -> None:
    """No users in staging: an SLO analysis would be inconclusive and stop the rollout."""
    steps = _strategy(renderings["kustomize-staging"])["canary"]["steps"]
    assert not [step for step in steps if "analysis" in step]
    assert [step["pause"]["duration"] for step in steps if "pause" in step], steps
    prod = _strategy(renderings["kustomize-prod-canary"])["canary"]
    staging = _strategy(renderings["kustomize-staging"])["canary"]
    assert {k: v for k, v in staging.items() if k != "steps"} == {
        k: v for k, v in prod.items() if k != "steps"
    }


@pytest.mark.parametrize("name", BLUE_GREENS)
def test_blue_green_switches_the_served_service_and_is_judged_under_traffic(
    name: str, renderings: dict[str, list[Manifest]]
) -> None:
    objects = renderings[name]
    blue_green = _strategy(objects)["blueGreen"]
    ingress_backend = find(objects, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]
    assert blue_green["activeService"] == ingress_backend["backend"]["service"]["name"]
    assert blue_green["activeService"] == service(objects)["metadata"]["name"]
    preview = find(objects, "Service", blue_green["previewService"])
    assert [port["name"] for port in preview["spec"]["ports"]] == ["http"]
    assert blue_green["autoPromotionEnabled"] is True
    # Judged after the switch, while the old version is kept for a switch back.
    assert "prePromotionAnalysis" not in blue_green
    _assert_judged_by_the_slo(blue_green["postPromotionAnalysis"])
    assert blue_green["scaleDownDelaySeconds"] >= 60


@pytest.mark.parametrize("name", ROLLOUT_RENDERINGS)
def test_the_scraped_series_name_the_version_the_analysis_selects_on(
    name: str, renderings: dict[str, list[Manifest]]
) -> None:
    monitor = find(renderings[name], "ServiceMonitor")["spec"]
    assert VERSION_LABEL in monitor["podTargetLabels"]


@pytest.mark.parametrize("name", ROLLOUT_RENDERINGS)
def test_track_labels_are_for_people_and_stay_out_of_the_selector(
    name: str, renderings: dict[str, list[Manifest]]
) -> None:
    rollout = workload(renderings[name])
    strategy = rollout["spec"]["strategy"]
    metadata_keys = ("canaryMetadata", "stableMetadata", "previewMetadata", "activeMetadata")
    tracks = {
        strategy_body[key]["labels"]["ouro.dev/track"]
        for strategy_body in strategy.values()
        for key in metadata_keys
        if key in strategy_body
    }
    assert tracks in ({"canary", "stable"}, {"preview", "active"})
    assert "ouro.dev/track" not in rollout["spec"]["selector"]["matchLabels"]
    assert "ouro.dev/track" not in rollout["spec"]["template"]["metadata"]["labels"]


def test_the_generated_analysis_template_takes_what_the_rollouts_pass() -> None:
    """Every argument without a default is one the Rollouts pass, and they pass no other."""
    template = yaml.safe_load(GENERATED_ANALYSIS.read_text())
    assert schema_errors(template) == []
    assert template["metadata"]["name"] == analysis_template_name()
    args = template["spec"]["args"]
    assert {arg["name"] for arg in args if "value" not in arg} == set(ANALYSIS_ARGS)


@pytest.mark.parametrize("name", ["kustomize-prod-canary", "kustomize-prod-blue-green"])
def test_the_overlays_with_analysis_ship_the_generated_template(
    name: str, renderings: dict[str, list[Manifest]]
) -> None:
    template = find(renderings[name], "AnalysisTemplate", analysis_template_name())
    generated = yaml.safe_load(GENERATED_ANALYSIS.read_text())
    assert template["spec"] == generated["spec"]
    assert template["metadata"]["namespace"] == workload(renderings[name])["metadata"]["namespace"]


def test_the_chart_ships_the_generated_template(renderings: dict[str, list[Manifest]]) -> None:
    template = find(renderings["helm-canary"], "AnalysisTemplate")
    assert template["spec"] == yaml.safe_load(GENERATED_ANALYSIS.read_text())["spec"]
