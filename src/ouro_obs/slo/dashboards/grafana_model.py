"""Bring grafanalib's dashboard JSON to Grafana's current dashboard model (pure, no grafanalib).

grafanalib 0.7.1 writes the model of Grafana 5-7: legacy ``rows``, ``hideControls``,
``sharedCrosshair``, ``style``, ``__inputs``, datasources as plain strings, nulls for
every unset field and ``schemaVersion`` 12. Grafana migrates such a dashboard when it
loads it, but its current JSON Schema rejects it, and a provisioned dashboard with
``__inputs`` never resolves its datasource. :func:`modernize_dashboard` rewrites the JSON
once, so the result validates against the schema and imports without a migration:

- every ``null`` goes, except a threshold step's ``value`` (there it means -Infinity,
  the base step);
- keys the current model no longer has go (dashboard, panel, row, variable and
  Prometheus target keys listed below);
- a datasource given as a string becomes a ``{type, uid}`` reference; a reference to
  a datasource variable (``$ds`` or ``${ds}``) keeps the variable as its uid and takes
  its type from the variable's plugin type;
- every target carries its panel's datasource, as Grafana itself saves it;
- ``schemaVersion`` becomes :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "LEGACY_DASHBOARD_KEYS",
    "LEGACY_PANEL_KEYS",
    "LEGACY_PROMETHEUS_TARGET_KEYS",
    "LEGACY_VARIABLE_KEYS",
    "ROW_PANEL_KEYS",
    "SCHEMA_VERSION",
    "datasource_ref",
    "iter_panels",
    "modernize_dashboard",
]

#: Grafana 10.4 / 11.0; newer versions load it with only their own small migrations.
SCHEMA_VERSION = 39

#: Export-for-sharing inputs (break file provisioning) and pre-7 layout/style keys.
LEGACY_DASHBOARD_KEYS = frozenset(
    {"__inputs", "__requires", "__elements", "rows", "hideControls", "sharedCrosshair", "style"}
)
#: Angular-era panel keys: span layout, per-panel edit flags, the old table's styling.
LEGACY_PANEL_KEYS = frozenset(
    {"editable", "error", "height", "span", "minSpan", "columns", "fontSize", "styles"}
)
#: The old table kept these at the panel level; the current model has them in fieldConfig.
LEGACY_TABLE_KEYS = frozenset({"color", "mappings"})
#: A row is its own object in the current model, with only these keys.
ROW_PANEL_KEYS = frozenset(
    {"type", "collapsed", "title", "datasource", "gridPos", "id", "panels", "repeat"}
)
#: Tag-based variables were removed in Grafana 8; ``tags`` also went from ``current``.
LEGACY_VARIABLE_KEYS = frozenset({"useTags", "tagsQuery", "tagValuesQuery", "tags"})
#: Only interval variables have an "auto" option.
INTERVAL_ONLY_VARIABLE_KEYS = frozenset({"auto", "auto_count", "auto_min"})
#: grafanalib writes Graphite and Grafana 5 fields into every target; Prometheus has none.
LEGACY_PROMETHEUS_TARGET_KEYS = frozenset({"query", "target", "metric", "step", "intervalFactor"})
LEGACY_TIMEPICKER_KEYS = frozenset({"time_options"})

_VARIABLE_REF = re.compile(r"^\$(?:\{(?P<braced>[A-Za-z0-9_]+)\}|(?P<plain>[A-Za-z0-9_]+))$")


def _without_nulls(value: Any, *, in_steps: bool = False) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_nulls(item, in_steps=key == "steps")
            for key, item in value.items()
            if item is not None or (in_steps and key == "value")
        }
    if isinstance(value, list):
        # A step's null value is meaningful: it is the base step (-Infinity).
        return [_without_nulls(item, in_steps=in_steps) for item in value]
    return value


def datasource_ref(value: Any, variable_types: Mapping[str, str]) -> Any:
    """A ``{type, uid}`` reference for a legacy string datasource; other values unchanged.

    ``"$ds"`` / ``"${ds}"`` naming a datasource variable keeps ``"${ds}"`` as the uid and
    takes the variable's plugin type; any other string is taken as a datasource uid.
    """
    if not isinstance(value, str):
        return value
    match = _VARIABLE_REF.match(value)
    if match is not None:
        name = match.group("braced") or match.group("plain")
        reference = {"uid": f"${{{name}}}"}
        if name in variable_types:
            reference = {"type": variable_types[name], **reference}
        return reference
    return {"uid": value}


def iter_panels(panels: list[Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, with the panels of collapsed rows after their row."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def _modern_row(row: dict[str, Any], variable_types: Mapping[str, str]) -> dict[str, Any]:
    modern = {key: value for key, value in row.items() if key in ROW_PANEL_KEYS}
    modern.setdefault("collapsed", False)
    modern["panels"] = [_modern_panel(panel, variable_types) for panel in row.get("panels", [])]
    if "datasource" in modern:
        modern["datasource"] = datasource_ref(modern["datasource"], variable_types)
    return modern


def _modern_target(
    target: dict[str, Any], panel_datasource: Any, variable_types: Mapping[str, str]
) -> dict[str, Any]:
    modern = dict(target)
    datasource = datasource_ref(modern.get("datasource", panel_datasource), variable_types)
    if datasource is not None:
        modern["datasource"] = datasource
    if isinstance(datasource, dict) and datasource.get("type") == "prometheus":
        for key in LEGACY_PROMETHEUS_TARGET_KEYS:
            modern.pop(key, None)
    return modern


def _modern_panel(panel: dict[str, Any], variable_types: Mapping[str, str]) -> dict[str, Any]:
    if panel.get("type") == "row":
        return _modern_row(panel, variable_types)
    legacy = LEGACY_PANEL_KEYS | (LEGACY_TABLE_KEYS if panel.get("type") == "table" else set())
    modern = {key: value for key, value in panel.items() if key not in legacy}
    if "datasource" in modern:
        modern["datasource"] = datasource_ref(modern["datasource"], variable_types)
    if "targets" in modern:
        modern["targets"] = [
            _modern_target(target, modern.get("datasource"), variable_types)
            for target in modern["targets"]
        ]
    return modern


def _modern_variable(variable: dict[str, Any], variable_types: Mapping[str, str]) -> dict[str, Any]:
    dropped = LEGACY_VARIABLE_KEYS
    if variable.get("type") != "interval":
        dropped = dropped | INTERVAL_ONLY_VARIABLE_KEYS
    modern = {key: value for key, value in variable.items() if key not in dropped}
    current = modern.get("current")
    if isinstance(current, dict):
        current = {key: value for key, value in current.items() if key not in dropped}
        # grafanalib writes an empty selection; Grafana picks the first option itself.
        if "text" in current and "value" in current:
            modern["current"] = current
        else:
            del modern["current"]
    if "datasource" in modern:
        modern["datasource"] = datasource_ref(modern["datasource"], variable_types)
    return modern


def _datasource_variable_types(dashboard: Mapping[str, Any]) -> dict[str, str]:
    variables = dashboard.get("templating", {}).get("list", [])
    return {
        variable["name"]: variable["query"]
        for variable in variables
        if variable.get("type") == "datasource" and isinstance(variable.get("query"), str)
    }


def modernize_dashboard(
    raw: Mapping[str, Any], schema_version: int = SCHEMA_VERSION
) -> dict[str, Any]:
    """The dashboard ``raw`` (grafanalib's JSON data) in Grafana's current model.

    ``raw`` is not changed. Keys the current model keeps are kept in their order, so
    the same input always gives the same output.
    """
    dashboard: dict[str, Any] = _without_nulls(copy.deepcopy(dict(raw)))
    variable_types = _datasource_variable_types(dashboard)
    for key in LEGACY_DASHBOARD_KEYS:
        dashboard.pop(key, None)
    # Grafana assigns the numeric id; a fixed one would clash between instances.
    dashboard.pop("id", None)
    if not isinstance(dashboard.get("refresh", ""), str):
        del dashboard["refresh"]  # grafanalib's "refresh: false" means "off", i.e. absent
    if isinstance(dashboard.get("timepicker"), dict):
        dashboard["timepicker"] = {
            key: value
            for key, value in dashboard["timepicker"].items()
            if key not in LEGACY_TIMEPICKER_KEYS
        }
    templating = dashboard.setdefault("templating", {})
    templating["list"] = [
        _modern_variable(variable, variable_types) for variable in templating.get("list", [])
    ]
    annotations = dashboard.setdefault("annotations", {})
    annotations["list"] = [
        {**item, "datasource": datasource_ref(item["datasource"], variable_types)}
        if "datasource" in item
        else item
        for item in annotations.get("list", [])
    ]
    dashboard["panels"] = [
        _modern_panel(panel, variable_types) for panel in dashboard.get("panels", [])
    ]
    dashboard["schemaVersion"] = schema_version
    return dashboard
