"""The Kustomize base and its overlays render, with the objects and differences intended."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import Manifest, find, find_all, pod_spec, workload

COMMON_KINDS = {
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Service",
    "Ingress",
    "Certificate",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceMonitor",
    "PrometheusRule",
}
#: The workload of each overlay: dev and prod roll out plainly, the others with Argo Rollouts.
WORKLOAD_KINDS = {
    "dev": "Deployment",
    "staging": "Rollout",
    "prod": "Deployment",
    "prod-canary": "Rollout",
    "prod-blue-green": "Rollout",
}
NAMESPACES = {
    "dev": "shop-dev",
    "staging": "shop-staging",
    "prod": "shop",
    "prod-canary": "shop",
    "prod-blue-green": "shop",
}
HOSTS = {
    "dev": "shop.dev.example.com",
    "staging": "shop.staging.example.com",
    "prod": "shop.example.com",
    "prod-canary": "shop.example.com",
    "prod-blue-green": "shop.example.com",
}


@pytest.mark.parametrize("overlay", sorted(NAMESPACES))
def test_overlay_renders_every_kind(overlay: str, renderings: dict[str, list[Manifest]]) -> None:
    kinds = {manifest["kind"] for manifest in renderings[f"kustomize-{overlay}"]}
    workload_kind = WORKLOAD_KINDS[overlay]
    # A Rollout comes with the generated AnalysisTemplate its analysis steps run.
    analysis = {"AnalysisTemplate"} if workload_kind == "Rollout" else set()
    assert kinds == COMMON_KINDS | {workload_kind} | analysis


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
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"


@pytest.mark.parametrize("overlay", sorted(NAMESPACES))
def test_overlays_carry_both_generated_configmaps(
    overlay: str, renderings: dict[str, list[Manifest]]
) -> None:
    objects = renderings[f"kustomize-{overlay}"]
    config_maps = find_all(objects, "ConfigMap")
    env_source = pod_spec(objects)["containers"][0]["envFrom"]
    referenced = {source["configMapRef"]["name"] for source in env_source}
    names = {cm["metadata"]["name"] for cm in config_maps}
    # The settings ConfigMap's name carries a content hash, so a change rolls the pods,
    # whether a Deployment or a Rollout runs them.
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


@pytest.mark.parametrize("variant", ["prod-canary", "prod-blue-green"])
def test_the_rollout_variants_of_prod_run_prods_pods(
    variant: str, renderings: dict[str, list[Manifest]]
) -> None:
    """prod-canary and prod-blue-green change how prod rolls out, not what it runs."""
    prod, rollout = (
        workload(renderings["kustomize-prod"]),
        workload(renderings[f"kustomize-{variant}"]),
    )
    assert rollout["spec"]["template"] == prod["spec"]["template"]
    assert rollout["spec"]["selector"] == prod["spec"]["selector"]
    assert (
        find(renderings[f"kustomize-{variant}"], "HorizontalPodAutoscaler")["spec"]["minReplicas"]
        == find(renderings["kustomize-prod"], "HorizontalPodAutoscaler")["spec"]["minReplicas"]
    )


@pytest.mark.parametrize("overlay", sorted(NAMESPACES))
def test_overlays_leave_the_replica_count_to_the_autoscaler(
    overlay: str, renderings: dict[str, list[Manifest]]
) -> None:
    objects = renderings[f"kustomize-{overlay}"]
    runner = workload(objects)
    assert "replicas" not in runner["spec"]
    target = find(objects, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        runner["apiVersion"],
        runner["kind"],
        runner["metadata"]["name"],
    )


@pytest.mark.parametrize(("overlay", "host"), sorted(HOSTS.items()))
def test_overlay_ingress_host_and_tls_agree(
    overlay: str, host: str, renderings: dict[str, list[Manifest]]
) -> None:
    spec = find(renderings[f"kustomize-{overlay}"], "Ingress")["spec"]
    assert [rule["host"] for rule in spec["rules"]] == [host]
    assert spec["tls"][0]["hosts"] == [host]
