"""The checks of the SLIs on any metric: ``kind: ratio`` and ``kind: histogram``.

A ratio SLI names two counters with PromQL series selectors; a histogram SLI names a
histogram family, a threshold and optional matchers. Each selector is parsed here, so
a typo is reported with the line of its field instead of as a PromQL error from
Prometheus; a histogram threshold is checked against the histogram's buckets when they
are known (declared in ``buckets``, or ouro-obs's own metrics' defaults).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any

from ouro_obs.contract import DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS, MetricNames
from ouro_obs.slo import promql
from ouro_obs.slo.promql import Matcher, decimal_text
from ouro_obs.slo.promql_selector import (
    METRIC_NAME_RE,
    SelectorError,
    SeriesSelector,
    parse_matchers,
    parse_selector,
)
from ouro_obs.slo.promtool_labels import escaping_labels, satisfying_labels
from ouro_obs.slo.spec.checker import Checker, describe
from ouro_obs.slo.spec.errors import FieldPath
from ouro_obs.slo.spec.model import SLI, HistogramSLI, RatioSLI, SLOSpec

__all__ = [
    "HISTOGRAM_FIELDS",
    "RATIO_FIELDS",
    "bucket_hint",
    "check_histogram",
    "check_ratio",
    "check_scoping_labels",
    "own_buckets",
]

RATIO_FIELDS = ("kind", "errors", "good", "total")
HISTOGRAM_FIELDS = ("kind", "metric", "threshold", "selector", "buckets")
#: The generator sets ``le`` (the threshold's bucket) on the histogram's series itself.
_HISTOGRAM_RESERVED = ("le", "__name__")
_HISTOGRAM_SUFFIXES = ("_count", "_sum")

_EXAMPLE_RATIO = (
    "e.g. 'errors: queue_jobs_failed_total{queue=\"mail\"}' and "
    "'total: queue_jobs_total{queue=\"mail\"}'"
)


def own_buckets(metric: str) -> tuple[Decimal, ...]:
    """The default buckets when ``metric`` is one of ouro-obs's histograms, else ``()``.

    The metric may carry a ``metrics_namespace`` prefix (``shop_http_request_duration_seconds``).
    """
    names = MetricNames()
    defaults = {
        names.request_duration: DEFAULT_DURATION_BUCKETS,
        names.request_size: DEFAULT_SIZE_BUCKETS,
        names.response_size: DEFAULT_SIZE_BUCKETS,
    }
    for base, buckets in defaults.items():
        if metric == base or metric.endswith(f"_{base}"):
            return tuple(Decimal(repr(bucket)) for bucket in buckets)
    return ()


def bucket_hint(threshold: Decimal, boundaries: Sequence[Decimal]) -> str:
    """Which boundaries to use instead of ``threshold``: the nearest below and above."""
    below = [decimal_text(b) for b in boundaries if b < threshold]
    above = [decimal_text(b) for b in boundaries if b > threshold]
    if below and above:
        return f"use {below[-1]} or {above[0]} (the nearest boundaries below and above)"
    if above:
        return f"use {above[0]} (the smallest boundary)"
    return f"use {below[-1]} (the largest boundary)"


def _selector(checker: Checker, path: FieldPath, value: Any) -> SeriesSelector | None:
    text = checker.string(path, value)
    if text is None:
        return None
    try:
        selector = parse_selector(text)
    except SelectorError as error:
        checker.error(path, f"is not a series selector: {error}")
        return None
    if not _satisfiable(checker, path, selector.matchers):
        return None
    return selector


def _satisfiable(checker: Checker, path: FieldPath, matchers: Sequence[Matcher]) -> bool:
    """Some series can satisfy ``matchers`` (the generated tests make one up)."""
    return checker.check(
        satisfying_labels(matchers) is not None,
        path,
        f"no series can match {promql.selector(matchers)} (its matchers on one label "
        "contradict each other, or a regex accepts no value ouro-obs can make up for the "
        "generated tests); write matchers that some label value satisfies",
    )


def check_ratio(checker: Checker, path: FieldPath, sli_map: dict[str, Any]) -> RatioSLI | None:
    """``errors`` or ``good`` over ``total``: two counters, as PromQL series selectors."""
    parts = [part for part in ("errors", "good") if part in sli_map]
    if len(parts) != 1:
        message = (
            "has both errors and good; keep one of them"
            if parts
            else f"needs errors (bad events) or good (good events) beside total; {_EXAMPLE_RATIO}"
        )
        checker.error((*path, parts[-1] if parts else "errors"), message)
    if "total" not in sli_map:
        checker.error((*path, "total"), f"required: the counter of all events; {_EXAMPLE_RATIO}")
    total = _selector(checker, (*path, "total"), sli_map["total"]) if "total" in sli_map else None
    counted = {part: _selector(checker, (*path, part), sli_map[part]) for part in parts}
    if total is None or len(parts) != 1 or counted[parts[0]] is None:
        return None
    part, events = parts[0], counted[parts[0]]
    assert events is not None
    if events.metric == total.metric and escaping_labels(total.matchers, events.matchers) is None:
        checker.error(
            (*path, part),
            f"{events} selects every series of total ({total}); add the matcher that tells "
            f"{'bad' if part == 'errors' else 'good'} events apart, e.g. a status or result label",
        )
        return None
    if part == "errors":
        return RatioSLI(total=total, errors=events)
    return RatioSLI(total=total, good=events)


def _histogram_metric(checker: Checker, path: FieldPath, value: Any) -> str | None:
    hint = "is not a metric name; name the histogram, e.g. 'grpc_server_handling_seconds'"
    metric = checker.string(path, value, METRIC_NAME_RE, hint)
    if metric is None:
        return None
    if metric.endswith(_HISTOGRAM_SUFFIXES):
        family = metric.rsplit("_", 1)[0]
        checker.error(
            path, f"{metric!r} is one series of the histogram; name the family, {family!r}"
        )
        return None
    return metric.removesuffix("_bucket")


def _buckets(checker: Checker, path: FieldPath, value: Any) -> tuple[Decimal, ...] | None:
    if not isinstance(value, list) or not value:
        checker.error(
            path,
            f"must be a non-empty list of the histogram's bucket boundaries, got "
            f"{describe(value)}; e.g. [0.1, 0.25, 0.5, 1]",
        )
        return None
    found: list[Decimal] = []
    for index, item in enumerate(value):
        number = checker.number((*path, index), item, "0.25")
        if number is None:
            return None
        if found and number <= found[-1]:
            checker.error((*path, index), f"{number} is not above {found[-1]}; list them ascending")
            return None
        found.append(number)
    return tuple(found)


def _threshold(
    checker: Checker, path: FieldPath, value: Any, metric: str, buckets: Sequence[Decimal]
) -> Decimal | None:
    threshold = checker.number(path, value, "0.25 (an le boundary of the histogram)")
    if threshold is None:
        return None
    if threshold <= 0:
        checker.error(path, f"{threshold} is not above 0; use one of the histogram's boundaries")
        return None
    if not buckets or threshold in buckets:
        return next((b for b in buckets if b == threshold), threshold)
    checker.error(
        path,
        f"{threshold} is not a bucket boundary of {metric}; {bucket_hint(threshold, buckets)}",
    )
    return None


def _histogram_matchers(
    checker: Checker, path: FieldPath, value: Any
) -> tuple[Matcher, ...] | None:
    text = checker.string(path, value)
    if text is None:
        return None
    try:
        matchers = parse_matchers(text)
    except SelectorError as error:
        checker.error(path, f"is not a list of label matchers: {error}")
        return None
    if not _satisfiable(checker, path, matchers):
        return None
    for matcher in matchers:
        if matcher.label in _HISTOGRAM_RESERVED:
            checker.error(
                path,
                f"matches {matcher.label}, which the generator sets from threshold; remove it",
            )
            return None
    return matchers


def check_histogram(
    checker: Checker, path: FieldPath, sli_map: dict[str, Any]
) -> HistogramSLI | None:
    """Any histogram: its family name, a threshold on its buckets, optional matchers."""
    metric = (
        _histogram_metric(checker, (*path, "metric"), sli_map["metric"])
        if "metric" in sli_map
        else None
    )
    buckets: tuple[Decimal, ...] | None = ()
    if "buckets" in sli_map:
        buckets = _buckets(checker, (*path, "buckets"), sli_map["buckets"])
    elif metric is not None:
        buckets = own_buckets(metric)
    matchers: tuple[Matcher, ...] | None = ()
    if sli_map.get("selector") is not None:
        matchers = _histogram_matchers(checker, (*path, "selector"), sli_map["selector"])
    if metric is None or buckets is None or "threshold" not in sli_map:
        return None
    threshold = _threshold(checker, (*path, "threshold"), sli_map["threshold"], metric, buckets)
    if threshold is None or matchers is None:
        return None
    return HistogramSLI(metric, threshold, matchers, buckets)


def _selectors(sli: SLI) -> list[tuple[str, frozenset[str]]]:
    if isinstance(sli, RatioSLI):
        own = [("total", sli.total), ("errors", sli.errors), ("good", sli.good)]
        return [(name, selector.labels()) for name, selector in own if selector is not None]
    if isinstance(sli, HistogramSLI):
        return [("selector", frozenset(matcher.label for matcher in sli.matchers))]
    return []


def check_scoping_labels(
    checker: Checker, slos: Sequence[SLOSpec], environment_labels: Collection[str]
) -> None:
    """No SLI selector matches a label an environment's selector sets.

    The environment's matcher would give way to the SLI's on that label, and the
    environment's SLO would count another environment's events.
    """
    for index, slo in enumerate(slos):
        for field, labels in _selectors(slo.sli):
            for label in sorted(labels & set(environment_labels)):
                checker.error(
                    ("slos", index, "sli", field),
                    f"matches {label}, which the environments' selectors set; remove the "
                    "matcher, each environment adds its own",
                )
