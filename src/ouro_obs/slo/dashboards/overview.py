"""The ``<service>-overview`` dashboard: RED metrics from the middleware's series.

Every query reads the spec's selector, narrowed by the ``namespace``, ``job`` and
``route`` variables; the error ratio and latency thresholds follow the service's SLOs.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from grafanalib import core as grafana

from ouro_obs.contract import ROUTE_LABEL
from ouro_obs.slo import conventions, promql
from ouro_obs.slo.dashboards.dashboard import build_dashboard, dashboard_link, datasource_variable
from ouro_obs.slo.dashboards.panels import (
    DATASOURCE,
    DATASOURCE_VARIABLE,
    GREEN,
    NEUTRAL,
    RED,
    Grid,
    Query,
    bar_gauge,
    heatmap,
    stat,
    table,
    threshold_steps,
    timeseries,
)
from ouro_obs.slo.grouping import CLUSTER_LABEL, keeps_cluster
from ouro_obs.slo.promql import Matcher, decimal_text
from ouro_obs.slo.spec import AvailabilitySLI, LatencySLI, ServiceSpec
from ouro_obs.slo.spec.model import DEFAULT_ERROR_STATUS_REGEX

__all__ = [
    "ALL_VALUE",
    "FILTER_VARIABLES",
    "TRACES_VARIABLE",
    "filter_variables",
    "overview_dashboard",
]

TRACES_VARIABLE = "traces"
#: Label filters of the overview, in the order they narrow each other.
FILTER_VARIABLES = ("namespace", "job", ROUTE_LABEL)
#: "All" of a filter variable: also matches series without the label (plain Prometheus).
ALL_VALUE = ".*"
RATE_INTERVAL = "$__rate_interval"
#: The dashboard's whole time range, for the "top routes" tables.
RANGE = "$__range"
TRACE_DATASOURCE_TYPE = "tempo"
LATENCY_QUANTILES = (Decimal("0.5"), Decimal("0.9"), Decimal("0.99"))
SIZE_QUANTILES = (Decimal("0.5"), Decimal("0.99"))
P99 = Decimal("0.99")
TOP_ROUTES = 10


@dataclass(frozen=True, slots=True)
class _Series:
    """The service's series: the spec's selector, narrowed by the dashboard's variables."""

    spec: ServiceSpec

    @property
    def names(self) -> conventions.SeriesNames:
        return conventions.series_names(self.spec)

    def label_of(self, variable: str) -> str:
        """The series label a filter variable matches (``route`` is ``http_route`` in OTel)."""
        return self.names.route_label if variable == ROUTE_LABEL else variable

    def matchers(self, *, route: bool = True, upto: str | None = None) -> list[Matcher]:
        """Selector matchers plus the filter variables (those before ``upto`` only)."""
        matchers = promql.equal_matchers(self.spec.effective_selector)
        for variable in filter_variables(self.spec):
            if variable == upto:
                break
            if variable == ROUTE_LABEL and not route:
                continue
            matchers.append(promql.matches(self.label_of(variable), f"${variable}"))
        return matchers

    def select(self, metric: str, *extra: Matcher, route: bool = True) -> str:
        return metric + promql.selector([*self.matchers(route=route), *extra])

    def rate(self, metric: str, *extra: Matcher, window: str = RATE_INTERVAL) -> str:
        return promql.rate(self.select(metric, *extra), window)

    def quantile(
        self, q: Decimal, histogram: str, by: tuple[str, ...] = (), window: str = RATE_INTERVAL
    ) -> str:
        return promql.histogram_quantile(q, self.rate(f"{histogram}_bucket", window=window), by)

    def variable_query(self, variable: str) -> str:
        metric = self.names.requests + promql.selector(self.matchers(upto=variable))
        return f"label_values({metric}, {self.label_of(variable)})"


def filter_variables(spec: ServiceSpec) -> tuple[str, ...]:
    """The overview's filter variables: ``cluster`` first when the spec selects by it."""
    return (CLUSTER_LABEL, *FILTER_VARIABLES) if keeps_cluster(spec) else FILTER_VARIABLES


def _error_ratio(series: _Series, status_regex: str, by: tuple[str, ...] = ()) -> str:
    requests = series.names.requests
    status = promql.matches(series.names.status_label, status_regex)
    errors = promql.sum_of(series.rate(requests, status), by)
    total = promql.sum_of(series.rate(requests), by)
    # A route without errors has no error series; count it as 0 rather than leave a gap.
    zero = f"0 * {total}" if by else "vector(0)"
    return promql.divide(promql.block(errors, "or", zero), total)


