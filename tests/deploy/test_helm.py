"""The Helm chart lints and renders through the Helm SDK, and its values do what they say."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.deploy.manifests import (
    BLUE_GREEN_VALUES,
    CANARY_VALUES,
    CHART_DIR,
    CUSTOM_NAMESPACE,
    CUSTOM_VALUES,
    GENERATED_DIR,
    Manifest,
    container,
    find,
    find_all,
    helm_lint,
    helm_render,
    merged,
    prod_values,
    require_generated,
    workload,
)


def _generated(name: str) -> Manifest:
    loaded: Manifest = yaml.safe_load((GENERATED_DIR / name).read_text())
    return loaded


@pytest.mark.parametrize(
    "values",
    [
        None,
        prod_values(),
        merged(prod_values(), CANARY_VALUES),
        merged(prod_values(), BLUE_GREEN_VALUES),
        CUSTOM_VALUES,
    ],
    ids=["default", "prod", "canary", "blue-green", "custom"],
)
def test_chart_lints_clean_in_strict_mode(values: dict[str, Any] | None) -> None:
    require_generated()
    assert helm_lint(values) == []


def test_lint_reports_a_broken_template(tmp_path: Path) -> None:
    require_generated()
    chart = tmp_path / "ouro-shop"
    shutil.copytree(CHART_DIR, chart, symlinks=False)
    (chart / "templates" / "broken.yaml").write_text(
        "{{ .Values.image.repository | nosuchfunction }}\n"
    )
    report = helm_python.lint(chart, strict=True)
    assert report["errors"] or any(int(m["severity"]) >= 3 for m in report["messages"])


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"image": {"tag": "latest"}}, "tag"),
        ({"resources": {"limits": None}}, "limits"),
        ({"autoscaling": {"minReplicas": 0}}, "minReplicas"),
        ({"replicas": 3}, "replicas"),
        ({"otel": {"sampler": "sometimes"}}, "sampler"),
        ({"rollout": {"enabled": True, "strategy": "linear"}}, "strategy"),
        ({"rollout": {"canary": {"weights": [10, 100]}}}, "weights"),
    ],
    ids=[
        "latest-tag",
        "no-limits",
        "zero-replicas",
        "unknown-key",
        "bad-sampler",
        "bad-strategy",
        "full-weight-step",
    ],
)
def test_values_schema_refuses_bad_values(values: dict[str, Any], complaint: str) -> None:
    require_generated()
    with pytest.raises(helm_python.HelmError) as caught:
        helm_render(values)
    assert complaint in str(caught.value)


def test_default_values_render_the_full_set(renderings: dict[str, list[Manifest]]) -> None:
    kinds = sorted(manifest["kind"] for manifest in renderings["helm-default"])
    assert kinds == sorted(
        [
            "Certificate",
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Ingress",
            "NetworkPolicy",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )


def test_every_object_is_in_the_release_namespace(renderings: dict[str, list[Manifest]]) -> None:
    for name, namespace in (("helm-default", "shop"), ("helm-custom", CUSTOM_NAMESPACE)):
        assert {obj["metadata"]["namespace"] for obj in renderings[name]} == {namespace}


def test_custom_values_switch_things_off_and_pin_the_digest(
    renderings: dict[str, list[Manifest]],
) -> None:
    objects = renderings["helm-custom"]
    kinds = {obj["kind"] for obj in objects}
    assert "HorizontalPodAutoscaler" not in kinds
    assert "Ingress" not in kinds
    assert "PrometheusRule" not in kinds
    deployment = find(objects, "Deployment", "storefront")
    assert deployment["spec"]["replicas"] == 3
    image = container(objects)["image"]
    assert image == f"registry.example.com/team/shop@{CUSTOM_VALUES['image']['digest']}"
    # With a digest there is nothing for the image-digest check to excuse.
    assert "checkov.io/skip1" not in deployment["metadata"].get("annotations", {})
    monitor = find(objects, "ServiceMonitor")
    assert "release" not in monitor["metadata"]["labels"]


def test_custom_values_reach_the_configmap(renderings: dict[str, list[Manifest]]) -> None:
    data = find(renderings["helm-custom"], "ConfigMap", "storefront-config")["data"]
    assert data["WEB_CONCURRENCY"] == "4"
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://collector.telemetry.svc:4318"
    assert data["OTEL_TRACES_SAMPLER"] == "always_on"
    assert data["OURO_OBS_ENVIRONMENT"] == "staging"
    assert data["OURO_OBS_MAX_LABEL_SETS"] == "500"


def test_config_change_rolls_the_pods() -> None:
    require_generated()

    def checksum(values: dict[str, Any]) -> str:
        deployment = find(helm_render(values), "Deployment")
        annotation: str = deployment["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]
        return annotation

    assert checksum({"otel": {"samplerArg": "0.5"}}) != checksum({"otel": {"samplerArg": "0.6"}})


@pytest.mark.parametrize(("name", "environment"), [("helm-default", "dev"), ("helm-prod", "prod")])
def test_generated_rules_and_dashboards_are_copied_unchanged(
    name: str, environment: str, renderings: dict[str, list[Manifest]]
) -> None:
    """The release installs its environment's files: the defaults dev's, values-prod prod's."""
    objects = renderings[name]
    rules = _generated(f"{environment}/prometheusrule.yaml")
    assert find(objects, "PrometheusRule")["spec"] == rules["spec"]
    dashboards = _generated(f"{environment}/grafana-dashboards.yaml")
    rendered = find(objects, "ConfigMap", "shop-dashboards")
    assert sorted(rendered["data"]) == [
        f"shop-{environment}-overview.json",
        f"shop-{environment}-slo.json",
    ]
    assert rendered["data"] == dashboards["data"]
    # The labels Grafana's dashboard sidecar selects on survive; the chart's own
    # app.kubernetes.io/* labels (managed-by: Helm, ...) take precedence over the rest.
    for key, value in dashboards["metadata"]["labels"].items():
        if not key.startswith("app.kubernetes.io/"):
            assert rendered["metadata"]["labels"][key] == value
    assert rendered["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_servicemonitor_keeps_generated_endpoints_and_selects_this_release(
    renderings: dict[str, list[Manifest]],
) -> None:
    generated = _generated("servicemonitor.yaml")
    for name, release in (("helm-default", "shop"), ("helm-custom", "web")):
        spec = find(renderings[name], "ServiceMonitor")["spec"]
        assert spec["endpoints"] == generated["spec"]["endpoints"]
        assert spec["selector"]["matchLabels"]["app.kubernetes.io/instance"] == release


