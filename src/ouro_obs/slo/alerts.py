"""Spec -> the alerting rules, as typed objects (pure functions).

Per SLO, the multi-window multi-burn-rate page and ticket alerts of the SRE Workbook; for
the service, a scrape target down and request metrics absent. Each alert carries its
labels (the spec's, the SLO's, the routing ``severity`` and ``urgency: page|ticket``), its
annotations (summary, description, runbook and dashboard links, the spec's extra ones) and
its ``for``. The spec switches each page, ticket and service alert on or off.

The SLI's event count (the page's low-traffic guard) comes in from :mod:`ouro_obs.slo.rules`,
which owns the SLI expressions and imports this module, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ouro_obs.slo import conventions, promql
from ouro_obs.slo.grouping import by_labels, group_phrase
from ouro_obs.slo.promql import decimal_text
from ouro_obs.slo.spec import HistogramSLI, LatencySLI, RatioSLI, ServiceSpec, SLOSpec
from ouro_obs.slo.windows import BurnRateAlert, Severity, Window, alert_windows

__all__ = [
    "SERVICE_ALERT_FOR",
    "AlertRule",
    "EventCount",
    "EventSeries",
    "ServiceAlertFor",
    "alert_rules",
    "own_metrics",
    "routing_labels",
]

#: PromQL of the number of the SLI's events over a window (``sum(increase(...))``).
EventCount = Callable[[ServiceSpec, SLOSpec, Window], str]
#: PromQL of the series of all the SLI's events (``queue_jobs_total{queue="mail"}``).
EventSeries = Callable[[ServiceSpec, SLOSpec], str]


@dataclass(frozen=True, slots=True)
class ServiceAlertFor:
    """``for`` of the service alerts: target down, request metrics absent."""

    target_down: Window
    metrics_absent: Window


SERVICE_ALERT_FOR = ServiceAlertFor(target_down=Window(5), metrics_absent=Window(10))


@dataclass(frozen=True, slots=True)
class AlertRule:
    alert: str
    expr: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    #: How long the condition must hold before the alert fires; ``None`` fires at once.
    for_: Window | None = None


def routing_labels(spec: ServiceSpec, urgency: Severity) -> dict[str, str]:
    """The labels Alertmanager routes a page or a ticket by: the spec's, then ``urgency``."""
    chosen = spec.page_labels if urgency == "page" else spec.ticket_labels
    return {**chosen, conventions.URGENCY_LABEL: urgency}


def _slo_series(record: str, spec: ServiceSpec, slo: SLOSpec) -> str:
    return promql.labelled(record, conventions.slo_labels(spec, slo))


# ---------------------------------------------------------------- burn-rate alerts


def _condition(
    spec: ServiceSpec, slo: SLOSpec, alert: BurnRateAlert, events: EventCount | None
) -> str:
    threshold = decimal_text(alert.burn_factor * slo.error_budget)
    # The short window comes first, so {{ $value }} is the error ratio happening right now.
    lines = [
        f"{_slo_series(conventions.sli_error_record(alert.short_window), spec, slo)} > {threshold}",
        "and",
        f"{_slo_series(conventions.sli_error_record(alert.long_window), spec, slo)} > {threshold}",
    ]
    if events is not None and spec.page_min_requests > 0:
        requests = events(spec, slo, alert.long_window)
        # Each group (and cluster) needs its own requests: another group's cannot page it.
        lines += [
            f"and on ({', '.join(by_labels(spec, slo))})",
            f"{requests} >= {spec.page_min_requests}",
        ]
    return promql.block(*lines)


def _bad_events(slo: SLOSpec) -> str:
    sli = slo.sli
    if isinstance(sli, RatioSLI):
        if sli.errors is not None:
            return f"errors ({sli.errors.metric} of {sli.total.metric})"
        return f"not good ({sli.good.metric if sli.good else ''} of {sli.total.metric})"
    if isinstance(sli, HistogramSLI):
        return f"above {decimal_text(sli.threshold)} ({sli.metric})"
    if isinstance(sli, LatencySLI):
        return f"slower than {decimal_text(sli.threshold_seconds)} s"
    return f"errors (status matching {sli.error_status_regex})"


def _events_noun(slo: SLOSpec) -> str:
    """What the SLI counts: requests, or the events or observations of its own metrics."""
    if isinstance(slo.sli, RatioSLI):
        return "events"
    return "observations" if isinstance(slo.sli, HistogramSLI) else "requests"


def own_metrics(slo: SLOSpec) -> bool:
    """The SLI reads metrics the spec names (ratio, histogram), not ouro-obs's requests."""
    return isinstance(slo.sli, RatioSLI | HistogramSLI)


def _days(value: Decimal) -> str:
    return f"{decimal_text(value.quantize(Decimal('0.1')))} days"


def _links(spec: ServiceSpec, alert_name: str) -> dict[str, str]:
    return {
        "runbook_url": conventions.runbook_url(spec, alert_name),
        "dashboard_url": conventions.dashboard_url(spec.service, "slo", spec.grafana_url),
    }


def _burn_alert(
    spec: ServiceSpec,
    slo: SLOSpec,
    name: str,
    conditions: Sequence[BurnRateAlert],
    events: EventCount,
) -> AlertRule:
    paging = conditions[0].severity == "page"
    slowest = min(alert.burn_factor for alert in conditions)
    objective = decimal_text(slo.objective)
    budget = decimal_text(slo.error_budget * 100)
    lasts = _days(Decimal(slo.window_days) / slowest)
    speed = "fast" if paging else "slowly"
    guard = events if paging else None
    group = group_phrase(slo)
    which = f" ({group})" if group else ""
    requests = f"{spec.service} {_events_noun(slo)}" + (f" with {group}" if group else "")
    return AlertRule(
        alert=name,
        expr="\nor\n".join(_condition(spec, slo, alert, guard) for alert in conditions),
        labels={
            **conventions.slo_labels(spec, slo),
            **spec.labels,
            **slo.alerting.labels,
            **routing_labels(spec, "page" if paging else "ticket"),
        },
        annotations={
            "summary": (
                f"{spec.service}: the {slo.name} SLO{which} is burning its error budget {speed}"
            ),
            "description": (
                f"{{{{ $value | humanizePercentage }}}} of {requests} were "
                f"{_bad_events(slo)} over the alert's short window; the {slo.name} SLO "
                f"({objective} % over {slo.window_days}d) allows {budget} %. At {slowest}x or "
                f"more, the error budget of {slo.window_days} days lasts at most {lasts}."
            ),
            **_links(spec, name),
            **spec.alerting.annotations,
            **slo.alerting.annotations,
        },
    )


def _too_many_groups(spec: ServiceSpec, slo: SLOSpec, events: EventCount) -> AlertRule:
    """A ticket when the traffic holds more groups than the rules may record.

    Past ``max_groups`` every rule of the SLO fails its ``limit`` (Prometheus keeps none of
    its series and clears its alerts), so the page and the ticket could not fire.
    """
    name = conventions.groups_alert_name(spec, slo)
    window = alert_windows(slo.window_days)[0].long_window
    expr = f"count{promql.block(events(spec, slo, window))} > {slo.max_groups}"
    labels = ", ".join(slo.group_by)
    return AlertRule(
        alert=name,
        expr=expr,
        for_=SERVICE_ALERT_FOR.target_down,
        labels={
            **conventions.slo_labels(spec, slo),
            **spec.labels,
            **slo.alerting.labels,
            **routing_labels(spec, "ticket"),
        },
        annotations={
            "summary": (
                f"{spec.service}: the {slo.name} SLO has more groups of {labels} than it records"
            ),
            "description": (
                f"{{{{ $value }}}} label sets of {labels} served requests over {window}, more "
                f"than max_groups ({slo.max_groups}): every rule of the {slo.name} SLO exceeds "
                "its limit, records nothing and cannot alert. Raise max_groups or group by "
                "fewer labels."
            ),
            **_links(spec, name),
            **spec.alerting.annotations,
            **slo.alerting.annotations,
        },
    )


def _slo_alerts(spec: ServiceSpec, slo: SLOSpec, events: EventCount) -> list[AlertRule]:
    """The SLO's page and ticket, each unless the SLO's ``alerting`` switches it off; for a
    grouped SLO, the ticket that says it has more groups than it records."""
    conditions = alert_windows(slo.window_days)
    names = conventions.alert_names(spec, slo)
    switches: list[tuple[str, Severity, bool]] = [
        (names.page, "page", slo.alerting.page),
        (names.ticket, "ticket", slo.alerting.ticket),
    ]
    burns = [
        _burn_alert(spec, slo, name, [a for a in conditions if a.severity == urgency], events)
        for name, urgency, wanted in switches
        if wanted
    ]
    return [*burns, *([_too_many_groups(spec, slo, events)] if slo.group_by else [])]


