"""Spec -> Prometheus Operator objects and their Kustomization, as data (pure).

The PrometheusRule carries the same rule groups as the plain rule file (the renderer
writes both the same way). The ServiceMonitor
scrapes the Service labelled ``app.kubernetes.io/name: <service>`` on its port named
``metrics`` and takes the ``job`` label from that same Service label, so the rules'
default selector ``job="<service>"`` matches whatever the Service is called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ouro_obs.slo.rules import RuleGroup
from ouro_obs.slo.spec import ServiceSpec

__all__ = [
    "DASHBOARD_SIDECAR_LABEL",
    "METRICS_PATH",
    "METRICS_PORT_NAME",
    "SCRAPE_INTERVAL",
    "dashboards_configmap",
    "kustomization",
    "manifest_metadata",
    "prometheus_rule",
    "service_monitor",
]

METRICS_PORT_NAME = "metrics"
METRICS_PATH = "/metrics"
#: At most half the shortest rate window of a 7-day SLO (1m), so every rate has 2 samples.
SCRAPE_INTERVAL = "30s"
NAME_LABEL = "app.kubernetes.io/name"
#: Grafana's dashboard sidecar provisions the ConfigMaps that carry this label.
DASHBOARD_SIDECAR_LABEL = "grafana_dashboard"


def _metadata(
    spec: ServiceSpec, name: str, component: str, extra_labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    labels = {
        NAME_LABEL: spec.app_name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "ouro-obs",
        **(extra_labels or {}),
        **spec.manifest_labels,
    }
    metadata: dict[str, Any] = {"name": name}
    if spec.namespace:
        metadata["namespace"] = spec.namespace
    metadata["labels"] = labels
    return metadata


def manifest_metadata(spec: ServiceSpec, name: str, component: str) -> dict[str, Any]:
    """``metadata`` of a generated object: its name, the namespace, the common labels."""
    return _metadata(spec, name, component)


def prometheus_rule(spec: ServiceSpec, groups: Iterable[RuleGroup]) -> dict[str, Any]:
    """A ``monitoring.coreos.com/v1`` PrometheusRule holding ``groups``."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _metadata(spec, f"{spec.service}-slo", "slo-rules"),
        "spec": {"groups": list(groups)},
    }


def service_monitor(spec: ServiceSpec) -> dict[str, Any]:
    """A ``monitoring.coreos.com/v1`` ServiceMonitor for the service's metrics port."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(spec, spec.service, "metrics"),
        "spec": {
            "jobLabel": NAME_LABEL,
            "selector": {"matchLabels": {NAME_LABEL: spec.app_name}},
            "endpoints": [
                {
                    "port": METRICS_PORT_NAME,
                    "path": METRICS_PATH,
                    "interval": SCRAPE_INTERVAL,
                }
            ],
        },
    }


def dashboards_configmap(spec: ServiceSpec, files: Mapping[str, str]) -> dict[str, Any]:
    """A ConfigMap of dashboard files (name -> JSON text) for Grafana's dashboard sidecar."""
    metadata = _metadata(
        spec, f"{spec.service}-dashboards", "dashboards", {DASHBOARD_SIDECAR_LABEL: "1"}
    )
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(files)}


def kustomization(resources: Iterable[str]) -> dict[str, Any]:
    """A Kustomization listing ``resources`` (file names in its directory), sorted."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(resources),
    }
