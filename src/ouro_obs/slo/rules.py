"""Spec -> Prometheus recording and alerting rules, as typed objects (pure functions).

For each SLO: the SLI error ratio over every window the alerts need and over the SLO
window (``slo:sli_error:ratio_rate<W>``), the burn rate (``slo:burn_rate:ratio_rate<W>``),
the objective, the error budget and the budget remaining; then the alerts, built by
:mod:`ouro_obs.slo.alerts` over these recordings. Every number is an exact decimal.

The promtool tests, the manifests and the dashboards read these objects by attribute;
only :mod:`ouro_obs.slo.render` turns them into the mappings of a rule file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from ouro_obs.slo import alerts, conventions, promql
from ouro_obs.slo.alerts import SERVICE_ALERT_FOR, AlertRule
from ouro_obs.slo.grouping import by_labels
from ouro_obs.slo.promql import Matcher, decimal_text
from ouro_obs.slo.promql_selector import SeriesSelector
from ouro_obs.slo.spec import (
    AvailabilitySLI,
    HistogramSLI,
    LatencySLI,
    RatioSLI,
    ServiceSpec,
    SLOSpec,
)
from ouro_obs.slo.windows import Window, burn_windows, period_window

__all__ = [
    "EVENTS_PER_PERIOD",
    "MIN_EVENTS_INTERVAL",
    "PERIOD_GROUP_INTERVAL",
    "SERVICE_ALERT_FOR",
    "AlertRule",
    "RecordingRule",
    "Rule",
    "RuleGroup",
    "alert_rules",
    "bad_events",
    "events_interval",
    "events_ratio",
    "events_window",
    "own_series_matchers",
    "rule_groups",
    "sli_error_expr",
    "sli_selector",
    "total_events",
    "total_series",
]

#: The SLO-window group's interval: well inside the 5-minute lookback, so its series never
#: go stale between two evaluations, even when one of them is missed.
PERIOD_GROUP_INTERVAL = Window(2)
#: The events group runs this many times per SLO window (every 15 minutes for 30 days)...
EVENTS_PER_PERIOD = 2880
#: ...but never more often than every 2 minutes.
MIN_EVENTS_INTERVAL = Window(2)


def events_interval(window_days: int) -> Window:
    """How often the events group records the SLI's event rates: the period / 2880."""
    minutes = Decimal(period_window(window_days).minutes) / EVENTS_PER_PERIOD
    rounded = int(minutes.to_integral_value(rounding=ROUND_HALF_UP))
    return Window(max(MIN_EVENTS_INTERVAL.minutes, rounded))


def events_window(window_days: int) -> Window:
    """The window of the recorded event rates: twice the interval, so the samples summed
    over the period count every event exactly twice."""
    return Window(2 * events_interval(window_days).minutes)


@dataclass(frozen=True, slots=True)
class RecordingRule:
    record: str
    expr: str
    labels: Mapping[str, str]


Rule = RecordingRule | AlertRule


@dataclass(frozen=True, slots=True)
class RuleGroup:
    name: str
    rules: tuple[Rule, ...]
    #: Evaluation interval; ``None`` keeps Prometheus's global one.
    interval: Window | None = None
    #: The most series (or alerts) any rule of the group may produce; ``None``: no limit.
    limit: int | None = None


# ---------------------------------------------------------------- the SLI


def _service_matchers(spec: ServiceSpec) -> list[Matcher]:
    return promql.equal_matchers(spec.effective_selector)


def sli_selector(spec: ServiceSpec, slo: SLOSpec, *extra: Matcher) -> str:
    """The label matchers of the SLI's events: the service selector, routes, methods, extra."""
    names = conventions.series_names(spec)
    return promql.selector(
        [
            *_service_matchers(spec),
            promql.one_of(names.route_label, slo.sli.routes),
            promql.one_of(names.method_label, slo.sli.methods),
            *extra,
        ]
    )


def own_series_matchers(
    spec: ServiceSpec, own: Sequence[Matcher], extra: Sequence[Matcher] = ()
) -> list[Matcher]:
    """The matchers of a series an SLI names itself (ratio, histogram).

    The service's selector (with its environment's) comes first, for every label the
    SLI's own matchers leave alone: they may pick another ``job``.
    """
    claimed = {matcher.label for matcher in own}
    service = [m for m in _service_matchers(spec) if m.label not in claimed]
    return [*service, *own, *extra]


def _own_selector(spec: ServiceSpec, series: SeriesSelector, extra: Sequence[Matcher]) -> str:
    return promql.selector(own_series_matchers(spec, series.matchers, extra))


def _own_series(spec: ServiceSpec, series: SeriesSelector, extra: Sequence[Matcher]) -> str:
    return series.metric + _own_selector(spec, series, extra)


def total_series(spec: ServiceSpec, slo: SLOSpec, extra: Sequence[Matcher] = ()) -> str:
    """The series of all the SLI's events: what ``rate()`` and ``absent()`` read."""
    sli = slo.sli
    if isinstance(sli, RatioSLI):
        return _own_series(spec, sli.total, extra)
    if isinstance(sli, HistogramSLI):
        return _own_series(spec, SeriesSelector(f"{sli.metric}_count", sli.matchers), extra)
    names = conventions.series_names(spec)
    metric = (
        names.requests if isinstance(sli, AvailabilitySLI) else f"{names.request_duration}_count"
    )
    return metric + sli_selector(spec, slo, *extra)


