"""What the demo reads back: PromQL over Prometheus, or the shop's own ``/metrics``.

The PromQL comes from the generator's vocabulary (:mod:`ouro_obs.slo.promql` and
:mod:`ouro_obs.slo.conventions`), so the demo reads exactly the series its dashboards
and rules read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ouro_obs.contract import ROUTE_LABEL, STATUS_LABEL, MetricNames
from ouro_obs.demo.lifecycle import http_get
from ouro_obs.demo.processes import PrometheusServer
from ouro_obs.slo import promql
from ouro_obs.slo.conventions import SERVICE_LABEL, SLO_LABEL, URGENCY_LABEL

__all__ = [
    "ERROR_STATUS_REGEX",
    "AlertState",
    "AlertTracker",
    "DemoQueries",
    "by_label",
    "quantile",
    "scalar",
    "scrape_routes",
]


def scalar(result: Sequence[Mapping[str, Any]]) -> float | None:
    """The first sample's value of an instant-query result; None when empty or NaN."""
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def by_label(result: Sequence[Mapping[str, Any]], label: str) -> dict[str, float]:
    """Label value -> sample value of an instant-query result, NaNs left out."""
    values = {}
    for sample in result:
        value = float(sample["value"][1])
        if not math.isnan(value):
            values[sample["metric"].get(label, "")] = value
    return values


#: The statuses the demo's summary counts as errors.
ERROR_STATUS_REGEX = "5.."


@dataclass(frozen=True, slots=True)
class DemoQueries:
    """The PromQL the demo reads, for one service's metric names and selector."""

    names: MetricNames
    matchers: Mapping[str, str]

    def _select(self, metric: str, *extra: promql.Matcher) -> str:
        return metric + promql.selector([*promql.equal_matchers(self.matchers), *extra])

    def requests(self, window: str, by: str = "", status: str = "") -> str:
        """Requests per second over ``window``, summed (by ``by``), of ``status`` if given."""
        extra = [promql.matches(STATUS_LABEL, status)] if status else []
        series = self._select(self.names.requests_total, *extra)
        return promql.sum_of(promql.rate(series, window), by=[by] if by else ())

    def error_ratio(self, window: str, by: str = "") -> str:
        """The share of 5xx responses; 0, not missing, where there were none."""
        errors = self.requests(window, by, ERROR_STATUS_REGEX)
        total = self.requests(window, by)
        on = f" on ({by})" if by else ""
        return f"({errors} or{on} {total} * 0) / {total}"

    def p99(self, window: str, by: str = "") -> str:
        buckets = self._select(f"{self.names.request_duration}_bucket")
        return promql.histogram_quantile(
            Decimal("0.99"), promql.rate(buckets, window), by=[by] if by else ()
        )

    def series(self, record: str, labels: Mapping[str, str]) -> str:
        """A recorded series of one SLO, e.g. its burn rate over one window."""
        return promql.labelled(record, labels)

    @staticmethod
    def alerts(service: str) -> str:
        """The ``ALERTS`` series of ``service``'s alerts, pending and firing."""
        return promql.labelled("ALERTS", {SERVICE_LABEL: service})


@dataclass
class AlertState:
    """One alert as the demo saw it: its state now, and when it first went pending/firing."""

    name: str
    urgency: str
    severity: str
    slo: str
    state: str = "inactive"
    first_pending: float | None = None
    first_firing: float | None = None


@dataclass
class AlertTracker:
    """Remembers, per alert, the first time it went pending and firing during the run."""

    service: str
    alerts: dict[str, AlertState] = field(default_factory=dict)

    def poll(self, prometheus: PrometheusServer, elapsed: float) -> None:
        result = prometheus.query(DemoQueries.alerts(self.service))
        current: dict[str, str] = {}
        for sample in result:
            labels = sample["metric"]
            name = labels.get("alertname", "")
            state = labels.get("alertstate", "")
            alert = self.alerts.setdefault(
                name,
                AlertState(
                    name,
                    labels.get(URGENCY_LABEL, ""),
                    labels.get("severity", ""),
                    labels.get(SLO_LABEL, ""),
                ),
            )
            if state == "firing" or current.get(name) != "firing":
                current[name] = state
            if state == "pending" and alert.first_pending is None:
                alert.first_pending = elapsed
            if state == "firing" and alert.first_firing is None:
                alert.first_firing = elapsed
        for name, alert in self.alerts.items():
            alert.state = current.get(name, "inactive")

    def firing_page(self) -> bool:
        """Whether an SLO's page (``urgency="page"`` with an ``slo`` label) is firing now."""
        return any(
            a.urgency == "page" and a.slo and a.state == "firing" for a in self.alerts.values()
        )

    def line(self) -> str:
        shown = [a for a in self.alerts.values() if a.state != "inactive"]
        if not shown:
            return "no alerts"
        return ", ".join(f"{a.name} {a.state}" for a in sorted(shown, key=lambda a: a.name))


def scrape_routes(url: str, names: MetricNames, seconds: float) -> list[dict[str, Any]]:
    """Per-route figures over the whole run from the service's own /metrics (no Prometheus)."""
    text = http_get(url, timeout=10.0).decode()
    totals: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            route = sample.labels.get(ROUTE_LABEL, "")
            if sample.name == names.requests_total:
                totals[route] = totals.get(route, 0.0) + sample.value
                if sample.labels.get(STATUS_LABEL, "").startswith("5"):
                    errors[route] = errors.get(route, 0.0) + sample.value
            elif sample.name == f"{names.request_duration}_bucket":
                per_route = buckets.setdefault(route, {})
                bound = float(sample.labels["le"])
                per_route[bound] = per_route.get(bound, 0.0) + sample.value
    return [
        {
            "route": route,
            "request_rate": total / seconds,
            "error_ratio": errors.get(route, 0.0) / total if total else None,
            "p99_seconds": quantile(0.99, buckets.get(route, {})),
        }
        for route, total in sorted(totals.items(), key=lambda item: -item[1])
    ]


def quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """``histogram_quantile`` over cumulative bucket counts (linear within a bucket)."""
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] == 0:
        return None
    rank = q * cumulative[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound
