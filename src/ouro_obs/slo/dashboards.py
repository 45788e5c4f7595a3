"""Spec -> Grafana dashboards (grafanalib); the only module that imports grafanalib.

Two dashboards per service, plus the ConfigMap that provisions both through Grafana's
dashboard sidecar:

- ``<service>-overview``: RED metrics from the middleware's series, filtered by the
  spec's selector and the ``namespace``/``job``/``route`` variables;
- ``<service>-slo``: per SLO, the SLI against its objective, the error budget, the burn
  rates of the alert windows and the alert states, from the generator's recording rules.

grafanalib builds the panels; :mod:`ouro_obs.slo.grafana_model` then brings its JSON to
Grafana's current model. Where grafanalib 0.7.1 only knows a panel's pre-Grafana-8 form
(gauge, bar gauge, heatmap), :class:`_CurrentPanel` writes the current options on top of
grafanalib's common panel fields.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from grafanalib import core as grafana

from ouro_obs.metrics import MetricNames
from ouro_obs.slo.grafana_model import modernize_dashboard
from ouro_obs.slo.render import render_json
from ouro_obs.slo.rules import (
    BUDGET_REMAINING_RECORD,
    OBJECTIVE_RECORD,
    alert_names,
    burn_rate_record,
    decimal_text,
    sli_error_record,
    slo_labels,
)
from ouro_obs.slo.spec import (
    AvailabilitySLI,
    DashboardKind,
    LatencySLI,
    ServiceSpec,
    SLOSpec,
    dashboard_uid,
)
from ouro_obs.slo.windows import Window, alert_windows, period_window

__all__ = [
    "ALL_VALUE",
    "DATASOURCE_VARIABLE",
    "DEFAULT_ERROR_STATUS_REGEX",
    "FILTER_VARIABLES",
    "TRACES_VARIABLE",
    "configmap_path",
    "dashboard_artifacts",
    "dashboard_paths",
    "overview_dashboard",
    "slo_dashboard",
]

DATASOURCE_VARIABLE = "datasource"
TRACES_VARIABLE = "traces"
#: Label filters of the overview, in the order they narrow each other.
FILTER_VARIABLES = ("namespace", "job", "route")
#: "All" of a filter variable: also matches series without the label (plain Prometheus).
ALL_VALUE = ".*"
DEFAULT_ERROR_STATUS_REGEX = "5.."
RATE_INTERVAL = "$__rate_interval"
#: The dashboard's whole time range, for the "top routes" tables.
RANGE = "$__range"
TRACE_DATASOURCE_TYPE = "tempo"
SIDECAR_LABEL = "grafana_dashboard"
GRID_WIDTH = 24
LATENCY_QUANTILES = (Decimal("0.5"), Decimal("0.9"), Decimal("0.99"))
SIZE_QUANTILES = (Decimal("0.5"), Decimal("0.99"))
TOP_ROUTES = 10

_DATASOURCE = f"${{{DATASOURCE_VARIABLE}}}"
_GREEN, _YELLOW, _ORANGE, _RED = "green", "yellow", "orange", "red"
_ALERT_STATES = {"0": ("ok", _GREEN), "1": ("pending", _YELLOW), "2": ("firing", _RED)}


# --------------------------------------------------------------------------- PromQL


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


Matcher = tuple[str, str, str]


def _selector(matchers: Iterable[Matcher]) -> str:
    return "{" + ",".join(f"{name}{op}{_quote(value)}" for name, op, value in matchers) + "}"


@dataclass(frozen=True, slots=True)
class _Series:
    """The service's series: the spec's selector, narrowed by the dashboard's variables."""

    spec: ServiceSpec

    @property
    def names(self) -> MetricNames:
        return MetricNames(self.spec.metrics_namespace)

    def fixed(self) -> list[Matcher]:
        return [(name, "=", value) for name, value in self.spec.effective_selector.items()]

    def matchers(self, *, route: bool = True, upto: str | None = None) -> list[Matcher]:
        """Selector matchers plus the filter variables (those before ``upto`` only)."""
        matchers = self.fixed()
        for variable in FILTER_VARIABLES:
            if variable == upto:
                break
            if variable == "route" and not route:
                continue
            matchers.append((variable, "=~", f"${variable}"))
        return matchers

    def select(self, metric: str, *extra: Matcher, route: bool = True) -> str:
        return metric + _selector([*self.matchers(route=route), *extra])

    def rate(self, metric: str, *extra: Matcher, window: str = RATE_INTERVAL) -> str:
        return f"rate({self.select(metric, *extra)}[{window}])"

    def quantile(self, q: Decimal, histogram: str, by: str, window: str = RATE_INTERVAL) -> str:
        labels = ", ".join(["le", by]) if by else "le"
        rate = self.rate(f"{histogram}_bucket", window=window)
        return f"histogram_quantile({decimal_text(q)}, sum by ({labels}) ({rate}))"

    def variable_query(self, variable: str) -> str:
        metric = self.names.requests_total + _selector(self.matchers(upto=variable))
        return f"label_values({metric}, {variable})"