def _own_bad_events(
    spec: ServiceSpec, slo: SLOSpec, window: Window, extra: Sequence[Matcher]
) -> list[str] | None:
    """The bad-event lines of a ratio or histogram SLI; ``None`` for the HTTP ones."""
    sli, by = slo.sli, by_labels(spec, slo)

    def rate_of(series: SeriesSelector) -> str:
        return _sum_over(series.metric, _own_selector(spec, series, extra), window, by=by)

    total = total_events(spec, slo, window, extra=extra)
    # No series of the counted events yet is none of them (per group: 0 times its events).
    nothing = f"0 * {total}" if by else "vector(0)"
    if isinstance(sli, RatioSLI) and sli.errors is not None:
        return [rate_of(sli.errors), f"or {nothing}"]
    if isinstance(sli, RatioSLI) and sli.good is not None:
        return [total, "-", "(", f"  {rate_of(sli.good)}", f"  or {nothing}", ")"]
    if isinstance(sli, HistogramSLI):
        bucket = promql.le_matcher(sli.threshold)
        good = rate_of(SeriesSelector(f"{sli.metric}_bucket", (*sli.matchers, bucket)))
        return [total, "-", good]
    return None


def _sum_over(
    metric: str, selector: str, window: Window, function: str = "rate", by: Sequence[str] = ()
) -> str:
    return promql.sum_of(promql.range_function(function, metric + selector, window.duration), by)


def total_events(
    spec: ServiceSpec,
    slo: SLOSpec,
    window: Window,
    function: str = "rate",
    extra: Sequence[Matcher] = (),
) -> str:
    """All the SLI's events over ``window``: requests, observations, the total counter."""
    series = total_series(spec, slo, extra)
    return promql.sum_of(
        promql.range_function(function, series, window.duration), by_labels(spec, slo)
    )


def bad_events(
    spec: ServiceSpec, slo: SLOSpec, window: Window, extra: Sequence[Matcher] = ()
) -> list[str]:
    """The lines of the rate of the SLI's bad events over ``window`` (0 without failures)."""
    own = _own_bad_events(spec, slo, window, extra)
    if own is not None:
        return own
    names = conventions.series_names(spec)
    if isinstance(slo.sli, AvailabilitySLI):
        status = promql.matches(names.status_label, slo.sli.error_status_regex)
        by = by_labels(spec, slo)
        selector = sli_selector(spec, slo, *extra, status)
        errors = _sum_over(names.requests, selector, window, by=by)
        # A service that never failed has no error series at all: count that as zero errors
        # (per group: a group without errors is 0 times its requests).
        if by:
            return [errors, "or", f"0 * {total_events(spec, slo, window, extra=extra)}"]
        return [errors, "or vector(0)"]
    assert isinstance(slo.sli, LatencySLI)
    bucket = promql.equal("le", promql.le_label(slo.sli.threshold_seconds))
    selector = sli_selector(spec, slo, *extra, bucket)
    good = _sum_over(f"{names.request_duration}_bucket", selector, window, by=by_labels(spec, slo))
    # total - good keeps the ratio exact where 1 - good/total adds float noise.
    return [total_events(spec, slo, window, extra=extra), "-", good]


def events_ratio(bad: Sequence[str], total: str) -> str:
    """``bad / total`` with no result, rather than NaN, when ``total`` is 0 (no traffic)."""
    return promql.divide(promql.block(*bad), promql.block(f"{total} > 0"))


def sli_error_expr(
    spec: ServiceSpec, slo: SLOSpec, window: Window, extra: Sequence[Matcher] = ()
) -> str:
    """PromQL of the SLO's bad-event ratio over ``window`` (absent when there is no traffic)."""
    return events_ratio(
        bad_events(spec, slo, window, extra), total_events(spec, slo, window, extra=extra)
    )


def _slo_series(record: str, spec: ServiceSpec, slo: SLOSpec) -> str:
    return promql.labelled(record, conventions.slo_labels(spec, slo))


# ---------------------------------------------------------------- recording rules


def _burn_rate_rules(spec: ServiceSpec, slo: SLOSpec, windows: Sequence[Window]) -> list[Rule]:
    labels = conventions.record_labels(spec, slo)
    budget = decimal_text(slo.error_budget)
    return [
        RecordingRule(
            conventions.burn_rate_record(window),
            promql.divide(_slo_series(conventions.sli_error_record(window), spec, slo), budget),
            labels,
        )
        for window in windows
    ]


def _sli_rules(spec: ServiceSpec, slo: SLOSpec, windows: Sequence[Window]) -> list[Rule]:
    labels = conventions.record_labels(spec, slo)
    errors: list[Rule] = [
        RecordingRule(
            conventions.sli_error_record(window), sli_error_expr(spec, slo, window), labels
        )
        for window in windows
    ]
    return errors + _burn_rate_rules(spec, slo, windows)


