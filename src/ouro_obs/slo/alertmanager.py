"""Spec -> the Alertmanager routing of its alerts, as data (pure functions).

One route tree, written two ways: a plain Alertmanager configuration (a complete file that
``amtool check-config`` accepts; its ``route.routes``, ``receivers`` and ``inhibit_rules``
are the fragment to merge into a shared configuration) and a
``monitoring.coreos.com/v1alpha1`` ``AlertmanagerConfig`` for the Prometheus Operator.

The tree: the service's alerts (``service=<service>``), grouped by alert name and SLO, then
one route per team the alerts carry (``team`` label; none when no alert has one), then
``urgency=page`` and ``urgency=ticket`` to their receivers. An inhibit rule mutes a
ticket while a page of the same service and SLO fires.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ouro_obs.slo import conventions
from ouro_obs.slo.manifests import manifest_metadata
from ouro_obs.slo.rules import alert_rules
from ouro_obs.slo.spec import ServiceSpec
from ouro_obs.slo.spec.model import AlertmanagerRoute
from ouro_obs.slo.windows import Severity

__all__ = [
    "DEFAULT_REPEAT_INTERVALS",
    "GROUP_BY",
    "INHIBIT_EQUAL",
    "TEAM_LABEL",
    "UNROUTED_RECEIVER",
    "alertmanager_config",
    "alertmanager_config_object",
]

TEAM_LABEL = "team"
#: The root's receiver in the plain file and the object: no integration, nothing is sent.
UNROUTED_RECEIVER = "unrouted"
#: One notification per alert and SLO: a page of one SLO never hides another's.
GROUP_BY = ("alertname", conventions.SERVICE_LABEL, conventions.SLO_LABEL)
#: A page mutes the ticket of the same service and SLO (and MetricsAbsent mutes TargetDown:
#: neither has an ``slo`` label).
INHIBIT_EQUAL = (conventions.SERVICE_LABEL, conventions.SLO_LABEL)
DEFAULT_REPEAT_INTERVALS: dict[Severity, str] = {"page": "4h", "ticket": "1d"}
_URGENCIES: tuple[Severity, ...] = ("page", "ticket")

_Matchers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Route:
    matchers: _Matchers
    receiver: str = ""
    repeat_interval: str = ""
    routes: tuple[_Route, ...] = ()


@dataclass(frozen=True, slots=True)
class _Receiver:
    name: str
    webhook_url: str = ""


@dataclass(frozen=True, slots=True)
class _Tree:
    service_route: _Route
    receivers: tuple[_Receiver, ...]
    inhibit_source: _Matchers
    inhibit_target: _Matchers


# ---------------------------------------------------------------- the tree


def _owners(spec: ServiceSpec) -> list[str | None]:
    """The ``team`` values the alerts carry, in order; ``None`` for alerts without one."""
    owners: list[str | None] = []
    for rule in alert_rules(spec):
        team = rule.labels.get(TEAM_LABEL)
        if team not in owners:
            owners.append(team)
    return owners


def _choice(spec: ServiceSpec, urgency: Severity) -> AlertmanagerRoute:
    return spec.alertmanager.page if urgency == "page" else spec.alertmanager.ticket


def _receiver(spec: ServiceSpec, owner: str | None, urgency: Severity) -> _Receiver:
    choice = _choice(spec, urgency)
    name = choice.receiver or conventions.alertmanager_receiver(owner or spec.service, urgency)
    return _Receiver(name, choice.webhook_url)


def _urgency_route(spec: ServiceSpec, owner: str | None, urgency: Severity) -> _Route:
    return _Route(
        matchers=((conventions.URGENCY_LABEL, urgency),),
        receiver=_receiver(spec, owner, urgency).name,
        repeat_interval=_choice(spec, urgency).repeat_interval or DEFAULT_REPEAT_INTERVALS[urgency],
    )


def _urgency_routes(spec: ServiceSpec, owner: str | None) -> tuple[_Route, ...]:
    return tuple(_urgency_route(spec, owner, urgency) for urgency in _URGENCIES)


def _owner_routes(spec: ServiceSpec, owners: Sequence[str | None]) -> tuple[_Route, ...]:
    """A route per team, then (for alerts without a team) page and ticket directly."""
    teams = [
        _Route(((TEAM_LABEL, owner),), routes=_urgency_routes(spec, owner))
        for owner in owners
        if owner is not None
    ]
    rest = _urgency_routes(spec, None) if None in owners else ()
    return (*teams, *rest)


def _tree(spec: ServiceSpec) -> _Tree:
    owners = _owners(spec)
    receivers: dict[str, _Receiver] = {}
    for owner in owners:
        for urgency in _URGENCIES:
            receiver = _receiver(spec, owner, urgency)
            receivers.setdefault(receiver.name, receiver)
    service: _Matchers = ((conventions.SERVICE_LABEL, spec.service),)
    return _Tree(
        service_route=_Route(service, routes=_owner_routes(spec, owners)),
        receivers=(_Receiver(UNROUTED_RECEIVER), *receivers.values()),
        inhibit_source=(*service, (conventions.URGENCY_LABEL, "page")),
        inhibit_target=(*service, (conventions.URGENCY_LABEL, "ticket")),
    )


# ---------------------------------------------------------------- the two dialects


def _matcher_text(matchers: _Matchers) -> list[str]:
    """Alertmanager's matcher syntax; the value is a double-quoted, escaped string."""
    return [f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in matchers]