def _error_status_regex(spec: ServiceSpec) -> str:
    """The first availability SLO's error statuses, so the overview agrees with the SLO."""
    for slo in spec.slos:
        if isinstance(slo.sli, AvailabilitySLI):
            return slo.sli.error_status_regex
    return DEFAULT_ERROR_STATUS_REGEX


def _error_ratio(series: _Series, status_regex: str, by: str = "") -> str:
    requests = series.names.requests_total
    grouping = f" by ({by}) " if by else ""
    errors = f"sum{grouping}({series.rate(requests, ('status', '=~', status_regex))})"
    total = f"sum{grouping}({series.rate(requests)})"
    # A route without errors has no error series; count it as 0 rather than leave a gap.
    zero = f"0 * {total}" if by else "vector(0)"
    return f"(\n  {errors}\n  or\n  {zero}\n)\n/\n{total}"


def _quantile_label(q: Decimal) -> str:
    return f"p{decimal_text(q * 100)}"


# --------------------------------------------------------------------------- panels


@dataclass(frozen=True, slots=True)
class _Query:
    """A Prometheus query of a panel; grafanalib's Target plus the current model's fields."""

    expr: str
    legend: str = ""
    instant: bool = False
    exemplar: bool = False
    format: str = "time_series"

    def target(self, ref_id: str) -> _PromTarget:
        return _PromTarget(
            grafana.Target(
                expr=self.expr,
                legendFormat=self.legend,
                refId=ref_id,
                instant=self.instant,
                format=self.format,
            ),
            exemplar=self.exemplar,
        )


@dataclass(frozen=True, slots=True)
class _PromTarget:
    target: Any
    exemplar: bool

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.target.to_json_data()
        data.update(editorMode="code", range=not data["instant"], exemplar=self.exemplar)
        return data


def _targets(queries: Sequence[_Query]) -> list[_PromTarget]:
    return [query.target(chr(ord("A") + index)) for index, query in enumerate(queries)]


def _steps(*steps: tuple[str, Decimal | float | None]) -> list[dict[str, Any]]:
    return [
        {"color": color, "value": None if value is None else float(value)} for color, value in steps
    ]


def _common(
    title: str, description: str, queries: Sequence[_Query], thresholds: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "dataSource": _DATASOURCE,
        "targets": _targets(queries),
        "thresholds": thresholds,
        # grafanalib's default of 100 points makes hour-long graphs coarse; Grafana sizes it.
        "maxDataPoints": None,
    }


_NEUTRAL = _steps((_GREEN, None))