# ---------------------------------------------------------------- service alerts


def _service_alert(
    spec: ServiceSpec,
    name: str,
    expr: str,
    wait: Window,
    urgency: Severity,
    summary: str,
    description: str,
) -> AlertRule:
    return AlertRule(
        alert=name,
        expr=expr,
        for_=wait,
        labels={
            conventions.SERVICE_LABEL: spec.service,
            **spec.labels,
            **routing_labels(spec, urgency),
        },
        annotations={
            "summary": f"{spec.service}: {summary}",
            "description": description,
            **_links(spec, name),
            **spec.alerting.annotations,
        },
    )


def _service_alerts(spec: ServiceSpec) -> list[AlertRule]:
    """A target that cannot be scraped (ticket), and no request series at all (page).

    Each unless the spec's ``alerting`` switches it off.
    """
    names = conventions.service_alert_names(spec)
    up = promql.labelled("up", spec.effective_selector)
    requests = conventions.series_names(spec).requests
    absent = f"absent({promql.labelled(requests, spec.effective_selector)})"
    down_for, absent_for = SERVICE_ALERT_FOR.target_down, SERVICE_ALERT_FOR.metrics_absent
    target_down = _service_alert(
        spec,
        names.target_down,
        f"{up} == 0",
        down_for,
        "ticket",
        "Prometheus cannot scrape {{ $labels.instance }}",
        f"{up} has been {{{{ $value }}}} on {{{{ $labels.instance }}}} for {down_for}: the "
        "instance is down or its metrics port is unreachable, and its requests are "
        "missing from the SLIs.",
    )
    metrics_absent = _service_alert(
        spec,
        names.metrics_absent,
        absent,
        absent_for,
        "page",
        "no request metrics at all",
        f"{absent} has been {{{{ $value }}}} for {absent_for}: every target is gone, or none "
        "has served a request. The SLO alerts cannot see an outage without these series.",
    )
    return [
        *([target_down] if spec.alerting.target_down else []),
        # Only while some SLI reads the request series: else they need not exist at all.
        *(
            [metrics_absent]
            if spec.alerting.metrics_absent and not all(own_metrics(slo) for slo in spec.slos)
            else []
        ),
    ]


def _own_metrics_absent(spec: ServiceSpec, slo: SLOSpec, series: EventSeries) -> AlertRule:
    """No series of an SLI's own total counter (or histogram) at all: a page.

    The ratio or histogram SLI's metrics may come from another exporter than the
    request metrics, so each such SLO watches its own.
    """
    absent = f"absent({series(spec, slo)})"
    wait = SERVICE_ALERT_FOR.metrics_absent
    rule = _service_alert(
        spec,
        conventions.metrics_absent_alert_name(spec, slo),
        absent,
        wait,
        "page",
        f"no metrics of the {slo.name} SLI at all",
        f"{absent} has been {{{{ $value }}}} for {wait}: every target exporting them is "
        "gone, or none has counted an event. The SLO's alerts cannot see an outage "
        "without these series.",
    )
    return AlertRule(
        rule.alert,
        rule.expr,
        {**conventions.slo_labels(spec, slo), **rule.labels},
        rule.annotations,
        rule.for_,
    )


def alert_rules(
    spec: ServiceSpec, events: EventCount, series: EventSeries | None = None
) -> tuple[AlertRule, ...]:
    """Every alert: page and ticket per SLO, then target down and metrics absent.

    ``events`` gives the SLI's event count over a window, for the page's low-traffic guard;
    ``series`` the SLI's total series, watched by the absent alert of each SLO whose SLI
    reads its own metrics.
    """
    absent = [
        _own_metrics_absent(spec, slo, series)
        for slo in spec.slos
        if series is not None and own_metrics(slo) and spec.alerting.metrics_absent
    ]
    return (
        *(alert for slo in spec.slos for alert in _slo_alerts(spec, slo, events)),
        *_service_alerts(spec),
        *absent,
    )
