"""OpenTelemetry traces: ``configure_tracing()`` and the SERVER span of each request.

``configure_tracing()`` builds a ``TracerProvider`` from the standard ``OTEL_*``
variables (read there, at the application's edge) and explicit arguments, which win:
a Resource naming the service, its version, environment and Kubernetes pod; a
parent-based ratio sampler; a bounded batch processor exporting over OTLP/HTTP, whose
drops are counted in ``ouro_obs_spans_dropped_total``.

:class:`ServerSpans` is what the middleware calls: one SERVER span per request, started
with the OpenTelemetry API directly (it measured cheaper than
opentelemetry-instrumentation-asgi, see docs/logs-and-traces.md), named
``METHOD /route/{template}`` once routing has run, with the stable HTTP semantic
convention attributes.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from starlette.types import Scope

from ouro_obs.config import ConfigError, ObservabilitySettings
from ouro_obs.redaction import redact_query

__all__ = [
    "DEFAULT_OTLP_ENDPOINT",
    "BoundedBatchSpanProcessor",
    "ServerSpans",
    "TracingConfig",
    "configure_tracing",
    "error_type",
    "span_ids",
]

DEFAULT_OTLP_ENDPOINT: Final = "http://localhost:4318"
_TRACES_PATH = "/v1/traces"
_INSTRUMENTATION_NAME = "ouro_obs"
_log = logging.getLogger("ouro_obs.tracing")

#: Downward-API variables (set them in the pod spec) and the resource attributes they fill.
K8S_VARIABLES: Final = {
    "K8S_POD_NAME": "k8s.pod.name",
    "K8S_NAMESPACE_NAME": "k8s.namespace.name",
    "K8S_NODE_NAME": "k8s.node.name",
}


def error_type(error: BaseException) -> str:
    """The exception's fully qualified class name, as OTel's ``error.type`` wants it."""
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def span_ids(span: trace.Span) -> tuple[str, str, bool] | None:
    """(trace_id, span_id) as lower-case hex and whether the span is sampled; None if invalid."""
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return None
    return (
        format(span_context.trace_id, "032x"),
        format(span_context.span_id, "016x"),
        span_context.trace_flags.sampled,
    )


# -- configuration -------------------------------------------------------------------------


def _flag(raw: str | None) -> bool:
    return (raw or "").strip().lower() == "true"


def _key_values(raw: str, variable: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` with percent-encoded values (OTEL_RESOURCE_ATTRIBUTES, W3C baggage style)."""
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise ConfigError(
                f"{variable}: {item.strip()!r} is not key=value; write e.g. "
                f"{variable}=team=payments,region=eu-west-1"
            )
        pairs[key.strip()] = unquote(value.strip())
    return pairs


def _positive_int(environ: Mapping[str, str], variable: str, default: int) -> int:
    raw = environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} is not a whole number, e.g. {default}") from None
    if value < 1:
        raise ConfigError(f"{variable}={value} must be at least 1")
    return value


def _traces_endpoint(environ: Mapping[str, str]) -> str:
    specific = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if specific:
        return specific
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_OTLP_ENDPOINT
    return base.rstrip("/") + _TRACES_PATH


def _check_protocol(environ: Mapping[str, str]) -> None:
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = environ.get(variable, "").strip()
        if raw:
            if raw != "http/protobuf":
                raise ConfigError(
                    f"{variable}={raw!r}: ouro-obs exports traces over OTLP/HTTP; set it to "
                    "'http/protobuf' and point the endpoint at the collector's HTTP port (4318)"
                )
            return


_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