def _timeseries(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[_Query],
    *,
    stacked: bool = False,
    thresholds: list[dict[str, Any]] | None = None,
    minimum: int | None = 0,
    links: Sequence[Any] = (),
) -> Any:
    return grafana.TimeSeries(
        **_common(title, description, queries, thresholds or _NEUTRAL),
        unit=unit,
        valueMin=minimum,
        fillOpacity=20 if stacked else 10,
        stacking={"mode": "normal" if stacked else "none", "group": "A"},
        showPoints="never",
        legendDisplayMode="table" if len(queries) > 1 else "list",
        legendCalcs=["mean", "max", "lastNotNull"] if len(queries) > 1 else [],
        tooltipMode="multi",
        tooltipSort="desc",
        thresholdsStyleMode="line" if thresholds else "off",
        links=list(links),
    )


def _stat(
    title: str,
    description: str,
    unit: str,
    query: _Query,
    thresholds: list[dict[str, Any]] | None = None,
    decimals: int | None = None,
) -> Any:
    return grafana.Stat(
        **_common(title, description, [query], thresholds or _NEUTRAL),
        format=unit,
        decimals=decimals,
        reduceCalc="lastNotNull",
        graphMode="area",
        colorMode="value",
        noValue="no data",
    )


def _table(title: str, description: str, unit: str, query: _Query, value_name: str) -> Any:
    return grafana.Table(
        **_common(title, description, [query], _NEUTRAL),
        unit=unit,
        sortBy=[grafana.TableSortByField(displayName=value_name, desc=True)],
        transformations=[
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {"Value": value_name},
                },
            }
        ],
    )


def _state_timeline(
    title: str, description: str, queries: Sequence[_Query], states: Mapping[str, tuple[str, str]]
) -> Any:
    mapping = {
        value: {"text": text, "color": color, "index": index}
        for index, (value, (text, color)) in enumerate(states.items())
    }
    return grafana.StateTimeline(
        **_common(title, description, queries, _NEUTRAL),
        mappings=[{"type": "value", "options": mapping}],
        # grafanalib's StateTimeline has no unit; the mapping texts are the values shown.
        extraJson={"fieldConfig": {"defaults": {"unit": "none"}}},
    )


@dataclass(frozen=True, slots=True)
class _CurrentPanel:
    """A panel grafanalib 0.7.1 writes only in its old form: its options in today's model."""

    base: Any  # grafanalib Panel: title, datasource, targets, thresholds, links, ...
    type: str
    options: Mapping[str, Any]
    defaults: Mapping[str, Any]

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.base.panel_json(
            {
                "type": self.type,
                "options": dict(self.options),
                "fieldConfig": {"defaults": dict(self.defaults), "overrides": []},
            }
        )
        return data


_REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def _gauge(
    title: str, description: str, unit: str, query: _Query, thresholds: list[dict[str, Any]]
) -> _CurrentPanel:
    return _CurrentPanel(
        grafana.Panel(**_common(title, description, [query], thresholds)),
        "gauge",
        {
            "reduceOptions": _REDUCE_LAST,
            "orientation": "auto",
            "showThresholdLabels": False,
            "showThresholdMarkers": True,
        },
        {"unit": unit, "min": 0, "max": 1, "color": {"mode": "thresholds"}},
    )


def _bar_gauge(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[_Query],
    thresholds: list[dict[str, Any]],
    limits: tuple[float, float] | None = None,
) -> _CurrentPanel:
    defaults: dict[str, Any] = {"unit": unit, "color": {"mode": "thresholds"}}
    if limits is not None:
        defaults.update(min=limits[0], max=limits[1])
    return _CurrentPanel(
        grafana.Panel(**_common(title, description, queries, thresholds)),
        "bargauge",
        {
            "reduceOptions": _REDUCE_LAST,
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "valueMode": "color",
        },
        defaults,
    )


