"""OpenSLO v1 ``SLO`` documents (with a ratio SLI) -> an ouro-obs spec document.

A loader, not a second validator: it maps each OpenSLO field onto the ouro-obs field it
means, remembers the OpenSLO line and path of each one, and hands the result to
:func:`ouro_obs.slo.spec.validate.build_spec`, so an imported file gets the same checks
and messages as a native one, naming the OpenSLO field (``spec.objectives[0]``).
What OpenSLO cannot say (the runbook, Grafana's URL, the namespace, an SLO's grouping)
comes from ``ouro-obs.dev/...`` annotations on the SLO.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from ouro_obs.contract import MetricNames
from ouro_obs.slo import promql
from ouro_obs.slo.promql import Matcher
from ouro_obs.slo.promql_selector import SelectorError, parse_selector
from ouro_obs.slo.spec.errors import FieldPath, SpecError, SpecIssue, format_path
from ouro_obs.slo.spec.model import API_VERSION, OPENSLO_API_VERSION
from ouro_obs.slo.spec.yaml_lines import Document, nearest_line

__all__ = ["OPENSLO_ANNOTATIONS", "OPENSLO_SLO_ANNOTATIONS", "from_openslo"]

#: Where ouro-obs settings that OpenSLO has no field for live on an imported SLO.
OPENSLO_ANNOTATIONS = {
    "ouro-obs.dev/runbook-base-url": "runbook_base_url",
    "ouro-obs.dev/grafana-url": "grafana_url",
    "ouro-obs.dev/namespace": "namespace",
}
#: Per-SLO settings OpenSLO has no field for: annotation -> ouro-obs field of the SLO.
#: Annotation values are strings: ``group-by`` is a comma-separated list of labels.
OPENSLO_SLO_ANNOTATIONS = {
    "ouro-obs.dev/group-by": "group_by",
    "ouro-obs.dev/max-groups": "max_groups",
}
#: ouro-obs field of an SLO -> where an OpenSLO SLO document says it.
_SLO_FIELDS: Mapping[str, FieldPath] = {
    "name": ("metadata", "name"),
    "objective": ("spec", "objectives", 0),
    "window": ("spec", "timeWindow", 0, "duration"),
    "sli": ("spec", "indicator"),
}
#: The middleware's metric names without a namespace: imported queries must end with them.
_METRICS = MetricNames()


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _line(lines: Mapping[FieldPath, int], path: FieldPath) -> int:
    return nearest_line(lines, path) or 1


class _OpenSLOError(Exception):
    def __init__(self, path: FieldPath, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


# ---------------------------------------------------------------- the SLI's queries


def _matchers(query: str, path: FieldPath) -> tuple[str, list[Matcher]]:
    """``metric{a="b",...}`` -> (metric, matchers): the only queries mapped."""
    try:
        selector = parse_selector(query)
    except SelectorError as error:
        raise _OpenSLOError(
            path,
            f"{query.strip()!r} is not a plain series selector ({error}); ouro-obs maps "
            "queries like 'http_requests_total{job=\"shop\"}' (it adds rate() itself)",
        ) from None
    return selector.metric, list(selector.matchers)


def _alternatives(regex: str) -> list[str]:
    """``/a|/b\\{id\\}`` -> ``["/a", "/b{id}"]``: a regex matcher of literal alternatives."""
    return [re.sub(r"\\(.)", r"\1", part) for part in re.split(r"(?<!\\)\|", regex)]


#: Where a metric source's query sits below it.
_QUERY_PATH: FieldPath = ("metricSource", "spec", "query")


def _query_text(source: Any, path: FieldPath) -> str:
    metric_source = source.get("metricSource") if isinstance(source, dict) else None
    spec = metric_source.get("spec") if isinstance(metric_source, dict) else None
    kind = metric_source.get("type") if isinstance(metric_source, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("query"), str):
        raise _OpenSLOError(path, "needs metricSource.spec.query with a Prometheus selector")
    if str(kind).lower() != "prometheus":
        raise _OpenSLOError(
            (*path, "metricSource", "type"), f"{kind!r} is not supported; use Prometheus"
        )
    query: str = spec["query"]
    return query


def _query(source: Any, path: FieldPath) -> tuple[str, list[Matcher]]:
    return _matchers(_query_text(source, path), path)


def _availability(
    total_metric: str, metric: str, part: str, extra: Sequence[Matcher], path: FieldPath
) -> tuple[dict[str, Any], str] | None:
    if not (total_metric.endswith(_METRICS.requests_total) and metric == total_metric):
        return None
    operator = "!~" if part == "good" else "=~"
    if len(extra) != 1 or extra[0][:2] != ("status", operator):
        raise _OpenSLOError(
            (*path, part),
            f'must be the total selector plus status{operator}"<regex>" '
            f'(e.g. status{operator}"5..")',
        )
    sli = {"kind": "availability", "error_status_regex": extra[0].value}
    return sli, total_metric.removesuffix(_METRICS.requests_total)


def _latency(
    total_metric: str, metric: str, part: str, extra: Sequence[Matcher], path: FieldPath
) -> tuple[dict[str, Any], str] | None:
    count = f"{_METRICS.request_duration}_count"
    if not (
        part == "good"
        and total_metric.endswith(count)
        and metric == total_metric.removesuffix("_count") + "_bucket"
        and len(extra) == 1
        and extra[0][:2] == ("le", "=")
    ):
        return None
    try:
        threshold = Decimal(extra[0].value)
    except InvalidOperation:
        raise _OpenSLOError((*path, part), f"le={extra[0].value!r} is not a number") from None
    return {"kind": "latency", "threshold_seconds": threshold}, total_metric.removesuffix(count)


def _selector_fields(
    sli: dict[str, Any], total: Sequence[Matcher], path: FieldPath
) -> dict[str, str]:
    """Route and method matchers become SLI filters; the others, the service selector."""
    selector: dict[str, str] = {}
    for label, operator, value in total:
        if label in {"route", "method"}:
            sli[f"{label}s"] = [value] if operator == "=" else _alternatives(value)
            if operator not in {"=", "=~"}:
                raise _OpenSLOError(
                    (*path, "total"), f"{label}{operator} cannot be mapped; use = or =~"
                )
        elif operator == "=":
            selector[label] = value
        else:
            raise _OpenSLOError((*path, "total"), f"{label}{operator} cannot be mapped; use =")
    return selector


def _sli_from_ratio(ratio: Any, path: FieldPath) -> dict[str, Any]:
    """An ouro-obs SLI from an OpenSLO ``ratioMetric`` over the middleware's metrics."""
    if not isinstance(ratio, dict) or "total" not in ratio:
        raise _OpenSLOError(path, "needs a ratioMetric with total and good or bad")
    if ratio.get("counter") is False:
        raise _OpenSLOError((*path, "counter"), "must be true: the metrics are counters")
    part = "good" if "good" in ratio else "bad"
    if part not in ratio:
        raise _OpenSLOError(path, "needs good or bad beside total")
    total_metric, total = _query(ratio["total"], (*path, "total"))
    metric, matchers = _query(ratio[part], (*path, part))
    extra = [m for m in matchers if m not in total]
    mapped = _availability(total_metric, metric, part, extra, path) or _latency(
        total_metric, metric, part, extra, path
    )
    if mapped is None:
        return _any_ratio(ratio, part, path)
    sli, namespace = mapped
    sli["_selector"] = _selector_fields(sli, total, path)
    sli["_namespace"] = namespace.removesuffix("_")
    return sli


