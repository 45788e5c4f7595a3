"""Grafana panels in the current dashboard model, built with grafanalib, and their grid.

Every panel reads the Prometheus datasource of the dashboard's ``datasource`` variable.
Where grafanalib 0.7.1 only knows a panel's pre-Grafana-8 form (gauge, bar gauge,
heatmap), :class:`CurrentPanel` writes the current options on top of grafanalib's
common panel fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from grafanalib import core as grafana

__all__ = [
    "DATASOURCE",
    "DATASOURCE_VARIABLE",
    "GREEN",
    "NEUTRAL",
    "ORANGE",
    "RED",
    "YELLOW",
    "CurrentPanel",
    "Grid",
    "Query",
    "bar_gauge",
    "gauge",
    "heatmap",
    "stat",
    "state_timeline",
    "table",
    "threshold_steps",
    "timeseries",
]

DATASOURCE_VARIABLE = "datasource"
#: The panels' datasource: the one chosen in the ``datasource`` variable.
DATASOURCE = f"${{{DATASOURCE_VARIABLE}}}"
GRID_WIDTH = 24
GREEN, YELLOW, ORANGE, RED = "green", "yellow", "orange", "red"


@dataclass(frozen=True, slots=True)
class Query:
    """A Prometheus query of a panel; grafanalib's Target plus the current model's fields."""

    expr: str
    legend: str = ""
    instant: bool = False
    exemplar: bool = False
    format: str = "time_series"

    def target(self, ref_id: str) -> PromTarget:
        return PromTarget(
            grafana.Target(
                expr=self.expr,
                legendFormat=self.legend,
                refId=ref_id,
                instant=self.instant,
                format=self.format,
            ),
            exemplar=self.exemplar,
        )


@dataclass(frozen=True, slots=True)
class PromTarget:
    target: Any
    exemplar: bool

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.target.to_json_data()
        data.update(editorMode="code", range=not data["instant"], exemplar=self.exemplar)
        return data


def _targets(queries: Sequence[Query]) -> list[PromTarget]:
    return [query.target(chr(ord("A") + index)) for index, query in enumerate(queries)]


def threshold_steps(*steps: tuple[str, Decimal | float | None]) -> list[dict[str, Any]]:
    return [
        {"color": color, "value": None if value is None else float(value)} for color, value in steps
    ]


def _common(
    title: str, description: str, queries: Sequence[Query], thresholds: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "dataSource": DATASOURCE,
        "targets": _targets(queries),
        "thresholds": thresholds,
        # grafanalib's default of 100 points makes hour-long graphs coarse; Grafana sizes it.
        "maxDataPoints": None,
    }


NEUTRAL = threshold_steps((GREEN, None))


def timeseries(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    stacked: bool = False,
    thresholds: list[dict[str, Any]] | None = None,
    minimum: int | None = 0,
    links: Sequence[Any] = (),
) -> Any:
    return grafana.TimeSeries(
        **_common(title, description, queries, thresholds or NEUTRAL),
        unit=unit,
        valueMin=minimum,
        fillOpacity=20 if stacked else 10,
        stacking={"mode": "normal" if stacked else "none", "group": "A"},
        showPoints="never",
        legendDisplayMode="table" if len(queries) > 1 else "list",
        legendCalcs=["mean", "max", "lastNotNull"] if len(queries) > 1 else [],
        tooltipMode="multi",
        tooltipSort="desc",
        thresholdsStyleMode="line" if thresholds else "off",
        links=list(links),
    )


def stat(
    title: str,
    description: str,
    unit: str,
    query: Query,
    thresholds: list[dict[str, Any]] | None = None,
    decimals: int | None = None,
) -> Any:
    return grafana.Stat(
        **_common(title, description, [query], thresholds or NEUTRAL),
        format=unit,
        decimals=decimals,
        reduceCalc="lastNotNull",
        graphMode="area",
        colorMode="value",
        noValue="no data",
    )


def table(title: str, description: str, unit: str, query: Query, value_name: str) -> Any:
    return grafana.Table(
        **_common(title, description, [query], NEUTRAL),
        unit=unit,
        sortBy=[grafana.TableSortByField(displayName=value_name, desc=True)],
        transformations=[
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {"Value": value_name},
                },
            }
        ],
    )


def state_timeline(
    title: str, description: str, queries: Sequence[Query], states: Mapping[str, tuple[str, str]]
) -> Any:
    mapping = {
        value: {"text": text, "color": color, "index": index}
        for index, (value, (text, color)) in enumerate(states.items())
    }
    return grafana.StateTimeline(
        **_common(title, description, queries, NEUTRAL),
        mappings=[{"type": "value", "options": mapping}],
        # grafanalib's StateTimeline has no unit; the mapping texts are the values shown.
        extraJson={"fieldConfig": {"defaults": {"unit": "none"}}},
    )


@dataclass(frozen=True, slots=True)
class CurrentPanel:
    """A panel grafanalib 0.7.1 writes only in its old form: its options in today's model."""

    base: Any  # grafanalib Panel: title, datasource, targets, thresholds, links, ...
    type: str
    options: Mapping[str, Any]
    defaults: Mapping[str, Any]

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.base.panel_json(
            {
                "type": self.type,
                "options": dict(self.options),
                "fieldConfig": {"defaults": dict(self.defaults), "overrides": []},
            }
        )
        return data


_REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def gauge(
    title: str, description: str, unit: str, query: Query, thresholds: list[dict[str, Any]]
) -> CurrentPanel:
    return CurrentPanel(
        grafana.Panel(**_common(title, description, [query], thresholds)),
        "gauge",
        {
            "reduceOptions": _REDUCE_LAST,
            "orientation": "auto",
            "showThresholdLabels": False,
            "showThresholdMarkers": True,
        },
        {"unit": unit, "min": 0, "max": 1, "color": {"mode": "thresholds"}},
    )


def bar_gauge(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    thresholds: list[dict[str, Any]],
    limits: tuple[float, float] | None = None,
) -> CurrentPanel:
    defaults: dict[str, Any] = {"unit": unit, "color": {"mode": "thresholds"}}
    if limits is not None:
        defaults.update(min=limits[0], max=limits[1])
    return CurrentPanel(
        grafana.Panel(**_common(title, description, queries, thresholds)),
        "bargauge",
        {
            "reduceOptions": _REDUCE_LAST,
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "valueMode": "color",
        },
        defaults,
    )


def heatmap(
    title: str, description: str, query: Query, y_unit: str, cell_unit: str
) -> CurrentPanel:
    return CurrentPanel(
        grafana.Panel(**_common(title, description, [query], NEUTRAL)),
        "heatmap",
        {
            # The buckets are already a histogram: show them, do not re-bucket the series.
            "calculate": False,
            "cellGap": 1,
            "color": {
                "mode": "scheme",
                "scheme": "Oranges",
                "scale": "exponential",
                "exponent": 0.5,
                "steps": 64,
                "fill": "dark-orange",
                "reverse": False,
            },
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "filterValues": {"le": 1e-9},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": False},
            "yAxis": {"axisPlacement": "left", "reverse": False, "unit": y_unit},
            "cellValues": {"unit": cell_unit},
        },
        {"unit": cell_unit, "custom": {"scaleDistribution": {"type": "linear"}}},
    )


# --------------------------------------------------------------------------- layout


@dataclass
class Grid:
    """Places panels left to right in rows of 24 columns and numbers them from 1."""

    panels: list[Any] = field(default_factory=list)
    x: int = 0
    y: int = 0
    line_height: int = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def _new_line(self) -> None:
        self.y += self.line_height
        self.x = 0
        self.line_height = 0

    def row(self, title: str) -> None:
        self._new_line()
        self.panels.append(
            grafana.RowPanel(
                title=title,
                id=self._next_id(),
                gridPos=grafana.GridPos(h=1, w=GRID_WIDTH, x=0, y=self.y),
            )
        )
        self.y += 1

    def add(self, panel: Any, width: int, height: int) -> None:
        if self.x + width > GRID_WIDTH:
            self._new_line()
        position = grafana.GridPos(h=height, w=width, x=self.x, y=self.y)
        base = panel.base if isinstance(panel, CurrentPanel) else panel
        base.id = self._next_id()
        base.gridPos = position
        self.panels.append(panel)
        self.x += width
        self.line_height = max(self.line_height, height)
