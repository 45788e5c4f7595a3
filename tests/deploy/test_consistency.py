"""The pieces of each rendering point at each other correctly.

The ServiceMonitor scrapes a Service port that reaches the container's metrics port,
on the path the middleware serves there; the probes hit the middleware's health
endpoints; the NetworkPolicy lets the scraper reach the metrics port and nothing else
reach it; the settings in the ConfigMap are ones the package accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ouro_obs.config import ObservabilitySettings
from ouro_obs.slo.spec import load_spec
from tests.deploy.manifests import DEPLOYABLE, Manifest, container, find, find_all, pod_spec
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
    for port in find(objects, "Service")["spec"]["ports"]:
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
    service = find(rendering, "Service")
    selector = find(rendering, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert _selects(selector, service["metadata"]["labels"])


def _scraped_job(objects: list[Manifest]) -> str:
    """The `job` label the Prometheus Operator gives the targets of the ServiceMonitor."""
    monitor = find(objects, "ServiceMonitor")["spec"]
    service = find(objects, "Service")["metadata"]
    for endpoint in monitor["endpoints"]:
        for relabel in endpoint.get("relabelings") or []:
            if relabel.get("targetLabel") == "job":
                raise AssertionError("a relabeling sets job; extend this test to evaluate it")
    if "jobLabel" in monitor:
        job: str = service["labels"][monitor["jobLabel"]]
        return job
    name: str = service["name"]
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


def test_service_and_pdb_select_the_pods(rendering: list[Manifest]) -> None:
    pod_labels = find(rendering, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _selects(find(rendering, "Service")["spec"]["selector"], pod_labels)
    assert _selects(
        find(rendering, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels
    )
    assert _selects(
        find(rendering, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"], pod_labels
    )
    assert _selects(find(rendering, "Deployment")["spec"]["selector"]["matchLabels"], pod_labels)


def test_ingress_routes_to_the_http_port_only(rendering: list[Manifest]) -> None:
    for ingress in find_all(rendering, "Ingress"):
        backends = [
            path["backend"]["service"]
            for rule in ingress["spec"]["rules"]
            for path in rule["http"]["paths"]
        ]
        assert backends == [
            {"name": find(rendering, "Service")["metadata"]["name"], "port": {"name": "http"}}
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


def test_rolling_update_never_drops_capacity(rendering: list[Manifest]) -> None:
    strategy = find(rendering, "Deployment")["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_downward_api_names_the_pod(rendering: list[Manifest]) -> None:
    env = {
        e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        for e in container(rendering)["env"]
    }
    assert env["K8S_POD_NAME"] == "metadata.name"
    assert env["K8S_NAMESPACE_NAME"] == "metadata.namespace"


# --- NetworkPolicy semantics -------------------------------------------------------


def _peer_admits(
    peer: Mapping[str, Any],
    namespace: Mapping[str, str],
    pod: Mapping[str, str],
    own_namespace: Mapping[str, str],
) -> bool:
    namespace_selector = peer.get("namespaceSelector")
    pod_selector = peer.get("podSelector")
    if "ipBlock" in peer:
        return False  # not used by these policies; a test below forbids it
    if namespace_selector is None:
        namespace_ok = namespace == own_namespace
    else:
        namespace_ok = _matches(namespace_selector, namespace)
    pod_ok = True if pod_selector is None else _matches(pod_selector, pod)
    return namespace_ok and pod_ok


def _matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if selector.get("matchExpressions"):
        raise AssertionError("matchExpressions are not evaluated by this test; extend it")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def admitted(
    policy: Manifest,
    *,
    namespace: Mapping[str, str],
    pod: Mapping[str, str],
    port: str,
    own_namespace: Mapping[str, str],
) -> bool:
    """Whether one NetworkPolicy lets a pod with these labels reach the named port."""
    for rule in policy["spec"].get("ingress") or []:
        ports = rule.get("ports")
        port_ok = ports is None or any(p.get("port") == port for p in ports)
        peers = rule.get("from")
        peer_ok = peers is None or any(
            _peer_admits(peer, namespace, pod, own_namespace) for peer in peers
        )
        if port_ok and peer_ok:
            return True
    return False


def _peers(rendering_name: str) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    custom = rendering_name == "helm-custom"
    controller = "traefik" if custom else "ingress-nginx"
    monitoring = "observability" if custom else "monitoring"
    return {
        "ingress controller": (
            {"kubernetes.io/metadata.name": controller},
            {"app.kubernetes.io/name": controller},
        ),
        "prometheus": (
            {"kubernetes.io/metadata.name": monitoring},
            {"app.kubernetes.io/name": "prometheus"},
        ),
        "neighbour in the namespace": ({"kubernetes.io/metadata.name": "own"}, {"app": "other"}),
        "other pod in the controller namespace": (
            {"kubernetes.io/metadata.name": controller},
            {"app.kubernetes.io/name": "cert-manager"},
        ),
        "pod elsewhere": ({"kubernetes.io/metadata.name": "default"}, {"app": "curl"}),
    }


EXPECTED_ACCESS = {
    "ingress controller": {"http"},
    "prometheus": {"metrics"},
    "neighbour in the namespace": set(),
    "other pod in the controller namespace": set(),
    "pod elsewhere": set(),
}


@pytest.mark.parametrize("rendering_name", DEPLOYABLE)
def test_networkpolicy_admits_each_peer_to_its_port_only(
    rendering_name: str, renderings: dict[str, list[Manifest]]
) -> None:
    policy = find(renderings[rendering_name], "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    own = {"kubernetes.io/metadata.name": "own"}
    access = {
        peer: {
            port
            for port in ("http", "metrics")
            if admitted(policy, namespace=namespace, pod=pod, port=port, own_namespace=own)
        }
        for peer, (namespace, pod) in _peers(rendering_name).items()
    }
    assert access == EXPECTED_ACCESS


def test_networkpolicy_rules_all_name_their_ports_and_peers(rendering: list[Manifest]) -> None:
    """A rule without ports or without peers would open everything; ipBlocks bypass labels."""
    for rule in find(rendering, "NetworkPolicy")["spec"]["ingress"]:
        assert rule.get("ports"), rule
        assert rule.get("from"), rule
        assert all("ipBlock" not in peer for peer in rule["from"]), rule


def test_admitted_sees_an_opened_port() -> None:
    """The evaluator itself: a rule without ports opens every port to its peers."""
    policy: Manifest = {
        "spec": {"ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}]}
    }
    assert admitted(policy, namespace={"team": "a"}, pod={}, port="metrics", own_namespace={})
    assert not admitted(policy, namespace={"team": "b"}, pod={}, port="metrics", own_namespace={})


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