def _any_ratio(ratio: dict[str, Any], part: str, path: FieldPath) -> dict[str, Any]:
    """A ``kind: ratio`` SLI over any counters: the queries as its selectors."""
    field = "errors" if part == "bad" else "good"
    return {
        "kind": "ratio",
        field: _query_text(ratio[part], (*path, part)),
        "total": _query_text(ratio["total"], (*path, "total")),
        "_paths": {field: (*path, part, *_QUERY_PATH), "total": (*path, "total", *_QUERY_PATH)},
    }


def _sli_from_threshold(
    threshold: Any, objective: Mapping[str, Any], path: FieldPath
) -> dict[str, Any]:
    """A ``kind: histogram`` SLI from a ``thresholdMetric`` over a histogram's buckets.

    The objective's ``op: lte`` and ``value`` are the threshold: a bucket counts the
    observations at or under its boundary, which is what ``lte`` asks of each one.
    """
    query_path = (*path, *_QUERY_PATH)
    metric, matchers = _query(threshold, path)
    if not metric.endswith("_bucket") or any(m.label == "le" for m in matchers):
        raise _OpenSLOError(
            query_path,
            f"{metric} is not a histogram's buckets; ouro-obs maps a thresholdMetric over "
            "'<histogram>_bucket{...}' without le (the objective's value is the threshold)",
        )
    objective_path: FieldPath = ("spec", "objectives", 0)
    if objective.get("op") != "lte":
        raise _OpenSLOError(
            (*objective_path, "op"),
            f"{objective.get('op')!r} cannot be mapped; use lte: a histogram bucket counts "
            "the observations at or under its boundary",
        )
    if "value" not in objective:
        raise _OpenSLOError(objective_path, "needs the threshold as value, e.g. 'value: 0.25'")
    sli: dict[str, Any] = {
        "kind": "histogram",
        "metric": metric,
        "threshold": objective["value"],
        "_paths": {"metric": query_path, "threshold": (*objective_path, "value")},
    }
    if matchers:
        sli["selector"] = promql.selector(matchers)
        sli["_paths"]["selector"] = query_path
    return sli