def _object_matchers(matchers: _Matchers) -> list[dict[str, str]]:
    return [{"name": name, "value": value, "matchType": "="} for name, value in matchers]


@dataclass(frozen=True, slots=True)
class _Dialect:
    """How the plain file or the AlertmanagerConfig spells the same tree."""

    matchers: Callable[[_Matchers], list[Any]]
    #: The plain file's key -> this dialect's key.
    keys: Mapping[str, str]

    def key(self, plain: str) -> str:
        return self.keys.get(plain, plain)


_PLAIN = _Dialect(_matcher_text, {})
_OBJECT = _Dialect(
    _object_matchers,
    {
        "repeat_interval": "repeatInterval",
        "group_by": "groupBy",
        "group_wait": "groupWait",
        "group_interval": "groupInterval",
        "webhook_configs": "webhookConfigs",
        "send_resolved": "sendResolved",
        "source_matchers": "sourceMatch",
        "target_matchers": "targetMatch",
        "inhibit_rules": "inhibitRules",
    },
)


def _route_data(
    route: _Route, dialect: _Dialect, grouping: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if route.receiver:
        data["receiver"] = route.receiver
    data["matchers"] = dialect.matchers(route.matchers)
    if route.repeat_interval:
        data[dialect.key("repeat_interval")] = route.repeat_interval
    data.update(grouping or {})
    if route.routes:
        data["routes"] = [_route_data(child, dialect) for child in route.routes]
    return data


def _grouping(spec: ServiceSpec, dialect: _Dialect) -> dict[str, Any]:
    return {
        dialect.key("group_by"): list(GROUP_BY),
        dialect.key("group_wait"): spec.alertmanager.group_wait,
        dialect.key("group_interval"): spec.alertmanager.group_interval,
    }


def _receiver_data(receiver: _Receiver, dialect: _Dialect) -> dict[str, Any]:
    if not receiver.webhook_url:
        return {"name": receiver.name}
    webhook = {"url": receiver.webhook_url, dialect.key("send_resolved"): True}
    return {"name": receiver.name, dialect.key("webhook_configs"): [webhook]}


def _receivers_and_inhibition(tree: _Tree, dialect: _Dialect) -> dict[str, Any]:
    inhibit = {
        dialect.key("source_matchers"): dialect.matchers(tree.inhibit_source),
        dialect.key("target_matchers"): dialect.matchers(tree.inhibit_target),
        "equal": list(INHIBIT_EQUAL),
    }
    return {
        "receivers": [_receiver_data(receiver, dialect) for receiver in tree.receivers],
        dialect.key("inhibit_rules"): [inhibit],
    }


# ---------------------------------------------------------------- the files


def alertmanager_config(spec: ServiceSpec) -> dict[str, Any]:
    """An Alertmanager configuration routing the service's pages and tickets."""
    tree = _tree(spec)
    service_route = _route_data(tree.service_route, _PLAIN, _grouping(spec, _PLAIN))
    return {
        "route": {"receiver": UNROUTED_RECEIVER, "routes": [service_route]},
        **_receivers_and_inhibition(tree, _PLAIN),
    }


def alertmanager_config_object(spec: ServiceSpec) -> dict[str, Any]:
    """A ``monitoring.coreos.com/v1alpha1`` AlertmanagerConfig with the same tree.

    The Prometheus Operator adds ``namespace=<this object's namespace>`` to its first
    route and inhibit rule, so only alerts with that ``namespace`` label reach it.
    """
    tree = _tree(spec)
    root = _Route(tree.service_route.matchers, UNROUTED_RECEIVER, routes=tree.service_route.routes)
    metadata = manifest_metadata(spec, conventions.alertmanager_config_name(spec), "alerting")
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": metadata,
        "spec": {
            "route": _route_data(root, _OBJECT, _grouping(spec, _OBJECT)),
            **_receivers_and_inhibition(tree, _OBJECT),
        },
    }
