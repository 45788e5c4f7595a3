"""The checks of the alert tuning and routing fields (see :mod:`.validate`).

``alerting`` at the top (service alerts' switches, annotations on every alert), ``alerting``
in each SLO (page and ticket switches, labels, annotations) and ``alertmanager`` (receivers
and timers of the generated route tree). Each check records its problems on the
:class:`Checker` and returns the typed value, or the default when the field is absent.
"""

from __future__ import annotations

import re
from typing import Any

from ouro_obs.slo.conventions import SERVICE_LABEL, SLO_LABEL, URGENCY_LABEL
from ouro_obs.slo.spec.checker import LABEL_NAME_RE, Checker, describe
from ouro_obs.slo.spec.errors import FieldPath
from ouro_obs.slo.spec.model import (
    AlertmanagerRoute,
    AlertmanagerSpec,
    ServiceAlerting,
    SLOAlerting,
)

__all__ = [
    "ALERTMANAGER_DURATION_RE",
    "ALERTMANAGER_FIELDS",
    "ANNOTATION_TEMPLATE_RE",
    "RECEIVER_NAME_RE",
    "ROUTE_FIELDS",
    "SERVICE_ALERTING_FIELDS",
    "SLO_ALERTING_FIELDS",
    "alertmanager_schema",
    "check_alertmanager",
    "check_service_alerting",
    "check_slo_alerting",
    "service_alerting_schema",
    "slo_alerting_schema",
]

SERVICE_ALERTING_FIELDS = ("target_down", "metrics_absent", "annotations")
SLO_ALERTING_FIELDS = ("page", "ticket", "labels", "annotations")
ALERTMANAGER_FIELDS = ("page", "ticket", "group_wait", "group_interval")
ROUTE_FIELDS = ("receiver", "webhook_url", "repeat_interval")

#: Alertmanager durations: ``30s``, ``5m``, ``1h30m``, ``1d``.
ALERTMANAGER_DURATION_RE = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")
RECEIVER_NAME_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
#: The only templates an extra annotation may hold (the promtool tests expand exactly these).
ANNOTATION_TEMPLATE_RE = re.compile(
    r"\{\{ (\$value|\$value \| humanizePercentage|\$labels\.\w+) \}\}"
)
_WEBHOOK_RE = re.compile(r"https?://[^\s/$.?#][^\s]*")
#: Labels the generator sets on every alert; ``alerting.labels`` may not override them.
_RESERVED_ALERT_LABELS = frozenset({SERVICE_LABEL, SLO_LABEL, URGENCY_LABEL, "alertname"})


def _switch(checker: Checker, path: FieldPath, value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, bool):
        checker.error(path, f"must be true or false (false: no such alert), got {describe(value)}")
        return True
    return value


def _fields(
    checker: Checker, path: FieldPath, value: Any, known: tuple[str, ...]
) -> dict[str, Any]:
    """The block's fields; empty when it is absent or not a mapping (that is recorded)."""
    if value is None:
        return {}
    return checker.mapping(path, value, known) or {}


def _template(checker: Checker, path: FieldPath, text: str) -> bool:
    rest = ANNOTATION_TEMPLATE_RE.sub("", text)
    return checker.check(
        "{{" not in rest and "}}" not in rest,
        path,
        "holds a template ouro-obs cannot test; use only {{ $value }}, "
        "{{ $value | humanizePercentage }} or {{ $labels.<name> }}",
    )


def _annotations(checker: Checker, path: FieldPath, value: Any) -> dict[str, str]:
    return checker.string_map(
        path,
        value,
        checker.label_name,
        lambda value_path, text: _template(checker, value_path, text),
    )


def check_service_alerting(checker: Checker, value: Any) -> ServiceAlerting:
    """Top-level ``alerting``: TargetDown and MetricsAbsent on or off, extra annotations."""
    path: FieldPath = ("alerting",)
    fields = _fields(checker, path, value, SERVICE_ALERTING_FIELDS)
    return ServiceAlerting(
        target_down=_switch(checker, (*path, "target_down"), fields.get("target_down")),
        metrics_absent=_switch(checker, (*path, "metrics_absent"), fields.get("metrics_absent")),
        annotations=_annotations(checker, (*path, "annotations"), fields.get("annotations")),
    )


def check_slo_alerting(checker: Checker, path: FieldPath, value: Any) -> SLOAlerting:
    """One SLO's ``alerting``: page and ticket on or off, extra labels and annotations."""
    fields = _fields(checker, path, value, SLO_ALERTING_FIELDS)
    labels = checker.string_map(
        (*path, "labels"),
        fields.get("labels"),
        lambda key_path, name: checker.label_name(key_path, name, _RESERVED_ALERT_LABELS),
    )
    return SLOAlerting(
        page=_switch(checker, (*path, "page"), fields.get("page")),
        ticket=_switch(checker, (*path, "ticket"), fields.get("ticket")),
        labels=labels,
        annotations=_annotations(checker, (*path, "annotations"), fields.get("annotations")),
    )


