"""Burn-rate windows: the SRE Workbook table for 30 days, scaled for other periods."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ouro_obs.slo.windows import (
    Window,
    alert_windows,
    all_windows,
    period_window,
)


def _table(days: int) -> list[tuple[str, str, str, Decimal]]:
    return [
        (a.severity, a.long_window.duration, a.short_window.duration, a.burn_factor)
        for a in alert_windows(days)
    ]


def test_thirty_days_is_the_sre_workbook_table() -> None:
    assert _table(30) == [
        ("page", "1h", "5m", Decimal("14.4")),
        ("page", "6h", "30m", Decimal(6)),
        ("ticket", "1d", "2h", Decimal(3)),
        ("ticket", "3d", "6h", Decimal(1)),
    ]


def test_each_condition_spends_the_workbook_share_of_the_budget() -> None:
    consumed = [a.budget_consumed for a in alert_windows(30)]
    assert consumed == [Decimal("0.02"), Decimal("0.05"), Decimal("0.1"), Decimal("0.1")]


def test_twenty_eight_days_scales_every_window_and_rounds_to_whole_minutes() -> None:
    assert _table(28) == [
        ("page", "56m", "5m", Decimal("14.4")),  # 5m * 28/30 = 4.67m -> 5m
        ("page", "5h36m", "28m", Decimal(6)),
        ("ticket", "22h24m", "1h52m", Decimal(3)),
        ("ticket", "2d19h12m", "5h36m", Decimal(1)),
    ]


def test_seven_days_never_goes_below_one_minute() -> None:
    assert _table(7) == [
        ("page", "14m", "1m", Decimal("14.4")),  # 5m * 7/30 = 1.17m -> 1m
        ("page", "1h24m", "7m", Decimal(6)),
        ("ticket", "5h36m", "28m", Decimal(3)),
        ("ticket", "16h48m", "1h24m", Decimal(1)),
    ]
    assert min(w.minutes for w in all_windows(1)) == 1  # 5m / 30 = 10s -> 1m


def test_all_windows_lists_every_alert_window_and_the_period_once_shortest_first() -> None:
    windows = [w.duration for w in all_windows(30)]
    assert windows == ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]
    one_day = all_windows(1)
    assert len(one_day) == len(set(one_day))  # 5m and 30m both scale to 1m
    assert period_window(28) == Window(28 * 24 * 60)


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(1, "1m"), (90, "1h30m"), (1440, "1d"), (4032, "2d19h12m"), (43200, "30d")],
)
def test_window_durations_use_prometheus_syntax(minutes: int, text: str) -> None:
    assert Window(minutes).duration == text


def test_a_window_below_one_minute_or_a_period_below_one_day_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one minute"):
        Window(0)
    with pytest.raises(ValueError, match="at least one day"):
        alert_windows(0)
