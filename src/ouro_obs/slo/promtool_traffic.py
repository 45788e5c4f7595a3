"""The input series of the generated promtool tests: the middleware's metrics, synthesised.

A scenario is a list of phases (``steps`` samples of ``requests`` each, ``bad_ratio`` of
them bad); :class:`Traffic` writes them as the counters the middleware would expose,
in promtool's expanding notation (``0+10x60 600+20x59``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from ouro_obs.contract import STANDARD_METHODS
from ouro_obs.slo import conventions, promql
from ouro_obs.slo.promql import decimal_text
from ouro_obs.slo.promtool_series import EventRole, own_series
from ouro_obs.slo.promtool_timing import (
    BELOW_ONE_BURN,
    FAST_BURN,
    SLOW_BURN,
    ScenarioTiming,
    conditions,
)
from ouro_obs.slo.spec import AvailabilitySLI, LatencySLI, ServiceSpec, SLOSpec

__all__ = [
    "EXCLUDED_ROUTE",
    "INSTANCE",
    "Traffic",
    "gauge",
    "low_traffic_per_step",
    "requests_per_step",
]

#: At least this many requests per sample step in the scenarios with normal traffic.
MIN_REQUESTS_PER_STEP = Decimal(1000)
INSTANCE = "10.0.0.1:9464"
EXCLUDED_ROUTE = "/not-in-this-slo"


def requests_per_step(spec: ServiceSpec, slo: SLOSpec, timing: ScenarioTiming) -> Decimal:
    """A power of ten of requests per step, enough for the low-traffic guard twice over.

    Every bad and good count per step is a whole number, so counter values stay exact
    in float64; a value like 0.9 * n drifts, and promtool reads the drift as a reset.
    """
    budget = slo.error_budget
    ratios = [min(Decimal(1), FAST_BURN * budget), SLOW_BURN * budget, BELOW_ONE_BURN * budget]
    shortest_page_window = min(a.long_window.seconds for a in conditions(slo, "page"))
    needed = 2 * spec.page_min_requests
    requests = MIN_REQUESTS_PER_STEP
    while (
        any((requests * ratio) % 1 for ratio in ratios)
        or requests * timing.steps(shortest_page_window) < needed
    ):
        requests *= 10
    return requests


def low_traffic_per_step(min_requests: int, window_steps: int) -> Decimal:
    """At most half of ``min_requests`` per window: a whole number or a power of 1/2."""
    limit = Decimal(min_requests) / 2 / Decimal(window_steps)
    if limit >= 1:
        return Decimal(int(limit))
    requests = Decimal(1)
    while requests > limit:
        requests /= 2
    return requests


@dataclass
class _Counter:
    """A counter in promtool's expanding notation, built run by run from 0 at t=0."""

    series: str
    runs: list[tuple[Decimal, int]] = field(default_factory=list)  # (increment, steps)
    stale_after: bool = False

    def _merged(self) -> list[tuple[Decimal, int]]:
        merged: list[tuple[Decimal, int]] = []
        for increment, steps in self.runs:
            if steps == 0:
                continue
            if merged and merged[-1][0] == increment:
                merged[-1] = (increment, merged[-1][1] + steps)
            else:
                merged.append((increment, steps))
        return merged

    def values(self) -> str:
        parts = []
        value = Decimal(0)
        for index, (increment, steps) in enumerate(self._merged()):
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


def gauge(runs: Sequence[tuple[Decimal, int]]) -> str:
    """Constant runs of ``(value, number of samples)``."""
    return " ".join(f"{decimal_text(value)}+0x{count - 1}" for value, count in runs if count)


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


