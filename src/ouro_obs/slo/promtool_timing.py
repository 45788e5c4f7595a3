"""When a generated alert must fire: the timing model behind the promtool tests (pure).

The expected firing times come from a model of ``rate()`` over evenly spaced samples:
``t`` seconds of burn at error ratio ``e`` give ``e * min(t, W) / W`` over a window ``W``
(with ``t`` a whole number of sample steps; Prometheus 2 and 3 agree on it for these
series, whose error counters stay at zero until the burn). While a window still holds clean
samples, checks are only placed where the modelled ratio is at least :data:`MARGIN` away
from the threshold, so extrapolation and float rounding cannot flip them. Once a window
holds nothing but the burn, ``rate()`` gives the burn's ratio up to float rounding, which
is compared with the threshold exactly as Prometheus will (see :func:`_full_verdict`).

Every search is bounded: after the longest window is full, no ratio changes any more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from ouro_obs.slo.promql import decimal_text
from ouro_obs.slo.spec import ServiceSpec, SLOSpec
from ouro_obs.slo.windows import BurnRateAlert, Severity, Window, alert_windows

__all__ = [
    "BELOW_ONE_BURN",
    "FAST_BURN",
    "FLOAT_TOLERANCE",
    "MARGIN",
    "SLOW_BURN",
    "Onset",
    "ScenarioTiming",
    "conditions",
    "evaluation_interval",
    "history",
    "onset",
    "scenario_timing",
]

#: The burns the scenarios play, in multiples of the error budget.
FAST_BURN = Decimal(100)
SLOW_BURN = Decimal(5)
BELOW_ONE_BURN = Decimal("0.9")
#: Checks sit where the modelled ratio is this far (relative) from the threshold.
MARGIN = Decimal("0.01")
#: A full window's ratio is the burn's up to a few float64 ulps; this covers them.
FLOAT_TOLERANCE = Decimal("1e-9")


@dataclass(frozen=True, slots=True)
class ScenarioTiming:
    """Sample step and evaluation interval of a spec's tests, in seconds."""

    step: int
    evaluation: int

    def ceil(self, seconds: int) -> int:
        """``seconds`` rounded up to the evaluation grid."""
        return math.ceil(seconds / self.evaluation) * self.evaluation

    def steps(self, seconds: int) -> int:
        """Whole sample steps in ``seconds``."""
        return seconds // self.step


def conditions(slo: SLOSpec, severity: Severity) -> list[BurnRateAlert]:
    """The burn-rate conditions of one alert of ``slo``."""
    return [alert for alert in alert_windows(slo.window_days) if alert.severity == severity]


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


def history(alerts: Sequence[BurnRateAlert], timing: ScenarioTiming) -> int:
    """Clean traffic that fills the longest window of ``alerts``, in seconds."""
    return timing.ceil(max(alert.long_window.seconds for alert in alerts))


def _ratio(bad_ratio: Decimal, bad_seconds: int, window: Window) -> Decimal:
    """The error ratio ``rate()`` gives over ``window`` when the last ``bad_seconds`` burn."""
    return bad_ratio * Decimal(min(bad_seconds, window.seconds)) / Decimal(window.seconds)


def _side(ratio: Decimal, threshold: Decimal, tolerance: Decimal) -> bool | None:
    """True above ``threshold``, False below it, None within ``tolerance`` (relative) of it."""
    if ratio >= threshold * (1 + tolerance):
        return True
    if ratio <= threshold * (1 - tolerance):
        return False
    return None


def _full_verdict(bad_ratio: Decimal, threshold: Decimal) -> bool | None:
    """``ratio > threshold`` for a window holding only the burn, as Prometheus evaluates it.

    All requests failing gives ``errors / errors``, exactly 1.0, against the threshold as
    Prometheus parses it from the rule file; any other ratio is the quotient of two rates
    and may be a few ulps off, so it must clear :data:`FLOAT_TOLERANCE`.
    """
    if bad_ratio == 1:
        return float(decimal_text(threshold)) < 1.0
    return _side(bad_ratio, threshold, FLOAT_TOLERANCE)


