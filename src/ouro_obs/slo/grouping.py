"""The labels an SLO's rules aggregate by: its ``group_by``, and ``cluster`` when declared.

Every ``sum`` of the SLI keeps these labels, so a grouped SLO has one ratio, burn rate,
budget and alert per group, and a spec whose selector (or environment) names a
``cluster`` keeps that label on its recordings: on a global Thanos or Mimir view the
recorded series of two clusters stay apart, and a dashboard can pick one.
"""

from __future__ import annotations

from ouro_obs.slo.spec import ServiceSpec, SLOSpec

__all__ = ["CLUSTER_LABEL", "by_labels", "group_phrase", "keeps_cluster"]

#: The label a multi-cluster Prometheus (Thanos, Mimir, external labels) tells clusters by.
CLUSTER_LABEL = "cluster"


def keeps_cluster(spec: ServiceSpec) -> bool:
    """Whether the spec (or its environment) selects by ``cluster``."""
    return CLUSTER_LABEL in spec.effective_selector


def by_labels(spec: ServiceSpec, slo: SLOSpec) -> tuple[str, ...]:
    """The ``by`` labels of every aggregation of the SLO's SLI (empty: one series)."""
    cluster = (CLUSTER_LABEL,) if keeps_cluster(spec) else ()
    return (*slo.group_by, *(label for label in cluster if label not in slo.group_by))


def group_phrase(slo: SLOSpec) -> str:
    """``route={{ $labels.route }}`` for the alert texts: which group burns ("" ungrouped)."""
    return ", ".join(f"{label}={{{{ $labels.{label} }}}}" for label in slo.group_by)