class Traffic:
    """The input series of one scenario for one SLO, filled phase by phase."""

    def __init__(self, spec: ServiceSpec, slo: SLOSpec, labels: Mapping[str, str] | None = None):
        """``labels`` override the request series' labels (``instance`` also ``up``'s)."""
        self.slo = slo
        self.names = conventions.series_names(spec)
        extra = dict(labels or {})
        self.up_labels = {**spec.effective_selector, "instance": extra.pop("instance", INSTANCE)}
        self.request = {
            **self.up_labels,
            self.names.method_label: slo.sli.methods[0] if slo.sli.methods else "GET",
            self.names.route_label: slo.sli.routes[0] if slo.sli.routes else "/",
            **extra,
        }
        self.phases: list[_Phase] = []
        # An SLI on its own metrics: series its selectors pick, with the same extra labels.
        own_base = {k: v for k, v in (labels or {}).items() if k != "instance"}
        self.own = own_series(spec, slo, {"instance": self.up_labels["instance"], **own_base})
        self.outside = self._outside_labels()

    def _outside_labels(self) -> dict[str, str] | None:
        """Labels of requests the SLI must ignore: another route or method, when it filters."""
        if self.slo.sli.routes:
            return {**self.request, self.names.route_label: EXCLUDED_ROUTE}
        if self.slo.sli.methods:
            other = sorted(STANDARD_METHODS - set(self.slo.sli.methods))[0]
            return {**self.request, self.names.method_label: other}
        return None

    def add(self, steps: int, requests: Decimal, bad_ratio: Decimal) -> None:
        self.phases.append(_Phase(steps, requests, bad_ratio))

    def _runs(self, per_step: Callable[[_Phase], Decimal]) -> list[tuple[Decimal, int]]:
        return [(per_step(phase), phase.steps) for phase in self.phases]

    def _requests(self, labels: Mapping[str, str], status: str) -> str:
        return promql.labelled(self.names.requests, {**labels, self.names.status_label: status})

    def _status(self, bad: bool) -> str:
        assert isinstance(self.slo.sli, AvailabilitySLI)
        return _first_status(self.slo.sli.error_status_regex, matching=bad)

    def _latency_counters(
        self, labels: Mapping[str, str], fast: list[tuple[Decimal, int]]
    ) -> list[_Counter]:
        """The duration histogram: ``fast`` requests under the threshold, all under +Inf.

        Where the histogram counts the requests (the OpenTelemetry naming), its series carry
        the status too: those requests succeeded.
        """
        assert isinstance(self.slo.sli, LatencySLI)
        histogram = self.names.request_duration
        if self.names.requests_are_durations:
            labels = {**labels, self.names.status_label: "200"}
        threshold = promql.le_label(self.slo.sli.threshold_seconds)
        total = self._runs(lambda phase: phase.requests)
        return [
            _Counter(promql.labelled(f"{histogram}_count", labels), total),
            _Counter(promql.labelled(f"{histogram}_bucket", {**labels, "le": threshold}), fast),
            _Counter(promql.labelled(f"{histogram}_bucket", {**labels, "le": "+Inf"}), total),
        ]

    def _sli_counters(self) -> list[_Counter]:
        """The series of the requests (or the events) the SLI counts."""
        if self.own is not None:
            counts: dict[EventRole, Callable[[_Phase], Decimal]] = {
                "all": lambda phase: phase.requests,
                "good": lambda phase: phase.requests * (1 - phase.bad_ratio),
                "bad": lambda phase: phase.requests * phase.bad_ratio,
            }
            return [_Counter(series, self._runs(counts[role])) for series, role in self.own]
        good = self._runs(lambda phase: phase.requests * (1 - phase.bad_ratio))
        if isinstance(self.slo.sli, AvailabilitySLI):
            bad = self._runs(lambda phase: phase.requests * phase.bad_ratio)
            return [
                _Counter(self._requests(self.request, self._status(bad=False)), good),
                _Counter(self._requests(self.request, self._status(bad=True)), bad),
            ]
        latency = self._latency_counters(self.request, good)
        if self.names.requests_are_durations:  # the histogram's _count is the requests
            return latency
        total = self._runs(lambda phase: phase.requests)
        return [_Counter(self._requests(self.request, "200"), total), *latency]

    def _outside_counters(self, outside: Mapping[str, str]) -> list[_Counter]:
        """Traffic outside the SLI's routes or methods that fails completely."""
        if isinstance(self.slo.sli, AvailabilitySLI):
            total = self._runs(lambda phase: phase.requests)
            return [_Counter(self._requests(outside, self._status(bad=True)), total)]
        return self._latency_counters(outside, self._runs(lambda phase: Decimal(0)))

    def series(self, outside_bad: bool = False, stopped_samples: int = 0) -> list[dict[str, str]]:
        """The request series, then ``up``; failing traffic outside the SLI when ``outside_bad``.

        With ``stopped_samples``, the service stops after the last phase: its request
        series go stale and ``up`` is 0 for that many more samples.
        """
        found = self._sli_counters()
        for counter in found:
            counter.stale_after = stopped_samples > 0
        if outside_bad and self.outside is not None:
            found += self._outside_counters(self.outside)
        steps = sum(phase.steps for phase in self.phases)
        up = gauge([(Decimal(1), steps + 1), (Decimal(0), stopped_samples)])
        return [
            *({"series": counter.series, "values": counter.values()} for counter in found),
            {"series": promql.labelled("up", self.up_labels), "values": up},
        ]