def _heatmap(
    title: str, description: str, query: _Query, y_unit: str, cell_unit: str
) -> _CurrentPanel:
    return _CurrentPanel(
        grafana.Panel(**_common(title, description, [query], _NEUTRAL)),
        "heatmap",
        {
            # The buckets are already a histogram: show them, do not re-bucket the series.
            "calculate": False,
            "cellGap": 1,
            "color": {
                "mode": "scheme",
                "scheme": "Oranges",
                "scale": "exponential",
                "exponent": 0.5,
                "steps": 64,
                "fill": "dark-orange",
                "reverse": False,
            },
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "filterValues": {"le": 1e-9},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": False},
            "yAxis": {"axisPlacement": "left", "reverse": False, "unit": y_unit},
            "cellValues": {"unit": cell_unit},
        },
        {"unit": cell_unit, "custom": {"scaleDistribution": {"type": "linear"}}},
    )


# --------------------------------------------------------------------------- layout


@dataclass
class _Grid:
    """Places panels left to right in rows of 24 columns and numbers them from 1."""

    panels: list[Any] = field(default_factory=list)
    x: int = 0
    y: int = 0
    line_height: int = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def _new_line(self) -> None:
        self.y += self.line_height
        self.x = 0
        self.line_height = 0

    def row(self, title: str) -> None:
        self._new_line()
        self.panels.append(
            grafana.RowPanel(
                title=title,
                id=self._next_id(),
                gridPos=grafana.GridPos(h=1, w=GRID_WIDTH, x=0, y=self.y),
            )
        )
        self.y += 1

    def add(self, panel: Any, width: int, height: int) -> None:
        if self.x + width > GRID_WIDTH:
            self._new_line()
        position = grafana.GridPos(h=height, w=width, x=self.x, y=self.y)
        base = panel.base if isinstance(panel, _CurrentPanel) else panel
        base.id = self._next_id()
        base.gridPos = position
        self.panels.append(panel)
        self.x += width
        self.line_height = max(self.line_height, height)


# --------------------------------------------------------------------------- dashboards


def _datasource_variable(name: str, plugin: str, label: str) -> Any:
    # No saved selection: Grafana then takes the default datasource of that type.
    return grafana.Template(name=name, label=label, query=plugin, type="datasource", refresh=1)


def _filter_variable(series: _Series, name: str) -> Any:
    return grafana.Template(
        name=name,
        label=name.capitalize(),
        query=series.variable_query(name),
        dataSource=_DATASOURCE,
        includeAll=True,
        multi=True,
        allValue=ALL_VALUE,
        # Values change as pods and routes come and go: re-read them with the time range.
        refresh=2,
        sort=1,
    )


def _link(title: str, kind: DashboardKind, service: str, tooltip: str) -> Any:
    return grafana.DashboardLink(
        title=title,
        type="link",
        uri=f"/d/{dashboard_uid(service, kind)}",
        icon="dashboard",
        tooltip=tooltip,
        includeVars=True,
        keepTime=True,
    )


def _dashboard(
    spec: ServiceSpec,
    kind: DashboardKind,
    title: str,
    description: str,
    variables: Sequence[Any],
    panels: Sequence[Any],
    links: Sequence[Any],
    time_from: str,
) -> dict[str, Any]:
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


def _traces_url(service: str) -> str:
    """Grafana Explore on the trace datasource variable, searching the service's traces."""
    placeholders = {
        "__TRACES__": f"${{{TRACES_VARIABLE}}}",
        "__FROM__": "${__from}",
        "__TO__": "${__to}",
    }
    panes = {
        "traces": {
            "datasource": "__TRACES__",
            "queries": [
                {
                    "refId": "A",
                    "datasource": {"type": TRACE_DATASOURCE_TYPE, "uid": "__TRACES__"},
                    "queryType": "traceql",
                    "query": f'{{resource.service.name="{service}"}}',
                }
            ],
            "range": {"from": "__FROM__", "to": "__TO__"},
        }
    }
    encoded = urllib.parse.quote(json.dumps(panes, separators=(",", ":")), safe="")
    # Grafana interpolates ${...} in a link before opening it, so those stay unencoded.
    for placeholder, variable in placeholders.items():
        encoded = encoded.replace(placeholder, variable)
    return f"/explore?schemaVersion=1&orgId=1&panes={encoded}"


