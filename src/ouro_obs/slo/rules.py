"""Spec -> Prometheus recording and alerting rules, as plain data (pure functions).

For each SLO: the SLI error ratio over every window the alerts need and over the SLO
window (``slo:sli_error:ratio_rate<W>``), the burn rate (``slo:burn_rate:ratio_rate<W>``),
the objective, the error budget and the budget remaining; then the multi-window
multi-burn-rate page and ticket alerts of the SRE Workbook. For the service: a scrape
target down and request metrics absent. Every number is an exact decimal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from prometheus_client.utils import floatToGoString

from ouro_obs.metrics import MetricNames
from ouro_obs.slo.spec import (
    AvailabilitySLI,
    LatencySLI,
    ServiceSpec,
    SLOSpec,
    alert_name_stem,
    dashboard_uid,
)
from ouro_obs.slo.windows import BurnRateAlert, Window, alert_windows, all_windows, period_window

__all__ = [
    "BUDGET_REMAINING_RECORD",
    "ERROR_BUDGET_RECORD",
    "OBJECTIVE_RECORD",
    "PERIOD_GROUP_INTERVAL",
    "SERVICE_ALERT_FOR",
    "AlertNames",
    "alert_names",
    "burn_rate_record",
    "decimal_text",
    "le_label",
    "rule_file",
    "rule_groups",
    "service_alert_names",
    "sli_error_expr",
    "sli_error_record",
    "sli_selector",
    "slo_labels",
]

OBJECTIVE_RECORD = "slo:objective:ratio"
ERROR_BUDGET_RECORD = "slo:error_budget:ratio"
BUDGET_REMAINING_RECORD = "slo:error_budget_remaining:ratio"
#: The SLO-window rules read weeks of samples; evaluating them every few minutes is plenty.
PERIOD_GROUP_INTERVAL = "5m"
#: ``for`` of the service alerts: target down, request metrics absent.
SERVICE_ALERT_FOR = {"target_down": "5m", "metrics_absent": "10m"}


def decimal_text(value: Decimal) -> str:
    """Plain decimal notation without float noise or exponent: 0.001, 0.0144, 6."""
    return f"{value.normalize():f}"


def sli_error_record(window: Window) -> str:
    return f"slo:sli_error:ratio_rate{window.duration}"


def burn_rate_record(window: Window) -> str:
    return f"slo:burn_rate:ratio_rate{window.duration}"


def le_label(threshold: Decimal) -> str:
    """The ``le`` label value the Python client writes for this bucket ("0.5", "1.0")."""
    text: str = floatToGoString(float(threshold))  # type: ignore[no-untyped-call]
    return text


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def _regex_escape(literal: str) -> str:
    return "".join(f"\\{char}" if char in _RE2_SPECIAL else char for char in literal)


def _one_of(label: str, values: Sequence[str]) -> tuple[str, str, str] | None:
    if not values:
        return None
    if len(values) == 1:
        return (label, "=", values[0])
    return (label, "=~", "|".join(_regex_escape(value) for value in values))


def _selector(matchers: Iterable[tuple[str, str, str] | None]) -> str:
    parts = [f"{name}{op}{_quote(value)}" for name, op, value in filter(None, matchers)]
    return "{" + ",".join(parts) + "}"


def _base_matchers(spec: ServiceSpec) -> list[tuple[str, str, str] | None]:
    return [(name, "=", value) for name, value in spec.effective_selector.items()]


def sli_selector(spec: ServiceSpec, slo: SLOSpec, *extra: tuple[str, str, str]) -> str:
    """The label matchers of the SLI's events: the service selector, routes, methods, extra."""
    return _selector(
        [
            *_base_matchers(spec),
            _one_of("route", slo.sli.routes),
            _one_of("method", slo.sli.methods),
            *extra,
        ]
    )


def _sum_rate(metric: str, selector: str, window: Window, function: str = "rate") -> str:
    return f"sum({function}({metric}{selector}[{window.duration}]))"


def _total_events(spec: ServiceSpec, slo: SLOSpec, window: Window, function: str = "rate") -> str:
    names = MetricNames(spec.metrics_namespace)
    metric = (
        names.requests_total
        if isinstance(slo.sli, AvailabilitySLI)
        else f"{names.request_duration}_count"
    )
    return _sum_rate(metric, sli_selector(spec, slo), window, function)