def test_missing_generated_files_fail_with_the_fix(tmp_path: Path) -> None:
    chart = tmp_path / "ouro-shop"
    shutil.copytree(CHART_DIR, chart, symlinks=True)
    (chart / "files" / "generated").unlink()
    (chart / "files" / "generated").mkdir()
    with pytest.raises(helm_python.HelmRenderError) as caught:
        helm_render(chart=chart)
    assert "ouro-obs generate examples/shop/slo.yaml -o ." in str(caught.value)


def test_chart_reads_the_generated_directory_through_a_link() -> None:
    link = CHART_DIR / "files" / "generated"
    assert link.is_symlink()
    assert link.resolve() == GENERATED_DIR.resolve()


def _notes(values: dict[str, Any] | None = None) -> str:
    require_generated()
    with helm_python.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(values, name="shop", namespace="shop")
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def test_notes_tell_how_to_roll_back() -> None:
    notes = _notes()
    assert "helm -n shop rollback shop" in notes
    assert "deployment/shop" in notes


def test_notes_of_a_rollout_tell_how_to_watch_and_abort_it() -> None:
    notes = _notes({"rollout": {"enabled": True}})
    assert "kubectl argo rollouts -n shop get rollout shop --watch" in notes
    assert "kubectl argo rollouts -n shop abort shop" in notes
    assert "deployment/shop" not in notes