# ---------------------------------------------------------------- one SLO document


def _window(spec: dict[str, Any]) -> str:
    windows = spec.get("timeWindow")
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        raise _OpenSLOError(("spec", "timeWindow"), "needs exactly one rolling window, e.g. 30d")
    window = windows[0]
    if window.get("isRolling") is not True:
        raise _OpenSLOError(
            ("spec", "timeWindow", 0, "isRolling"),
            "must be true: calendar windows are not supported",
        )
    duration = str(window.get("duration", ""))
    weeks = re.fullmatch(r"([1-9][0-9]*)w", duration)
    return f"{int(weeks.group(1)) * 7}d" if weeks else duration


def _objective(spec: dict[str, Any]) -> Any:
    objectives = spec.get("objectives")
    if (
        not isinstance(objectives, list)
        or len(objectives) != 1
        or not isinstance(objectives[0], dict)
    ):
        raise _OpenSLOError(("spec", "objectives"), "needs exactly one objective with a target")
    objective = objectives[0]
    if "targetPercent" in objective:
        return objective["targetPercent"]
    target = objective.get("target")
    if isinstance(target, int | Decimal) and not isinstance(target, bool):
        return (Decimal(target) * 100).normalize()
    raise _OpenSLOError(("spec", "objectives", 0, "target"), "needs a target like 0.999")


def _indicator(spec: dict[str, Any], indicators: Mapping[str, Any]) -> tuple[Any, FieldPath]:
    if "indicator" in spec:
        indicator = spec["indicator"]
        inline = indicator.get("spec") if isinstance(indicator, dict) else None
        return inline, ("spec", "indicator", "spec")
    name = spec.get("indicatorRef")
    if not isinstance(name, str) or name not in indicators:
        raise _OpenSLOError(
            ("spec", "indicatorRef"), f"{name!r} names no SLI document in this file"
        )
    return indicators[name], ("spec",)


