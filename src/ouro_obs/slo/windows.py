"""Burn-rate alert windows as data: the SRE Workbook table, scaled to the SLO's period.

The table is written for a 30-day SLO. For any other period every window is scaled by
``period / 30d`` and rounded to whole minutes (never below one minute); the burn factors
stay the same, so each alert still fires when the same share of the budget is spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from ouro_obs.slo import promql

__all__ = [
    "REFERENCE_PERIOD_DAYS",
    "SRE_WORKBOOK_TABLE",
    "BurnRateAlert",
    "Severity",
    "Window",
    "alert_windows",
    "all_windows",
    "burn_windows",
    "period_window",
]

Severity = Literal["page", "ticket"]

REFERENCE_PERIOD_DAYS = 30
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A rate window of a whole number of minutes; ``str()`` gives its PromQL duration."""

    minutes: int

    def __post_init__(self) -> None:
        if self.minutes < 1:
            raise ValueError(f"a window must be at least one minute, got {self.minutes}")

    @property
    def duration(self) -> str:
        """The PromQL duration, also the suffix of the recording rule names (``ratio_rate1h``)."""
        return promql.duration(self.seconds)

    @property
    def seconds(self) -> int:
        return self.minutes * 60

    def __str__(self) -> str:
        return self.duration


@dataclass(frozen=True, slots=True)
class BurnRateAlert:
    """One multi-window condition: both windows burn faster than ``burn_factor``."""

    severity: Severity
    long_window: Window
    short_window: Window
    #: How many times faster than "exactly the budget over the period" the budget is spent.
    burn_factor: Decimal
    #: Share of the period's budget spent when the long window alone reaches the factor.
    budget_consumed: Decimal


#: The SRE Workbook's recommended table (chapter 5, "Alerting on SLOs") for 30 days:
#: (severity, long window, short window, burn factor) with windows in minutes.
SRE_WORKBOOK_TABLE: tuple[tuple[Severity, int, int, Decimal], ...] = (
    ("page", 60, 5, Decimal("14.4")),
    ("page", 6 * 60, 30, Decimal(6)),
    ("ticket", 24 * 60, 2 * 60, Decimal(3)),
    ("ticket", 3 * 24 * 60, 6 * 60, Decimal(1)),
)


def _scaled(minutes: int, window_days: int) -> Window:
    exact = Decimal(minutes) * Decimal(window_days) / Decimal(REFERENCE_PERIOD_DAYS)
    rounded = int(exact.to_integral_value(rounding=ROUND_HALF_UP))
    return Window(max(1, rounded))


def _check_days(window_days: int) -> None:
    if window_days < 1:
        raise ValueError(f"an SLO window must be at least one day, got {window_days}")


def alert_windows(window_days: int) -> tuple[BurnRateAlert, ...]:
    """The four burn-rate conditions for an SLO over ``window_days`` days, page first."""
    _check_days(window_days)
    reference_minutes = REFERENCE_PERIOD_DAYS * _MINUTES_PER_DAY
    return tuple(
        BurnRateAlert(
            severity=severity,
            long_window=_scaled(long_minutes, window_days),
            short_window=_scaled(short_minutes, window_days),
            burn_factor=factor,
            # The same share for any period: both the window and the period scale.
            budget_consumed=factor * Decimal(long_minutes) / Decimal(reference_minutes),
        )
        for severity, long_minutes, short_minutes, factor in SRE_WORKBOOK_TABLE
    )


def period_window(window_days: int) -> Window:
    """The SLO's own window (``30d``): the error budget is measured over it."""
    _check_days(window_days)
    return Window(window_days * _MINUTES_PER_DAY)


def burn_windows(window_days: int) -> tuple[Window, ...]:
    """Every window the burn-rate alerts read, shortest first, without duplicates."""
    windows: set[Window] = set()
    for alert in alert_windows(window_days):
        windows.update((alert.long_window, alert.short_window))
    return tuple(sorted(windows))


def all_windows(window_days: int) -> tuple[Window, ...]:
    """Every window a recording rule is needed for, shortest first, without duplicates."""
    return tuple(sorted({period_window(window_days), *burn_windows(window_days)}))
