"""The names of everything ouro-obs generates, and of the series it reads, in one place.

The service's own series are named as its spec's ``metrics.naming`` says
(:func:`series_names`): the rules, the promtool tests' input series and the dashboards
all read that one value.

Recording rules follow ``level:metric:operations``; alert names are the CamelCase service
and SLO names plus what fires; dashboard uids are stable slugs; output paths are relative
to the directory ``ouro-obs generate -o`` writes into.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ouro_obs.contract import (
    METHOD_LABEL,
    ROUTE_LABEL,
    STATUS_LABEL,
    MetricNames,
    OtelNames,
)

if TYPE_CHECKING:
    from ouro_obs.slo.spec.model import ServiceSpec, SLOSpec
    from ouro_obs.slo.windows import Window

__all__ = [
    "ALERTMANAGER_CONFIG_CRD_PATH",
    "ALERTMANAGER_DIR",
    "ALERTMANAGER_KUSTOMIZATION_PATH",
    "ANALYSIS_ARGS",
    "ANALYSIS_TEMPLATE_PATH",
    "BUDGET_REMAINING_RECORD",
    "DASHBOARDS_CONFIGMAP_PATH",
    "DASHBOARD_KINDS",
    "ERROR_BUDGET_RECORD",
    "GENERATED_DIR",
    "INFO_LABELS",
    "INFO_RECORD",
    "KUSTOMIZATION_PATH",
    "METRIC_NAMINGS",
    "OBJECTIVE_RECORD",
    "PERIOD_RECORD",
    "PROMETHEUS_RULE_PATH",
    "ROLLOUT_DIR",
    "ROLLOUT_KUSTOMIZATION_PATH",
    "SERVICE_LABEL",
    "SERVICE_MONITOR_PATH",
    "SLO_LABEL",
    "URGENCY_LABEL",
    "VERSION_LABEL",
    "AlertNames",
    "AnalysisArgs",
    "AnalysisMetricNames",
    "DashboardKind",
    "MetricNaming",
    "SeriesNames",
    "ServiceAlertNames",
    "alert_name_stem",
    "alert_names",
    "alertmanager_config_name",
    "alertmanager_config_path",
    "alertmanager_receiver",
    "alerts_group_name",
    "analysis_metric_names",
    "analysis_template_name",
    "bad_events_record",
    "burn_rate_record",
    "dashboard_path",
    "dashboard_paths",
    "dashboard_uid",
    "dashboard_url",
    "events_group_name",
    "events_record",
    "groups_alert_name",
    "metrics_absent_alert_name",
    "period_group_name",
    "record_labels",
    "rule_file_path",
    "rule_test_path",
    "runbook_url",
    "series_names",
    "service_alert_names",
    "sli_error_record",
    "slo_group_name",
    "slo_labels",
]

# ---------------------------------------------------------------- the service's own series

#: How the service's HTTP metrics are named (the spec's ``metrics.naming``): the
#: middleware's Prometheus backend, or its OpenTelemetry one scraped through
#: opentelemetry-exporter-prometheus.
MetricNaming = Literal["prometheus", "opentelemetry"]
METRIC_NAMINGS: tuple[MetricNaming, ...] = ("prometheus", "opentelemetry")


@dataclass(frozen=True, slots=True)
class SeriesNames:
    """The series and labels the rules, promtool tests and dashboards read, for one naming."""

    naming: MetricNaming
    #: Counts requests by status: a counter, or the duration histogram's ``_count``.
    requests: str
    #: The duration histogram (``_bucket``, ``_count`` and ``_sum`` are added).
    request_duration: str
    requests_in_progress: str
    request_size: str
    response_size: str
    method_label: str
    route_label: str
    status_label: str

    @property
    def requests_are_durations(self) -> bool:
        """Whether requests are counted by the duration histogram (it then has the status)."""
        return self.requests == f"{self.request_duration}_count"


def _series_names(naming: MetricNaming, namespace: str) -> SeriesNames:
    if naming == "opentelemetry":
        otel = OtelNames()
        return SeriesNames(
            naming=naming,
            requests=f"{otel.scraped_request_duration}_count",
            request_duration=otel.scraped_request_duration,
            requests_in_progress=otel.scraped_active_requests,
            request_size=otel.scraped_request_body_size,
            response_size=otel.scraped_response_body_size,
            method_label=otel.scraped_method_label,
            route_label=otel.scraped_route_label,
            status_label=otel.scraped_status_label,
        )
    names = MetricNames(namespace)
    return SeriesNames(
        naming=naming,
        requests=names.requests_total,
        request_duration=names.request_duration,
        requests_in_progress=names.requests_in_progress,
        request_size=names.request_size,
        response_size=names.response_size,
        method_label=METHOD_LABEL,
        route_label=ROUTE_LABEL,
        status_label=STATUS_LABEL,
    )


def series_names(spec: ServiceSpec) -> SeriesNames:
    """The names of the service's HTTP series, as its spec's ``metrics.naming`` says."""
    return _series_names(spec.metrics.naming, spec.metrics_namespace)


# ---------------------------------------------------------------- recording rules and labels

OBJECTIVE_RECORD = "slo:objective:ratio"
ERROR_BUDGET_RECORD = "slo:error_budget:ratio"
BUDGET_REMAINING_RECORD = "slo:error_budget_remaining:ratio"
#: 1 per SLO, carrying what the spec says of it in :data:`INFO_LABELS` and the spec labels.
INFO_RECORD = "slo:info"
#: The SLO's window in seconds.
PERIOD_RECORD = "slo:period:seconds"
#: The labels of :data:`INFO_RECORD` beside the SLO's own: the objective in percent as
#: written, the window in Prometheus syntax, the SLI kind.
INFO_LABELS = ("objective", "window", "sli")
SERVICE_LABEL = "service"
SLO_LABEL = "slo"
#: ``page`` or ``ticket`` on every alert, whatever ``severity`` the spec chooses: the label
#: the generated Alertmanager routes and inhibition key on.
URGENCY_LABEL = "urgency"


def _per_window(operation: str) -> Callable[[Window], str]:
    """Record names that end in their window's duration: ``slo:burn_rate:ratio_rate1h``."""

    def record(window: Window) -> str:
        return f"slo:{operation}{window.duration}"

    return record


