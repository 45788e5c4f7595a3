"""A spec document -> the typed :class:`ServiceSpec`, or every problem with its place.

Each field has one small check that returns the typed value or ``None`` after recording
what is wrong, where, and how to fix it; :func:`build_spec` raises :class:`SpecError` with
all of them, sorted by line. OpenSLO files are checked by this same code after
:mod:`ouro_obs.slo.spec.openslo` has mapped them onto the ouro-obs fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ouro_obs.slo.conventions import (
    INFO_LABELS,
    METRIC_NAMINGS,
    SERVICE_LABEL,
    SLO_LABEL,
    URGENCY_LABEL,
)
from ouro_obs.slo.spec import model
from ouro_obs.slo.spec.checker import Checker, describe, slug
from ouro_obs.slo.spec.environments import check_environments
from ouro_obs.slo.spec.errors import FieldPath, SpecError
from ouro_obs.slo.spec.model import ServiceSpec
from ouro_obs.slo.spec.validate_alerting import check_alertmanager, check_service_alerting
from ouro_obs.slo.spec.validate_sli import check_scoping_labels
from ouro_obs.slo.spec.validate_slos import SLO_REQUIRED_HINTS, check_slos
from ouro_obs.slo.spec.yaml_lines import Document

__all__ = ["SERVICE_NAME_RE", "build_spec"]

SERVICE_NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_METRIC_PREFIX_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_URL_RE = re.compile(r"https?://[^\s/$.?#][^\s]*")
_K8S_NAME_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_K8S_PREFIX_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

#: Labels the generator sets itself on every rule; a spec may not override them.
RESERVED_RULE_LABELS = frozenset(
    {SERVICE_LABEL, SLO_LABEL, URGENCY_LABEL, "alertname", model.ENVIRONMENT_LABEL, *INFO_LABELS}
)
#: Labels the SLI queries set from the SLI fields; the selector may not use them.
RESERVED_SELECTOR_LABELS = (
    "__name__",
    "method",
    "route",
    "status",
    "le",
    # ... and what they are called in the OpenTelemetry naming.
    "http_request_method",
    "http_route",
    "http_response_status_code",
)

_TOP_FIELDS = (
    "apiVersion",
    "kind",
    "service",
    "namespace",
    "selector",
    "metrics_namespace",
    "metrics",
    "labels",
    "runbook_base_url",
    "grafana_url",
    "page_labels",
    "ticket_labels",
    "page_min_requests",
    "manifest_labels",
    "alerting",
    "alertmanager",
    "environments",
    "slos",
)
_REQUIRED_HINTS = {
    "apiVersion": f"add 'apiVersion: {model.API_VERSION}' at the top",
    "service": "add the service name, e.g. 'service: shop'",
    "runbook_base_url": "add the URL of the service's runbook, e.g. "
    "'runbook_base_url: https://runbooks.example.com/shop'",
    "slos": "add a list of SLOs",
    **SLO_REQUIRED_HINTS,
}


# ---------------------------------------------------------------- labels, names, URLs


def _label_name(checker: Checker, path: FieldPath, name: str, reserved: Iterable[str]) -> bool:
    return checker.label_name(path, name, reserved)


def _k8s_name(text: str) -> bool:
    return len(text) <= 63 and _K8S_NAME_RE.fullmatch(text) is not None


def _k8s_label_key(checker: Checker, path: FieldPath, key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    valid = _k8s_name(name) and (
        not prefix or (len(prefix) <= 253 and _K8S_PREFIX_RE.fullmatch(prefix) is not None)
    )
    return checker.check(
        valid,
        path,
        f"{key!r} is not a Kubernetes label key; use an optional DNS prefix and '/', then "
        "up to 63 letters, digits, '-', '_' or '.', e.g. 'release'",
    )


def _k8s_label_value(checker: Checker, path: FieldPath, value: str) -> bool:
    return checker.check(
        not value or _k8s_name(value),
        path,
        f"{value!r} is not a Kubernetes label value; use up to 63 letters, digits, "
        "'-', '_' or '.', starting and ending with a letter or digit",
    )


def _url(checker: Checker, path: FieldPath, value: Any) -> str:
    text = checker.string(path, value)
    if text is None:
        return ""
    if not _URL_RE.fullmatch(text):
        checker.error(
            path, f"{text!r} is not an http(s) URL; write it like https://example.com/path"
        )
        return ""
    return text.rstrip("/")


# ---------------------------------------------------------------- the service


def _versions(checker: Checker, top: dict[str, Any]) -> None:
    if "apiVersion" in top and top["apiVersion"] != model.API_VERSION:
        checker.error(
            ("apiVersion",),
            f"{top['apiVersion']!r} is not supported; use {model.API_VERSION} "
            f"(or {model.OPENSLO_API_VERSION} for an OpenSLO SLO)",
        )
    if "kind" in top and top["kind"] != model.KIND:
        checker.error(
            ("kind",), f"{top['kind']!r} is not supported; use {model.KIND} or leave it out"
        )


def _service(checker: Checker, top: dict[str, Any]) -> str | None:
    if "service" not in top:
        return None
    return checker.string(
        ("service",),
        top["service"],
        SERVICE_NAME_RE,
        "is not a valid service name; use lower-case letters, digits and '-', starting "
        f"with a letter (at most 63 characters), e.g. {slug(str(top['service']))!r}",
    )


def _namespace(checker: Checker, top: dict[str, Any]) -> str:
    if top.get("namespace") is None:
        return ""
    hint = "is not a Kubernetes namespace name; use lower-case letters, digits and '-'"
    return checker.string(("namespace",), top["namespace"], SERVICE_NAME_RE, hint) or ""


def _metrics_namespace(checker: Checker, top: dict[str, Any]) -> str:
    if not top.get("metrics_namespace"):
        return ""
    hint = (
        "is not a metric name prefix; use letters, digits and '_' as in the middleware's "
        "metrics_namespace setting"
    )
    return (
        checker.string(("metrics_namespace",), top["metrics_namespace"], _METRIC_PREFIX_RE, hint)
        or ""
    )


def _metrics(checker: Checker, top: dict[str, Any], metrics_namespace: str) -> model.MetricsSpec:
    """``metrics: {naming: prometheus | opentelemetry}``: which names the rules query."""
    if top.get("metrics") is None:
        return model.MetricsSpec()
    fields = checker.mapping(("metrics",), top["metrics"], ("naming",), what="a mapping")
    if fields is None or "naming" not in fields:
        return model.MetricsSpec()
    naming = fields["naming"]
    if naming not in METRIC_NAMINGS:
        checker.error(
            ("metrics", "naming"),
            f"{describe(naming)} is not a naming; use prometheus (the middleware's default "
            "metrics) or opentelemetry (metrics_backend: opentelemetry, scraped through "
            "opentelemetry-exporter-prometheus)",
        )
        return model.MetricsSpec()
    if naming == "opentelemetry" and metrics_namespace:
        checker.error(
            ("metrics", "naming"),
            "opentelemetry names are the semantic conventions' and take no metrics_namespace; "
            "remove metrics_namespace (tell services apart with the selector)",
        )
    return model.MetricsSpec(naming=naming)


#: The labels of the HTTP metrics in the Prometheus naming, and what the OpenTelemetry
#: naming calls them.
_OTEL_LABELS = {
    "method": "http_request_method",
    "route": "http_route",
    "status": "http_response_status_code",
}


def _check_group_labels(
    checker: Checker, metrics: model.MetricsSpec, slos: Iterable[model.SLOSpec]
) -> None:
    """An OpenTelemetry-named service has no ``route`` label: group by ``http_route``."""
    if metrics.naming != "opentelemetry":
        return
    for index, slo in enumerate(slos):
        for label in slo.group_by:
            if label in _OTEL_LABELS:
                checker.error(
                    ("slos", index, "group_by"),
                    f"{label!r} is called {_OTEL_LABELS[label]!r} in the opentelemetry "
                    f"naming (metrics.naming); group by {_OTEL_LABELS[label]!r}",
                )
            elif label == _OTEL_LABELS["status"]:
                checker.error(
                    ("slos", index, "group_by"),
                    f"{label!r} cannot be a group label (it tells good from bad); group by "
                    "http_route, http_request_method or a label of your own",
                )


def _rule_label_map(checker: Checker, top: dict[str, Any], key: str) -> dict[str, str]:
    return checker.string_map(
        (key,),
        top.get(key),
        lambda path, name: _label_name(checker, path, name, RESERVED_RULE_LABELS),
    )


def _routing(checker: Checker, top: dict[str, Any]) -> dict[str, dict[str, str]]:
    routing = {}
    for key, default in (
        ("page_labels", model.DEFAULT_PAGE_SEVERITY),
        ("ticket_labels", model.DEFAULT_TICKET_SEVERITY),
    ):
        routing[key] = (
            {"severity": default} if top.get(key) is None else _rule_label_map(checker, top, key)
        )
    if routing["page_labels"] and routing["page_labels"] == routing["ticket_labels"]:
        checker.error(
            ("ticket_labels",),
            "equals page_labels; give tickets a different route, e.g. 'severity: warning'",
        )
    return routing


def _page_min_requests(checker: Checker, top: dict[str, Any]) -> int:
    if "page_min_requests" not in top:
        return model.DEFAULT_PAGE_MIN_REQUESTS
    raw = top["page_min_requests"]
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        checker.error(
            ("page_min_requests",),
            f"must be a whole number of requests (0 turns the guard off), got {describe(raw)}",
        )
        return model.DEFAULT_PAGE_MIN_REQUESTS
    return raw


def _service_spec(checker: Checker, value: Any) -> ServiceSpec | None:
    top = checker.mapping(
        (),
        value,
        _TOP_FIELDS,
        required=("apiVersion", "service", "runbook_base_url", "slos"),
        what=f"a mapping starting with 'apiVersion: {model.API_VERSION}'",
    )
    if top is None:
        return None
    _versions(checker, top)
    service = _service(checker, top)
    namespace = _namespace(checker, top)

    def selector_label(path: FieldPath, name: str) -> bool:
        return _label_name(checker, path, name, RESERVED_SELECTOR_LABELS)

    selector = checker.string_map(("selector",), top.get("selector"), selector_label)
    base = selector or ({"job": service} if service else {})
    environments = check_environments(
        checker, service, base, top.get("environments"), selector_label
    )
    metrics_namespace = _metrics_namespace(checker, top)
    metrics = _metrics(checker, top, metrics_namespace)
    labels = _rule_label_map(checker, top, "labels")
    routing = _routing(checker, top)
    min_requests = _page_min_requests(checker, top)
    manifest_labels = checker.string_map(
        ("manifest_labels",),
        top.get("manifest_labels"),
        lambda path, key: _k8s_label_key(checker, path, key),
        lambda path, text: _k8s_label_value(checker, path, text),
    )
    runbook = (
        _url(checker, ("runbook_base_url",), top["runbook_base_url"])
        if "runbook_base_url" in top
        else ""
    )
    grafana = _url(checker, ("grafana_url",), top["grafana_url"]) if top.get("grafana_url") else ""
    slos = check_slos(checker, service, top["slos"]) if "slos" in top else ()
    _check_group_labels(checker, metrics, slos)
    if isinstance(top.get("slos"), list) and len(slos) == len(top["slos"]):
        scoping = {label for environment in environments for label in environment.selector}
        check_scoping_labels(checker, slos, scoping)
    alerting = check_service_alerting(checker, top.get("alerting"))
    alertmanager = check_alertmanager(checker, top.get("alertmanager"))
    if checker.issues or service is None:
        return None
    return ServiceSpec(
        service=service,
        slos=slos,
        selector=selector,
        metrics_namespace=metrics_namespace,
        metrics=metrics,
        labels=labels,
        runbook_base_url=runbook,
        grafana_url=grafana,
        page_labels=routing["page_labels"],
        ticket_labels=routing["ticket_labels"],
        manifest_labels=manifest_labels,
        namespace=namespace,
        page_min_requests=min_requests,
        alerting=alerting,
        alertmanager=alertmanager,
        environments=environments,
    )


def build_spec(source: str, document: Document) -> ServiceSpec:
    """The typed spec of ``document``; :class:`SpecError` lists every problem by line."""
    checker = Checker(document.lines, document.aliases, _REQUIRED_HINTS)
    spec = _service_spec(checker, document.value)
    if spec is None:
        if not checker.issues:  # pragma: no cover - every None path records an issue
            checker.error((), "the spec could not be read")
        raise SpecError(source, sorted(checker.issues, key=lambda issue: issue.line or 0))
    return spec
