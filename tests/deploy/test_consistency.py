"""The pieces of each rendering point at each other correctly.

The ServiceMonitor scrapes a Service port that reaches the container's metrics port,
on the path the middleware serves there; the probes hit the middleware's health
endpoints; the Service, PDB and NetworkPolicy select the workload's pods (a Deployment
or the Rollout that replaces it); the settings in the ConfigMap are ones the package
accepts. What the NetworkPolicies let through is in test_networkpolicy.py.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from ouro_obs.config import ObservabilitySettings
from ouro_obs.slo.spec import load_spec
from tests.deploy.manifests import (
    Manifest,
    container,
    find,
    find_all,
    pod_spec,
    service,
    workload,
)
from tests.support.tools import REPO_ROOT


def _settings(objects: list[Manifest]) -> ObservabilitySettings:
    name = container(objects)["envFrom"][0]["configMapRef"]["name"]
    data = find(objects, "ConfigMap", name)["data"]
    return ObservabilitySettings.from_env(data)


def _container_port(objects: list[Manifest], name: str) -> int:
    for port in container(objects)["ports"]:
        if port["name"] == name:
            number: int = port["containerPort"]
            return number
    raise AssertionError(f"the container has no port named {name}")


def _service_port(objects: list[Manifest], name: str) -> Manifest:
    for port in service(objects)["spec"]["ports"]:
        if port["name"] == name:
            found: Manifest = port
            return found
    raise AssertionError(f"the Service has no port named {name}")


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def test_servicemonitor_scrapes_the_metrics_port_by_name(rendering: list[Manifest]) -> None:
    for monitor in find_all(rendering, "ServiceMonitor"):
        ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
        assert ports == {"metrics"}
    assert _service_port(rendering, "metrics")["targetPort"] == "metrics"
    assert _container_port(rendering, "metrics") == _settings(rendering).metrics_port


def test_servicemonitor_selects_the_service(rendering: list[Manifest]) -> None:
    selector = find(rendering, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert _selects(selector, service(rendering)["metadata"]["labels"])


def test_servicemonitor_scrapes_each_pod_once(rendering: list[Manifest]) -> None:
    """Every Service it selects but the main one has no metrics port (blue-green's preview)."""
    selector = find(rendering, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    scraped = [
        candidate["metadata"]["name"]
        for candidate in find_all(rendering, "Service")
        if _selects(selector, candidate["metadata"]["labels"])
        and any(port["name"] == "metrics" for port in candidate["spec"]["ports"])
    ]
    assert scraped == [service(rendering)["metadata"]["name"]]


def _scraped_job(objects: list[Manifest]) -> str:
    """The `job` label the Prometheus Operator gives the targets of the ServiceMonitor."""
    monitor = find(objects, "ServiceMonitor")["spec"]
    scraped = service(objects)["metadata"]
    for endpoint in monitor["endpoints"]:
        for relabel in endpoint.get("relabelings") or []:
            if relabel.get("targetLabel") == "job":
                raise AssertionError("a relabeling sets job; extend this test to evaluate it")
    if "jobLabel" in monitor:
        job: str = scraped["labels"][monitor["jobLabel"]]
        return job
    name: str = scraped["name"]
    return name


def test_scraped_job_is_the_one_the_slo_rules_select(rendering: list[Manifest]) -> None:
    spec = load_spec(REPO_ROOT / "examples" / "shop" / "slo.yaml")
    assert spec.effective_selector.get("job") == _scraped_job(rendering)


def test_servicemonitor_path_is_the_one_served_on_the_metrics_port(
    rendering: list[Manifest],
) -> None:
    settings = _settings(rendering)
    # The separate metrics server serves metrics_path, or /metrics when the app port
    # serves none (ouro_obs.middleware builds MetricsServer that way).
    served = settings.metrics_path or "/metrics"
    paths = {
        e.get("path", "/metrics") for e in find(rendering, "ServiceMonitor")["spec"]["endpoints"]
    }
    assert paths == {served}


def test_metrics_are_not_served_on_the_public_port(rendering: list[Manifest]) -> None:
    assert _settings(rendering).metrics_path is None


def test_probes_hit_the_middleware_health_endpoints_on_the_http_port(
    rendering: list[Manifest],
) -> None:
    settings = _settings(rendering)
    shop = container(rendering)
    probes = {
        kind: (shop[kind]["httpGet"]["path"], shop[kind]["httpGet"]["port"])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes == {
        "startupProbe": (settings.health_live_path, "http"),
        "livenessProbe": (settings.health_live_path, "http"),
        "readinessProbe": (settings.health_ready_path, "http"),
    }
    assert (settings.health_live_path, settings.health_ready_path) == (
        "/health/live",
        "/health/ready",
    )
    assert shop["readinessProbe"]["timeoutSeconds"] > settings.readiness_timeout_seconds


def test_service_pdb_and_policy_select_the_pods(rendering: list[Manifest]) -> None:
    runner = workload(rendering)
    pod_labels = runner["spec"]["template"]["metadata"]["labels"]
    assert _selects(service(rendering)["spec"]["selector"], pod_labels)
    assert _selects(
        find(rendering, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels
    )
    policy = find(rendering, "NetworkPolicy", runner["metadata"]["name"])
    assert _selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
    assert _selects(runner["spec"]["selector"]["matchLabels"], pod_labels)


def test_ingress_routes_to_the_http_port_only(rendering: list[Manifest]) -> None:
    for ingress in find_all(rendering, "Ingress"):
        backends = [
            path["backend"]["service"]
            for rule in ingress["spec"]["rules"]
            for path in rule["http"]["paths"]
        ]
        assert backends == [
            {"name": service(rendering)["metadata"]["name"], "port": {"name": "http"}}
        ]


def test_pods_run_hardened(rendering: list[Manifest]) -> None:
    pod = pod_spec(rendering)
    shop = container(rendering)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 10000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert find(rendering, "ServiceAccount")["automountServiceAccountToken"] is False
    context = shop["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert set(shop["resources"]) == {"requests", "limits"}
    assert set(shop["resources"]["limits"]) == {"cpu", "memory"}


def test_writable_paths_are_emptydirs(rendering: list[Manifest]) -> None:
    shop = container(rendering)
    volumes = {volume["name"]: volume for volume in pod_spec(rendering)["volumes"]}
    mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in shop["volumeMounts"]}
    multiproc = {e["name"]: e.get("value") for e in shop["env"]}["PROMETHEUS_MULTIPROC_DIR"]
    assert {"/tmp", multiproc} <= set(mounts)
    assert all("emptyDir" in volume for volume in mounts.values())


def test_updates_never_drop_capacity(rendering: list[Manifest]) -> None:
    """One extra pod at a time, none removed before its replacement is ready.

    Blue-green starts the whole new version beside the old one, so it never drops any.
    """
    strategy = workload(rendering)["spec"]["strategy"]
    if "blueGreen" in strategy:
        assert "previewReplicaCount" not in strategy["blueGreen"]
        return
    steps = strategy.get("canary") or strategy["rollingUpdate"]
    assert (steps["maxSurge"], steps["maxUnavailable"]) == (1, 0)
    if "rollingUpdate" in strategy:
        assert strategy["type"] == "RollingUpdate"


def test_downward_api_names_the_pod(rendering: list[Manifest]) -> None:
    env = {
        e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        for e in container(rendering)["env"]
    }
    assert env["K8S_POD_NAME"] == "metadata.name"
    assert env["K8S_NAMESPACE_NAME"] == "metadata.namespace"


@pytest.mark.parametrize(
    "rendering_name", ["kustomize-dev", "kustomize-prod", "helm-default", "helm-prod"]
)
def test_prometheus_operator_picks_up_the_monitoring_objects(
    rendering_name: str, renderings: dict[str, list[Manifest]]
) -> None:
    """kube-prometheus-stack selects ServiceMonitors and PrometheusRules by `release`."""
    objects = renderings[rendering_name]
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert find(objects, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
