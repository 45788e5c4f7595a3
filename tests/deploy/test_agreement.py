"""The Helm chart and the Kustomize manifests describe the same workload.

Paired renderings: the chart's default values against the Kustomize base, and
values-prod.yaml against overlays/prod. Names and labels may differ (Helm adds the
release); what the pods run and how they are reached, protected and sized may not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy.manifests import Manifest, container, find, pod_spec

PAIRS = [("helm-default", "kustomize-base"), ("helm-prod", "kustomize-prod")]


def _settings(objects: list[Manifest]) -> dict[str, str]:
    name = container(objects)["envFrom"][0]["configMapRef"]["name"]
    data: dict[str, str] = find(objects, "ConfigMap", name)["data"]
    return data


def _spread(objects: list[Manifest]) -> list[tuple[str, str, int]]:
    return [
        (c["topologyKey"], c["whenUnsatisfiable"], c["maxSkew"])
        for c in pod_spec(objects)["topologySpreadConstraints"]
    ]


ASPECTS: dict[str, Callable[[list[Manifest]], Any]] = {
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
    "rollout strategy": lambda o: find(o, "Deployment")["spec"]["strategy"],
    "service ports": lambda o: find(o, "Service")["spec"]["ports"],
    "autoscaler": lambda o: {
        key: value
        for key, value in find(o, "HorizontalPodAutoscaler")["spec"].items()
        if key != "scaleTargetRef"
    },
    "disruption budget": lambda o: find(o, "PodDisruptionBudget")["spec"]["maxUnavailable"],
    "network policy rules": lambda o: (
        find(o, "NetworkPolicy")["spec"]["policyTypes"],
        find(o, "NetworkPolicy")["spec"]["ingress"],
    ),
    "ingress paths": lambda o: find(o, "Ingress")["spec"]["rules"][0]["http"]["paths"][0][
        "backend"
    ]["service"]["port"],
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
    """The comparison above is not vacuous: the two pairs are different workloads."""
    base, prod = renderings["kustomize-base"], renderings["kustomize-prod"]
    assert container(base)["resources"] != container(prod)["resources"]
    assert _settings(base) != _settings(prod)