def _ratio(raw: str, variable: str) -> float:
    try:
        ratio = float(raw)
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} is not a number between 0 and 1") from None
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"{variable}={raw!r} must be between 0 and 1 (0.1 keeps one in ten)")
    return ratio


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """What the ``OTEL_*`` (and Kubernetes downward-API) variables ask for.

    Build it with :meth:`from_env`; :func:`configure_tracing` does when not given one.
    """

    enabled: bool = True
    exporter: str = "otlp"
    endpoint: str = DEFAULT_OTLP_ENDPOINT + _TRACES_PATH
    sampler: str = "parentbased_traceidratio"
    sample_ratio: float = 1.0
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    schedule_delay_seconds: float = 5.0
    service_name: str = ""
    resource_attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TracingConfig:
        """Read the standard variables; a bad value raises :class:`ConfigError` naming it."""
        env = os.environ if environ is None else environ
        exporter = (env.get("OTEL_TRACES_EXPORTER", "").strip() or "otlp").split(",")[0].strip()
        if exporter not in {"otlp", "none", "console"}:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER={exporter!r}: use otlp (OTLP/HTTP), console or none"
            )
        if exporter == "otlp":
            _check_protocol(env)
        sampler = env.get("OTEL_TRACES_SAMPLER", "").strip() or "parentbased_traceidratio"
        if sampler not in _SAMPLERS:
            raise ConfigError(f"OTEL_TRACES_SAMPLER={sampler!r}: use one of {', '.join(_SAMPLERS)}")
        raw_ratio = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
        attributes = _key_values(
            env.get("OTEL_RESOURCE_ATTRIBUTES", ""), "OTEL_RESOURCE_ATTRIBUTES"
        )
        for variable, attribute in K8S_VARIABLES.items():
            value = env.get(variable, "").strip()
            if value:
                attributes[attribute] = value
        delay_ms = _positive_int(env, "OTEL_BSP_SCHEDULE_DELAY", 5000)
        max_queue = _positive_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        return cls(
            enabled=not _flag(env.get("OTEL_SDK_DISABLED")),
            exporter=exporter,
            endpoint=_traces_endpoint(env),
            sampler=sampler,
            sample_ratio=_ratio(raw_ratio, "OTEL_TRACES_SAMPLER_ARG") if raw_ratio else 1.0,
            max_queue_size=max_queue,
            max_export_batch_size=min(
                _positive_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), max_queue
            ),
            schedule_delay_seconds=delay_ms / 1000.0,
            service_name=env.get("OTEL_SERVICE_NAME", "").strip(),
            resource_attributes=attributes,
        )


def _sampler(name: str, ratio: float) -> Sampler:
    root: Sampler
    base = name.removeprefix("parentbased_")
    if base == "always_on":
        root = ALWAYS_ON
    elif base == "always_off":
        root = ALWAYS_OFF
    else:
        root = ALWAYS_ON if ratio >= 1.0 else TraceIdRatioBased(ratio)
    return ParentBased(root) if name.startswith("parentbased_") else root


def _resource(
    settings: ObservabilitySettings,
    config: TracingConfig,
    explicit: Mapping[str, str | None],
) -> Resource:
    attributes: dict[str, str] = dict(config.resource_attributes)
    default_name = ObservabilitySettings().service_name
    chosen = {
        "service.name": explicit.get("service.name")
        or (settings.service_name if settings.service_name != default_name else None)
        or config.service_name
        or attributes.get("service.name")
        or settings.service_name,
        "service.version": explicit.get("service.version") or settings.service_version,
        "deployment.environment.name": explicit.get("deployment.environment.name")
        or settings.environment,
    }
    for key, value in chosen.items():
        if value:
            attributes[key] = value
    # The pre-1.27 name, still what many backends group by.
    environment = attributes.get("deployment.environment.name")
    if environment:
        attributes.setdefault("deployment.environment", environment)
    return Resource.create(attributes)


# -- export --------------------------------------------------------------------------------

DropCounter = Callable[[str, int], None]


