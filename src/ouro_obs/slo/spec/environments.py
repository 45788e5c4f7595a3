"""``environments``: the deployments of one service, and a spec scoped to one of them.

One Prometheus often scrapes dev, staging and prod. Each environment adds label matchers
to the service's selector (its namespace, cluster, ...), so its SLOs count only its own
traffic, and :func:`scoped` gives the spec of that environment alone: the service named
``<service>-<environment>`` (so its rule groups, files, object names and dashboard uids
are its own), the ``env`` label on every rule, and the objects in its namespace.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from ouro_obs.slo.spec.checker import Checker, describe, slug
from ouro_obs.slo.spec.errors import FieldPath
from ouro_obs.slo.spec.model import ENVIRONMENT_LABEL, EnvironmentSpec, ServiceSpec

__all__ = ["ENVIRONMENT_NAME_RE", "SHARED_DIRECTORIES", "check_environments", "scoped"]

ENVIRONMENT_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?")
_FIELDS = ("name", "selector", "namespace")
#: Longest ``<service>-<environment>``: it names Kubernetes objects and label values.
_MAX_SCOPED_NAME = 63
#: Directories of ``deploy/generated`` beside the environments' own.
SHARED_DIRECTORIES = frozenset({"rollout", "alertmanager"})
_NAMESPACE_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

LabelCheck = Callable[[FieldPath, str], bool]


def _environment(
    checker: Checker,
    path: FieldPath,
    value: Any,
    service: str | None,
    selector: Mapping[str, str],
    label_name: LabelCheck,
) -> EnvironmentSpec | None:
    item = checker.mapping(path, value, _FIELDS, required=("name", "selector"))
    if item is None:
        return None
    name = None
    if "name" in item:
        name = checker.string(
            (*path, "name"),
            item["name"],
            ENVIRONMENT_NAME_RE,
            "is not an environment name; use lower-case letters, digits and '-' "
            f"(at most 32 characters), e.g. {slug(str(item['name']))!r}",
        )
    if name in SHARED_DIRECTORIES:
        checker.error(
            (*path, "name"),
            f"{name!r} names a directory of deploy/generated every environment shares; "
            "use another name",
        )
        name = None
    if name is not None and service is not None:
        scoped_name = f"{service}-{name}"
        checker.check(
            len(scoped_name) <= _MAX_SCOPED_NAME,
            (*path, "name"),
            f"{scoped_name!r} (service and environment) is longer than {_MAX_SCOPED_NAME} "
            "characters; use a shorter name",
        )
    matchers = checker.string_map((*path, "selector"), item.get("selector"), label_name)
    if "selector" in item and not matchers and isinstance(item["selector"], dict):
        checker.error((*path, "selector"), "is empty; add the labels of this environment's series")
    for label, wanted in matchers.items():
        checker.check(
            selector.get(label, wanted) == wanted,
            (*path, "selector", label),
            f"the service's selector already sets {label}={selector.get(label)!r}; "
            "an environment may only add labels",
        )
    namespace: str | None = ""
    if item.get("namespace") is not None:
        hint = "is not a Kubernetes namespace name; use lower-case letters, digits and '-'"
        namespace = checker.string((*path, "namespace"), item["namespace"], _NAMESPACE_RE, hint)
    if name is None or namespace is None or not matchers:
        return None
    return EnvironmentSpec(name, matchers, namespace)


def check_environments(
    checker: Checker,
    service: str | None,
    selector: Mapping[str, str],
    value: Any,
    label_name: LabelCheck,
) -> tuple[EnvironmentSpec, ...]:
    """The ``environments`` list: distinct names, selectors that only add to ``selector``."""
    if value is None:
        return ()
    path: FieldPath = ("environments",)
    if not isinstance(value, list) or not value:
        checker.error(
            path,
            f"must be a non-empty list, got {describe(value)}; e.g. "
            "'- {name: prod, selector: {namespace: shop-prod}}'",
        )
        return ()
    found: list[EnvironmentSpec] = []
    for index, item in enumerate(value):
        environment = _environment(checker, (*path, index), item, service, selector, label_name)
        if environment is None:
            continue
        if any(earlier.name == environment.name for earlier in found):
            checker.error((*path, index, "name"), f"{environment.name!r} is declared twice")
            continue
        found.append(environment)
    return tuple(found)


def scoped(spec: ServiceSpec, name: str) -> ServiceSpec:
    """``spec`` for environment ``name`` alone; ``ValueError`` names the declared ones."""
    environment = next((e for e in spec.environments if e.name == name), None)
    if environment is None:
        declared = ", ".join(e.name for e in spec.environments) or "none"
        raise ValueError(f"the spec declares no environment {name!r} (declared: {declared})")
    return dataclasses.replace(
        spec,
        service=f"{spec.service}-{environment.name}",
        app=spec.app_name,
        selector={**spec.effective_selector, **environment.selector},
        labels={**spec.labels, ENVIRONMENT_LABEL: environment.name},
        namespace=environment.namespace or spec.namespace,
        environments=(),
        environment=environment.name,
    )
