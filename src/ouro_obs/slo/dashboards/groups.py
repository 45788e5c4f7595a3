"""The SLO dashboard's variables of grouped SLOs: one per group label, and ``cluster``.

A grouped SLO's recordings hold one series per group; each group label becomes a
multi-value variable read from the SLO-window recording (every group with traffic in
the period), and every query of the SLO narrows its series by it. A spec that selects by
``cluster`` gets a ``cluster`` variable the same way.
"""

from __future__ import annotations

from typing import Any

from grafanalib import core as grafana

from ouro_obs.slo import conventions, promql
from ouro_obs.slo.dashboards.panels import DATASOURCE
from ouro_obs.slo.grouping import CLUSTER_LABEL, by_labels, keeps_cluster
from ouro_obs.slo.promql import Matcher
from ouro_obs.slo.spec import ServiceSpec, SLOSpec
from ouro_obs.slo.windows import period_window

__all__ = ["ALL_GROUPS", "group_matchers", "group_variables", "legend"]

#: "All" of a group variable: also matches a series without the label.
ALL_GROUPS = ".*"


def group_matchers(spec: ServiceSpec, slo: SLOSpec) -> list[Matcher]:
    """``route=~"$route"`` for each label the SLO's recordings are grouped by."""
    return [promql.matches(label, f"${label}") for label in by_labels(spec, slo)]


def legend(spec: ServiceSpec, slo: SLOSpec, base: str = "") -> str:
    """A legend naming the group of each series: ``1h {{route}}``."""
    groups = " ".join(f"{{{{{label}}}}}" for label in by_labels(spec, slo))
    return " ".join(part for part in (base, groups) if part)


def _variable(spec: ServiceSpec, label: str) -> Any:
    slo = next(slo for slo in spec.slos if label in by_labels(spec, slo))
    record = conventions.sli_error_record(period_window(slo.window_days))
    series = promql.labelled(record, {conventions.SERVICE_LABEL: spec.service})
    return grafana.Template(
        name=label,
        label=label.capitalize(),
        query=f"label_values({series}, {label})",
        dataSource=DATASOURCE,
        includeAll=True,
        multi=True,
        allValue=ALL_GROUPS,
        refresh=2,
        sort=1,
    )


def group_variables(spec: ServiceSpec) -> list[Any]:
    """The variables of every label any SLO is grouped by, ``cluster`` first."""
    labels: list[str] = [CLUSTER_LABEL] if keeps_cluster(spec) else []
    for slo in spec.slos:
        labels += [label for label in slo.group_by if label not in labels]
    return [_variable(spec, label) for label in labels]