def test_kube_version_admits_only_clusters_with_the_prestop_sleep_action(
    renderings: dict[str, list[Manifest]],
) -> None:
    """The `sleep` lifecycle action is on by default from Kubernetes 1.30."""
    uses_sleep = any(
        "sleep" in (c.get("lifecycle", {}).get("preStop") or {})
        for name in ("helm-default", "helm-canary")
        for c in workload(renderings[name])["spec"]["template"]["spec"]["containers"]
    )
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert uses_sleep
    assert chart["kubeVersion"] == ">=1.30.0-0"


def test_the_rollout_runs_the_same_pods_as_the_deployment(
    renderings: dict[str, list[Manifest]],
) -> None:
    deployment, rollout = workload(renderings["helm-prod"]), workload(renderings["helm-canary"])
    assert (deployment["kind"], rollout["kind"]) == ("Deployment", "Rollout")
    assert rollout["spec"]["template"] == deployment["spec"]["template"]
    assert rollout["spec"]["selector"] == deployment["spec"]["selector"]


def test_an_analysis_off_rollout_still_canaries(renderings: dict[str, list[Manifest]]) -> None:
    require_generated()
    values = {"rollout": {"enabled": True, "analysis": {"enabled": False}}}
    steps = workload(helm_render(values))["spec"]["strategy"]["canary"]["steps"]
    assert [next(iter(step)) for step in steps] == ["setWeight", "pause"] * 2
    canary = workload(renderings["helm-canary"])["spec"]["strategy"]["canary"]
    assert any("analysis" in step for step in canary["steps"])


def test_the_generated_analysis_template_is_copied_under_the_release_name(
    tmp_path: Path,
) -> None:
    """Once `ouro-obs generate` writes it, the chart ships it as the Rollout names it."""
    require_generated()
    chart = tmp_path / "ouro-shop"
    shutil.copytree(CHART_DIR, chart, symlinks=False)
    generated = chart / "files" / "generated" / "rollout"
    generated.mkdir(exist_ok=True)
    spec = {"args": [{"name": "namespace"}], "metrics": [{"name": "error-ratio"}]}
    (generated / "analysistemplate.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AnalysisTemplate",
                "metadata": {"name": "shop-slo-canary"},
                "spec": spec,
            }
        )
    )
    values = {"fullnameOverride": "storefront", "rollout": {"enabled": True}}
    objects = helm_render(values, chart=chart)
    template = find(objects, "AnalysisTemplate")
    assert template["metadata"]["name"] == "storefront-slo-canary"
    assert template["spec"] == spec
    steps = workload(objects)["spec"]["strategy"]["canary"]["steps"]
    names = {
        t["templateName"] for s in steps if "analysis" in s for t in s["analysis"]["templates"]
    }
    assert names == {"storefront-slo-canary"}
    assert find_all(helm_render(chart=chart), "AnalysisTemplate") == []


def test_the_default_deny_can_be_left_to_the_namespace_owner() -> None:
    require_generated()
    policies = find_all(helm_render({"networkPolicy": {"defaultDeny": False}}), "NetworkPolicy")
    assert [policy["metadata"]["name"] for policy in policies] == ["shop"]


def test_rate_limits_can_be_switched_off_and_annotations_win() -> None:
    require_generated()
    custom = {"nginx.ingress.kubernetes.io/limit-rps": "100", "example.com/team": "shop"}
    annotated = helm_render({"ingress": {"annotations": custom}})
    assert find(annotated, "Ingress")["metadata"]["annotations"] == {
        **custom,
        "nginx.ingress.kubernetes.io/limit-burst-multiplier": "5",
        "nginx.ingress.kubernetes.io/limit-connections": "20",
    }
    unlimited = helm_render({"ingress": {"rateLimit": {"enabled": False}}})
    assert "annotations" not in find(unlimited, "Ingress")["metadata"]


def test_digest_of_wrong_shape_is_refused() -> None:
    require_generated()
    with pytest.raises(helm_python.HelmError):
        helm_render({"image": {"digest": "latest"}})
    assert find_all(helm_render({"image": {"digest": ""}}), "Deployment")