#: The SLI's bad-event ratio over a window.
sli_error_record = _per_window("sli_error:ratio_rate")
#: That ratio over the error budget: 1 spends exactly the budget over the period.
burn_rate_record = _per_window("burn_rate:ratio_rate")
#: The SLI's bad events per second over a window, summed over every series.
bad_events_record = _per_window("sli_bad_events:rate")
#: The SLI's events per second over a window, summed over every series.
events_record = _per_window("sli_events:rate")


def slo_labels(spec: ServiceSpec, slo: SLOSpec) -> dict[str, str]:
    """The labels on every rule of one SLO, and the matchers that read them back."""
    return {SERVICE_LABEL: spec.service, SLO_LABEL: slo.name}


def record_labels(spec: ServiceSpec, slo: SLOSpec) -> dict[str, str]:
    """The labels every recording of one SLO carries: its own and the spec's ``labels``."""
    return {**slo_labels(spec, slo), **spec.labels}


def slo_group_name(spec: ServiceSpec, slo: SLOSpec) -> str:
    return f"{spec.service}-slo-{slo.name}"


def period_group_name(spec: ServiceSpec, slo: SLOSpec) -> str:
    return f"{slo_group_name(spec, slo)}-period"


def events_group_name(spec: ServiceSpec, slo: SLOSpec) -> str:
    return f"{slo_group_name(spec, slo)}-events"


def alerts_group_name(spec: ServiceSpec) -> str:
    return f"{spec.service}-alerts"


# ---------------------------------------------------------------- alerts


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", text) if part)


def alert_name_stem(service: str, slo_name: str) -> str:
    """The alert name prefix of one SLO: ``shop`` + ``availability`` -> ``ShopAvailability``."""
    return _camel(service) + _camel(slo_name)


@dataclass(frozen=True, slots=True)
class AlertNames:
    page: str
    ticket: str


@dataclass(frozen=True, slots=True)
class ServiceAlertNames:
    target_down: str
    metrics_absent: str


def alert_names(spec: ServiceSpec, slo: SLOSpec) -> AlertNames:
    """Distinct page and ticket alert names of one SLO."""
    stem = alert_name_stem(spec.service, slo.name)
    return AlertNames(page=f"{stem}ErrorBudgetBurnPage", ticket=f"{stem}ErrorBudgetBurnTicket")


def groups_alert_name(spec: ServiceSpec, slo: SLOSpec) -> str:
    """The ticket of a grouped SLO whose traffic holds more groups than ``max_groups``."""
    return f"{alert_name_stem(spec.service, slo.name)}TooManyGroups"


def metrics_absent_alert_name(spec: ServiceSpec, slo: SLOSpec) -> str:
    """The absent alert of an SLI on metrics of its own: ``ShopMailQueueMetricsAbsent``."""
    return f"{alert_name_stem(spec.service, slo.name)}MetricsAbsent"


def service_alert_names(spec: ServiceSpec) -> ServiceAlertNames:
    stem = alert_name_stem(spec.service, "")
    return ServiceAlertNames(target_down=f"{stem}TargetDown", metrics_absent=f"{stem}MetricsAbsent")


def alertmanager_receiver(owner: str, urgency: Literal["page", "ticket"]) -> str:
    """The default receiver of an owner's (a team's, else the service's) pages or tickets."""
    return f"{owner}-{urgency}"


