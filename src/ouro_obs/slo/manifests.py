"""Spec -> Prometheus Operator objects and their Kustomization, as plain data (pure).

The PrometheusRule carries the same groups as the plain rule file. The ServiceMonitor
scrapes the Service labelled ``app.kubernetes.io/name: <service>`` on its port named
``metrics`` and takes the ``job`` label from that same Service label, so the rules'
default selector ``job="<service>"`` matches whatever the Service is called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ouro_obs.slo.spec import ServiceSpec

__all__ = [
    "GENERATED_DIR",
    "METRICS_PATH",
    "METRICS_PORT_NAME",
    "SCRAPE_INTERVAL",
    "kustomization",
    "prometheus_rule",
    "service_monitor",
]

GENERATED_DIR = "deploy/generated"
METRICS_PORT_NAME = "metrics"
METRICS_PATH = "/metrics"
#: At most half the shortest rate window of a 7-day SLO (1m), so every rate has 2 samples.
SCRAPE_INTERVAL = "30s"
NAME_LABEL = "app.kubernetes.io/name"


def _metadata(spec: ServiceSpec, name: str, component: str) -> dict[str, Any]:
    labels = {
        NAME_LABEL: spec.service,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "ouro-obs",
        **spec.manifest_labels,
    }
    metadata: dict[str, Any] = {"name": name}
    if spec.namespace:
        metadata["namespace"] = spec.namespace
    metadata["labels"] = labels
    return metadata


def prometheus_rule(spec: ServiceSpec, groups: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A ``monitoring.coreos.com/v1`` PrometheusRule holding ``groups``."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _metadata(spec, f"{spec.service}-slo", "slo-rules"),
        "spec": {"groups": [dict(group) for group in groups]},
    }


def service_monitor(spec: ServiceSpec) -> dict[str, Any]:
    """A ``monitoring.coreos.com/v1`` ServiceMonitor for the service's metrics port."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(spec, spec.service, "metrics"),
        "spec": {
            "jobLabel": NAME_LABEL,
            "selector": {"matchLabels": {NAME_LABEL: spec.service}},
            "endpoints": [
                {
                    "port": METRICS_PORT_NAME,
                    "path": METRICS_PATH,
                    "interval": SCRAPE_INTERVAL,
                }
            ],
        },
    }


def kustomization(resources: Iterable[str]) -> dict[str, Any]:
    """A Kustomization listing ``resources`` (file names in its directory), sorted."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(resources),
    }
