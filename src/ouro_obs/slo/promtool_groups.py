"""The promtool scenarios of a grouped SLO: each group burns, and pages, on its own.

Two groups (label sets of ``group_by``) serve the same traffic. In the first scenario one
fails at 100x the budget and pages, with its group's labels, while the healthy other one
does not; in the second, every request of one group fails but too few of them reach a page
window, and the other group's many clean requests do not lift the low-traffic guard.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from ouro_obs.contract import STANDARD_METHODS
from ouro_obs.slo import conventions
from ouro_obs.slo.grouping import by_labels
from ouro_obs.slo.promql import decimal_text, duration
from ouro_obs.slo.promtool_timing import (
    FAST_BURN,
    ScenarioTiming,
    conditions,
    history,
    onset,
)
from ouro_obs.slo.promtool_traffic import Traffic, low_traffic_per_step, requests_per_step
from ouro_obs.slo.spec import ServiceSpec, SLOSpec

__all__ = ["OTHER_INSTANCE", "GroupExpect", "group_scenarios", "series_group_labels"]

#: The second group's pod, so its ``up`` series is its own.
OTHER_INSTANCE = "10.0.0.2:9464"

#: ``(alert name, humanized value, series labels) -> the expected alerts`` (empty when off).
GroupExpect = Callable[[str, str, Mapping[str, str]], list[dict[str, Any]]]
#: ``(eval time, alert name, expected alerts) -> one alert_rule_test check``.
GroupCheck = Callable[[int, str, Sequence[dict[str, Any]]], dict[str, Any]]


def series_group_labels(spec: ServiceSpec, slo: SLOSpec) -> dict[str, str]:
    """The ``by`` labels the scenarios' request series carry: what a fired alert adds."""
    request = Traffic(spec, slo).request
    return {label: request[label] for label in by_labels(spec, slo) if label in request}


def _values(spec: ServiceSpec, slo: SLOSpec, label: str) -> tuple[str, str]:
    """Two values of ``label`` the SLI counts."""
    if label in spec.effective_selector:
        value = spec.effective_selector[label]
        return value, value
    names = conventions.series_names(spec)
    if label == names.route_label:
        # A ratio or histogram SLI names no routes of its own.
        routes: tuple[str, ...] = getattr(slo.sli, "routes", ())
        return (routes[0], routes[1]) if len(routes) > 1 else ("/", "/group-b")
    if label == names.method_label:
        methods = getattr(slo.sli, "methods", ()) or tuple(sorted(STANDARD_METHODS))
        return methods[0], methods[1]
    return "group-a", "group-b"


def _two_groups(spec: ServiceSpec, slo: SLOSpec) -> tuple[dict[str, str], dict[str, str]] | None:
    pairs = {label: _values(spec, slo, label) for label in slo.group_by}
    if all(first == second for first, second in pairs.values()):
        return None
    broken = {label: first for label, (first, _) in pairs.items()}
    healthy = {label: second for label, (_, second) in pairs.items()}
    return broken, {**healthy, "instance": OTHER_INSTANCE}


def _shown(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items() if k != "instance")


def _group(name: str, timing: ScenarioTiming, traffic: Sequence[Traffic]) -> dict[str, Any]:
    return {
        "name": name,
        "interval": duration(timing.step),
        "input_series": [series for one in traffic for series in one.series()],
    }


def _broken_group_pages(
    spec: ServiceSpec,
    slo: SLOSpec,
    timing: ScenarioTiming,
    groups: tuple[dict[str, str], dict[str, str]],
    expect: GroupExpect,
    check: GroupCheck,
) -> dict[str, Any]:
    page = conventions.alert_names(spec, slo).page
    bad_ratio = min(Decimal(1), FAST_BURN * slo.error_budget)
    alerts = conditions(slo, "page")
    clean = history(alerts, timing)
    when = onset(alerts, slo.error_budget, bad_ratio, timing)
    requests = requests_per_step(spec, slo, timing)
    broken, healthy = Traffic(spec, slo, groups[0]), Traffic(spec, slo, groups[1])
    broken.add(timing.steps(clean), requests, Decimal(0))
    broken.add(timing.steps(when.firing), requests, bad_ratio)
    healthy.add(timing.steps(clean + when.firing), requests, Decimal(0))
    value = f"{float(bad_ratio * 100):.4g}%"
    fired = expect(page, value, {**series_group_labels(spec, slo), **groups[0]})
    name = (
        f"{slo.name}: group {_shown(groups[0])} fails at {decimal_text(bad_ratio / slo.error_budget)}"
        f"x the budget and pages alone; group {_shown(groups[1])} stays healthy and does not"
    )
    document = _group(name, timing, (broken, healthy))
    document["alert_rule_test"] = [
        check(clean, page, []),
        check(clean + when.firing, page, fired),
    ]
    return document


def _guard_is_per_group(
    spec: ServiceSpec,
    slo: SLOSpec,
    timing: ScenarioTiming,
    groups: tuple[dict[str, str], dict[str, str]],
    check: GroupCheck,
) -> dict[str, Any]:
    page = conventions.alert_names(spec, slo).page
    clean = history(conditions(slo, "page"), timing)
    few = low_traffic_per_step(spec.page_min_requests, timing.steps(clean))
    broken, healthy = Traffic(spec, slo, groups[0]), Traffic(spec, slo, groups[1])
    broken.add(timing.steps(clean), few, Decimal(0))
    broken.add(timing.steps(clean), few, Decimal(1))
    healthy.add(timing.steps(2 * clean), requests_per_step(spec, slo, timing), Decimal(0))
    name = (
        f"{slo.name}: every request of group {_shown(groups[0])} fails at low traffic; the "
        f"busy clean group {_shown(groups[1])} does not lift its low-traffic guard: no page"
    )
    document = _group(name, timing, (broken, healthy))
    document["alert_rule_test"] = [check(2 * clean, page, [])]
    return document


def group_scenarios(
    spec: ServiceSpec,
    slo: SLOSpec,
    timing: ScenarioTiming,
    expect: GroupExpect,
    check: GroupCheck,
) -> list[dict[str, Any]]:
    """The grouped SLO's scenarios (none when ungrouped or its page is switched off)."""
    groups = _two_groups(spec, slo) if slo.group_by and slo.alerting.page else None
    if groups is None:
        return []
    scenarios = [_broken_group_pages(spec, slo, timing, groups, expect, check)]
    if spec.page_min_requests > 0:
        scenarios.append(_guard_is_per_group(spec, slo, timing, groups, check))
    return scenarios