def _metadata_rules(spec: ServiceSpec, slo: SLOSpec) -> list[Rule]:
    """What the spec says of the SLO, as series: tools read the SLO from Prometheus."""
    labels = conventions.record_labels(spec, slo)
    period = period_window(slo.window_days)
    described = dict(
        zip(
            conventions.INFO_LABELS,
            (decimal_text(slo.objective), period.duration, slo.sli.kind),
            strict=True,
        )
    )
    return [
        RecordingRule(conventions.INFO_RECORD, promql.vector(1), {**labels, **described}),
        RecordingRule(conventions.OBJECTIVE_RECORD, promql.vector(slo.objective / 100), labels),
        RecordingRule(conventions.ERROR_BUDGET_RECORD, promql.vector(slo.error_budget), labels),
        RecordingRule(conventions.PERIOD_RECORD, promql.vector(period.seconds), labels),
    ]


def _event_rate_rules(spec: ServiceSpec, slo: SLOSpec) -> list[Rule]:
    """The SLI's bad-event and event rates, the inputs of the SLO-window ratio."""
    labels = conventions.record_labels(spec, slo)
    window = events_window(slo.window_days)
    return [
        RecordingRule(
            conventions.bad_events_record(window),
            "\n".join(bad_events(spec, slo, window)),
            labels,
        ),
        RecordingRule(conventions.events_record(window), total_events(spec, slo, window), labels),
    ]


def _period_rules(spec: ServiceSpec, slo: SLOSpec) -> list[Rule]:
    """The SLO-window ratio as an events ratio of the recorded event rates.

    ``sum_over_time`` of the bad-event rate over the sum of the event rate: a few thousand
    samples of two recorded series instead of weeks of every raw series, and each event
    weighs the same (an average of short-window ratios would overweight quiet hours).
    """
    labels = conventions.record_labels(spec, slo)
    base, period = events_window(slo.window_days), period_window(slo.window_days)
    # The spec's labels as one series, each group (and cluster) as its own.
    own = (*conventions.slo_labels(spec, slo), *by_labels(spec, slo))

    def summed(record: str) -> str:
        # One series even after the spec's labels changed within the period.
        series = _slo_series(record, spec, slo)
        return promql.sum_of(promql.range_function("sum_over_time", series, str(period)), own)

    burn = _slo_series(conventions.burn_rate_record(period), spec, slo)
    ratio = events_ratio(
        [summed(conventions.bad_events_record(base))], summed(conventions.events_record(base))
    )
    return [
        RecordingRule(conventions.sli_error_record(period), ratio, labels),
        *_burn_rate_rules(spec, slo, [period]),
        RecordingRule(conventions.BUDGET_REMAINING_RECORD, f"1 - {burn}", labels),
    ]


# ---------------------------------------------------------------- alerts


def _requests(spec: ServiceSpec, slo: SLOSpec, window: Window) -> str:
    return total_events(spec, slo, window, "increase")


def alert_rules(spec: ServiceSpec) -> tuple[AlertRule, ...]:
    """Every alert (:func:`ouro_obs.slo.alerts.alert_rules`), guarded by the SLI's events."""
    return alerts.alert_rules(spec, _requests, total_series)


def rule_groups(spec: ServiceSpec) -> tuple[RuleGroup, ...]:
    """The rule groups: each SLO's alerts in the group of the recordings they read.

    Prometheus evaluates the rules of a group in order, each seeing the ones before it at
    the same timestamp; across groups nothing is ordered. So each SLO's group records its
    ratios and then evaluates its page and ticket on them, never one interval late. The
    SLO-window group sums, over the period, the event rates the events group records (a
    range read: it lags that group by at most one of its intervals, and no alert reads
    it); the service alerts read raw series.
    """
    every_alert = alert_rules(spec)
    placed: set[str] = set()
    groups: list[RuleGroup] = []
    for slo in spec.slos:
        names = conventions.alert_names(spec, slo)
        own = [rule for rule in every_alert if rule.alert in (names.page, names.ticket)]
        placed.update(rule.alert for rule in own)
        short = burn_windows(slo.window_days)
        rules = [*_sli_rules(spec, slo, short), *_metadata_rules(spec, slo), *own]
        # A grouped SLO's rules each give one series per group: past the cap they fail.
        limit = slo.max_groups if slo.group_by else None
        groups.append(RuleGroup(conventions.slo_group_name(spec, slo), tuple(rules), limit=limit))
        groups += [
            RuleGroup(
                conventions.events_group_name(spec, slo),
                tuple(_event_rate_rules(spec, slo)),
                interval=events_interval(slo.window_days),
                limit=limit,
            ),
            RuleGroup(
                conventions.period_group_name(spec, slo),
                tuple(_period_rules(spec, slo)),
                interval=PERIOD_GROUP_INTERVAL,
                limit=limit,
            ),
        ]
    service = tuple(rule for rule in every_alert if rule.alert not in placed)
    groups.append(RuleGroup(conventions.alerts_group_name(spec), service))
    return tuple(groups)