class BoundedBatchSpanProcessor(SpanProcessor):
    """Exports ended, sampled spans in batches from a bounded queue, on one worker thread.

    ``on_end`` only appends under a lock, so a slow, refusing or unreachable collector
    never slows a request: when the queue holds ``max_queue_size`` spans, a new span is
    dropped and counted (``queue_full``); a batch the exporter fails is counted as
    ``export_failed``. The first drop of each kind is logged, the rest only counted.
    (The SDK's ``BatchSpanProcessor`` logs a warning for every span it drops, which
    floods the logs exactly when the collector is down.)
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay_seconds: float = 5.0,
        shutdown_timeout_seconds: float = 5.0,
        on_drop: DropCounter | None = None,
    ) -> None:
        if max_queue_size < 1 or max_export_batch_size < 1:
            raise ConfigError("max_queue_size and max_export_batch_size must be at least 1")
        self._exporter = exporter
        self.max_queue_size = max_queue_size
        self._batch_size = min(max_export_batch_size, max_queue_size)
        self._delay = schedule_delay_seconds
        self._shutdown_timeout = shutdown_timeout_seconds
        self._on_drop = on_drop
        self._logged_reasons: set[str] = set()
        self.dropped: collections.Counter[str] = collections.Counter()
        self.exported = 0
        self._start_worker()
        reference = weakref.ref(self)

        def after_fork_in_child() -> None:
            processor = reference()
            if processor is not None:
                processor._start_worker()

        os.register_at_fork(after_in_child=after_fork_in_child)

    def _start_worker(self) -> None:
        # After a fork only the forking thread survives: the child needs its own worker.
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._lock = threading.Lock()
        self._export_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._stop_deadline = 0.0
        self._worker = threading.Thread(target=self._run, name="ouro-obs-span-export", daemon=True)
        self._worker.start()

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        span_context = span.context
        if span_context is None or not span_context.trace_flags.sampled:
            return
        with self._lock:
            if self._stopping:
                reason = "shutdown"
            elif len(self._queue) >= self.max_queue_size:
                reason = "queue_full"
            else:
                self._queue.append(span)
                if len(self._queue) >= self._batch_size:
                    self._wake.set()
                return
        self._drop(reason, 1)

    def _drop(self, reason: str, count: int) -> None:
        self.dropped[reason] += count
        if self._on_drop is not None:
            with contextlib.suppress(Exception):  # counting must never fail a request
                self._on_drop(reason, count)
        if reason not in self._logged_reasons:
            self._logged_reasons.add(reason)
            _log.warning(
                "ouro-obs dropped %d span(s): %s; further drops are only counted in "
                "ouro_obs_spans_dropped_total{reason=%r}",
                count,
                reason,
                reason,
            )

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._delay)
            self._wake.clear()
            if self._stopping:
                break
            self._export_batches(until_empty=False)
        # The last flush runs here, not in the thread calling shutdown(), so a stuck
        # export can only hold this daemon thread, never the process's exit.
        self._export_batches(until_empty=True, deadline=self._stop_deadline)

    def _take_batch(self) -> list[ReadableSpan]:
        with self._lock:
            count = min(len(self._queue), self._batch_size)
            return [self._queue.popleft() for _ in range(count)]

    def _export_batches(self, *, until_empty: bool, deadline: float | None = None) -> bool:
        """Export one batch, or every full batch, or (``until_empty``) all; True if emptied.

        With a ``deadline``, gives up when it passes, also while another export holds
        the exporter (a stuck collector keeps it for the exporter's whole timeout).
        """
        wait = -1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
        if not self._export_lock.acquire(timeout=wait):
            return False
        try:
            first = True
            while self._queue and (first or until_empty or len(self._queue) >= self._batch_size):
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                first = False
                self._export(self._take_batch())
            return not self._queue
        finally:
            self._export_lock.release()

    def _export(self, batch: Sequence[ReadableSpan]) -> None:
        if not batch:
            return
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            result = self._exporter.export(batch)
        except Exception:
            _log.exception("ouro-obs span exporter raised; the batch is dropped")
            result = SpanExportResult.FAILURE
        finally:
            otel_context.detach(token)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(batch)
        else:
            self._drop("export_failed", len(batch))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._export_batches(
            until_empty=True, deadline=time.monotonic() + timeout_millis / 1000.0
        )

    def shutdown(self) -> None:
        """Export what is queued within ``shutdown_timeout_seconds``, then stop.

        Bounded, so a dead collector cannot hold a terminating pod past its grace period;
        spans still queued then are counted as ``shutdown``.
        """
        with self._lock:
            if self._stopping:
                return
            self._stop_deadline = time.monotonic() + self._shutdown_timeout
            self._stopping = True
        self._wake.set()
        self._worker.join(timeout=self._shutdown_timeout)
        with self._lock:
            left = len(self._queue)
            self._queue.clear()
        if left:
            self._drop("shutdown", left)
        self._exporter.shutdown()


_drop_counters: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Counter]]
_drop_counters = weakref.WeakKeyDictionary()
_drop_counters_lock = threading.Lock()


def _drop_counter(registry: CollectorRegistry, namespace: str) -> Counter:
    """``ouro_obs_spans_dropped_total{reason}`` on ``registry``, created once per name."""
    name = f"{namespace}_ouro_obs_spans_dropped" if namespace else "ouro_obs_spans_dropped"
    with _drop_counters_lock:
        per_registry = _drop_counters.setdefault(registry, {})
        counter = per_registry.get(name)
        if counter is None:
            counter = per_registry[name] = Counter(
                name,
                "Finished spans that were never exported: queue_full, export_failed, shutdown.",
                ("reason",),
                registry=registry,
            )
        return counter


def _exporter(config: TracingConfig, endpoint: str | None, timeout: float | None) -> SpanExporter:
    if config.exporter == "console":
        return ConsoleSpanExporter()
    # Imported here: only an OTLP set-up pays for requests/protobuf at start-up.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    return OTLPSpanExporter(endpoint=endpoint or config.endpoint, timeout=timeout)


def configure_tracing(
    settings: ObservabilitySettings | None = None,
    *,
    config: TracingConfig | None = None,
    service_name: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    endpoint: str | None = None,
    sample_ratio: float | None = None,
    exporter: SpanExporter | None = None,
    max_queue_size: int | None = None,
    schedule_delay_seconds: float | None = None,
    export_timeout_seconds: float | None = None,
    registry: CollectorRegistry | None = None,
    set_global: bool = True,
) -> TracerProvider | None:
    """Build (and by default install globally) the process's ``TracerProvider``.

    ``settings`` default to ``ObservabilitySettings.from_env()``, ``config`` to
    :meth:`TracingConfig.from_env`; every other argument overrides both. Returns None,
    installing nothing, when ``settings.tracing`` is off or ``OTEL_SDK_DISABLED=true``.
    With ``OTEL_TRACES_EXPORTER=none`` spans are still made (trace ids reach the logs
    and exemplars) but not exported. ``endpoint`` is the full traces URL
    (``http://collector:4318/v1/traces``). Drops are counted on ``registry``
    (default: the global one).
    """
    settings = settings or ObservabilitySettings.from_env()
    config = config or TracingConfig.from_env()
    if not settings.tracing or not config.enabled:
        return None
    sampler: Sampler
    if sample_ratio is not None:
        sampler = ParentBased(_sampler("traceidratio", _ratio(str(sample_ratio), "sample_ratio")))
    else:
        sampler = _sampler(config.sampler, config.sample_ratio)
    resource = _resource(
        settings,
        config,
        {
            "service.name": service_name,
            "service.version": service_version,
            "deployment.environment.name": environment,
        },
    )
    provider = TracerProvider(resource=resource, sampler=sampler)
    if exporter is not None or config.exporter != "none":
        counter = _drop_counter(
            REGISTRY if registry is None else registry, settings.metrics_namespace
        )
        provider.add_span_processor(
            BoundedBatchSpanProcessor(
                exporter or _exporter(config, endpoint, export_timeout_seconds),
                max_queue_size=max_queue_size or config.max_queue_size,
                max_export_batch_size=config.max_export_batch_size,
                schedule_delay_seconds=(
                    config.schedule_delay_seconds
                    if schedule_delay_seconds is None
                    else schedule_delay_seconds
                ),
                on_drop=lambda reason, count: counter.labels(reason).inc(count),
            )
        )
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


# -- the request span ----------------------------------------------------------------------


_HOST_CACHE_LIMIT = 256
_hosts: dict[bytes, tuple[str, int | None]] = {}


def _host_and_port(host: bytes) -> tuple[str, int | None]:
    """``server.address`` and ``server.port`` from a Host header (a service sees few)."""
    parsed = _hosts.get(host)
    if parsed is not None:
        return parsed
    text = host.decode("latin-1")
    if text.endswith("]") or ":" not in text:  # bare name, or an IPv6 literal without port
        parsed = (text.strip("[]"), None)
    else:
        name, _, port = text.rpartition(":")
        parsed = (name.strip("[]"), int(port) if port.isdigit() else None)
    if len(_hosts) < _HOST_CACHE_LIMIT:
        _hosts[host] = parsed
    return parsed


class ServerSpans:
    """Starts and finishes the SERVER span of each request with the OTel API directly.

    When a recording SERVER span is already current (FastAPI's own telemetry, or
    OpenTelemetry's ASGI middleware outside this one), that span is used as it is,
    so a request never gets two server spans.
    """

    __slots__ = ("_provider", "_query_names", "_tracer", "header_fields")

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None,
        query_names: frozenset[str],
    ) -> None:
        self._provider = tracer_provider
        self._tracer: trace.Tracer | None = None
        self._query_names = query_names
        #: Request headers the global propagator reads (``traceparent``, ``tracestate``...).
        self.header_fields: frozenset[str] = frozenset()

    def resolve(self) -> bool:
        """Pick the tracer once, before the first request; False when nothing records spans."""
        provider = self._provider or trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return False
        from ouro_obs import __version__  # noqa: PLC0415 - the package imports this module

        self._tracer = provider.get_tracer(_INSTRUMENTATION_NAME, __version__)
        self.header_fields = frozenset(propagate.get_global_textmap().fields)
        return True

    def start(
        self,
        scope: Scope,
        method: str,
        carrier: dict[str, str] | None,
        host: bytes | None,
        user_agent: bytes | None,
    ) -> tuple[trace.Span, object | None]:
        """The request's span and the context token to detach (None for a span not ours)."""
        current = trace.get_current_span()
        if current.is_recording() and getattr(current, "kind", None) is SpanKind.SERVER:
            return current, None
        parent = propagate.extract(carrier) if carrier else None
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        if method == "_OTHER":
            attributes["http.request.method_original"] = scope["method"]
        query: bytes = scope.get("query_string", b"")
        if query:
            attributes["url.query"] = redact_query(query.decode("latin-1"), self._query_names)
        if host:
            address, port = _host_and_port(host)
            attributes["server.address"] = address
            if port is not None:
                attributes["server.port"] = port
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        if user_agent is not None:
            attributes["user_agent.original"] = user_agent.decode("latin-1")
        http_version = scope.get("http_version")
        if http_version:
            attributes["network.protocol.version"] = http_version
        assert self._tracer is not None
        span = self._tracer.start_span(
            "HTTP" if method == "_OTHER" else method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return span, token

    @staticmethod
    def finish(
        span: trace.Span,
        method: str,
        route: str | None,
        status: int | None,
        error: BaseException | None,
    ) -> None:
        """Name the span after its route, record the outcome, end it."""
        attributes: dict[str, Any] = {}
        if status is not None:
            attributes["http.response.status_code"] = status
        if route is not None:
            attributes["http.route"] = route
            span.update_name(f"{'HTTP' if method == '_OTHER' else method} {route}")
        if error is not None:
            attributes["error.type"] = error_type(error)
            span.record_exception(error)
            span.set_status(StatusCode.ERROR)
        elif status is not None and status >= 500:
            attributes["error.type"] = str(status)
            span.set_status(StatusCode.ERROR)
        span.set_attributes(attributes)
        span.end()

    @staticmethod
    def detach(token: object) -> None:
        # A context manager the app misused may have reset the context already.
        with contextlib.suppress(Exception):
            otel_context.detach(token)  # type: ignore[arg-type]