def _duration(checker: Checker, path: FieldPath, value: Any, default: str) -> str:
    if value is None:
        return default
    hint = "is not an Alertmanager duration; write it like 30s, 5m or 4h"
    text = checker.string(path, value, ALERTMANAGER_DURATION_RE, hint)
    if text is None:
        return default
    if not checker.check(
        any(digit != "0" for digit in re.sub(r"\D", "", text)), path, "must be longer than 0s"
    ):
        return default
    return text


def _route(checker: Checker, path: FieldPath, value: Any) -> AlertmanagerRoute:
    fields = _fields(checker, path, value, ROUTE_FIELDS)
    receiver: str | None = ""
    if fields.get("receiver") is not None:
        hint = "is not a receiver name; use letters, digits, '-', '_' or '.' (at most 63)"
        receiver = checker.string((*path, "receiver"), fields["receiver"], RECEIVER_NAME_RE, hint)
    webhook: str | None = ""
    if fields.get("webhook_url") is not None:
        hint = "is not an http(s) URL; write it like https://alerts.example.com/hook"
        webhook = checker.string((*path, "webhook_url"), fields["webhook_url"], _WEBHOOK_RE, hint)
    repeat = _duration(checker, (*path, "repeat_interval"), fields.get("repeat_interval"), "")
    return AlertmanagerRoute(receiver or "", webhook or "", repeat)


def check_alertmanager(checker: Checker, value: Any) -> AlertmanagerSpec:
    """``alertmanager``: the page and ticket receivers and the grouping timers."""
    path: FieldPath = ("alertmanager",)
    default = AlertmanagerSpec()
    fields = _fields(checker, path, value, ALERTMANAGER_FIELDS)
    page = _route(checker, (*path, "page"), fields.get("page"))
    ticket = _route(checker, (*path, "ticket"), fields.get("ticket"))
    if page.receiver and page.receiver == ticket.receiver:
        checker.error(
            (*path, "ticket", "receiver"),
            f"{ticket.receiver!r} is also the page receiver; send tickets somewhere else",
        )
    return AlertmanagerSpec(
        page=page,
        ticket=ticket,
        group_wait=_duration(
            checker, (*path, "group_wait"), fields.get("group_wait"), default.group_wait
        ),
        group_interval=_duration(
            checker, (*path, "group_interval"), fields.get("group_interval"), default.group_interval
        ),
    )


# ---------------------------------------------------------------- JSON Schema fragments

_SWITCH = {"type": "boolean", "default": True}
_NAME_MAP = {
    "type": "object",
    "propertyNames": {"pattern": f"^{LABEL_NAME_RE.pattern}$"},
    "additionalProperties": {"type": "string"},
}


def _closed(properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "description": description,
        "properties": properties,
    }


def service_alerting_schema() -> dict[str, Any]:
    """The JSON Schema of the top-level ``alerting``."""
    return _closed(
        {
            "target_down": {**_SWITCH, "description": "false: no TargetDown alert."},
            "metrics_absent": {**_SWITCH, "description": "false: no MetricsAbsent alert."},
            "annotations": {**_NAME_MAP, "description": "Annotations on every alert."},
        },
        "The service alerts' switches, and annotations added to every alert.",
    )


def slo_alerting_schema() -> dict[str, Any]:
    """The JSON Schema of an SLO's ``alerting``."""
    return _closed(
        {
            "page": {**_SWITCH, "description": "false: no page alert for this SLO."},
            "ticket": {**_SWITCH, "description": "false: no ticket alert for this SLO."},
            "labels": {**_NAME_MAP, "description": "Labels on this SLO's alerts."},
            "annotations": {**_NAME_MAP, "description": "Annotations on this SLO's alerts."},
        },
        "This SLO's page and ticket switches, extra labels and annotations.",
    )


def alertmanager_schema() -> dict[str, Any]:
    """The JSON Schema of ``alertmanager``."""
    duration = {"type": "string", "pattern": f"^{ALERTMANAGER_DURATION_RE.pattern}$"}
    route = _closed(
        {
            "receiver": {"type": "string", "pattern": f"^{RECEIVER_NAME_RE.pattern}$"},
            "webhook_url": {"type": "string", "pattern": "^https?://"},
            "repeat_interval": duration,
        },
        "Receiver (default <team>-page or <team>-ticket), webhook, repeat interval.",
    )
    return _closed(
        {
            "page": route,
            "ticket": route,
            "group_wait": {**duration, "default": AlertmanagerSpec().group_wait},
            "group_interval": {**duration, "default": AlertmanagerSpec().group_interval},
        },
        "The generated Alertmanager route tree: receivers and grouping timers.",
    )