def _slo(document: Any, indicators: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if not isinstance(document, dict) or not isinstance(document.get("spec"), dict):
        raise _OpenSLOError((), "an OpenSLO SLO needs metadata and spec")
    metadata = _dict(document.get("metadata"))
    spec = document["spec"]
    if spec.get("budgetingMethod", "Occurrences") != "Occurrences":
        raise _OpenSLOError(("spec", "budgetingMethod"), "only Occurrences is supported")
    indicator, indicator_path = _indicator(spec, indicators)
    if isinstance(indicator, dict) and "thresholdMetric" in indicator:
        objectives = spec.get("objectives")
        first = objectives[0] if isinstance(objectives, list) and objectives else {}
        sli = _sli_from_threshold(
            indicator["thresholdMetric"], _dict(first), (*indicator_path, "thresholdMetric")
        )
    else:
        ratio = indicator.get("ratioMetric") if isinstance(indicator, dict) else None
        sli = _sli_from_ratio(ratio, (*indicator_path, "ratioMetric"))
    slo = {
        "name": metadata.get("name"),
        "objective": _objective(spec),
        "window": _window(spec),
        "sli": sli,
    }
    if isinstance(spec.get("description"), str):
        slo["description"] = spec["description"]
    return slo, str(spec.get("service", ""))


# ---------------------------------------------------------------- the file


class _Native:
    """The ouro-obs document being built, with the OpenSLO line and path of each field."""

    def __init__(self) -> None:
        self.value: dict[str, Any] = {"apiVersion": API_VERSION, "slos": []}
        self.lines: dict[FieldPath, int] = {(): 1}
        self.aliases: dict[FieldPath, str] = {}
        self.selectors: list[dict[str, str]] = []
        self.namespaces: list[str] = []

    def add(self, source: str, doc: Document, indicators: Mapping[str, Any]) -> None:
        try:
            slo, service = _slo(doc.value, indicators)
        except _OpenSLOError as error:
            issue = SpecIssue(format_path(error.path), error.message, _line(doc.lines, error.path))
            raise SpecError(source, [issue]) from None
        slo_path: FieldPath = ("slos", len(self.value["slos"]))
        # Only the SLIs on the middleware's metrics say the service's selector.
        if "_selector" in slo["sli"]:
            self.selectors.append(slo["sli"].pop("_selector"))
            self.namespaces.append(slo["sli"].pop("_namespace"))
        for field_name, openslo_path in slo["sli"].pop("_paths", {}).items():
            self.lines[(*slo_path, "sli", field_name)] = _line(doc.lines, openslo_path)
            self.aliases[(*slo_path, "sli", field_name)] = format_path(openslo_path)
        self.value["slos"].append(slo)
        self.value.setdefault("service", service)
        self.lines[("service",)] = _line(doc.lines, ("spec", "service"))
        for field_name, openslo_path in _SLO_FIELDS.items():
            self.lines[(*slo_path, field_name)] = _line(doc.lines, openslo_path)
            self.aliases[(*slo_path, field_name)] = format_path(openslo_path)
        self.lines[slo_path] = doc.lines.get((), 1)
        self._slo_annotations(doc, slo, slo_path)
        self._metadata(doc)

    def _slo_annotations(self, doc: Document, slo: dict[str, Any], slo_path: FieldPath) -> None:
        """The SLO's ``ouro-obs.dev/group-by`` and ``max-groups``, as its fields."""
        annotations = _dict(_dict(doc.value.get("metadata")).get("annotations"))
        for key, target in OPENSLO_SLO_ANNOTATIONS.items():
            # Named so even where absent: a hint to add one names the annotation.
            self.aliases[(*slo_path, target)] = f"metadata.annotations.{key}"
            if key not in annotations:
                continue
            value = annotations[key]
            if target == "group_by" and isinstance(value, str):
                value = [label.strip() for label in value.split(",")]
            elif target == "max_groups" and isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            slo[target] = value
            self.lines[(*slo_path, target)] = _line(doc.lines, ("metadata", "annotations", key))

    def _metadata(self, doc: Document) -> None:
        metadata = _dict(doc.value.get("metadata"))
        annotations = _dict(metadata.get("annotations"))
        for key, target in OPENSLO_ANNOTATIONS.items():
            if key in annotations:
                self.value.setdefault(target, annotations[key])
                self.lines[(target,)] = _line(doc.lines, ("metadata", "annotations", key))
                self.aliases[(target,)] = f"metadata.annotations.{key}"
        for key, label in _dict(metadata.get("labels")).items():
            text = label[0] if isinstance(label, list) and len(label) == 1 else label
            self.value.setdefault("labels", {})[key] = text

    def document(self, source: str, first: Document) -> Document:
        """The finished document; :class:`SpecError` where the SLOs cannot share one spec."""
        if not self.value["slos"]:
            raise SpecError(source, [SpecIssue("kind", "holds no OpenSLO SLO document", 1)])
        for found, name in ((self.selectors, "selector"), (self.namespaces, "metrics_namespace")):
            if any(item != found[0] for item in found):
                message = f"every SLO must select the same series ({name})"
                raise SpecError(source, [SpecIssue("", message, 1)])
        selector = self.selectors[0] if self.selectors else {}
        if selector and selector != {"job": self.value.get("service")}:
            self.value["selector"] = selector
        if self.namespaces and self.namespaces[0]:
            self.value["metrics_namespace"] = self.namespaces[0]
        if "runbook_base_url" not in self.value:
            issue = SpecIssue(
                "metadata.annotations",
                "add 'ouro-obs.dev/runbook-base-url: https://...' to the SLO: "
                "every generated alert links to its runbook",
                _line(first.lines, ("metadata",)),
            )
            raise SpecError(source, [issue])
        self.aliases[("service",)] = "spec.service"
        return Document(self.value, self.lines, self.aliases)


def from_openslo(source: str, documents: Sequence[Document]) -> Document:
    """An ouro-obs spec document from OpenSLO v1 ``SLO`` (and ``SLI``) documents."""
    indicators = {
        doc.value.get("metadata", {}).get("name"): doc.value.get("spec")
        for doc in documents
        if isinstance(doc.value, dict) and doc.value.get("kind") == "SLI"
    }
    native = _Native()
    for doc in documents:
        if not isinstance(doc.value, dict) or doc.value.get("kind") != "SLO":
            continue
        if doc.value.get("apiVersion") != OPENSLO_API_VERSION:
            issue = SpecIssue("apiVersion", f"use {OPENSLO_API_VERSION}", doc.lines.get(()))
            raise SpecError(source, [issue])
        native.add(source, doc, indicators)
    return native.document(source, documents[0])
