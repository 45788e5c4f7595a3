"""The checks of ``slos``: each SLO's name, objective, window and SLI (see :mod:`.validate`)."""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal
from typing import Any

from ouro_obs.contract import DEFAULT_DURATION_BUCKETS, OTHER_METHOD, STANDARD_METHODS
from ouro_obs.slo.conventions import alert_name_stem
from ouro_obs.slo.spec import model
from ouro_obs.slo.spec.checker import Checker, describe, slug
from ouro_obs.slo.spec.errors import FieldPath
from ouro_obs.slo.spec.grouping import check_grouping
from ouro_obs.slo.spec.model import SLI, AvailabilitySLI, LatencySLI, SLOSpec
from ouro_obs.slo.spec.validate_alerting import check_slo_alerting
from ouro_obs.slo.spec.validate_sli import (
    HISTOGRAM_FIELDS,
    RATIO_FIELDS,
    check_histogram,
    check_ratio,
)

__all__ = [
    "FASTEST_BURN_FACTOR",
    "METHOD_VALUES",
    "MIN_OBJECTIVE",
    "MIN_OBJECTIVE_HINT",
    "SLO_NAME_RE",
    "SLO_REQUIRED_HINTS",
    "WINDOW_RE",
    "check_slos",
    "duration_boundaries",
]

SLO_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
WINDOW_RE = re.compile(r"([1-9][0-9]*)d")
#: The ``method`` label values the middleware writes.
METHOD_VALUES = (*sorted(STANDARD_METHODS), OTHER_METHOD)
MAX_WINDOW_DAYS = 366
#: The fast page fires at 14.4 x the budget, which has to be an error ratio below 100 %.
FASTEST_BURN_FACTOR = Decimal("14.4")
MIN_OBJECTIVE = Decimal(100) - Decimal(100) / FASTEST_BURN_FACTOR
#: The lowest objective with two decimals that still leaves the fast page able to fire.
MIN_OBJECTIVE_HINT = MIN_OBJECTIVE.quantize(Decimal("0.01"), rounding=ROUND_CEILING)

_SLO_FIELDS = (
    "name",
    "description",
    "objective",
    "window",
    "sli",
    "alerting",
    "group_by",
    "max_groups",
)
_AVAILABILITY_FIELDS = ("kind", "error_status_regex", "routes", "methods")
_LATENCY_FIELDS = ("kind", "threshold_seconds", "routes", "methods")

SLO_REQUIRED_HINTS = {
    "name": "add a name, e.g. 'name: availability'",
    "objective": "add the target in percent, e.g. 'objective: 99.9'",
    "sli": "add 'sli: {kind: availability}' or 'sli: {kind: latency, threshold_seconds: 0.5}'",
    "kind": "add 'kind: availability', 'kind: latency', 'kind: ratio' or 'kind: histogram'",
    "threshold_seconds": "add a histogram bucket boundary in seconds, e.g. 'threshold_seconds: 0.5'",
    "metric": "add the histogram's name, e.g. 'metric: grpc_server_handling_seconds'",
    "threshold": "add a bucket boundary of the histogram, e.g. 'threshold: 0.25'",
}


def duration_boundaries() -> list[Decimal]:
    """The ``le`` boundaries of the request duration histogram, as exact decimals."""
    return [Decimal(repr(bucket)) for bucket in DEFAULT_DURATION_BUCKETS]


def _objective(checker: Checker, path: FieldPath, value: Any) -> Decimal | None:
    objective = checker.number(path, value, "99.9 (percent)")
    if objective is None:
        return None
    if objective >= 100 or objective <= 0:
        checker.error(
            path,
            f"{objective} is not a percentage below 100; write the target in percent, "
            "e.g. 99.9 (100 would leave no error budget)",
        )
        return None
    if objective < MIN_OBJECTIVE:
        budget = Decimal(100) - objective
        checker.error(
            path,
            f"{objective} leaves an error budget of {budget.normalize():f} %, and the fast-burn "
            f"page would need {(budget * FASTEST_BURN_FACTOR).normalize():f} % errors; "
            f"use an objective of at least {MIN_OBJECTIVE_HINT}",
        )
        return None
    ratio = objective / 100
    if Decimal(repr(float(ratio))) != ratio:
        checker.error(
            path,
            f"{objective} has more digits than a float64 holds, so Prometheus would record "
            f"{float(ratio) * 100!r}; write at most 15 significant digits",
        )
        return None
    return objective


