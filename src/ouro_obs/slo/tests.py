"""Spec -> promtool unit tests for the generated rules, as plain data (pure functions).

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

The expected firing times come from a model of ``rate()`` over evenly spaced samples:
``t`` seconds of burn at error ratio ``e`` give ``e * min(t, W) / W`` over a window ``W``
(with ``t`` a whole number of sample steps; Prometheus 2 and 3 agree on it for these
series, whose error counters stay at zero until the burn). Checks are only placed where the
modelled ratio is at least 1 % away from the threshold, so float rounding cannot flip them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ouro_obs.metrics import STANDARD_METHODS, MetricNames
from ouro_obs.slo.rules import (
    SERVICE_ALERT_FOR,
    alert_names,
    decimal_text,
    le_label,
    rule_groups,
    service_alert_names,
)
from ouro_obs.slo.spec import AvailabilitySLI, ServiceSpec, SLOSpec
from ouro_obs.slo.windows import BurnRateAlert, Window, alert_windows

__all__ = [
    "BELOW_ONE_BURN",
    "FAST_BURN",
    "SLOW_BURN",
    "ScenarioTiming",
    "evaluation_interval",
    "promtool_tests",
    "scenario_timing",
]

FAST_BURN = Decimal(100)
SLOW_BURN = Decimal(5)
BELOW_ONE_BURN = Decimal("0.9")
#: At least this many requests per sample step in the scenarios with normal traffic.
MIN_REQUESTS_PER_STEP = Decimal(1000)
#: Checks sit where the modelled ratio is this far (relative) from the threshold.
MARGIN = Decimal("0.01")
INSTANCE = "10.0.0.1:9464"
EXCLUDED_ROUTE = "/not-in-this-slo"


def _duration(seconds: int) -> str:
    """Prometheus duration: 3d1h5m30s; ``0s`` for zero."""
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _approximate(seconds: Decimal) -> str:
    """A predicted duration to one decimal: 8.6 min, 14.4 h."""
    minutes = seconds / 60
    if minutes < 120:
        return f"{decimal_text(minutes.quantize(Decimal('0.1')))} min"
    return f"{decimal_text((minutes / 60).quantize(Decimal('0.1')))} h"


@dataclass(frozen=True, slots=True)
class ScenarioTiming:
    """Sample step and evaluation interval of a spec's tests, in seconds."""

    step: int
    evaluation: int

    def ceil(self, seconds: int) -> int:
        """``seconds`` rounded up to the evaluation grid."""
        return math.ceil(seconds / self.evaluation) * self.evaluation


def _shortest_window(slo: SLOSpec) -> int:
    return min(alert.short_window.seconds for alert in alert_windows(slo.window_days))


def evaluation_interval(spec: ServiceSpec) -> int:
    """The test file's evaluation interval: the shortest alert window of the longest SLO.

    promtool evaluates every rule at every evaluation step, so its run time grows with
    the number of steps. This grid still places a check on each side of that SLO's
    page onset; a shorter SLO gets coarser checks rather than a far slower file.
    """
    return max(_shortest_window(slo) for slo in spec.slos)


