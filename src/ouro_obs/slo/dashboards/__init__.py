"""Spec -> Grafana dashboards (grafanalib); the only package that imports grafanalib.

Two dashboards per service, plus the ConfigMap that provisions both through Grafana's
dashboard sidecar:

- ``<service>-overview`` (:mod:`.overview`): RED metrics from the middleware's series,
  filtered by the spec's selector and the ``namespace``/``job``/``route`` variables;
- ``<service>-slo`` (:mod:`.slo`): per SLO, the SLI against its objective, the error
  budget, the burn rates of the alert windows and the alert states, from the
  generator's recording rules.

grafanalib builds the panels (:mod:`.panels`); :mod:`.grafana_model` then brings its
JSON to Grafana's current model.
"""

from __future__ import annotations

from typing import Any

from ouro_obs.slo import conventions
from ouro_obs.slo.dashboards.overview import (
    ALL_VALUE,
    FILTER_VARIABLES,
    TRACES_VARIABLE,
    overview_dashboard,
)
from ouro_obs.slo.dashboards.panels import DATASOURCE_VARIABLE
from ouro_obs.slo.dashboards.slo import slo_dashboard
from ouro_obs.slo.manifests import dashboards_configmap
from ouro_obs.slo.render import render_json
from ouro_obs.slo.spec import ServiceSpec

__all__ = [
    "ALL_VALUE",
    "DATASOURCE_VARIABLE",
    "FILTER_VARIABLES",
    "TRACES_VARIABLE",
    "dashboard_artifacts",
    "overview_dashboard",
    "slo_dashboard",
]


def dashboard_artifacts(spec: ServiceSpec) -> dict[str, Any]:
    """Relative output path -> JSON-able document (dashboards and their ConfigMap)."""
    paths = conventions.dashboard_paths(spec)
    dashboards = {
        paths["overview"]: overview_dashboard(spec),
        paths["slo"]: slo_dashboard(spec),
    }
    # The same text as the JSON files, so the sidecar provisions exactly what was reviewed.
    files = {path.rsplit("/", 1)[1]: render_json(doc) for path, doc in dashboards.items()}
    return {**dashboards, conventions.DASHBOARDS_CONFIGMAP_PATH: dashboards_configmap(spec, files)}
