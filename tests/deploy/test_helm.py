"""The Helm chart lints and renders through the Helm SDK, and its values do what they say."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.deploy.manifests import (
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
    prod_values,
    require_generated,
)


def _generated(name: str) -> Manifest:
    loaded: Manifest = yaml.safe_load((GENERATED_DIR / name).read_text())
    return loaded


@pytest.mark.parametrize(
    "values",
    [None, prod_values(), CUSTOM_VALUES],
    ids=["default", "prod", "custom"],
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
    ],
    ids=["latest-tag", "no-limits", "zero-replicas", "unknown-key", "bad-sampler"],
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
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Ingress",
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
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://collector.example.com:4318"
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


def test_generated_rules_and_dashboards_are_copied_unchanged(
    renderings: dict[str, list[Manifest]],
) -> None:
    objects = renderings["helm-default"]
    assert find(objects, "PrometheusRule")["spec"] == _generated("prometheusrule.yaml")["spec"]
    dashboards = _generated("grafana-dashboards.yaml")
    rendered = find(objects, "ConfigMap", "shop-dashboards")
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


def test_notes_tell_how_to_roll_back() -> None:
    require_generated()
    with helm_python.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(name="shop", namespace="shop")
    notes = next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))
    assert "helm -n shop rollback shop" in notes
    assert "deployment/shop" in notes


def test_digest_of_wrong_shape_is_refused() -> None:
    require_generated()
    with pytest.raises(helm_python.HelmError):
        helm_render({"image": {"digest": "latest"}})
    assert find_all(helm_render({"image": {"digest": ""}}), "Deployment")
