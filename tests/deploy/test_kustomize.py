"""The Kustomize base and its overlays render, with the objects and differences intended."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import Manifest, find, find_all, pod_spec

EXPECTED_KINDS = {
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Deployment",
    "Service",
    "Ingress",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceMonitor",
    "PrometheusRule",
}
NAMESPACES = {"dev": "shop-dev", "prod": "shop"}


@pytest.mark.parametrize("overlay", sorted(NAMESPACES))
def test_overlay_renders_every_kind(overlay: str, renderings: dict[str, list[Manifest]]) -> None:
    kinds = {manifest["kind"] for manifest in renderings[f"kustomize-{overlay}"]}
    assert kinds == EXPECTED_KINDS


@pytest.mark.parametrize("overlay", sorted(NAMESPACES))
def test_overlay_puts_everything_in_its_namespace(
    overlay: str, renderings: dict[str, list[Manifest]]
) -> None:
    objects = renderings[f"kustomize-{overlay}"]
    namespace = NAMESPACES[overlay]
    assert find(objects, "Namespace")["metadata"]["name"] == namespace
    elsewhere = {
        f"{obj['kind']}/{obj['metadata']['name']}": obj["metadata"].get("namespace")
        for obj in objects
        if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") != namespace
    }
    assert elsewhere == {}


@pytest.mark.parametrize("overlay", sorted(NAMESPACES))
def test_overlay_namespace_enforces_the_restricted_pod_security_standard(
    overlay: str, renderings: dict[str, list[Manifest]]
) -> None:
    labels = find(renderings[f"kustomize-{overlay}"], "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_overlays_carry_both_generated_configmaps(renderings: dict[str, list[Manifest]]) -> None:
    for overlay in NAMESPACES:
        config_maps = find_all(renderings[f"kustomize-{overlay}"], "ConfigMap")
        env_source = pod_spec(renderings[f"kustomize-{overlay}"])["containers"][0]["envFrom"]
        referenced = {source["configMapRef"]["name"] for source in env_source}
        names = {cm["metadata"]["name"] for cm in config_maps}
        # The settings ConfigMap's name carries a content hash, so a change rolls the pods.
        assert referenced <= names
        assert all(name.startswith("shop-config-") for name in referenced)
        assert len(config_maps) == 2


def test_prod_runs_more_pods_with_more_room_than_dev(
    renderings: dict[str, list[Manifest]],
) -> None:
    dev, prod = renderings["kustomize-dev"], renderings["kustomize-prod"]
    dev_hpa = find(dev, "HorizontalPodAutoscaler")["spec"]
    prod_hpa = find(prod, "HorizontalPodAutoscaler")["spec"]
    assert (dev_hpa["minReplicas"], prod_hpa["minReplicas"]) == (1, 3)
    assert prod_hpa["maxReplicas"] > dev_hpa["maxReplicas"]
    zone = {
        c["topologyKey"]: c["whenUnsatisfiable"]
        for c in pod_spec(prod)["topologySpreadConstraints"]
    }
    assert zone == {
        "topology.kubernetes.io/zone": "DoNotSchedule",
        "kubernetes.io/hostname": "ScheduleAnyway",
    }


def test_overlays_leave_the_replica_count_to_the_autoscaler(
    renderings: dict[str, list[Manifest]],
) -> None:
    for overlay in NAMESPACES:
        objects = renderings[f"kustomize-{overlay}"]
        assert "replicas" not in find(objects, "Deployment")["spec"]
        target = find(objects, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", "shop")


@pytest.mark.parametrize(
    ("overlay", "host"), [("dev", "shop.dev.example.com"), ("prod", "shop.example.com")]
)
def test_overlay_ingress_host_and_tls_agree(
    overlay: str, host: str, renderings: dict[str, list[Manifest]]
) -> None:
    spec = find(renderings[f"kustomize-{overlay}"], "Ingress")["spec"]
    assert [rule["host"] for rule in spec["rules"]] == [host]
    assert spec["tls"][0]["hosts"] == [host]