def sli_error_expr(spec: ServiceSpec, slo: SLOSpec, window: Window) -> str:
    """PromQL of the SLO's bad-event ratio over ``window`` (absent when there is no traffic)."""
    names = MetricNames(spec.metrics_namespace)
    total = _total_events(spec, slo, window)
    if isinstance(slo.sli, AvailabilitySLI):
        errors = _sum_rate(
            names.requests_total,
            sli_selector(spec, slo, ("status", "=~", slo.sli.error_status_regex)),
            window,
        )
        # A service that never failed has no error series at all: count that as zero errors.
        return f"(\n  {errors}\n  or vector(0)\n)\n/\n{total}"
    good = _sum_rate(
        f"{names.request_duration}_bucket",
        sli_selector(spec, slo, ("le", "=", le_label(slo.sli.threshold_seconds))),
        window,
    )
    # (total - good) / total keeps the ratio exact where 1 - good/total adds float noise.
    return f"(\n  {total}\n  -\n  {good}\n)\n/\n{total}"


def slo_labels(spec: ServiceSpec, slo: SLOSpec) -> dict[str, str]:
    return {"service": spec.service, "slo": slo.name}


def _series(record: str, spec: ServiceSpec, slo: SLOSpec) -> str:
    return record + _selector((name, "=", value) for name, value in slo_labels(spec, slo).items())


def _recording(record: str, expr: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"record": record, "expr": expr, "labels": dict(labels)}


def _sli_rules(spec: ServiceSpec, slo: SLOSpec, windows: Sequence[Window]) -> list[dict[str, Any]]:
    labels = slo_labels(spec, slo)
    budget = decimal_text(slo.error_budget)
    rules = []
    for window in windows:
        rules.append(
            _recording(sli_error_record(window), sli_error_expr(spec, slo, window), labels)
        )
    for window in windows:
        ratio = _series(sli_error_record(window), spec, slo)
        rules.append(_recording(burn_rate_record(window), f"{ratio}\n/\n{budget}", labels))
    return rules


def _metadata_rules(spec: ServiceSpec, slo: SLOSpec) -> list[dict[str, Any]]:
    labels = slo_labels(spec, slo)
    objective = decimal_text(slo.objective / Decimal(100))
    return [
        _recording(OBJECTIVE_RECORD, f"vector({objective})", labels),
        _recording(ERROR_BUDGET_RECORD, f"vector({decimal_text(slo.error_budget)})", labels),
    ]


def _period_rules(spec: ServiceSpec, slo: SLOSpec) -> list[dict[str, Any]]:
    period = period_window(slo.window_days)
    burn = _series(burn_rate_record(period), spec, slo)
    return [
        *_sli_rules(spec, slo, [period]),
        _recording(BUDGET_REMAINING_RECORD, f"1 - {burn}", slo_labels(spec, slo)),
    ]


@dataclass(frozen=True, slots=True)
class AlertNames:
    page: str
    ticket: str


def alert_names(spec: ServiceSpec, slo: SLOSpec) -> AlertNames:
    """Distinct page and ticket alert names of one SLO."""
    stem = alert_name_stem(spec.service, slo.name)
    return AlertNames(page=f"{stem}ErrorBudgetBurnPage", ticket=f"{stem}ErrorBudgetBurnTicket")


def service_alert_names(spec: ServiceSpec) -> dict[str, str]:
    stem = alert_name_stem(spec.service, "")
    return {"target_down": f"{stem}TargetDown", "metrics_absent": f"{stem}MetricsAbsent"}


def _condition(spec: ServiceSpec, slo: SLOSpec, alert: BurnRateAlert, guard: bool) -> str:
    threshold = decimal_text(alert.burn_factor * slo.error_budget)
    # The short window comes first, so {{ $value }} is the error ratio happening right now.
    lines = [
        f"{_series(sli_error_record(alert.short_window), spec, slo)} > {threshold}",
        "and",
        f"{_series(sli_error_record(alert.long_window), spec, slo)} > {threshold}",
    ]
    if guard and spec.page_min_requests > 0:
        requests = _total_events(spec, slo, alert.long_window, "increase")
        lines += ["and on ()", f"{requests} >= {spec.page_min_requests}"]
    return "(\n" + "\n".join(f"  {line}" for line in lines) + "\n)"


def _bad_events(slo: SLOSpec) -> str:
    if isinstance(slo.sli, LatencySLI):
        return f"slower than {decimal_text(slo.sli.threshold_seconds)} s"
    return f"errors (status matching {slo.sli.error_status_regex})"


def _days(value: Decimal) -> str:
    days = value.quantize(Decimal("0.1"))
    return f"{decimal_text(days)} days"


def _links(spec: ServiceSpec, alert_name: str) -> dict[str, str]:
    return {
        "runbook_url": f"{spec.runbook_base_url}#{alert_name.lower()}",
        "dashboard_url": f"{spec.grafana_url}/d/{dashboard_uid(spec.service, 'slo')}",
    }