def _window(checker: Checker, path: FieldPath, value: Any) -> int | None:
    if value is None:
        return model.DEFAULT_WINDOW_DAYS
    if isinstance(value, int) and not isinstance(value, bool):
        checker.error(path, f"{value} has no unit; write a number of days like {value}d")
        return None
    text = checker.string(path, value)
    if text is None:
        return None
    match = WINDOW_RE.fullmatch(text.strip())
    if match is None:
        checker.error(path, f"{text!r} is not a whole number of days; write it like 30d, 28d or 7d")
        return None
    days = int(match.group(1))
    if days > MAX_WINDOW_DAYS:
        checker.error(path, f"{text!r} is longer than {MAX_WINDOW_DAYS}d; use a shorter window")
        return None
    return days


def _status_regex(checker: Checker, path: FieldPath, value: Any) -> str | None:
    if value is None:
        return model.DEFAULT_ERROR_STATUS_REGEX
    text = checker.string(path, value)
    if text is None:
        return None
    try:
        compiled = re.compile(text)
    except re.error as error:
        checker.error(path, f"{text!r} is not a valid regular expression ({error}); e.g. '5..'")
        return None
    if not any(compiled.fullmatch(str(code)) for code in range(100, 600)):
        checker.error(
            path, f"{text!r} matches no HTTP status code; use a pattern like '5..' or '5..|429'"
        )
        return None
    if compiled.fullmatch("200"):
        checker.error(path, f"{text!r} counts 200 as an error; use a pattern like '5..'")
        return None
    return text


def _routes(checker: Checker, path: FieldPath, value: Any) -> tuple[str, ...]:
    routes = []
    for item_path, route in checker.string_list(path, value):
        if not (route.startswith("/") or (route.startswith("<") and route.endswith(">"))):
            checker.error(
                item_path,
                f"{route!r} is not a route template; write it as the app declares it, "
                "e.g. '/items/{item_id}'",
            )
            continue
        routes.append(route)
    return checker.unique(path, routes)


def _methods(checker: Checker, path: FieldPath, value: Any) -> tuple[str, ...]:
    methods = []
    for item_path, method in checker.string_list(path, value):
        if method not in METHOD_VALUES:
            upper = method.upper()
            hint = (
                f"write {upper!r}"
                if upper in METHOD_VALUES
                else f"use one of {', '.join(METHOD_VALUES)}"
            )
            checker.error(item_path, f"{method!r} is not an HTTP method label; {hint}")
            continue
        methods.append(method)
    return checker.unique(path, methods)


def _threshold(checker: Checker, path: FieldPath, value: Any) -> Decimal | None:
    threshold = checker.number(path, value, "0.5 (seconds)")
    if threshold is None:
        return None
    boundaries = duration_boundaries()
    if threshold in boundaries:
        return boundaries[boundaries.index(threshold)]
    below = [b for b in boundaries if b < threshold]
    above = [b for b in boundaries if b > threshold]
    if below and above:
        hint = f"use {below[-1]} or {above[0]} (the nearest boundaries below and above)"
    elif above:
        hint = f"use {above[0]} (the smallest boundary)"
    else:
        hint = f"use {below[-1]} (the largest boundary)"
    checker.error(
        path,
        f"{threshold} is not a bucket boundary of http_request_duration_seconds; {hint}",
    )
    return None


