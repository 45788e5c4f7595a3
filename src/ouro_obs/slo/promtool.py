"""Spec -> promtool unit tests for the generated rules, as data (pure functions).

Each SLO gets five scenarios. A burn that must fire at a predicted time starts after
clean traffic that fills the longest window of the alert under test, so no rate is
computed over a partly empty window:

* fast burn: 100x the budget (at most 100 % errors) pages within the time the SRE
  Workbook predicts (``burn threshold / error ratio x long window``) and not before;
* slow burn: 5x the budget opens a ticket within the predicted time and never pages;
* below 1x: 0.9x the budget from the first sample raises nothing;
* low traffic: every request fails, but too few requests reach a long window to page
  (the low-traffic guard); the ticket still opens;
* the service stops: the target is down and the request series go stale, so
  TargetDown and MetricsAbsent fire and no SLO alert fires on the missing data.

When each alert must fire comes from :mod:`ouro_obs.slo.promtool_timing`; the input
series from :mod:`ouro_obs.slo.promtool_traffic`; the expected labels and annotations
from the generated :class:`~ouro_obs.slo.rules.AlertRule` objects themselves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ouro_obs.slo import conventions
from ouro_obs.slo.alerts import own_metrics
from ouro_obs.slo.promql import decimal_text, duration
from ouro_obs.slo.promtool_groups import group_scenarios, series_group_labels
from ouro_obs.slo.promtool_series import absent_labels
from ouro_obs.slo.promtool_timing import (
    BELOW_ONE_BURN,
    FAST_BURN,
    SLOW_BURN,
    ScenarioTiming,
    conditions,
    evaluation_interval,
    history,
    onset,
    scenario_timing,
)
from ouro_obs.slo.promtool_traffic import (
    Traffic,
    low_traffic_per_step,
    requests_per_step,
)
from ouro_obs.slo.rules import SERVICE_ALERT_FOR, alert_rules
from ouro_obs.slo.spec import ServiceSpec, SLOSpec
from ouro_obs.slo.windows import Severity, alert_windows

__all__ = ["promtool_tests"]


def _approximate(seconds: Decimal) -> str:
    """A predicted duration to one decimal: 8.6 min, 14.4 h."""
    minutes = seconds / 60
    if minutes < 120:
        return f"{decimal_text(minutes.quantize(Decimal('0.1')))} min"
    return f"{decimal_text((minutes / 60).quantize(Decimal('0.1')))} h"


def _humanize_percentage(value: Decimal) -> str:
    """Prometheus's ``humanizePercentage``: Go's ``%.4g`` of the value times 100, then %."""
    return f"{float(value * 100):.4g}%"


def _expand(template: str, value: str, labels: Mapping[str, str]) -> str:
    text = template.replace("{{ $value | humanizePercentage }}", value)
    text = text.replace("{{ $value }}", value)
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)


class _Expectations:
    """Expected alerts (labels and expanded annotations) from the generated rules."""

    def __init__(self, spec: ServiceSpec):
        self.rules = {rule.alert: rule for rule in alert_rules(spec)}
        #: A grouped SLO's alerts also carry the group labels of the series that burn.
        self.groups = {
            name: series_group_labels(spec, slo)
            for slo in spec.slos
            for name in (
                conventions.alert_names(spec, slo).page,
                conventions.alert_names(spec, slo).ticket,
            )
        }

    def alert(
        self, name: str, value: str, series_labels: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        rule = self.rules[name]
        labels = {**self.groups.get(name, {}), **(series_labels or {}), **rule.labels}
        annotations = {key: _expand(text, value, labels) for key, text in rule.annotations.items()}
        return {"exp_labels": labels, "exp_annotations": annotations}

    def alerts(
        self, name: str, value: str, series_labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """The alert ``name`` expected firing, or nothing when the spec switched it off."""
        return [self.alert(name, value, series_labels)] if name in self.rules else []

    def check(self, at: int, name: str, alerts: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        return {"eval_time": duration(at), "alertname": name, "exp_alerts": list(alerts)}


def _group(
    name: str, timing: ScenarioTiming, series: list[dict[str, str]], checks: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": name,
        "interval": duration(timing.step),
        "input_series": series,
        "alert_rule_test": checks,
    }


def _burn_scenario(
    spec: ServiceSpec,
    slo: SLOSpec,
    timing: ScenarioTiming,
    expect: _Expectations,
    burn: Decimal,
    severity: Severity,
) -> dict[str, Any]:
    """Clean history, then errors at ``burn`` x the budget: ``severity`` fires on time."""
    names = conventions.alert_names(spec, slo)
    budget = slo.error_budget
    bad_ratio = min(Decimal(1), burn * budget)
    alerts = conditions(slo, severity)
    when = onset(alerts, budget, bad_ratio, timing)
    clean = history(alerts, timing)
    traffic = Traffic(spec, slo)
    traffic.add(timing.steps(clean), requests_per_step(spec, slo, timing), Decimal(0))
    traffic.add(timing.steps(when.firing), requests_per_step(spec, slo, timing), bad_ratio)
    firing_name = names.page if severity == "page" else names.ticket
    value = _humanize_percentage(bad_ratio)
    checks = [
        expect.check(clean, names.page),
        expect.check(clean, names.ticket),
        expect.check(clean + when.silent, firing_name),
        expect.check(clean + when.firing, firing_name, expect.alerts(firing_name, value)),
    ]
    if severity == "ticket":
        checks.append(expect.check(clean + when.firing, names.page))
    outcome = "pages" if severity == "page" else "opens a ticket and never pages"
    title = (
        f"{slo.name}: {decimal_text(bad_ratio / budget)}x burn "
        f"({_humanize_percentage(bad_ratio)} bad) {outcome}; SRE Workbook onset "
        f"{_approximate(when.predicted)}, silent {duration(when.silent)} and firing "
        f"{duration(when.firing)} after the burn starts"
    )
    return _group(title, timing, traffic.series(), checks)


def _below_one_scenario(
    spec: ServiceSpec, slo: SLOSpec, timing: ScenarioTiming, expect: _Expectations
) -> dict[str, Any]:
    """0.9x the budget from the first sample on: no window ever holds anything else.

    The burn starts with the data, so the 1d and 3d windows hold nothing but the burn
    as soon as they hold anything, and their ratio is the burn's; the scenario runs
    until the longest page window is full.
    """
    names = conventions.alert_names(spec, slo)
    bad_ratio = BELOW_ONE_BURN * slo.error_budget
    length = history(conditions(slo, "page"), timing)
    offsets = sorted(
        {
            min(timing.ceil(window.seconds), length)
            for alert in alert_windows(slo.window_days)
            for window in (alert.short_window, alert.long_window)
        }
    )
    traffic = Traffic(spec, slo)
    traffic.add(timing.steps(length), requests_per_step(spec, slo, timing), bad_ratio)
    checks = [
        expect.check(offset, name) for offset in offsets for name in (names.page, names.ticket)
    ]
    outside = ", nor do failures outside the SLI's routes or methods" if traffic.outside else ""
    title = f"{slo.name}: {decimal_text(BELOW_ONE_BURN)}x burn never alerts{outside}"
    return _group(title, timing, traffic.series(outside_bad=True), checks)


def _low_traffic_scenario(
    spec: ServiceSpec, slo: SLOSpec, timing: ScenarioTiming, expect: _Expectations
) -> dict[str, Any] | None:
    """Every request fails, but each page window sees fewer than ``page_min_requests``."""
    if spec.page_min_requests == 0:
        return None
    names = conventions.alert_names(spec, slo)
    clean = history(conditions(slo, "page"), timing)
    requests = low_traffic_per_step(spec.page_min_requests, timing.steps(clean))
    traffic = Traffic(spec, slo)
    traffic.add(timing.steps(clean), requests, Decimal(0))
    traffic.add(timing.steps(clean), requests, Decimal(1))
    at = 2 * clean
    everything = _humanize_percentage(Decimal(1))
    checks = [
        expect.check(at, names.page),
        expect.check(at, names.ticket, expect.alerts(names.ticket, everything)),
    ]
    title = (
        f"{slo.name}: every request fails at low traffic ({decimal_text(requests)} per "
        f"{duration(timing.step)}, under {spec.page_min_requests} per page window): "
        "a ticket, no page"
    )
    return _group(title, timing, traffic.series(), checks)


def _stop_scenario(
    spec: ServiceSpec, slo: SLOSpec, timing: ScenarioTiming, expect: _Expectations
) -> dict[str, Any]:
    """The service goes away: up drops to 0 and the request series go stale."""
    names = conventions.alert_names(spec, slo)
    service = conventions.service_alert_names(spec)
    # An SLI on its own metrics has its own absent alert, on its own series.
    absent_name, absent_series = service.metrics_absent, dict(spec.effective_selector)
    if own_metrics(slo):
        absent_name = conventions.metrics_absent_alert_name(spec, slo)
        absent_series = absent_labels(spec, slo)
    clean = history(conditions(slo, "page"), timing)
    traffic = Traffic(spec, slo)
    traffic.add(timing.steps(clean), requests_per_step(spec, slo, timing), Decimal(0))
    down_for = SERVICE_ALERT_FOR.target_down.seconds
    absent_for = SERVICE_ALERT_FOR.metrics_absent.seconds
    stopped = math.ceil((absent_for + 2 * timing.evaluation) / timing.step)
    # The first sample after the stop: up is 0 and the request series are stale.
    pending = timing.ceil(clean + timing.step)
    # An alert fires at the first evaluation at least ``for`` after it became pending.
    down_at = timing.ceil(pending + down_for)
    absent_at = timing.ceil(pending + absent_for)
    checks = [
        expect.check(down_at - timing.evaluation, service.target_down),
        expect.check(
            down_at,
            service.target_down,
            expect.alerts(service.target_down, "0", traffic.up_labels),
        ),
        expect.check(absent_at - timing.evaluation, absent_name),
        expect.check(absent_at, absent_name, expect.alerts(absent_name, "1", absent_series)),
        expect.check(absent_at, names.page),
        expect.check(absent_at, names.ticket),
    ]
    title = (
        f"{slo.name}: the service stops (target down, series stale): TargetDown after "
        f"{SERVICE_ALERT_FOR.target_down}, MetricsAbsent after "
        f"{SERVICE_ALERT_FOR.metrics_absent}, no SLO alert"
    )
    return _group(title, timing, traffic.series(stopped_samples=stopped), checks)


def _slo_scenarios(spec: ServiceSpec, slo: SLOSpec, expect: _Expectations) -> list[dict[str, Any]]:
    timing = scenario_timing(spec, slo)
    low = _low_traffic_scenario(spec, slo, timing, expect)
    burns: list[tuple[Decimal, Severity, bool]] = [
        (FAST_BURN, "page", slo.alerting.page),
        (SLOW_BURN, "ticket", slo.alerting.ticket),
    ]
    return [
        *(
            _burn_scenario(spec, slo, timing, expect, burn, severity)
            for burn, severity, wanted in burns
            if wanted  # a switched-off alert never fires; the other scenarios show it
        ),
        _below_one_scenario(spec, slo, timing, expect),
        *([] if low is None else [low]),
        _stop_scenario(spec, slo, timing, expect),
        *group_scenarios(spec, slo, timing, expect.alerts, expect.check),
    ]


def promtool_tests(spec: ServiceSpec, rule_file_name: str) -> dict[str, Any]:
    """The content of ``alerts/<service>.rules.test.yaml`` for ``promtool test rules``."""
    expect = _Expectations(spec)
    return {
        "rule_files": [rule_file_name],
        # No group_eval_order: each alert sits in the group of the recordings it reads
        # (rules.rule_groups), so promtool's random group order cannot change an outcome.
        "evaluation_interval": duration(evaluation_interval(spec)),
        "tests": [group for slo in spec.slos for group in _slo_scenarios(spec, slo, expect)],
    }
