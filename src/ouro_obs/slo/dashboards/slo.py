"""The ``<service>-slo`` dashboard: per SLO, the SLI, error budget, burn rates and alerts.

Every query reads the generator's recording rules (and ``ALERTS``) by their
conventional names, so the panels show exactly what the alerts evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ouro_obs.slo import conventions, promql
from ouro_obs.slo.dashboards.dashboard import build_dashboard, dashboard_link, datasource_variable
from ouro_obs.slo.dashboards.groups import group_matchers, group_variables, legend
from ouro_obs.slo.dashboards.panels import (
    DATASOURCE_VARIABLE,
    GREEN,
    ORANGE,
    RED,
    YELLOW,
    Grid,
    Query,
    bar_gauge,
    gauge,
    stat,
    state_timeline,
    threshold_steps,
    timeseries,
)
from ouro_obs.slo.promql import decimal_text
from ouro_obs.slo.spec import HistogramSLI, LatencySLI, RatioSLI, ServiceSpec, SLOSpec
from ouro_obs.slo.windows import Window, alert_windows, burn_windows, period_window

__all__ = ["slo_dashboard"]

_ALERT_STATES = {"0": ("ok", GREEN), "1": ("pending", YELLOW), "2": ("firing", RED)}
_BUDGET_STEPS = threshold_steps((RED, None), (ORANGE, 0), (GREEN, Decimal("0.25")))


def _percent_text(ratio: Decimal) -> str:
    return f"{decimal_text(ratio * 100)}%"


def _slo_title(slo: SLOSpec) -> str:
    what = "availability"
    sli = slo.sli
    if isinstance(sli, LatencySLI):
        what = f"latency under {decimal_text(sli.threshold_seconds)} s"
    elif isinstance(sli, RatioSLI):
        what = f"good events of {sli.total.metric}"
    elif isinstance(sli, HistogramSLI):
        what = f"of {sli.metric} at or under {decimal_text(sli.threshold)}"
    return f"SLO {slo.name}: {decimal_text(slo.objective)}% {what} over {slo.window_days}d"


def _burn_thresholds(slo: SLOSpec) -> list[dict[str, Any]]:
    factors = sorted({alert.burn_factor for alert in alert_windows(slo.window_days)})
    colors = [YELLOW, ORANGE, RED, "dark-red"]
    return threshold_steps((GREEN, None), *zip(colors, factors, strict=False))


@dataclass(frozen=True, slots=True)
class _SLOPanels:
    """The row of one SLO: its state now, then its history."""

    spec: ServiceSpec
    slo: SLOSpec

    def series(self, record: str) -> str:
        """The SLO's recording, narrowed to the groups the dashboard's variables pick."""
        own = promql.equal_matchers(conventions.slo_labels(self.spec, self.slo))
        return record + promql.selector([*own, *group_matchers(self.spec, self.slo)])

    def good(self, window: Window) -> str:
        return f"1 - {self.series(conventions.sli_error_record(window))}"

    def alert_state(self, alert: str) -> Query:
        def alerts(state: str) -> str:
            labels = {"alertname": alert, **conventions.slo_labels(self.spec, self.slo)}
            matchers = promql.equal_matchers({**labels, "alertstate": state})
            groups = group_matchers(self.spec, self.slo)
            return f"max(ALERTS{promql.selector([*matchers, *groups])})"

        # 2 firing, 1 pending, 0 not active: one series per alert even while all is well.
        return Query(
            promql.block(f"{alerts('firing')} * 2", "or", alerts("pending"), "or", "vector(0)"),
            alert,
        )

    def burn_rates(self, instant: bool = False) -> list[Query]:
        return [
            Query(
                self.series(conventions.burn_rate_record(window)),
                legend(self.spec, self.slo, str(window)),
                instant=instant,
            )
            for window in burn_windows(self.slo.window_days)
        ]

    def now(self, grid: Grid) -> None:
        period = period_window(self.slo.window_days)
        objective = self.slo.objective / 100
        remaining = self.series(conventions.BUDGET_REMAINING_RECORD)
        sli = stat(
            f"SLI over {period}",
            f"Good events over the SLO window; green at or above the objective "
            f"({_percent_text(objective)}). {self.slo.description}".strip(),
            "percentunit",
            Query(self.good(period), legend(self.spec, self.slo)),
            threshold_steps((RED, None), (GREEN, objective)),
            decimals=3,
        )
        budget = gauge(
            "Error budget remaining",
            f"Share of the {period} error budget ({_percent_text(self.slo.error_budget)} of "
            "events) not spent yet; below 0 the SLO is missed.",
            "percentunit",
            Query(remaining, legend(self.spec, self.slo)),
            _BUDGET_STEPS,
        )
        burn = bar_gauge(
            "Burn rate by alert window",
            "How many times faster than the budget allows errors happen now, per window "
            "of the burn-rate alerts; 1 spends exactly the budget over the SLO window.",
            "suffix:x",
            self.burn_rates(instant=True),
            _burn_thresholds(self.slo),
        )
        grid.add(sli, 6, 6)
        grid.add(budget, 6, 6)
        grid.add(burn, 12, 6)

    def history(self, grid: Grid) -> None:
        period = period_window(self.slo.window_days)
        page_long = alert_windows(self.slo.window_days)[0].long_window
        names = conventions.alert_names(self.spec, self.slo)
        for panel in (
            timeseries(
                "SLI against the objective",
                f"The SLI over the SLO window ({period}) and over the fast page's window "
                f"({page_long}), against the objective.",
                "percentunit",
                [
                    Query(self.good(period), legend(self.spec, self.slo, f"SLI ({period})")),
                    Query(self.good(page_long), legend(self.spec, self.slo, f"SLI ({page_long})")),
                    # One objective for every group.
                    Query(
                        promql.labelled(
                            conventions.OBJECTIVE_RECORD,
                            conventions.slo_labels(self.spec, self.slo),
                        ),
                        "objective",
                    ),
                ],
                minimum=None,
            ),
            timeseries(
                "Error budget remaining over time",
                f"Share of the {period} error budget left at each point in time.",
                "percentunit",
                [
                    Query(
                        self.series(conventions.BUDGET_REMAINING_RECORD),
                        legend(self.spec, self.slo, "budget remaining"),
                    )
                ],
                thresholds=_BUDGET_STEPS,
                minimum=None,
            ),
            timeseries(
                "Burn rates",
                "Burn rate over each alert window; the lines mark the alerts' burn factors.",
                "suffix:x",
                self.burn_rates(),
                thresholds=_burn_thresholds(self.slo),
            ),
            state_timeline(
                "Alerts",
                f"State of {names.page} (page) and {names.ticket} (ticket).",
                [self.alert_state(names.page), self.alert_state(names.ticket)],
                _ALERT_STATES,
            ),
        ):
            grid.add(panel, 12, 8)


def slo_dashboard(spec: ServiceSpec) -> dict[str, Any]:
    """Per SLO: SLI, error budget, burn rates and alert states, in the current model."""
    grid = Grid()
    grid.row("All SLOs")
    by_slo = promql.labelled(
        conventions.BUDGET_REMAINING_RECORD, {conventions.SERVICE_LABEL: spec.service}
    )
    grid.add(
        bar_gauge(
            "Error budget remaining by SLO",
            "Share of each SLO's error budget not spent yet over its window.",
            "percentunit",
            [Query(by_slo, "{{slo}}", instant=True)],
            _BUDGET_STEPS,
            limits=(0, 1),
        ),
        24,
        max(4, 2 * len(spec.slos) + 2),
    )
    for slo in spec.slos:
        panels = _SLOPanels(spec, slo)
        grid.row(_slo_title(slo))
        panels.now(grid)
        panels.history(grid)
    return build_dashboard(
        spec,
        "slo",
        f"{spec.service} / SLOs",
        f"Service level objectives of {spec.service}: SLIs, error budgets, burn rates and "
        "alerts (generated by ouro-obs).",
        [
            datasource_variable(DATASOURCE_VARIABLE, "prometheus", "Data source"),
            *group_variables(spec),
        ],
        grid.panels,
        [
            dashboard_link(
                "Overview",
                "overview",
                spec.service,
                f"Requests, errors and latency of {spec.service}",
            )
        ],
        time_from="7d",
    )
