"""The frame of a generated dashboard: variables, links, and the JSON Grafana imports.

grafanalib builds the dashboard; :func:`build_dashboard` then brings its JSON to the
current model (:mod:`ouro_obs.slo.dashboards.grafana_model`) with sorted keys, so the
same spec always gives the same file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grafanalib import core as grafana

from ouro_obs.slo.conventions import DashboardKind, dashboard_uid, dashboard_url
from ouro_obs.slo.dashboards.grafana_model import modernize_dashboard
from ouro_obs.slo.spec import ServiceSpec

__all__ = ["build_dashboard", "dashboard_link", "datasource_variable"]


def datasource_variable(name: str, plugin: str, label: str) -> Any:
    """A variable choosing a datasource of type ``plugin``."""
    # No saved selection: Grafana then takes the default datasource of that type.
    return grafana.Template(name=name, label=label, query=plugin, type="datasource", refresh=1)


def dashboard_link(title: str, kind: DashboardKind, service: str, tooltip: str) -> Any:
    """A link to the service's other dashboard, keeping the time range and variables."""
    return grafana.DashboardLink(
        title=title,
        type="link",
        uri=dashboard_url(service, kind),
        icon="dashboard",
        tooltip=tooltip,
        includeVars=True,
        keepTime=True,
    )


def _encode(value: Any) -> Any:
    to_json_data = getattr(value, "to_json_data", None)
    if to_json_data is None:
        raise TypeError(f"cannot write {type(value).__name__} into a dashboard")
    return to_json_data()


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def build_dashboard(
    spec: ServiceSpec,
    kind: DashboardKind,
    title: str,
    description: str,
    variables: Sequence[Any],
    panels: Sequence[Any],
    links: Sequence[Any],
    time_from: str,
) -> dict[str, Any]:
    """The dashboard ``kind`` of ``spec.service`` in Grafana's current model."""
    dashboard = grafana.Dashboard(
        title=title,
        uid=dashboard_uid(spec.service, kind),
        description=description,
        tags=["ouro-obs", spec.service],
        timezone="browser",
        refresh="1m",
        graphTooltip=1,  # shared crosshair: compare rate, errors and latency at one instant
        time=grafana.Time(f"now-{time_from}", "now"),
        templating=grafana.Templating(list(variables)),
        panels=list(panels),
        links=list(links),
        editable=True,
    )
    raw = json.loads(json.dumps(dashboard.to_json_data(), default=_encode))
    modern: dict[str, Any] = _sorted_keys(modernize_dashboard(raw))
    return modern
