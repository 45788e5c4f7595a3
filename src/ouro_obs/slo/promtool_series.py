"""The input series of an SLI on its own metrics (ratio, histogram), from its selectors.

:class:`~ouro_obs.slo.promtool_traffic.Traffic` writes each of these series as a counter
of the scenario's events: all of them, the good ones or the bad ones. Their labels are
made up to satisfy the SLI's matchers (and the service's selector, where the SLI leaves
a label alone) by :mod:`ouro_obs.slo.promtool_labels`:

* ``errors`` (or ``good``) and ``total`` on two metrics: the total counter counts every
  event, the other one the bad (or good) ones;
* both on one metric (``grpc_server_handled_total{grpc_code="OK"}`` over
  ``grpc_server_handled_total``): one series the counted selector picks, one it does
  not, together all the events;
* a histogram: ``_count``, the threshold's bucket (the good observations) and ``+Inf``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from ouro_obs.slo import promql
from ouro_obs.slo.promql import Matcher
from ouro_obs.slo.promtool_labels import escaping_labels, satisfying_labels
from ouro_obs.slo.rules import own_series_matchers
from ouro_obs.slo.spec import HistogramSLI, RatioSLI, ServiceSpec, SLOSpec

__all__ = ["EventRole", "absent_labels", "own_series"]

#: Which of a phase's events a series counts.
EventRole = Literal["all", "good", "bad"]


def _labels(matchers: Sequence[Matcher], base: Mapping[str, str]) -> dict[str, str]:
    found = satisfying_labels(matchers, base)
    if found is None:  # pragma: no cover - the spec's check refuses such selectors
        raise ValueError(f"no series satisfies {promql.selector(matchers)}")
    return found


def _ratio(
    spec: ServiceSpec, sli: RatioSLI, base: Mapping[str, str]
) -> list[tuple[str, EventRole]]:
    counted = sli.errors or sli.good
    assert counted is not None
    role: EventRole = "bad" if sli.errors is not None else "good"
    other: EventRole = "good" if role == "bad" else "bad"
    total = own_series_matchers(spec, sli.total.matchers)
    chosen = own_series_matchers(spec, counted.matchers)
    if counted.metric != sli.total.metric:
        return [
            (promql.labelled(sli.total.metric, _labels(total, base)), "all"),
            (promql.labelled(counted.metric, _labels(chosen, base)), role),
        ]
    escaped = escaping_labels(total, counted.matchers, base)
    if escaped is None:  # pragma: no cover - the spec's check refuses such selectors
        raise ValueError(f"every series of {sli.total} is one of {counted}")
    return [
        (promql.labelled(counted.metric, _labels([*total, *chosen], base)), role),
        (promql.labelled(counted.metric, escaped), other),
    ]


def _histogram(
    spec: ServiceSpec, sli: HistogramSLI, base: Mapping[str, str]
) -> list[tuple[str, EventRole]]:
    labels = _labels(own_series_matchers(spec, sli.matchers), base)
    bucket = f"{sli.metric}_bucket"
    return [
        (promql.labelled(f"{sli.metric}_count", labels), "all"),
        (promql.labelled(bucket, {**labels, "le": promql.le_label(sli.threshold)}), "good"),
        (promql.labelled(bucket, {**labels, "le": "+Inf"}), "all"),
    ]


def own_series(
    spec: ServiceSpec, slo: SLOSpec, base: Mapping[str, str]
) -> list[tuple[str, EventRole]] | None:
    """The series of ``slo``'s own metrics and what each counts; ``None`` for HTTP SLIs.

    ``base`` holds labels every series carries unless a matcher says otherwise
    (``instance``, a group's value).
    """
    if isinstance(slo.sli, RatioSLI):
        return _ratio(spec, slo.sli, base)
    if isinstance(slo.sli, HistogramSLI):
        return _histogram(spec, slo.sli, base)
    return None


def absent_labels(spec: ServiceSpec, slo: SLOSpec) -> dict[str, str]:
    """The labels ``absent()`` of the SLI's total series gives: its equality matchers."""
    sli = slo.sli
    own: Sequence[Matcher] = ()
    if isinstance(sli, RatioSLI):
        own = sli.total.matchers
    elif isinstance(sli, HistogramSLI):
        own = sli.matchers
    matchers = own_series_matchers(spec, own)
    return {m.label: m.value for m in matchers if m.op == "="}