def _filters(
    checker: Checker, path: FieldPath, sli_map: dict[str, Any]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    routes = _routes(checker, (*path, "routes"), sli_map.get("routes"))
    return routes, _methods(checker, (*path, "methods"), sli_map.get("methods"))


def _availability(checker: Checker, path: FieldPath, value: Any) -> AvailabilitySLI | None:
    sli_map = checker.mapping(path, value, _AVAILABILITY_FIELDS)
    if sli_map is None:  # pragma: no cover - the caller passes a mapping
        return None
    regex = _status_regex(checker, (*path, "error_status_regex"), sli_map.get("error_status_regex"))
    routes, methods = _filters(checker, path, sli_map)
    return None if regex is None else AvailabilitySLI(regex, routes, methods)


def _latency(checker: Checker, path: FieldPath, value: Any) -> LatencySLI | None:
    sli_map = checker.mapping(path, value, _LATENCY_FIELDS, required=("threshold_seconds",))
    if sli_map is None:  # pragma: no cover - the caller passes a mapping
        return None
    threshold = (
        _threshold(checker, (*path, "threshold_seconds"), sli_map["threshold_seconds"])
        if "threshold_seconds" in sli_map
        else None
    )
    routes, methods = _filters(checker, path, sli_map)
    return None if threshold is None else LatencySLI(threshold, routes, methods)


def _sli(checker: Checker, path: FieldPath, value: Any) -> SLI | None:
    if not isinstance(value, dict):
        checker.error(
            path, f"must be a mapping, got {describe(value)}; {SLO_REQUIRED_HINTS['sli']}"
        )
        return None
    if "kind" not in value:
        checker.error((*path, "kind"), f"required; {SLO_REQUIRED_HINTS['kind']}")
        return None
    kind = value["kind"]
    if kind == "availability":
        return _availability(checker, path, value)
    if kind == "latency":
        return _latency(checker, path, value)
    if kind == "ratio":
        ratio_map = checker.mapping(path, value, RATIO_FIELDS)
        return None if ratio_map is None else check_ratio(checker, path, ratio_map)
    if kind == "histogram":
        histogram_map = checker.mapping(
            path, value, HISTOGRAM_FIELDS, required=("metric", "threshold")
        )
        return None if histogram_map is None else check_histogram(checker, path, histogram_map)
    checker.error(
        (*path, "kind"),
        f"{kind!r} is not an SLI kind; use availability, latency, ratio or histogram",
    )
    return None


def _slo(checker: Checker, path: FieldPath, value: Any) -> SLOSpec | None:
    slo_map = checker.mapping(path, value, _SLO_FIELDS, required=("name", "objective", "sli"))
    if slo_map is None:
        return None
    name = None
    if "name" in slo_map:
        name = checker.string(
            (*path, "name"),
            slo_map["name"],
            SLO_NAME_RE,
            "is not a valid SLO name; use lower-case letters, digits and '-' "
            f"(at most 63 characters), e.g. {slug(str(slo_map['name']))!r}",
        )
    objective = (
        _objective(checker, (*path, "objective"), slo_map["objective"])
        if "objective" in slo_map
        else None
    )
    window = _window(checker, (*path, "window"), slo_map.get("window"))
    description = ""
    if "description" in slo_map:
        description = checker.string((*path, "description"), slo_map["description"]) or ""
    sli = _sli(checker, (*path, "sli"), slo_map["sli"]) if "sli" in slo_map else None
    alerting = check_slo_alerting(checker, (*path, "alerting"), slo_map.get("alerting"))
    grouping = check_grouping(checker, path, slo_map)
    if name is None or objective is None or window is None or sli is None or grouping is None:
        return None
    group_by, max_groups = grouping
    return SLOSpec(name, objective, window, sli, description, alerting, group_by, max_groups)


def check_slos(checker: Checker, service: str | None, value: Any) -> tuple[SLOSpec, ...]:
    """The SLOs of ``service``; each must have its own name and its own alert names."""
    path: FieldPath = ("slos",)
    if not isinstance(value, list) or not value:
        checker.error(
            path,
            "must be a non-empty list of SLOs; add at least one, e.g. "
            "'- {name: availability, objective: 99.9, sli: {kind: availability}}'",
        )
        return ()
    slos: list[SLOSpec] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(value):
        slo = _slo(checker, (*path, index), item)
        if slo is None:
            continue
        stem = alert_name_stem(service or "", slo.name)
        if slo.name in first_index or stem in first_index:
            earlier = first_index.get(slo.name, first_index.get(stem))
            checker.error(
                (*path, index, "name"),
                f"{slo.name!r} clashes with slos[{earlier}] (same name or same alert names); "
                "give each SLO a distinct name",
            )
            continue
        first_index[slo.name] = first_index[stem] = index
        slos.append(slo)
    return tuple(slos)