def _window_verdict(
    threshold: Decimal, bad_ratio: Decimal, bad_seconds: int, window: Window, step: int
) -> bool | None:
    # One extra step: the sample at the window's left edge may still be a clean one.
    if bad_seconds >= window.seconds + step:
        return _full_verdict(bad_ratio, threshold)
    return _side(_ratio(bad_ratio, bad_seconds, window), threshold, MARGIN)


def _verdict(
    alert: BurnRateAlert, budget: Decimal, bad_ratio: Decimal, bad_seconds: int, step: int
) -> bool | None:
    """True or False when both windows are clearly on one side of the threshold, else None."""
    threshold = alert.burn_factor * budget
    found = [
        _window_verdict(threshold, bad_ratio, bad_seconds, window, step)
        for window in (alert.short_window, alert.long_window)
    ]
    if False in found:
        return False
    if all(found):
        return True
    return None


@dataclass(frozen=True, slots=True)
class Onset:
    """Evaluation offsets (seconds after the burn starts) around an alert's onset."""

    silent: int
    firing: int
    predicted: Decimal  # the SRE Workbook's detection time, seconds


@dataclass(frozen=True, slots=True)
class _Burn:
    alerts: Sequence[BurnRateAlert]
    budget: Decimal
    bad_ratio: Decimal
    timing: ScenarioTiming

    def burnt(self, offset: int) -> int:
        """Seconds of burn the samples up to ``offset`` hold."""
        return offset // self.timing.step * self.timing.step

    def verdicts(self, offset: int) -> list[bool | None]:
        burnt, step = self.burnt(offset), self.timing.step
        return [_verdict(a, self.budget, self.bad_ratio, burnt, step) for a in self.alerts]

    def settled(self) -> int:
        """The first evaluation after which no window changes: all of them hold only burn."""
        longest = max(alert.long_window.seconds for alert in self.alerts)
        return self.timing.ceil(longest + 2 * self.timing.step)

    def fires_cleanly(self, offset: int) -> bool:
        # ``or`` keeps the left operand's series, so $value comes from the first true
        # condition: the ones before it must be clearly false, the later ones do not matter.
        found = self.verdicts(offset)
        if True not in found or None in found[: found.index(True)]:
            return False
        first = self.alerts[found.index(True)]
        return self.burnt(offset) >= first.short_window.seconds

    def predicted(self) -> Decimal:
        return min(
            alert.burn_factor * self.budget / self.bad_ratio * Decimal(alert.long_window.seconds)
            for alert in self.alerts
            if alert.burn_factor * self.budget < self.bad_ratio
        )


def onset(
    alerts: Sequence[BurnRateAlert], budget: Decimal, bad_ratio: Decimal, timing: ScenarioTiming
) -> Onset:
    """The last clearly silent and the first clearly firing evaluation of the alert.

    At the firing evaluation the first true condition's short window is full of the
    burn, so the alert's ``$value`` is exactly ``bad_ratio``.
    """
    burn = _Burn(alerts, budget, bad_ratio, timing)
    firing = timing.evaluation
    while not burn.fires_cleanly(firing):
        if firing > burn.settled():
            raise ValueError(
                f"a {decimal_text(bad_ratio)} error ratio never clearly fires an alert at "
                f"{', '.join(decimal_text(a.burn_factor * budget) for a in alerts)}"
            )
        firing += timing.evaluation
    silent = firing - timing.evaluation
    while silent > 0 and any(verdict is not False for verdict in burn.verdicts(silent)):
        silent -= timing.evaluation
    predicted = burn.predicted()
    if Decimal(firing) > predicted * (1 + MARGIN) + timing.evaluation:  # pragma: no cover
        raise AssertionError(f"modelled onset {firing}s is later than predicted {predicted}s")
    return Onset(silent=silent, firing=firing, predicted=predicted)
