"""The Helm chart and the Kustomize manifests describe the same workload.

Paired renderings: the chart's default values against the Kustomize base,
values-prod.yaml against overlays/prod, and values-prod.yaml with a canary or blue-green
Rollout against overlays/prod-canary and prod-blue-green. Object names, metadata labels
and annotations may differ (Helm adds its own); what the pods run, how they are
selected, reached, protected, sized and rolled out may not. The selectors in particular
are one scheme (app.kubernetes.io/name and /instance), so moving an environment from one
renderer to the other never recreates its workload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy.manifests import (
    Manifest,
    container,
    find,
    find_all,
    pod_spec,
    service,
    workload,
)

PAIRS = [
    ("helm-default", "kustomize-base"),
    ("helm-prod", "kustomize-prod"),
    ("helm-canary", "kustomize-prod-canary"),
    ("helm-blue-green", "kustomize-prod-blue-green"),
]


def _settings(objects: list[Manifest]) -> dict[str, str]:
    name = container(objects)["envFrom"][0]["configMapRef"]["name"]
    data: dict[str, str] = find(objects, "ConfigMap", name)["data"]
    return data


def _spread(objects: list[Manifest]) -> list[tuple[str, str, int, Any]]:
    return [
        (c["topologyKey"], c["whenUnsatisfiable"], c["maxSkew"], c["labelSelector"])
        for c in pod_spec(objects)["topologySpreadConstraints"]
    ]


def _policies(objects: list[Manifest]) -> list[Any]:
    """Each NetworkPolicy's spec, the default deny first: names differ, rules may not."""
    specs = [policy["spec"] for policy in find_all(objects, "NetworkPolicy")]
    return sorted(specs, key=lambda spec: bool(spec["podSelector"]))


def _autoscaler(objects: list[Manifest]) -> dict[str, Any]:
    spec = dict(find(objects, "HorizontalPodAutoscaler")["spec"])
    target = spec.pop("scaleTargetRef")
    spec["target kind"] = (target["apiVersion"], target["kind"])
    return spec


def _strategy(objects: list[Manifest]) -> Any:
    """The rollout strategy, with the blue-green Service names (Helm's follow the release)."""
    strategy = workload(objects)["spec"]["strategy"]
    blue_green = strategy.get("blueGreen")
    if blue_green is None:
        return strategy
    name = workload(objects)["metadata"]["name"]
    assert blue_green["activeService"] == name
    assert blue_green["previewService"] == f"{name}-preview"
    return {k: v for k, v in blue_green.items() if k not in ("activeService", "previewService")}


ASPECTS: dict[str, Callable[[list[Manifest]], Any]] = {
    "workload kind": lambda o: (workload(o)["apiVersion"], workload(o)["kind"]),
    "container ports": lambda o: container(o)["ports"],
    "startup probe": lambda o: container(o)["startupProbe"],
    "liveness probe": lambda o: container(o)["livenessProbe"],
    "readiness probe": lambda o: container(o)["readinessProbe"],
    "preStop hook": lambda o: container(o)["lifecycle"],
    "container security context": lambda o: container(o)["securityContext"],
    "pod security context": lambda o: pod_spec(o)["securityContext"],
    "resources": lambda o: container(o)["resources"],
    "environment": lambda o: container(o)["env"],
    "volume mounts": lambda o: container(o)["volumeMounts"],
    "volumes": lambda o: pod_spec(o)["volumes"],
    "service account token": lambda o: pod_spec(o)["automountServiceAccountToken"],
    "topology spread": _spread,
    "rollout strategy": _strategy,
    "progress deadline and rollback window": lambda o: {
        key: value
        for key, value in workload(o)["spec"].items()
        if key.startswith("progressDeadline") or key == "rollbackWindow"
    },
    "workload selector": lambda o: workload(o)["spec"]["selector"],
    "pod labels": lambda o: workload(o)["spec"]["template"]["metadata"]["labels"],
    "service selector": lambda o: service(o)["spec"]["selector"],
    "service ports": lambda o: service(o)["spec"]["ports"],
    "preview service": lambda o: [
        (s["spec"]["selector"], s["spec"]["ports"])
        for s in find_all(o, "Service")
        if s is not service(o)
    ],
    "autoscaler": _autoscaler,
    "disruption budget": lambda o: find(o, "PodDisruptionBudget")["spec"],
    "network policies": _policies,
    "ingress paths": lambda o: find(o, "Ingress")["spec"]["rules"][0]["http"]["paths"][0][
        "backend"
    ]["service"]["port"],
    "ingress annotations": lambda o: find(o, "Ingress")["metadata"]["annotations"],
    "certificate": lambda o: find(o, "Certificate")["spec"],
    "scraped pod labels": lambda o: find(o, "ServiceMonitor")["spec"].get("podTargetLabels"),
    "settings": _settings,
}


@pytest.mark.parametrize(("helm", "kustomize"), PAIRS)
@pytest.mark.parametrize("aspect", sorted(ASPECTS))
def test_helm_and_kustomize_agree(
    aspect: str, helm: str, kustomize: str, renderings: dict[str, list[Manifest]]
) -> None:
    read = ASPECTS[aspect]
    assert read(renderings[helm]) == read(renderings[kustomize])


def test_the_pairs_differ_where_prod_differs(renderings: dict[str, list[Manifest]]) -> None:
    """The comparison above is not vacuous: the pairs are different workloads."""
    base, prod = renderings["kustomize-base"], renderings["kustomize-prod"]
    assert container(base)["resources"] != container(prod)["resources"]
    assert _settings(base) != _settings(prod)
    strategies = [
        sorted(set(workload(renderings[name])["spec"]["strategy"]) - {"type"})
        for name in ("kustomize-prod", "kustomize-prod-canary", "kustomize-prod-blue-green")
    ]
    assert strategies == [["rollingUpdate"], ["canary"], ["blueGreen"]]


def test_the_shared_selector_names_the_app_and_the_instance(
    renderings: dict[str, list[Manifest]],
) -> None:
    selector = workload(renderings["kustomize-prod"])["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "shop", "app.kubernetes.io/instance": "shop"}