def _burn_alert(
    spec: ServiceSpec, slo: SLOSpec, name: str, conditions: Sequence[BurnRateAlert]
) -> dict[str, Any]:
    severity = conditions[0].severity
    paging = severity == "page"
    slowest = min(alert.burn_factor for alert in conditions)
    routing = spec.page_labels if paging else spec.ticket_labels
    objective = decimal_text(slo.objective)
    budget = decimal_text(slo.error_budget * 100)
    lasts = _days(Decimal(slo.window_days) / slowest)
    speed = "fast" if paging else "slowly"
    expr = "\nor\n".join(_condition(spec, slo, alert, guard=paging) for alert in conditions)
    return {
        "alert": name,
        "expr": expr,
        "labels": {**slo_labels(spec, slo), **spec.labels, **routing},
        "annotations": {
            "summary": f"{spec.service}: the {slo.name} SLO is burning its error budget {speed}",
            "description": (
                f"{{{{ $value | humanizePercentage }}}} of {spec.service} requests were "
                f"{_bad_events(slo)} over the alert's short window; the {slo.name} SLO "
                f"({objective} % over {slo.window_days}d) allows {budget} %. At {slowest}x or "
                f"more, the error budget of {slo.window_days} days lasts at most {lasts}."
            ),
            **_links(spec, name),
        },
    }


def _slo_alerts(spec: ServiceSpec, slo: SLOSpec) -> list[dict[str, Any]]:
    conditions = alert_windows(slo.window_days)
    names = alert_names(spec, slo)
    return [
        _burn_alert(spec, slo, names.page, [a for a in conditions if a.severity == "page"]),
        _burn_alert(spec, slo, names.ticket, [a for a in conditions if a.severity == "ticket"]),
    ]


def _service_alerts(spec: ServiceSpec) -> list[dict[str, Any]]:
    names = service_alert_names(spec)
    selector = _selector(_base_matchers(spec))
    requests = MetricNames(spec.metrics_namespace).requests_total
    base = {"service": spec.service, **spec.labels}
    return [
        {
            "alert": names["target_down"],
            "expr": f"up{selector} == 0",
            "for": SERVICE_ALERT_FOR["target_down"],
            "labels": {**base, **spec.ticket_labels},
            "annotations": {
                "summary": f"{spec.service}: Prometheus cannot scrape {{{{ $labels.instance }}}}",
                "description": (
                    f"up{selector} has been {{{{ $value }}}} on {{{{ $labels.instance }}}} for "
                    f"{SERVICE_ALERT_FOR['target_down']}: the instance is down or its metrics "
                    "port is unreachable, and its requests are missing from the SLIs."
                ),
                **_links(spec, names["target_down"]),
            },
        },
        {
            "alert": names["metrics_absent"],
            "expr": f"absent({requests}{selector})",
            "for": SERVICE_ALERT_FOR["metrics_absent"],
            "labels": {**base, **spec.page_labels},
            "annotations": {
                "summary": f"{spec.service}: no request metrics at all",
                "description": (
                    f"absent({requests}{selector}) has been {{{{ $value }}}} for "
                    f"{SERVICE_ALERT_FOR['metrics_absent']}: every target is gone, or none "
                    "has served a request. The SLO alerts cannot see an outage without "
                    "these series."
                ),
                **_links(spec, names["metrics_absent"]),
            },
        },
    ]


def rule_groups(spec: ServiceSpec) -> list[dict[str, Any]]:
    """The rule groups, recordings before the alerts that read them."""
    groups: list[dict[str, Any]] = []
    for slo in spec.slos:
        short = [w for w in all_windows(slo.window_days) if w != period_window(slo.window_days)]
        groups.append(
            {
                "name": f"{spec.service}-slo-{slo.name}",
                "rules": [*_sli_rules(spec, slo, short), *_metadata_rules(spec, slo)],
            }
        )
        groups.append(
            {
                "name": f"{spec.service}-slo-{slo.name}-period",
                "interval": PERIOD_GROUP_INTERVAL,
                "rules": _period_rules(spec, slo),
            }
        )
    alerts = [rule for slo in spec.slos for rule in _slo_alerts(spec, slo)]
    groups.append({"name": f"{spec.service}-alerts", "rules": alerts + _service_alerts(spec)})
    return groups


def rule_file(spec: ServiceSpec) -> dict[str, Any]:
    """The content of ``alerts/<service>.rules.yaml``."""
    return {"groups": rule_groups(spec)}
