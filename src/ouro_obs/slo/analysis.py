"""Spec -> the Argo Rollouts AnalysisTemplate that judges a new version by the SLOs (pure).

Each analysis step of a Rollout runs the template ``<service>-slo-canary`` with the
namespace and the pod-template hashes of the new (canary) and the stable version. Per
SLO the template has two metrics, each measured once over the window the fast page
alert reads right now (its short window, 5 minutes for a 30-day SLO):

``<slo>-burn-rate``
    The canary's own burn rate (its SLI error ratio over the error budget), against the
    objective: it fails above the fast page's burn factor (14.4: the canary alone would
    page), and passes at or below it.
``<slo>-vs-stable``
    The canary's burn rate minus the stable version's: it fails when the canary spends
    the budget faster than the stable version by more than the slow page's burn factor
    (6), and passes otherwise. A stable version without traffic (blue-green after the
    switch) counts as spending nothing, so the canary is compared with the objective.

A ratio or histogram SLI is judged the same way when its series come from the Rollout's
pods (the generated ServiceMonitor copies their pod-template hash onto every series they
export). One whose selectors pick another ``job`` (or another label of the service's
selector) reads another workload, whose series carry no version: it is left out, and the
template's ``ouro-obs.dev/not-judged`` annotation says so.

A version with fewer events in the window than the spec's ``page_min_requests`` has no
result, like a version with no series or no events at all. Every condition requires
exactly one sample that compares, so neither an empty result nor NaN satisfies the
success or the failure condition: Argo Rollouts counts the measurement as
inconclusive and pauses the Rollout for a person, never passes it.

The conditions use this subset of Argo Rollouts' expression language, and nothing else
(the tests evaluate them with an evaluator of exactly this subset)::

    condition := clause ("&&" clause)*
    clause    := "len(result) == 1" | "result[0]" ("<=" | ">") NUMBER

``result[0] <= x`` and ``result[0] > x`` are both false for NaN (IEEE comparison), so
NaN needs no function of its own, and the template works with any Argo Rollouts release.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ouro_obs.slo import conventions, promql
from ouro_obs.slo.promql import Matcher, decimal_text
from ouro_obs.slo.rules import sli_error_expr, total_events
from ouro_obs.slo.spec import HistogramSLI, RatioSLI, ServiceSpec, SLOSpec
from ouro_obs.slo.windows import BurnRateAlert, Window, alert_windows

__all__ = [
    "DEFAULT_PROMETHEUS_ADDRESS",
    "NOT_JUDGED_ANNOTATION",
    "AnalysisThresholds",
    "analysis_template",
    "analysis_thresholds",
    "canary_burn_rate_query",
    "canary_vs_stable_query",
    "judged",
]

#: The Prometheus Operator's Service for the Prometheus in ``monitoring`` (as
#: kube-prometheus-stack installs it). A Rollout may pass another ``prometheus-address``.
DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc:9090"

_ONE_SAMPLE = "len(result) == 1"
#: Names the SLOs the template leaves out, and why.
NOT_JUDGED_ANNOTATION = "ouro-obs.dev/not-judged"


@dataclass(frozen=True, slots=True)
class AnalysisThresholds:
    """What one SLO's metrics measure over, and the burn rates at which they fail."""

    window: Window
    #: The fast page's burn factor: a canary burning faster would page on its own.
    burn_rate: Decimal
    #: The slow page's burn factor: the most the canary may burn above the stable version.
    vs_stable: Decimal


def analysis_thresholds(slo: SLOSpec) -> AnalysisThresholds:
    """The fast page's short window and burn factor, and the slow page's burn factor."""
    conditions = alert_windows(slo.window_days)
    fastest = max(conditions, key=lambda alert: alert.burn_factor)
    paging: list[BurnRateAlert] = [a for a in conditions if a.severity == fastest.severity]
    slowest_page = min(paging, key=lambda alert: alert.burn_factor)
    return AnalysisThresholds(
        window=fastest.short_window,
        burn_rate=fastest.burn_factor,
        vs_stable=slowest_page.burn_factor,
    )


def _arg(name: str) -> str:
    return f"{{{{args.{name}}}}}"


def _version(hash_arg: str) -> list[Matcher]:
    """The matchers of one version's series: its namespace and its pod-template hash."""
    args = conventions.ANALYSIS_ARGS
    return [
        promql.equal("namespace", _arg(args.namespace)),
        promql.equal(conventions.VERSION_LABEL, _arg(hash_arg)),
    ]


def _judged_burn_rate(spec: ServiceSpec, slo: SLOSpec, hash_arg: str, window: Window) -> str:
    """One version's burn rate over ``window``; no result below ``page_min_requests`` events."""
    # One verdict per version: a grouped SLO's canary is judged on its aggregate SLI.
    slo = dataclasses.replace(slo, group_by=())
    version = _version(hash_arg)
    # The ratio ends in a division, and `/` is left-associative: no parentheses needed.
    ratio = sli_error_expr(spec, slo, window, extra=version)
    burn_rate = promql.divide(ratio, decimal_text(slo.error_budget))
    if spec.page_min_requests <= 0:
        return burn_rate
    events = total_events(spec, slo, window, "increase", extra=version)
    return f"{burn_rate}\nand on ()\n{events} >= {spec.page_min_requests}"