def _overview_panels(spec: ServiceSpec) -> list[Any]:
    series = _Series(spec)
    names = series.names
    requests, duration = names.requests_total, names.request_duration
    errors = _error_status_regex(spec)
    budget = next(
        (slo.error_budget for slo in spec.slos if isinstance(slo.sli, AvailabilitySLI)),
        Decimal("0.01"),
    )
    threshold = next(
        (slo.sli.threshold_seconds for slo in spec.slos if isinstance(slo.sli, LatencySLI)),
        Decimal(1),
    )
    traces_link = grafana.DashboardLink(
        title=f"Traces of {spec.service}",
        type="link",
        uri=_traces_url(spec.service),
        icon="external link",
        tooltip="Open Explore on the trace datasource chosen in the Traces variable",
        targetBlank=True,
        keepTime=False,
    )
    per_route = _Query(f"sum by (route) ({series.rate(requests)})", "{{route}}")
    grid = _Grid()
    grid.row("Summary")
    grid.add(
        _stat(
            "Request rate",
            "Requests completed per second.",
            "reqps",
            _Query(f"sum({series.rate(requests)})"),
        ),
        6,
        4,
    )
    grid.add(
        _stat(
            "Error ratio",
            f'Share of responses with status=~"{errors}"; red above the error budget.',
            "percentunit",
            _Query(_error_ratio(series, errors)),
            _steps((_GREEN, None), (_RED, budget)),
            decimals=2,
        ),
        6,
        4,
    )
    grid.add(
        _stat(
            "p99 latency",
            "99th percentile of the time to the last response byte; red above the latency SLO.",
            "s",
            _Query(series.quantile(Decimal("0.99"), duration, "")),
            _steps((_GREEN, None), (_RED, threshold)),
        ),
        6,
        4,
    )
    grid.add(
        _stat(
            "In flight",
            "Requests being served right now (not filtered by route: the gauge has no route).",
            "short",
            _Query(f"sum({series.select(names.requests_in_progress, route=False)})"),
        ),
        6,
        4,
    )

    grid.row("Traffic and errors")
    grid.add(
        _timeseries("Request rate by route", "Requests per second.", "reqps", [per_route]),
        12,
        8,
    )
    grid.add(
        _timeseries(
            "Responses by status code",
            "Responses per second by the status code sent.",
            "reqps",
            [_Query(f"sum by (status) ({series.rate(requests)})", "{{status}}")],
            stacked=True,
        ),
        12,
        8,
    )
    grid.add(
        _timeseries(
            "Error ratio by route",
            f'Share of each route\'s responses with status=~"{errors}".',
            "percentunit",
            [_Query(_error_ratio(series, errors, by="route"), "{{route}}")],
            thresholds=_steps((_GREEN, None), (_RED, budget)),
        ),
        12,
        8,
    )
    grid.add(
        _bar_gauge(
            "Status codes in the time range",
            "Responses per status code over the dashboard's whole time range.",
            "short",
            [
                _Query(
                    f"round(sum by (status) (increase({series.select(requests)}[{RANGE}])))",
                    "{{status}}",
                    instant=True,
                )
            ],
            _NEUTRAL,
        ),
        12,
        8,
    )

    grid.row("Latency")
    grid.add(
        _timeseries(
            "Latency percentiles by route",
            "p50, p90 and p99 of the request duration from the histogram. Exemplar dots "
            "link to their trace when the Prometheus datasource has an exemplar trace "
            "destination; the panel link opens the service's traces.",
            "s",
            [
                _Query(
                    series.quantile(q, duration, "route"),
                    f"{_quantile_label(q)} {{{{route}}}}",
                    exemplar=True,
                )
                for q in LATENCY_QUANTILES
            ],
            thresholds=_steps((_GREEN, None), (_RED, threshold)),
            links=[traces_link],
        ),
        12,
        9,
    )
    grid.add(
        _heatmap(
            "Latency distribution",
            "Requests per second in each duration bucket, with exemplars.",
            _Query(
                f"sum by (le) ({series.rate(f'{duration}_bucket')})",
                "{{le}}",
                exemplar=True,
                format="heatmap",
            ),
            y_unit="s",
            cell_unit="reqps",
        ),
        12,
        9,
    )

    grid.row("Saturation and payload sizes")
    grid.add(
        _timeseries(
            "In-flight requests by method",
            "Requests being served right now.",
            "short",
            [
                _Query(
                    f"sum by (method) ({series.select(names.requests_in_progress, route=False)})",
                    "{{method}}",
                )
            ],
        ),
        8,
        8,
    )
    for title, metric in (
        ("Request body size", names.request_size),
        ("Response body size", names.response_size),
    ):
        grid.add(
            _timeseries(
                f"{title} by route",
                f"p50 and p99 of the {title.lower()}: the bytes actually streamed.",
                "bytes",
                [
                    _Query(
                        series.quantile(q, metric, "route"), f"{_quantile_label(q)} {{{{route}}}}"
                    )
                    for q in SIZE_QUANTILES
                ],
            ),
            8,
            8,
        )

    grid.row("Top routes in the time range")
    grid.add(
        _table(
            "Top routes by traffic",
            f"The {TOP_ROUTES} busiest routes over the dashboard's time range.",
            "reqps",
            _Query(
                f"topk({TOP_ROUTES}, sum by (route) ({series.rate(requests, window=RANGE)}))",
                "{{route}}",
                instant=True,
                format="table",
            ),
            "requests/s",
        ),
        8,
        8,
    )
    grid.add(
        _table(
            "Top routes by errors",
            f'The {TOP_ROUTES} routes with the most responses with status=~"{errors}".',
            "reqps",
            _Query(
                f"topk({TOP_ROUTES}, sum by (route) "
                f"({series.rate(requests, ('status', '=~', errors), window=RANGE)}))",
                "{{route}}",
                instant=True,
                format="table",
            ),
            "errors/s",
        ),
        8,
        8,
    )
    grid.add(
        _table(
            "Slowest routes (p99)",
            f"The {TOP_ROUTES} routes with the highest p99 latency over the time range.",
            "s",
            _Query(
                f"topk({TOP_ROUTES}, {series.quantile(Decimal('0.99'), duration, 'route', RANGE)})",
                "{{route}}",
                instant=True,
                format="table",
            ),
            "p99",
        ),
        8,
        8,
    )
    return grid.panels


