"""``group_by`` and ``max_groups`` of one SLO: the labels its SLI is computed by.

One aggregate SLI can hide one broken route behind many healthy ones. A grouped SLO
computes its ratios, burn rates, budget and alerts for each value of its ``group_by``
labels (``route``, or any label the series carry: ``static_labels`` and
``request_labels`` of the middleware included). ``max_groups`` caps how many label sets a
rule may produce: it becomes each rule group's ``limit``, and a ticket says when the
traffic holds more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ouro_obs.contract import METHOD_LABEL, ROUTE_LABEL, STATUS_LABEL
from ouro_obs.slo.spec.checker import LABEL_NAME_RE, Checker
from ouro_obs.slo.spec.errors import FieldPath
from ouro_obs.slo.spec.model import DEFAULT_MAX_GROUPS, ENVIRONMENT_LABEL

__all__ = ["MAX_GROUPS_LIMIT", "RESERVED_GROUP_LABELS", "check_grouping", "grouping_schema"]

#: Labels a group cannot be: what tells good from bad (status, le), what ouro-obs writes on
#: every rule (service, slo, env), and the scrape target (one group per pod is no SLO).
RESERVED_GROUP_LABELS = frozenset(
    {STATUS_LABEL, "le", "service", "slo", ENVIRONMENT_LABEL, "instance", "pod"}
)
#: The largest ``max_groups``: every group is a few dozen series per window.
MAX_GROUPS_LIMIT = 10_000


def _label(checker: Checker, path: FieldPath, label: str) -> str | None:
    if not LABEL_NAME_RE.fullmatch(label) or label.startswith("__"):
        checker.error(path, f"{label!r} is not a Prometheus label name; e.g. 'route'")
        return None
    if label in RESERVED_GROUP_LABELS:
        checker.error(
            path,
            f"{label!r} cannot be a group label (it tells good from bad, names the rule or "
            "the pod); group by route, method or a label of your own",
        )
        return None
    return label


def _one_value_filter(
    checker: Checker, path: FieldPath, labels: tuple[str, ...], sli: Mapping[str, Any]
) -> None:
    """A label the SLI filters to one value gives one group: refuse the pointless grouping."""
    for label, field in ((ROUTE_LABEL, "routes"), (METHOD_LABEL, "methods")):
        values = sli.get(field)
        if label in labels and isinstance(values, list) and len(values) == 1:
            checker.error(
                path,
                f"the SLI selects one {field[:-1]} only, so grouping by {label!r} gives one "
                f"group; list more {field} or drop {label!r} from group_by",
            )


def _max_groups(checker: Checker, path: FieldPath, value: Any) -> int | None:
    if value is None:
        return DEFAULT_MAX_GROUPS
    if isinstance(value, bool) or not isinstance(value, int):
        checker.error(path, f"must be a whole number of groups, e.g. {DEFAULT_MAX_GROUPS}")
        return None
    if not 1 <= value <= MAX_GROUPS_LIMIT:
        checker.error(path, f"{value} is not between 1 and {MAX_GROUPS_LIMIT}; e.g. 100")
        return None
    return value


def check_grouping(
    checker: Checker, path: FieldPath, slo: Mapping[str, Any]
) -> tuple[tuple[str, ...], int] | None:
    """``(group_by, max_groups)`` of the SLO mapping at ``path``; ``None`` when wrong."""
    group_path = (*path, "group_by")
    raw = slo.get("group_by")
    labels: tuple[str, ...] = ()
    if raw is not None:
        if not isinstance(raw, list) or not raw:
            checker.error(group_path, "must be a non-empty list of label names, e.g. [route]")
            return None
        items = checker.string_list(group_path, raw)
        found = [_label(checker, item_path, label) for item_path, label in items]
        if None in found or len(found) != len(raw):
            return None
        labels = checker.unique(group_path, [label for label in found if label is not None])
        sli = slo.get("sli")
        if isinstance(sli, dict):
            _one_value_filter(checker, group_path, labels, sli)
    if "max_groups" in slo and not labels:
        message = f"only applies to a grouped SLO; add {checker.shown(group_path)}"
        checker.error((*path, "max_groups"), message)
        return None
    max_groups = _max_groups(checker, (*path, "max_groups"), slo.get("max_groups"))
    if max_groups is None:
        return None
    return labels, max_groups


def grouping_schema() -> dict[str, Any]:
    """The JSON Schema of ``group_by`` and ``max_groups`` (properties of an SLO)."""
    return {
        "group_by": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {
                "type": "string",
                "pattern": f"^{LABEL_NAME_RE.pattern}$",
                "not": {"enum": sorted(RESERVED_GROUP_LABELS)},
            },
            "description": "Labels the SLI is computed by: burn rates, alerts and error "
            "budget per value, e.g. [route].",
        },
        "max_groups": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_GROUPS_LIMIT,
            "default": DEFAULT_MAX_GROUPS,
            "description": "The most label sets of group_by a rule may record (its rule "
            "group's limit); only with group_by.",
        },
    }