def _red_above(limit: Decimal) -> list[dict[str, Any]]:
    return threshold_steps((GREEN, None), (RED, limit))


def _quantile_label(q: Decimal) -> str:
    return f"p{decimal_text(q * 100)}"


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


def _filter_variable(series: _Series, name: str) -> Any:
    return grafana.Template(
        name=name,
        label=name.capitalize(),
        query=series.variable_query(name),
        dataSource=DATASOURCE,
        includeAll=True,
        multi=True,
        allValue=ALL_VALUE,
        # Values change as pods and routes come and go: re-read them with the time range.
        refresh=2,
        sort=1,
    )


class _Overview:
    """The overview's rows, from the spec's series and its SLOs' thresholds."""

    def __init__(self, spec: ServiceSpec):
        self.spec = spec
        self.series = _Series(spec)
        self.names = self.series.names
        self.requests = self.names.requests
        #: Legends of the per-route series.
        self.route_legend = f"{{{{{self.names.route_label}}}}}"
        self.duration = self.names.request_duration
        #: The first availability SLO's error statuses, so the overview agrees with the SLO.
        self.errors = next(
            (s.sli.error_status_regex for s in spec.slos if isinstance(s.sli, AvailabilitySLI)),
            DEFAULT_ERROR_STATUS_REGEX,
        )
        self.budget = next(
            (s.error_budget for s in spec.slos if isinstance(s.sli, AvailabilitySLI)),
            Decimal("0.01"),
        )
        self.threshold = next(
            (s.sli.threshold_seconds for s in spec.slos if isinstance(s.sli, LatencySLI)),
            Decimal(1),
        )
        self.grid = Grid()

    def in_flight(self, by: tuple[str, ...] = ()) -> str:
        # Not filtered by route: the gauge has no route label.
        return promql.sum_of(self.series.select(self.names.requests_in_progress, route=False), by)

    def summary(self) -> None:
        self.grid.row("Summary")
        rate, ratio = promql.sum_of(self.series.rate(self.requests)), self.error_ratio()
        for panel in (
            stat("Request rate", "Requests completed per second.", "reqps", Query(rate)),
            stat(
                "Error ratio",
                f'Share of responses with status=~"{self.errors}"; red above the error budget.',
                "percentunit",
                Query(ratio),
                _red_above(self.budget),
                decimals=2,
            ),
            stat(
                "p99 latency",
                "99th percentile of the time to the last response byte; red above the latency SLO.",
                "s",
                Query(self.series.quantile(P99, self.duration)),
                _red_above(self.threshold),
            ),
            stat(
                "In flight",
                "Requests being served right now (not filtered by route: the gauge has no route).",
                "short",
                Query(self.in_flight()),
            ),
        ):
            self.grid.add(panel, 6, 4)

    def error_ratio(self, by: tuple[str, ...] = ()) -> str:
        return _error_ratio(self.series, self.errors, by)

    def traffic(self) -> None:
        self.grid.row("Traffic and errors")
        by_status = promql.sum_of(self.series.rate(self.requests), (self.names.status_label,))
        in_range = promql.sum_of(
            promql.increase(self.series.select(self.requests), RANGE), (self.names.status_label,)
        )
        for panel in (
            timeseries(
                "Request rate by route",
                "Requests per second.",
                "reqps",
                [
                    Query(
                        promql.sum_of(self.series.rate(self.requests), (self.names.route_label,)),
                        self.route_legend,
                    )
                ],
            ),
            timeseries(
                "Responses by status code",
                "Responses per second by the status code sent.",
                "reqps",
                [Query(by_status, "{{status}}")],
                stacked=True,
            ),
            timeseries(
                "Error ratio by route",
                f'Share of each route\'s responses with status=~"{self.errors}".',
                "percentunit",
                [Query(self.error_ratio((self.names.route_label,)), self.route_legend)],
                thresholds=_red_above(self.budget),
            ),
            bar_gauge(
                "Status codes in the time range",
                "Responses per status code over the dashboard's whole time range.",
                "short",
                [Query(f"round({in_range})", "{{status}}", instant=True)],
                NEUTRAL,
            ),
        ):
            self.grid.add(panel, 12, 8)

    def latency(self) -> None:
        self.grid.row("Latency")
        traces = grafana.DashboardLink(
            title=f"Traces of {self.spec.service}",
            type="link",
            uri=_traces_url(self.spec.service),
            icon="external link",
            tooltip="Open Explore on the trace datasource chosen in the Traces variable",
            targetBlank=True,
            keepTime=False,
        )
        percentiles = [
            Query(
                self.series.quantile(q, self.duration, (self.names.route_label,)),
                f"{_quantile_label(q)} {self.route_legend}",
                exemplar=True,
            )
            for q in LATENCY_QUANTILES
        ]
        buckets = promql.sum_of(self.series.rate(f"{self.duration}_bucket"), ("le",))
        for panel in (
            timeseries(
                "Latency percentiles by route",
                "p50, p90 and p99 of the request duration from the histogram. Exemplar dots "
                "link to their trace when the Prometheus datasource has an exemplar trace "
                "destination; the panel link opens the service's traces.",
                "s",
                percentiles,
                thresholds=_red_above(self.threshold),
                links=[traces],
            ),
            heatmap(
                "Latency distribution",
                "Requests per second in each duration bucket, with exemplars.",
                Query(buckets, "{{le}}", exemplar=True, format="heatmap"),
                y_unit="s",
                cell_unit="reqps",
            ),
        ):
            self.grid.add(panel, 12, 9)

    def saturation(self) -> None:
        self.grid.row("Saturation and payload sizes")
        self.grid.add(
            timeseries(
                "In-flight requests by method",
                "Requests being served right now.",
                "short",
                [
                    Query(
                        self.in_flight((self.names.method_label,)),
                        f"{{{{{self.names.method_label}}}}}",
                    )
                ],
            ),
            8,
            8,
        )
        for title, metric in (
            ("Request body size", self.names.request_size),
            ("Response body size", self.names.response_size),
        ):
            queries = [
                Query(
                    self.series.quantile(q, metric, (self.names.route_label,)),
                    f"{_quantile_label(q)} {self.route_legend}",
                )
                for q in SIZE_QUANTILES
            ]
            self.grid.add(
                timeseries(
                    f"{title} by route",
                    f"p50 and p99 of the {title.lower()}: the bytes actually streamed.",
                    "bytes",
                    queries,
                ),
                8,
                8,
            )

    def _top(self, expr: str) -> Query:
        return Query(f"topk({TOP_ROUTES}, {expr})", self.route_legend, instant=True, format="table")

    def top_routes(self) -> None:
        self.grid.row("Top routes in the time range")
        status = promql.matches(self.names.status_label, self.errors)
        by_route = (self.names.route_label,)
        for panel in (
            table(
                "Top routes by traffic",
                f"The {TOP_ROUTES} busiest routes over the dashboard's time range.",
                "reqps",
                self._top(promql.sum_of(self.series.rate(self.requests, window=RANGE), by_route)),
                "requests/s",
            ),
            table(
                "Top routes by errors",
                f'The {TOP_ROUTES} routes with the most responses with status=~"{self.errors}".',
                "reqps",
                self._top(
                    promql.sum_of(self.series.rate(self.requests, status, window=RANGE), by_route)
                ),
                "errors/s",
            ),
            table(
                "Slowest routes (p99)",
                f"The {TOP_ROUTES} routes with the highest p99 latency over the time range.",
                "s",
                self._top(self.series.quantile(P99, self.duration, by_route, RANGE)),
                "p99",
            ),
        ):
            self.grid.add(panel, 8, 8)

    def panels(self) -> list[Any]:
        self.summary()
        self.traffic()
        self.latency()
        self.saturation()
        self.top_routes()
        return self.grid.panels


def overview_dashboard(spec: ServiceSpec) -> dict[str, Any]:
    """The RED overview of the service, in Grafana's current dashboard model."""
    series = _Series(spec)
    variables = [
        datasource_variable(DATASOURCE_VARIABLE, "prometheus", "Data source"),
        *(_filter_variable(series, name) for name in filter_variables(spec)),
        datasource_variable(TRACES_VARIABLE, TRACE_DATASOURCE_TYPE, "Traces"),
    ]
    return build_dashboard(
        spec,
        "overview",
        f"{spec.service} / overview",
        f"Requests, errors and latency of {spec.service} (generated by ouro-obs).",
        variables,
        _Overview(spec).panels(),
        [
            dashboard_link(
                "SLOs", "slo", spec.service, f"Error budgets and burn rates of {spec.service}"
            )
        ],
        time_from="6h",
    )