def overview_dashboard(spec: ServiceSpec) -> dict[str, Any]:
    """The RED overview of the service, in Grafana's current dashboard model."""
    series = _Series(spec)
    variables = [
        _datasource_variable(DATASOURCE_VARIABLE, "prometheus", "Data source"),
        *(_filter_variable(series, name) for name in FILTER_VARIABLES),
        _datasource_variable(TRACES_VARIABLE, TRACE_DATASOURCE_TYPE, "Traces"),
    ]
    return _dashboard(
        spec,
        "overview",
        f"{spec.service} / overview",
        f"Requests, errors and latency of {spec.service} (generated by ouro-obs).",
        variables,
        _overview_panels(spec),
        [_link("SLOs", "slo", spec.service, f"Error budgets and burn rates of {spec.service}")],
        time_from="6h",
    )


# --------------------------------------------------------------------------- SLO dashboard


def _rule_series(record: str, spec: ServiceSpec, slo: SLOSpec) -> str:
    return record + _selector((name, "=", value) for name, value in slo_labels(spec, slo).items())


def _percent_text(ratio: Decimal) -> str:
    return f"{decimal_text(ratio * 100)}%"


def _slo_title(slo: SLOSpec) -> str:
    what = "availability" if isinstance(slo.sli, AvailabilitySLI) else "latency"
    if isinstance(slo.sli, LatencySLI):
        what = f"latency under {decimal_text(slo.sli.threshold_seconds)} s"
    return f"SLO {slo.name}: {decimal_text(slo.objective)}% {what} over {slo.window_days}d"


