"""The typed SLO spec (``apiVersion: ouro-obs/v1``): the only thing generators see."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from ouro_obs.slo.promql import Matcher
from ouro_obs.slo.promql_selector import SeriesSelector

__all__ = [
    "API_VERSION",
    "DEFAULT_ERROR_STATUS_REGEX",
    "DEFAULT_MAX_GROUPS",
    "DEFAULT_PAGE_MIN_REQUESTS",
    "DEFAULT_PAGE_SEVERITY",
    "DEFAULT_TICKET_SEVERITY",
    "DEFAULT_WINDOW_DAYS",
    "ENVIRONMENT_LABEL",
    "KIND",
    "OPENSLO_API_VERSION",
    "SLI",
    "AlertmanagerRoute",
    "AlertmanagerSpec",
    "AvailabilitySLI",
    "EnvironmentSpec",
    "HistogramSLI",
    "LatencySLI",
    "MetricsSpec",
    "RatioSLI",
    "SLOAlerting",
    "SLOSpec",
    "ServiceAlerting",
    "ServiceSpec",
]

API_VERSION = "ouro-obs/v1"
KIND = "ServiceSLO"
OPENSLO_API_VERSION = "openslo/v1"

#: A page needs at least this many requests in the alert's long window (low-traffic guard).
DEFAULT_PAGE_MIN_REQUESTS = 100
DEFAULT_ERROR_STATUS_REGEX = "5.."
DEFAULT_WINDOW_DAYS = 30
#: A grouped SLO's rules produce at most this many series each by default (rule ``limit``).
DEFAULT_MAX_GROUPS = 100
#: The label naming the environment on every rule of an environment's set.
ENVIRONMENT_LABEL = "env"
#: The ``severity`` of pages and tickets by default: what kube-prometheus-stack's stock
#: Alertmanager inhibit rules key on.
DEFAULT_PAGE_SEVERITY = "critical"
DEFAULT_TICKET_SEVERITY = "warning"


@dataclass(frozen=True, slots=True)
class AvailabilitySLI:
    """Errors are responses whose status matches ``error_status_regex`` (default 5xx)."""

    error_status_regex: str = DEFAULT_ERROR_STATUS_REGEX
    routes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    kind: Literal["availability"] = "availability"


@dataclass(frozen=True, slots=True)
class LatencySLI:
    """Errors are requests slower than ``threshold_seconds`` (a histogram bucket boundary)."""

    threshold_seconds: Decimal
    routes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    kind: Literal["latency"] = "latency"


class _AnyMetric:
    """An SLI on metrics of its own: no route or method filter, its selectors say which
    series count."""

    __slots__ = ()

    @property
    def routes(self) -> tuple[str, ...]:
        return ()

    @property
    def methods(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class RatioSLI(_AnyMetric):
    """Events of any two counters: ``errors`` (or ``good``) over ``total``, as selectors.

    Exactly one of ``errors`` and ``good`` is set. The service's selector (and an
    environment's) is added to both for every label they do not match themselves.
    """

    total: SeriesSelector
    errors: SeriesSelector | None = None
    good: SeriesSelector | None = None
    kind: Literal["ratio"] = "ratio"


@dataclass(frozen=True, slots=True)
class HistogramSLI(_AnyMetric):
    """Observations of any histogram above ``threshold`` (an ``le`` boundary) are bad.

    ``metric`` is the histogram's family name (its ``_bucket`` and ``_count`` series);
    ``matchers`` narrow it; ``buckets`` are its boundaries when known (declared in the
    spec, or ouro-obs's own), else empty.
    """

    metric: str
    threshold: Decimal
    matchers: tuple[Matcher, ...] = ()
    buckets: tuple[Decimal, ...] = ()
    kind: Literal["histogram"] = "histogram"


SLI = AvailabilitySLI | LatencySLI | RatioSLI | HistogramSLI


# ---------------------------------------------------------------- alert tuning and routing
# (checked by :mod:`ouro_obs.slo.spec.validate_alerting`)


@dataclass(frozen=True, slots=True)
class SLOAlerting:
    """Which of one SLO's alerts are generated, and what they carry besides the defaults."""

    page: bool = True
    ticket: bool = True
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServiceAlerting:
    """The service alerts' switches, and annotations added to every alert."""

    target_down: bool = True
    metrics_absent: bool = True
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertmanagerRoute:
    """Where pages (or tickets) go: a receiver name, optionally a webhook, how often again.

    An empty ``receiver`` means the default, ``<team or service>-page`` (or ``-ticket``).
    """

    receiver: str = ""
    webhook_url: str = ""
    repeat_interval: str = ""


@dataclass(frozen=True, slots=True)
class AlertmanagerSpec:
    """The generated Alertmanager route tree: receivers, grouping timers."""

    page: AlertmanagerRoute = field(default_factory=AlertmanagerRoute)
    ticket: AlertmanagerRoute = field(default_factory=AlertmanagerRoute)
    group_wait: str = "30s"
    group_interval: str = "5m"


@dataclass(frozen=True, slots=True)
class EnvironmentSpec:
    """One deployment of the service (prod, staging, ...): its series, its objects' namespace.

    Checked by :mod:`ouro_obs.slo.spec.environments`, which also scopes a spec to one.
    """

    name: str
    #: Label matchers of this environment's series, added to the service's selector.
    selector: Mapping[str, str]
    #: Kubernetes namespace of this environment's generated objects ("" keeps the spec's).
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class SLOSpec:
    """One objective: ``objective`` percent good over ``window_days`` days."""

    name: str
    objective: Decimal  # percent, e.g. Decimal("99.9")
    window_days: int
    sli: SLI
    description: str = ""
    alerting: SLOAlerting = field(default_factory=SLOAlerting)
    #: Labels the SLI is computed by: burn rates, alerts and budget per value ("" = one SLI).
    group_by: tuple[str, ...] = ()
    #: The most label sets of ``group_by`` the rules may produce (each rule's ``limit``).
    max_groups: int = DEFAULT_MAX_GROUPS

    @property
    def error_budget(self) -> Decimal:
        """The allowed bad fraction as an exact decimal: 99.9 -> 0.001."""
        return (Decimal(100) - self.objective) / Decimal(100)


@dataclass(frozen=True, slots=True)
class MetricsSpec:
    """How the service's metrics are named: ``prometheus`` (the middleware's default
    backend) or ``opentelemetry`` (``metrics_backend="opentelemetry"``, scraped through
    opentelemetry-exporter-prometheus)."""

    naming: Literal["prometheus", "opentelemetry"] = "prometheus"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """Everything one service's spec file says."""

    service: str
    slos: tuple[SLOSpec, ...]
    #: Label matchers selecting the service's series; default ``{"job": service}``.
    selector: Mapping[str, str] = field(default_factory=dict)
    metrics_namespace: str = ""
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    #: Labels put on every alert (team, owner, ...).
    labels: Mapping[str, str] = field(default_factory=dict)
    runbook_base_url: str = ""
    #: Grafana base URL for dashboard links in alert annotations ("" means relative links).
    grafana_url: str = ""
    #: Routing labels of pages and tickets; the severities kube-prometheus-stack's inhibit
    #: rules know.
    page_labels: Mapping[str, str] = field(
        default_factory=lambda: {"severity": DEFAULT_PAGE_SEVERITY}
    )
    ticket_labels: Mapping[str, str] = field(
        default_factory=lambda: {"severity": DEFAULT_TICKET_SEVERITY}
    )
    #: Metadata labels on the PrometheusRule / ServiceMonitor / ConfigMap (e.g. release).
    manifest_labels: Mapping[str, str] = field(default_factory=dict)
    namespace: str = ""
    #: Low-traffic guard: a burn-rate page also needs this many requests in its long window.
    page_min_requests: int = DEFAULT_PAGE_MIN_REQUESTS
    alerting: ServiceAlerting = field(default_factory=ServiceAlerting)
    alertmanager: AlertmanagerSpec = field(default_factory=AlertmanagerSpec)
    #: The environments the spec declares; generation scopes it to each in turn.
    environments: tuple[EnvironmentSpec, ...] = ()
    #: The environment this spec is scoped to ("" for the spec as written).
    environment: str = ""
    #: The ``app.kubernetes.io/name`` of the service's pods ("" means ``service``).
    app: str = ""

    @property
    def effective_selector(self) -> Mapping[str, str]:
        return self.selector or {"job": self.service}

    @property
    def app_name(self) -> str:
        return self.app or self.service