def canary_burn_rate_query(spec: ServiceSpec, slo: SLOSpec) -> str:
    """PromQL of the canary's burn rate over the analysis window (empty: too few events)."""
    window = analysis_thresholds(slo).window
    return _judged_burn_rate(spec, slo, conventions.ANALYSIS_ARGS.canary_hash, window) + "\n"


def canary_vs_stable_query(spec: ServiceSpec, slo: SLOSpec) -> str:
    """PromQL of the canary's burn rate minus the stable version's (0 without traffic)."""
    args = conventions.ANALYSIS_ARGS
    window = analysis_thresholds(slo).window
    canary = _judged_burn_rate(spec, slo, args.canary_hash, window)
    stable = _judged_burn_rate(spec, slo, args.stable_hash, window)
    # `and` binds looser than `-` and tighter than `or`: the canary needs parentheses.
    stable_or_nothing = promql.block(*stable.split("\n"), "or", "vector(0)")
    return promql.block(*canary.split("\n")) + "\n-\n" + stable_or_nothing + "\n"


def _conditions(threshold: Decimal) -> dict[str, str]:
    limit = decimal_text(threshold)
    return {
        "successCondition": f"{_ONE_SAMPLE} && result[0] <= {limit}",
        "failureCondition": f"{_ONE_SAMPLE} && result[0] > {limit}",
    }


def _metric(name: str, query: str, threshold: Decimal) -> dict[str, Any]:
    return {
        "name": name,
        "count": 1,
        **_conditions(threshold),
        "provider": {
            "prometheus": {
                "address": _arg(conventions.ANALYSIS_ARGS.prometheus_address),
                "query": query,
            }
        },
    }


def _slo_metrics(spec: ServiceSpec, slo: SLOSpec) -> list[dict[str, Any]]:
    names = conventions.analysis_metric_names(slo)
    thresholds = analysis_thresholds(slo)
    return [
        _metric(names.burn_rate, canary_burn_rate_query(spec, slo), thresholds.burn_rate),
        _metric(names.vs_stable, canary_vs_stable_query(spec, slo), thresholds.vs_stable),
    ]


def _metadata(spec: ServiceSpec) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": conventions.analysis_template_name(spec)}
    if spec.namespace:
        metadata["namespace"] = spec.namespace
    metadata["labels"] = {
        "app.kubernetes.io/name": spec.service,
        "app.kubernetes.io/component": "slo-analysis",
        "app.kubernetes.io/managed-by": "ouro-obs",
    }
    skipped = [slo for slo in spec.slos if not judged(spec, slo)]
    if skipped:
        metadata["annotations"] = {
            NOT_JUDGED_ANNOTATION: "; ".join(
                f"{slo.name}: its SLI selects {', '.join(sorted(_foreign_labels(spec, slo)))} "
                "itself, so its series are not the Rollout's pods' and cannot be told apart "
                "by version"
                for slo in skipped
            )
        }
    return metadata


def _sli_labels(slo: SLOSpec) -> frozenset[str]:
    sli = slo.sli
    if isinstance(sli, RatioSLI):
        selectors = [sli.total, sli.errors, sli.good]
        return frozenset().union(*(s.labels() for s in selectors if s is not None))
    if isinstance(sli, HistogramSLI):
        return frozenset(matcher.label for matcher in sli.matchers)
    return frozenset()


def _foreign_labels(spec: ServiceSpec, slo: SLOSpec) -> frozenset[str]:
    """The service selector's labels the SLI's own selectors replace (``job``, ...)."""
    return _sli_labels(slo) & set(spec.effective_selector)


def judged(spec: ServiceSpec, slo: SLOSpec) -> bool:
    """Whether the analysis judges ``slo``: its series are the service's own pods'.

    An SLI that picks another ``job`` (or any label of the service's selector) reads
    another workload's metrics, which carry no pod-template hash of the Rollout's
    versions; measured by version it would never have a result and pause every Rollout.
    """
    return not _foreign_labels(spec, slo)


def analysis_template(spec: ServiceSpec) -> dict[str, Any]:
    """An ``argoproj.io/v1alpha1`` AnalysisTemplate with two metrics per SLO."""
    args = conventions.ANALYSIS_ARGS
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": _metadata(spec),
        "spec": {
            "args": [
                {"name": args.namespace},
                {"name": args.canary_hash},
                {"name": args.stable_hash},
                {"name": args.prometheus_address, "value": DEFAULT_PROMETHEUS_ADDRESS},
            ],
            "metrics": [
                metric
                for slo in spec.slos
                if judged(spec, slo)
                for metric in _slo_metrics(spec, slo)
            ],
        },
    }