def _alert_state_query(spec: ServiceSpec, slo: SLOSpec, alert: str) -> _Query:
    def alerts(state: str) -> str:
        labels = {"alertname": alert, **slo_labels(spec, slo), "alertstate": state}
        return "ALERTS" + _selector((name, "=", value) for name, value in labels.items())

    # 2 firing, 1 pending, 0 not active: one series per alert even while all is well.
    expr = (
        f"(\n  max({alerts('firing')}) * 2\n  or\n  max({alerts('pending')})\n  or\n  vector(0)\n)"
    )
    return _Query(expr, alert)


def _burn_windows(slo: SLOSpec) -> list[Window]:
    windows: set[Window] = set()
    for alert in alert_windows(slo.window_days):
        windows.update((alert.short_window, alert.long_window))
    return sorted(windows)


def _burn_thresholds(slo: SLOSpec) -> list[dict[str, Any]]:
    factors = sorted({alert.burn_factor for alert in alert_windows(slo.window_days)})
    colors = [_YELLOW, _ORANGE, _RED, "dark-red"]
    return _steps((_GREEN, None), *zip(colors, factors, strict=False))


def _slo_panels(spec: ServiceSpec, grid: _Grid, slo: SLOSpec) -> None:
    period = period_window(slo.window_days)
    objective = slo.objective / 100
    page_long = alert_windows(slo.window_days)[0].long_window
    sli = f"1 - {_rule_series(sli_error_record(period), spec, slo)}"
    objective_series = _rule_series(OBJECTIVE_RECORD, spec, slo)
    remaining = _rule_series(BUDGET_REMAINING_RECORD, spec, slo)
    meets = _steps((_RED, None), (_GREEN, objective))
    budget_steps = _steps((_RED, None), (_ORANGE, 0), (_GREEN, Decimal("0.25")))
    names = alert_names(spec, slo)
    grid.row(_slo_title(slo))
    grid.add(
        _stat(
            f"SLI over {period}",
            f"Good events over the SLO window; green at or above the objective "
            f"({_percent_text(objective)}). {slo.description}".strip(),
            "percentunit",
            _Query(sli),
            meets,
            decimals=3,
        ),
        6,
        6,
    )
    grid.add(
        _gauge(
            "Error budget remaining",
            f"Share of the {period} error budget ({_percent_text(slo.error_budget)} of "
            "events) not spent yet; below 0 the SLO is missed.",
            "percentunit",
            _Query(remaining),
            budget_steps,
        ),
        6,
        6,
    )
    grid.add(
        _bar_gauge(
            "Burn rate by alert window",
            "How many times faster than the budget allows errors happen now, per window "
            "of the burn-rate alerts; 1 spends exactly the budget over the SLO window.",
            "suffix:x",
            [
                _Query(_rule_series(burn_rate_record(window), spec, slo), str(window), instant=True)
                for window in _burn_windows(slo)
            ],
            _burn_thresholds(slo),
        ),
        12,
        6,
    )
    grid.add(
        _timeseries(
            "SLI against the objective",
            f"The SLI over the SLO window ({period}) and over the fast page's window "
            f"({page_long}), against the objective.",
            "percentunit",
            [
                _Query(sli, f"SLI ({period})"),
                _Query(
                    f"1 - {_rule_series(sli_error_record(page_long), spec, slo)}",
                    f"SLI ({page_long})",
                ),
                _Query(objective_series, "objective"),
            ],
            minimum=None,
        ),
        12,
        8,
    )
    grid.add(
        _timeseries(
            "Error budget remaining over time",
            f"Share of the {period} error budget left at each point in time.",
            "percentunit",
            [_Query(remaining, "budget remaining")],
            thresholds=budget_steps,
            minimum=None,
        ),
        12,
        8,
    )
    grid.add(
        _timeseries(
            "Burn rates",
            "Burn rate over each alert window; the lines mark the alerts' burn factors.",
            "suffix:x",
            [
                _Query(_rule_series(burn_rate_record(window), spec, slo), str(window))
                for window in _burn_windows(slo)
            ],
            thresholds=_burn_thresholds(slo),
        ),
        12,
        8,
    )
    grid.add(
        _state_timeline(
            "Alerts",
            f"State of {names.page} (page) and {names.ticket} (ticket).",
            [
                _alert_state_query(spec, slo, names.page),
                _alert_state_query(spec, slo, names.ticket),
            ],
            _ALERT_STATES,
        ),
        12,
        8,
    )


