"""What the NetworkPolicies of each rendering let through, evaluated as a CNI would.

Every namespace starts closed (a default deny, in and out); the workload's own policy
then admits the ingress controller to the `http` port and Prometheus to the `metrics`
port, and lets the pods reach the cluster DNS and the OTLP collector, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.manifests import (
    CUSTOM_VALUES,
    DEPLOYABLE,
    Manifest,
    container,
    find,
    find_all,
    workload,
)

Labels = Mapping[str, str]
OWN_NAMESPACE = {"kubernetes.io/metadata.name": "own"}


def _matches(selector: Mapping[str, Any], labels: Labels) -> bool:
    if selector.get("matchExpressions"):
        raise AssertionError("matchExpressions are not evaluated by this test; extend it")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer_matches(peer: Mapping[str, Any], namespace: Labels, pod: Labels) -> bool:
    if "ipBlock" in peer:
        return False  # not used by these policies; a test below forbids it
    namespace_selector = peer.get("namespaceSelector")
    if namespace_selector is None:
        namespace_ok = namespace == OWN_NAMESPACE
    else:
        namespace_ok = _matches(namespace_selector, namespace)
    pod_selector = peer.get("podSelector")
    return namespace_ok and (pod_selector is None or _matches(pod_selector, pod))


def _port_matches(rule: Mapping[str, Any], port: str | int, protocol: str) -> bool:
    ports = rule.get("ports")
    return ports is None or any(
        p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
    )


def _governing(policies: Iterable[Manifest], pod: Labels, direction: str) -> list[Manifest]:
    return [
        policy
        for policy in policies
        if direction in policy["spec"]["policyTypes"]
        and _matches(policy["spec"]["podSelector"], pod)
    ]


def allowed(
    policies: Iterable[Manifest],
    direction: str,
    *,
    pod: Labels,
    peer_namespace: Labels,
    peer: Labels,
    port: str | int,
    protocol: str = "TCP",
) -> bool:
    """Whether traffic between ``pod`` (in OWN_NAMESPACE) and a peer is allowed.

    ``direction`` is ``Ingress`` (from the peer to ``port`` of the pod) or ``Egress``
    (from the pod to ``port`` of the peer). As in Kubernetes, a pod no policy governs
    in that direction is open; otherwise one rule of one governing policy must allow it.
    """
    governing = _governing(policies, pod, direction)
    if not governing:
        return True
    peers_key = "from" if direction == "Ingress" else "to"
    for policy in governing:
        for rule in policy["spec"].get(direction.lower()) or []:
            peers = rule.get(peers_key)
            peer_ok = peers is None or any(
                _peer_matches(candidate, peer_namespace, peer) for candidate in peers
            )
            if peer_ok and _port_matches(rule, port, protocol):
                return True
    return False


def _pod_labels(objects: list[Manifest]) -> Labels:
    labels: Labels = workload(objects)["spec"]["template"]["metadata"]["labels"]
    return labels


def _is_custom(rendering_name: str) -> bool:
    return rendering_name == "helm-custom"


def _ingress_peers(rendering_name: str) -> dict[str, tuple[Labels, Labels]]:
    controller = "traefik" if _is_custom(rendering_name) else "ingress-nginx"
    monitoring = "observability" if _is_custom(rendering_name) else "monitoring"
    return {
        "ingress controller": (
            {"kubernetes.io/metadata.name": controller},
            {"app.kubernetes.io/name": controller},
        ),
        "prometheus": (
            {"kubernetes.io/metadata.name": monitoring},
            {"app.kubernetes.io/name": "prometheus"},
        ),
        "grafana beside prometheus": (
            {"kubernetes.io/metadata.name": monitoring},
            {"app.kubernetes.io/name": "grafana"},
        ),
        "neighbour in the namespace": (OWN_NAMESPACE, {"app": "other"}),
        "other pod in the controller namespace": (
            {"kubernetes.io/metadata.name": controller},
            {"app.kubernetes.io/name": "cert-manager"},
        ),
        "pod elsewhere": ({"kubernetes.io/metadata.name": "default"}, {"app": "curl"}),
    }


EXPECTED_INGRESS = {
    "ingress controller": {"http"},
    "prometheus": {"metrics"},
    "grafana beside prometheus": set(),
    "neighbour in the namespace": set(),
    "other pod in the controller namespace": set(),
    "pod elsewhere": set(),
}


def _egress_peers(rendering_name: str) -> dict[str, tuple[Labels, Labels]]:
    collector = "telemetry" if _is_custom(rendering_name) else "observability"
    return {
        "cluster dns": ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"}),
        "otlp collector": (
            {"kubernetes.io/metadata.name": collector},
            {"app.kubernetes.io/name": "opentelemetry-collector"},
        ),
        "other pod in kube-system": (
            {"kubernetes.io/metadata.name": "kube-system"},
            {"k8s-app": "metrics-server"},
        ),
        "neighbour in the namespace": (OWN_NAMESPACE, {"app": "other"}),
        "pod elsewhere": ({"kubernetes.io/metadata.name": "default"}, {"app": "web"}),
    }


EXPECTED_EGRESS = {
    "cluster dns": {"53/UDP", "53/TCP"},
    "otlp collector": {"4317/TCP", "4318/TCP"},
    "other pod in kube-system": set(),
    "neighbour in the namespace": set(),
    "pod elsewhere": set(),
}
EGRESS_PORTS = ("53/UDP", "53/TCP", "4317/TCP", "4318/TCP", "80/TCP", "443/TCP")


@pytest.mark.parametrize("rendering_name", DEPLOYABLE)
def test_ingress_admits_each_peer_to_its_port_only(
    rendering_name: str, renderings: dict[str, list[Manifest]]
) -> None:
    objects = renderings[rendering_name]
    policies, pod = find_all(objects, "NetworkPolicy"), _pod_labels(objects)
    access = {
        name: {
            port
            for port in ("http", "metrics")
            if allowed(policies, "Ingress", pod=pod, peer_namespace=ns, peer=labels, port=port)
        }
        for name, (ns, labels) in _ingress_peers(rendering_name).items()
    }
    assert access == EXPECTED_INGRESS


@pytest.mark.parametrize("rendering_name", DEPLOYABLE)
def test_egress_reaches_dns_and_the_collector_only(
    rendering_name: str, renderings: dict[str, list[Manifest]]
) -> None:
    objects = renderings[rendering_name]
    policies, pod = find_all(objects, "NetworkPolicy"), _pod_labels(objects)
    access: dict[str, set[str]] = {}
    for name, (ns, labels) in _egress_peers(rendering_name).items():
        access[name] = set()
        for entry in EGRESS_PORTS:
            number, protocol = entry.split("/")
            if allowed(
                policies,
                "Egress",
                pod=pod,
                peer_namespace=ns,
                peer=labels,
                port=int(number),
                protocol=protocol,
            ):
                access[name].add(entry)
    assert access == EXPECTED_EGRESS


@pytest.mark.parametrize("rendering_name", DEPLOYABLE)
def test_every_other_pod_of_the_namespace_is_closed_both_ways(
    rendering_name: str, renderings: dict[str, list[Manifest]]
) -> None:
    """The default deny: a pod no other policy names can neither be reached nor reach out."""
    policies = find_all(renderings[rendering_name], "NetworkPolicy")
    stranger = {"app": "debug-shell"}
    everyone = ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"})
    assert not allowed(
        policies, "Ingress", pod=stranger, peer_namespace=OWN_NAMESPACE, peer={}, port="http"
    )
    assert not allowed(
        policies,
        "Egress",
        pod=stranger,
        peer_namespace=everyone[0],
        peer=everyone[1],
        port=53,
        protocol="UDP",
    )


def test_the_default_deny_selects_the_whole_namespace_and_allows_nothing(
    rendering: list[Manifest],
) -> None:
    deny = [p for p in find_all(rendering, "NetworkPolicy") if p["spec"]["podSelector"] == {}]
    (policy,) = deny
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy["spec"]
    assert "egress" not in policy["spec"]


def test_policy_rules_all_name_their_ports_and_peers(rendering: list[Manifest]) -> None:
    """A rule without ports or without peers would open everything; ipBlocks bypass labels."""
    policy = find(rendering, "NetworkPolicy", workload(rendering)["metadata"]["name"])
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for rule in policy["spec"][direction]:
            assert rule.get("ports"), rule
            assert rule.get(peers_key), rule
            assert all("ipBlock" not in peer for peer in rule[peers_key]), rule


def test_the_collector_namespace_is_the_one_the_otlp_endpoint_names(
    rendering: list[Manifest],
) -> None:
    """The endpoint `<service>.<namespace>.svc` and the egress rule must name one namespace."""
    config_name = container(rendering)["envFrom"][0]["configMapRef"]["name"]
    endpoint = find(rendering, "ConfigMap", config_name)["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    host = urlsplit(endpoint).hostname or ""
    service_name, _, rest = host.partition(".")
    namespace = rest.split(".")[0]
    assert service_name, endpoint
    assert rest.startswith(f"{namespace}.svc"), endpoint
    policy = find(rendering, "NetworkPolicy", workload(rendering)["metadata"]["name"])
    otlp_rules = [
        rule
        for rule in policy["spec"]["egress"]
        if {p["port"] for p in rule["ports"]} == {4317, 4318}
    ]
    (rule,) = otlp_rules
    assert [peer["namespaceSelector"]["matchLabels"] for peer in rule["to"]] == [
        {"kubernetes.io/metadata.name": namespace}
    ]


def test_custom_values_move_the_collector_with_the_endpoint() -> None:
    """The non-default values keep endpoint and policy together (see the test above)."""
    assert CUSTOM_VALUES["otel"]["endpoint"].startswith("https://collector.telemetry.svc")
    assert CUSTOM_VALUES["networkPolicy"]["otelCollector"]["namespace"] == "telemetry"


def test_allowed_sees_an_opened_port() -> None:
    """The evaluator itself: a rule without ports opens every port to its peers."""
    policy: Manifest = {
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}],
        }
    }
    open_to_a = allowed([policy], "Ingress", pod={}, peer_namespace={"team": "a"}, peer={}, port=1)
    open_to_b = allowed([policy], "Ingress", pod={}, peer_namespace={"team": "b"}, peer={}, port=1)
    assert (open_to_a, open_to_b) == (True, False)
    assert allowed([policy], "Egress", pod={}, peer_namespace={}, peer={}, port=1)