def scenario_timing(spec: ServiceSpec, slo: SLOSpec) -> ScenarioTiming:
    """Samples at least twice per shortest window of ``slo``, on the evaluation grid.

    Two samples per window keep every ``rate()`` defined; no denser, so the longest
    window stays under promtool's limit of samples per query.
    """
    evaluation = evaluation_interval(spec)
    parts = math.ceil(2 * evaluation / _shortest_window(slo))
    while evaluation % parts:
        parts += 1
    return ScenarioTiming(step=evaluation // parts, evaluation=evaluation)


def _history(conditions: Sequence[BurnRateAlert], timing: ScenarioTiming) -> int:
    """Clean traffic that fills the longest window of ``conditions``."""
    return timing.ceil(max(alert.long_window.seconds for alert in conditions))


def _requests_per_step(spec: ServiceSpec, slo: SLOSpec, timing: ScenarioTiming) -> Decimal:
    """A power of ten of requests per step, enough for the low-traffic guard twice over.

    Every bad and good count per step is a whole number, so counter values stay exact
    in float64; a value like 0.9 * n drifts, and promtool reads the drift as a reset.
    """
    budget = slo.error_budget
    ratios = [min(Decimal(1), FAST_BURN * budget), SLOW_BURN * budget, BELOW_ONE_BURN * budget]
    shortest_page_window = min(a.long_window.seconds for a in _conditions(slo, "page"))
    needed = 2 * spec.page_min_requests
    requests = MIN_REQUESTS_PER_STEP
    while (
        any((requests * ratio) % 1 for ratio in ratios)
        or requests * _steps(shortest_page_window, timing) < needed
    ):
        requests *= 10
    return requests


def _low_traffic_per_step(min_requests: int, window_steps: int) -> Decimal:
    """At most half of ``min_requests`` per window: a whole number or a power of 1/2."""
    limit = Decimal(min_requests) / 2 / Decimal(window_steps)
    if limit >= 1:
        return Decimal(int(limit))
    requests = Decimal(1)
    while requests > limit:
        requests /= 2
    return requests


# --------------------------------------------------------------------------- series


@dataclass
class _Series:
    """A series in promtool's expanding notation, built run by run from value 0 at t=0."""

    labels: str
    runs: list[tuple[Decimal, int]] = field(default_factory=list)  # (increment, steps)
    stale_after: bool = False

    def values(self) -> str:
        merged: list[list[Any]] = []
        for increment, steps in self.runs:
            if steps == 0:
                continue
            if merged and merged[-1][0] == increment:
                merged[-1][1] += steps
            else:
                merged.append([increment, steps])
        parts = []
        value = Decimal(0)
        for index, (increment, steps) in enumerate(merged):
            if index == 0:
                parts.append(f"{decimal_text(value)}+{decimal_text(increment)}x{steps}")
            else:
                parts.append(
                    f"{decimal_text(value + increment)}+{decimal_text(increment)}x{steps - 1}"
                )
            value += increment * steps
        if self.stale_after:
            parts.append("stale")
        return " ".join(parts)


def _gauge(runs: Sequence[tuple[Decimal, int]]) -> str:
    """Constant runs of ``(value, number of samples)``."""
    return " ".join(f"{decimal_text(value)}+0x{count - 1}" for value, count in runs if count)


def _label_text(labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{name}="{value}"' for name, value in labels.items())
    return "{" + inner + "}"


def _first_status(regex: str, matching: bool) -> str:
    compiled = re.compile(regex)
    for block in (500, 200, 400, 300, 100):
        for code in range(block, block + 100):
            if bool(compiled.fullmatch(str(code))) == matching:
                return str(code)
    raise ValueError(f"no status code {'matches' if matching else 'escapes'} {regex!r}")


@dataclass(frozen=True, slots=True)
class _Phase:
    """``steps`` samples with ``requests`` new requests each, ``bad_ratio`` of them bad."""

    steps: int
    requests: Decimal
    bad_ratio: Decimal


class _Traffic:
    """The input series of one scenario for one SLO, filled phase by phase."""

    def __init__(self, spec: ServiceSpec, slo: SLOSpec):
        self.slo = slo
        names = MetricNames(spec.metrics_namespace)
        base = {**spec.effective_selector, "instance": INSTANCE}
        route = slo.sli.routes[0] if slo.sli.routes else "/"
        method = slo.sli.methods[0] if slo.sli.methods else "GET"
        request = {**base, "method": method, "route": route}
        self.phases: list[_Phase] = []
        self.up_labels = {**spec.effective_selector, "instance": INSTANCE}
        good_status = "200"
        bad_status = "500"
        if isinstance(slo.sli, AvailabilitySLI):
            good_status = _first_status(slo.sli.error_status_regex, matching=False)
            bad_status = _first_status(slo.sli.error_status_regex, matching=True)
        self.requests_good = (
            f"{names.requests_total}{_label_text({**request, 'status': good_status})}"
        )
        self.requests_bad = (
            f"{names.requests_total}{_label_text({**request, 'status': bad_status})}"
        )
        self.duration_count = f"{names.request_duration}_count{_label_text(request)}"
        duration_bucket = f"{names.request_duration}_bucket"
        threshold = (
            "" if isinstance(slo.sli, AvailabilitySLI) else le_label(slo.sli.threshold_seconds)
        )
        self.bucket_threshold = f"{duration_bucket}{_label_text({**request, 'le': threshold})}"
        self.bucket_inf = f"{duration_bucket}{_label_text({**request, 'le': '+Inf'})}"
        self.outside = self._outside_labels(request)
        self.names = names

    def _outside_labels(self, request: Mapping[str, str]) -> dict[str, str] | None:
        """Labels of requests the SLI must ignore: another route or method, when it filters."""
        if self.slo.sli.routes:
            return {**request, "route": EXCLUDED_ROUTE}
        if self.slo.sli.methods:
            other = sorted(STANDARD_METHODS - set(self.slo.sli.methods))[0]
            return {**request, "method": other}
        return None

    def add(self, steps: int, requests: Decimal, bad_ratio: Decimal) -> None:
        self.phases.append(_Phase(steps, requests, bad_ratio))

    def series(self, stop_after: bool = False, outside_bad: bool = False) -> list[dict[str, str]]:
        availability = isinstance(self.slo.sli, AvailabilitySLI)
        runs_total = [(p.requests, p.steps) for p in self.phases]
        runs_bad = [(p.requests * p.bad_ratio, p.steps) for p in self.phases]
        runs_good = [(p.requests * (1 - p.bad_ratio), p.steps) for p in self.phases]
        found: list[_Series] = []
        if availability:
            found += [
                _Series(self.requests_good, runs_good, stale_after=stop_after),
                _Series(self.requests_bad, runs_bad, stale_after=stop_after),
            ]
        else:
            found += [
                _Series(self.requests_good, runs_total, stale_after=stop_after),
                _Series(self.duration_count, runs_total, stale_after=stop_after),
                _Series(self.bucket_threshold, runs_good, stale_after=stop_after),
                _Series(self.bucket_inf, runs_total, stale_after=stop_after),
            ]
        if outside_bad and self.outside is not None:
            found += self._outside_series(runs_total)
        listed = [{"series": s.labels, "values": s.values()} for s in found]
        steps = sum(p.steps for p in self.phases)
        up = [(Decimal(1), steps + 1)]
        listed.append({"series": f"up{_label_text(self.up_labels)}", "values": _gauge(up)})
        return listed

    def _outside_series(self, runs_total: list[tuple[Decimal, int]]) -> list[_Series]:
        """Traffic outside the SLI's routes or methods that fails completely."""
        assert self.outside is not None
        if isinstance(self.slo.sli, AvailabilitySLI):
            bad = _first_status(self.slo.sli.error_status_regex, matching=True)
            return [
                _Series(
                    f"{self.names.requests_total}{_label_text({**self.outside, 'status': bad})}",
                    runs_total,
                )
            ]
        threshold = le_label(self.slo.sli.threshold_seconds)
        bucket = f"{self.names.request_duration}_bucket"
        return [
            _Series(f"{self.names.request_duration}_count{_label_text(self.outside)}", runs_total),
            _Series(
                f"{bucket}{_label_text({**self.outside, 'le': threshold})}",
                [(Decimal(0), steps) for _, steps in runs_total],
            ),
            _Series(f"{bucket}{_label_text({**self.outside, 'le': '+Inf'})}", runs_total),
        ]


# --------------------------------------------------------------------------- timing model


def _ratio(bad_ratio: Decimal, bad_seconds: int, window: Window) -> Decimal:
    """The error ratio ``rate()`` gives over ``window`` when the last ``bad_seconds`` burn."""
    return bad_ratio * Decimal(min(bad_seconds, window.seconds)) / Decimal(window.seconds)


def _verdict(
    alert: BurnRateAlert, budget: Decimal, bad_ratio: Decimal, bad_seconds: int
) -> bool | None:
    """True or False when both windows are clearly on one side of the threshold, else None."""
    threshold = alert.burn_factor * budget
    ratios = [_ratio(bad_ratio, bad_seconds, w) for w in (alert.short_window, alert.long_window)]
    if all(ratio >= threshold * (1 + MARGIN) for ratio in ratios):
        return True
    if any(ratio <= threshold * (1 - MARGIN) for ratio in ratios):
        return False
    return None


@dataclass(frozen=True, slots=True)
class _Onset:
    """Evaluation offsets (seconds after the burn starts) around an alert's onset."""

    silent: int
    firing: int
    predicted: Decimal  # the SRE Workbook's detection time, seconds


def _onset(
    conditions: Sequence[BurnRateAlert],
    budget: Decimal,
    bad_ratio: Decimal,
    timing: ScenarioTiming,
) -> _Onset:
    """The last clearly silent and the first clearly firing evaluation of the alert.

    At the firing evaluation the first true condition's short window is full of the
    burn, so the alert's ``$value`` is exactly ``bad_ratio``.
    """

    def verdicts(offset: int) -> list[bool | None]:
        bad_seconds = offset // timing.step * timing.step
        return [_verdict(c, budget, bad_ratio, bad_seconds) for c in conditions]

    def fires_cleanly(offset: int) -> bool:
        # ``or`` keeps the left operand's series, so $value comes from the first true
        # condition: the ones before it must be clearly false, the later ones do not matter.
        found = verdicts(offset)
        if True not in found or None in found[: found.index(True)]:
            return False
        first = conditions[found.index(True)]
        return offset // timing.step * timing.step >= first.short_window.seconds

    firing = timing.evaluation
    while not fires_cleanly(firing):
        firing += timing.evaluation
    silent = firing - timing.evaluation
    while silent > 0 and any(verdict is not False for verdict in verdicts(silent)):
        silent -= timing.evaluation
    predicted = min(
        alert.burn_factor * budget / bad_ratio * Decimal(alert.long_window.seconds)
        for alert in conditions
        if alert.burn_factor * budget < bad_ratio
    )
    if Decimal(firing) > predicted * (1 + MARGIN) + timing.evaluation:  # pragma: no cover
        raise AssertionError(f"modelled onset {firing}s is later than predicted {predicted}s")
    return _Onset(silent=silent, firing=firing, predicted=predicted)


# --------------------------------------------------------------------------- expectations


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
        self.rules = {
            rule["alert"]: rule
            for group in rule_groups(spec)
            for rule in group["rules"]
            if "alert" in rule
        }

    def alert(
        self, name: str, value: str, series_labels: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        rule = self.rules[name]
        labels = {**(series_labels or {}), **rule["labels"]}
        annotations = {
            key: _expand(text, value, labels) for key, text in rule["annotations"].items()
        }
        return {"exp_labels": labels, "exp_annotations": annotations}

    def check(self, at: int, name: str, alerts: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        return {"eval_time": _duration(at), "alertname": name, "exp_alerts": list(alerts)}


def _group(
    name: str, timing: ScenarioTiming, series: list[dict[str, str]], checks: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": name,
        "interval": _duration(timing.step),
        "input_series": series,
        "alert_rule_test": checks,
    }


def _steps(seconds: int, timing: ScenarioTiming) -> int:
    return seconds // timing.step


def _conditions(slo: SLOSpec, severity: str) -> list[BurnRateAlert]:
    return [alert for alert in alert_windows(slo.window_days) if alert.severity == severity]


def _burn_scenario(
    spec: ServiceSpec,
    slo: SLOSpec,
    timing: ScenarioTiming,
    expect: _Expectations,
    burn: Decimal,
    severity: str,
) -> dict[str, Any]:
    """Clean history, then errors at ``burn`` x the budget: ``severity`` fires on time."""
    names = alert_names(spec, slo)
    budget = slo.error_budget
    bad_ratio = min(Decimal(1), burn * budget)
    conditions = _conditions(slo, severity)
    onset = _onset(conditions, budget, bad_ratio, timing)
    history = _history(conditions, timing)
    requests = _requests_per_step(spec, slo, timing)
    traffic = _Traffic(spec, slo)
    traffic.add(_steps(history, timing), requests, Decimal(0))
    traffic.add(_steps(onset.firing, timing), requests, bad_ratio)
    firing_name = names.page if severity == "page" else names.ticket
    value = _humanize_percentage(bad_ratio)
    checks = [
        expect.check(history, names.page),
        expect.check(history, names.ticket),
        expect.check(history + onset.silent, firing_name),
        expect.check(history + onset.firing, firing_name, [expect.alert(firing_name, value)]),
    ]
    if severity == "ticket":
        checks.append(expect.check(history + onset.firing, names.page))
    outcome = "pages" if severity == "page" else "opens a ticket and never pages"
    title = (
        f"{slo.name}: {decimal_text(bad_ratio / budget)}x burn "
        f"({_humanize_percentage(bad_ratio)} bad) {outcome}; SRE Workbook onset "
        f"{_approximate(onset.predicted)}, silent {_duration(onset.silent)} and firing "
        f"{_duration(onset.firing)} after the burn starts"
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
    names = alert_names(spec, slo)
    bad_ratio = BELOW_ONE_BURN * slo.error_budget
    duration = _history(_conditions(slo, "page"), timing)
    offsets = sorted(
        {
            min(timing.ceil(window.seconds), duration)
            for alert in alert_windows(slo.window_days)
            for window in (alert.short_window, alert.long_window)
        }
    )
    traffic = _Traffic(spec, slo)
    traffic.add(_steps(duration, timing), _requests_per_step(spec, slo, timing), bad_ratio)
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
    names = alert_names(spec, slo)
    pages = _conditions(slo, "page")
    history = _history(pages, timing)
    requests = _low_traffic_per_step(spec.page_min_requests, _steps(history, timing))
    traffic = _Traffic(spec, slo)
    traffic.add(_steps(history, timing), requests, Decimal(0))
    traffic.add(_steps(history, timing), requests, Decimal(1))
    at = 2 * history
    everything = _humanize_percentage(Decimal(1))
    checks = [
        expect.check(at, names.page),
        expect.check(at, names.ticket, [expect.alert(names.ticket, everything)]),
    ]
    title = (
        f"{slo.name}: every request fails at low traffic ({decimal_text(requests)} per "
        f"{_duration(timing.step)}, under {spec.page_min_requests} per page window): "
        "a ticket, no page"
    )
    return _group(title, timing, traffic.series(), checks)


def _stop_scenario(
    spec: ServiceSpec, slo: SLOSpec, timing: ScenarioTiming, expect: _Expectations
) -> dict[str, Any]:
    """The service goes away: up drops to 0 and the request series go stale."""
    names = alert_names(spec, slo)
    service = service_alert_names(spec)
    history = _history(_conditions(slo, "page"), timing)
    traffic = _Traffic(spec, slo)
    history_steps = _steps(history, timing)
    traffic.add(history_steps, _requests_per_step(spec, slo, timing), Decimal(0))
    series = traffic.series(stop_after=True)
    down_for = _parse_minutes(SERVICE_ALERT_FOR["target_down"]) * 60
    absent_for = _parse_minutes(SERVICE_ALERT_FOR["metrics_absent"]) * 60
    tail = math.ceil((absent_for + 2 * timing.evaluation) / timing.step)
    series[-1]["values"] = _gauge([(Decimal(1), history_steps + 1), (Decimal(0), tail)])
    # The first sample after the stop: up is 0 and the request series are stale.
    pending = timing.ceil(history + timing.step)
    # An alert fires at the first evaluation at least ``for`` after it became pending.
    down_at = timing.ceil(pending + down_for)
    absent_at = timing.ceil(pending + absent_for)
    checks = [
        expect.check(down_at - timing.evaluation, service["target_down"]),
        expect.check(
            down_at,
            service["target_down"],
            [expect.alert(service["target_down"], "0", traffic.up_labels)],
        ),
        expect.check(absent_at - timing.evaluation, service["metrics_absent"]),
        expect.check(
            absent_at,
            service["metrics_absent"],
            [expect.alert(service["metrics_absent"], "1", spec.effective_selector)],
        ),
        expect.check(absent_at, names.page),
        expect.check(absent_at, names.ticket),
    ]
    title = (
        f"{slo.name}: the service stops (target down, series stale): TargetDown after "
        f"{SERVICE_ALERT_FOR['target_down']}, MetricsAbsent after "
        f"{SERVICE_ALERT_FOR['metrics_absent']}, no SLO alert"
    )
    return _group(title, timing, series, checks)


def _parse_minutes(duration: str) -> int:
    match = re.fullmatch(r"(\d+)m", duration)
    if match is None:  # pragma: no cover - the constants are minutes
        raise ValueError(duration)
    return int(match.group(1))


def promtool_tests(spec: ServiceSpec, rule_file_name: str) -> dict[str, Any]:
    """The content of ``alerts/<service>.rules.test.yaml`` for ``promtool test rules``."""
    expect = _Expectations(spec)
    groups: list[dict[str, Any]] = []
    for slo in spec.slos:
        timing = scenario_timing(spec, slo)
        groups.append(_burn_scenario(spec, slo, timing, expect, FAST_BURN, "page"))
        groups.append(_burn_scenario(spec, slo, timing, expect, SLOW_BURN, "ticket"))
        groups.append(_below_one_scenario(spec, slo, timing, expect))
        low = _low_traffic_scenario(spec, slo, timing, expect)
        if low is not None:
            groups.append(low)
        groups.append(_stop_scenario(spec, slo, timing, expect))
    return {
        "rule_files": [rule_file_name],
        "evaluation_interval": _duration(evaluation_interval(spec)),
        # promtool evaluates groups in a random order unless told; recordings go first.
        "group_eval_order": [group["name"] for group in rule_groups(spec)],
        "tests": groups,
    }