def slo_dashboard(spec: ServiceSpec) -> dict[str, Any]:
    """Per SLO: SLI, error budget, burn rates and alert states, in the current model."""
    grid = _Grid()
    grid.row("All SLOs")
    service = _selector([("service", "=", spec.service)])
    grid.add(
        _bar_gauge(
            "Error budget remaining by SLO",
            "Share of each SLO's error budget not spent yet over its window.",
            "percentunit",
            [_Query(f"{BUDGET_REMAINING_RECORD}{service}", "{{slo}}", instant=True)],
            _steps((_RED, None), (_ORANGE, 0), (_GREEN, Decimal("0.25"))),
            limits=(0, 1),
        ),
        24,
        max(4, 2 * len(spec.slos) + 2),
    )
    for slo in spec.slos:
        _slo_panels(spec, grid, slo)
    return _dashboard(
        spec,
        "slo",
        f"{spec.service} / SLOs",
        f"Service level objectives of {spec.service}: SLIs, error budgets, burn rates and "
        "alerts (generated by ouro-obs).",
        [_datasource_variable(DATASOURCE_VARIABLE, "prometheus", "Data source")],
        grid.panels,
        [
            _link(
                "Overview",
                "overview",
                spec.service,
                f"Requests, errors and latency of {spec.service}",
            )
        ],
        time_from="7d",
    )


# --------------------------------------------------------------------------- files


def dashboard_paths(spec: ServiceSpec) -> dict[str, str]:
    """Dashboard kind -> output path, relative to the output directory."""
    return {kind: f"dashboards/{spec.service}-{kind}.json" for kind in ("overview", "slo")}


def configmap_path() -> str:
    return "deploy/generated/grafana-dashboards.yaml"


def _configmap(spec: ServiceSpec, dashboards: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"{spec.service}-dashboards"}
    if spec.namespace:
        metadata["namespace"] = spec.namespace
    metadata["labels"] = {
        "app.kubernetes.io/name": spec.service,
        "app.kubernetes.io/component": "dashboards",
        "app.kubernetes.io/managed-by": "ouro-obs",
        SIDECAR_LABEL: "1",
        **spec.manifest_labels,
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        # The same text as the JSON files, so the sidecar provisions exactly what was reviewed.
        "data": {path.rsplit("/", 1)[1]: render_json(doc) for path, doc in dashboards.items()},
    }


def dashboard_artifacts(spec: ServiceSpec) -> dict[str, Any]:
    """Relative output path -> JSON-able document (dashboards and their ConfigMap)."""
    paths = dashboard_paths(spec)
    dashboards = {
        paths["overview"]: overview_dashboard(spec),
        paths["slo"]: slo_dashboard(spec),
    }
    return {**dashboards, configmap_path(): _configmap(spec, dashboards)}