def alertmanager_config_name(spec: ServiceSpec) -> str:
    """The AlertmanagerConfig object's name (the PrometheusRule's, like its alerts)."""
    return f"{spec.service}-slo"


def runbook_url(spec: ServiceSpec, alert_name: str) -> str:
    return f"{spec.runbook_base_url}#{alert_name.lower()}"


# ---------------------------------------------------------------- dashboards

DashboardKind = Literal["overview", "slo"]
DASHBOARD_KINDS: tuple[DashboardKind, ...] = ("overview", "slo")


def dashboard_uid(service: str, kind: DashboardKind) -> str:
    """Stable Grafana uid for one of the service's dashboards (at most 40 characters)."""
    slug = re.sub(r"[^a-zA-Z0-9-]+", "-", service).strip("-").lower()
    uid = f"{slug}-{kind}"
    if len(uid) <= 40:
        return uid
    digest = hashlib.sha256(service.encode()).hexdigest()[:8]
    return f"{slug[: 40 - len(kind) - 10]}-{digest}-{kind}"


def dashboard_url(service: str, kind: DashboardKind, grafana_url: str = "") -> str:
    """The dashboard's address: relative to Grafana unless ``grafana_url`` is given."""
    return f"{grafana_url}/d/{dashboard_uid(service, kind)}"


# ---------------------------------------------------------------- canary analysis

#: Argo Rollouts' ``rollouts-pod-template-hash`` pod label, as the ServiceMonitor's
#: ``podTargetLabels`` copies it onto the scraped series: it names one version's pods.
VERSION_LABEL = "rollouts_pod_template_hash"


@dataclass(frozen=True, slots=True)
class AnalysisArgs:
    """The AnalysisTemplate's arguments: the three a Rollout passes, and one with a default."""

    namespace: str = "namespace"
    canary_hash: str = "canary-hash"
    stable_hash: str = "stable-hash"
    prometheus_address: str = "prometheus-address"


ANALYSIS_ARGS = AnalysisArgs()


def analysis_template_name(spec: ServiceSpec) -> str:
    """The AnalysisTemplate the Rollout's analysis steps run: ``<service>-slo-canary``."""
    return f"{spec.service}-slo-canary"


@dataclass(frozen=True, slots=True)
class AnalysisMetricNames:
    burn_rate: str
    vs_stable: str


def analysis_metric_names(slo: SLOSpec) -> AnalysisMetricNames:
    """The SLO's two metrics in the AnalysisTemplate (and in the AnalysisRun's status)."""
    return AnalysisMetricNames(burn_rate=f"{slo.name}-burn-rate", vs_stable=f"{slo.name}-vs-stable")


# ---------------------------------------------------------------- output paths

GENERATED_DIR = "deploy/generated"
PROMETHEUS_RULE_PATH = f"{GENERATED_DIR}/prometheusrule.yaml"
SERVICE_MONITOR_PATH = f"{GENERATED_DIR}/servicemonitor.yaml"
DASHBOARDS_CONFIGMAP_PATH = f"{GENERATED_DIR}/grafana-dashboards.yaml"
KUSTOMIZATION_PATH = f"{GENERATED_DIR}/kustomization.yaml"
#: Only for clusters with Argo Rollouts, so outside the Kustomization above.
ROLLOUT_DIR = f"{GENERATED_DIR}/rollout"
ANALYSIS_TEMPLATE_PATH = f"{ROLLOUT_DIR}/analysistemplate.yaml"
ROLLOUT_KUSTOMIZATION_PATH = f"{ROLLOUT_DIR}/kustomization.yaml"
#: Only for clusters whose Alertmanager reads AlertmanagerConfig objects, so apart too.
ALERTMANAGER_DIR = f"{GENERATED_DIR}/alertmanager"
ALERTMANAGER_CONFIG_CRD_PATH = f"{ALERTMANAGER_DIR}/alertmanagerconfig.yaml"
ALERTMANAGER_KUSTOMIZATION_PATH = f"{ALERTMANAGER_DIR}/kustomization.yaml"


def rule_file_path(spec: ServiceSpec) -> str:
    return f"alerts/{spec.service}.rules.yaml"


def rule_test_path(spec: ServiceSpec) -> str:
    return f"alerts/{spec.service}.rules.test.yaml"


def alertmanager_config_path(spec: ServiceSpec) -> str:
    """The Alertmanager configuration fragment (a complete file ``amtool`` checks)."""
    return f"alertmanager/{spec.service}.alertmanager.yaml"


def dashboard_path(spec: ServiceSpec, kind: DashboardKind) -> str:
    return f"dashboards/{spec.service}-{kind}.json"


def dashboard_paths(spec: ServiceSpec) -> dict[DashboardKind, str]:
    """Dashboard kind -> output path."""
    return {kind: dashboard_path(spec, kind) for kind in DASHBOARD_KINDS}
