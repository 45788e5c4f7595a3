"""The HTTP instruments on an injected ``CollectorRegistry``, and the cardinality guard.

Metric names and labels are the contract in DESIGN.md ("Metric contract"); the SLO
generator reads :class:`MetricNames` and the bucket lists from here so that the rules
query exactly what the middleware emits.
"""

from __future__ import annotations

import glob
import math
import os
import struct
import sys
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from threading import get_ident
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.values import MutexValue

from ouro_obs.config import ConfigError, ObservabilitySettings

__all__ = [
    "STANDARD_METHODS",
    "HttpMetrics",
    "MetricNames",
    "multiprocess_dir",
    "render_metrics",
]

#: Methods kept as label values; any other becomes ``_OTHER`` (OTel semantic conventions).
STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER_METHOD = "_OTHER"


@dataclass(frozen=True, slots=True)
class MetricNames:
    """The exposed metric names, with an optional namespace prefix."""

    namespace: str = ""

    def _name(self, base: str) -> str:
        return f"{self.namespace}_{base}" if self.namespace else base

    @property
    def requests_total(self) -> str:
        return self._name("http_requests_total")

    @property
    def request_duration(self) -> str:
        return self._name("http_request_duration_seconds")

    @property
    def requests_in_progress(self) -> str:
        return self._name("http_requests_in_progress")

    @property
    def request_size(self) -> str:
        return self._name("http_request_size_bytes")

    @property
    def response_size(self) -> str:
        return self._name("http_response_size_bytes")

    @property
    def websocket_connections_total(self) -> str:
        return self._name("websocket_connections_total")

    @property
    def label_overflow_total(self) -> str:
        return self._name("ouro_obs_label_overflow_total")

    @property
    def instrumentation_errors_total(self) -> str:
        return self._name("ouro_obs_instrumentation_errors_total")


def multiprocess_dir() -> str | None:
    """The prometheus_client multiprocess directory, when multiprocess mode is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def normalize_method(method: str) -> str:
    return method if method in STANDARD_METHODS else OTHER_METHOD


class _Instruments:
    """The metric families of one registry; built once per (registry, names, buckets)."""

    def __init__(
        self, registry: CollectorRegistry, names: MetricNames, settings: ObservabilitySettings
    ):
        self.signature = (names, settings.duration_buckets, settings.size_buckets)
        route_labels = ("method", "route")
        self.requests = Counter(
            names.requests_total.removesuffix("_total"),
            "HTTP requests completed, by method, route template and status code.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            names.request_duration,
            "Time from the request's arrival to its last response byte, in seconds.",
            route_labels,
            buckets=settings.duration_buckets,
            registry=registry,
        )
        self.in_progress = Gauge(
            names.requests_in_progress,
            "HTTP requests being served right now.",
            ("method",),
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.request_size = Histogram(
            names.request_size,
            "Request body bytes actually received.",
            route_labels,
            buckets=settings.size_buckets,
            registry=registry,
        )
        self.response_size = Histogram(
            names.response_size,
            "Response body bytes actually sent.",
            route_labels,
            buckets=settings.size_buckets,
            registry=registry,
        )
        self.websockets = Counter(
            names.websocket_connections_total.removesuffix("_total"),
            "WebSocket connections accepted or refused, by route template.",
            ("route",),
            registry=registry,
        )
        self.overflow = Counter(
            names.label_overflow_total.removesuffix("_total"),
            "Observations whose route label was replaced because a metric hit its label-set cap.",
            ("metric",),
            registry=registry,
        )
        self.errors = Counter(
            names.instrumentation_errors_total.removesuffix("_total"),
            "Errors inside ouro-obs instrumentation, swallowed so the request went on.",
            ("stage",),
            registry=registry,
        )


_instruments_by_registry: weakref.WeakKeyDictionary[
    CollectorRegistry, dict[MetricNames, _Instruments]
]
_instruments_by_registry = weakref.WeakKeyDictionary()
_instruments_lock = threading.Lock()


def _instruments_for(registry: CollectorRegistry, settings: ObservabilitySettings) -> _Instruments:
    """Reuse the families already on ``registry``, so building an app twice never raises."""
    names = MetricNames(settings.metrics_namespace)
    with _instruments_lock:
        per_registry = _instruments_by_registry.setdefault(registry, {})
        existing = per_registry.get(names)
        if existing is None:
            existing = per_registry[names] = _Instruments(registry, names, settings)
        elif existing.signature != (names, settings.duration_buckets, settings.size_buckets):
            raise ConfigError(
                f"metrics named {names.request_duration!r} already exist on this registry with "
                "other buckets; use the same buckets, another metrics_namespace, or another registry"
            )
        return existing


def _fast_observe(child: Any) -> Callable[[float], None]:
    """``child.observe`` without its per-call checks and linear bucket scan.

    prometheus_client's histogram child keeps ``_sum``, ``_buckets`` and
    ``_upper_bounds`` (ending in +Inf); a bisection finds the same bucket its loop
    would. Any other shape falls back to the public method.
    """
    total: Any = getattr(child, "_sum", None)
    buckets: Any = getattr(child, "_buckets", None)
    bounds: Any = getattr(child, "_upper_bounds", None)
    usable = (
        total is not None
        and isinstance(buckets, list)
        and isinstance(bounds, list)
        and len(buckets) == len(bounds)
        and bounds[-1] == float("inf")
    )
    if not usable:  # pragma: no cover - a future prometheus_client
        public: Callable[[float], None] = child.observe
        return public

    def fast(amount: float) -> None:
        total.inc(amount)
        buckets[bisect_left(bounds, amount)].inc(1)

    return fast


def _fast_inc(child: Any) -> Callable[[float], None]:
    """``child.inc`` (counter or gauge) without its per-call checks."""
    value = getattr(child, "_value", None)
    inc: Callable[[float], None] = child.inc if value is None else value.inc
    return inc


class _Cells:
    """The raw value cells of one label set, for lock-free increments.

    prometheus_client guards every increment with a lock so that any thread may
    record. The middleware records from the event loop's thread only, so when the
    values are plain in-process ``MutexValue`` cells (not multiprocess files) and the
    interpreter has a GIL, HttpMetrics adds to them directly; a call from any other
    thread takes the locked path.
    """

    __slots__ = (
        "count",
        "duration_buckets",
        "duration_sum",
        "request_buckets",
        "request_sum",
        "response_buckets",
        "response_sum",
    )

    def __init__(self, count: Any, duration: Any, request_size: Any, response_size: Any) -> None:
        self.count = count._value
        self.duration_sum, self.duration_buckets = duration._sum, duration._buckets
        self.request_sum, self.request_buckets = request_size._sum, request_size._buckets
        self.response_sum, self.response_buckets = response_size._sum, response_size._buckets

    @staticmethod
    def usable(*children: Any) -> bool:
        if not _LOCK_FREE:
            return False
        for child in children:
            cells = [getattr(child, "_value", None), getattr(child, "_sum", None)]
            cells.extend(getattr(child, "_buckets", None) or ())
            if not any(type(cell) is MutexValue for cell in cells):
                return False
            if not all(cell is None or type(cell) is MutexValue for cell in cells):
                return False
        return True


#: Lock-free increments need the GIL (a free-threaded build could lose updates).
_LOCK_FREE = bool(getattr(sys, "_is_gil_enabled", lambda: True)())


class _Series:
    """The children of one (method, route, status) label set, resolved once."""

    __slots__ = (
        "cells",
        "count",
        "duration",
        "observe_duration",
        "observe_request_size",
        "observe_response_size",
        "requests",
    )

    def __init__(self, instruments: _Instruments, method: str, route: str, status: str):
        self.requests = instruments.requests.labels(method, route, status)
        self.duration = instruments.duration.labels(method, route)
        request_size = instruments.request_size.labels(method, route)
        response_size = instruments.response_size.labels(method, route)
        self.count = _fast_inc(self.requests)
        self.observe_duration = _fast_observe(self.duration)
        self.observe_request_size = _fast_observe(request_size)
        self.observe_response_size = _fast_observe(response_size)
        children = (self.requests, self.duration, request_size, response_size)
        self.cells = _Cells(*children) if _Cells.usable(*children) else None


class HttpMetrics:
    """Records finished requests; never creates more than ``max_label_sets`` series per metric.

    A label set beyond the cap has its route replaced by ``overflow_label`` and is counted
    in ``ouro_obs_label_overflow_total{metric=...}``.
    """

    def __init__(self, settings: ObservabilitySettings, registry: CollectorRegistry | None = None):
        self.registry = REGISTRY if registry is None else registry
        self._instruments = _instruments_for(self.registry, settings)
        self._cap = settings.max_label_sets
        self._overflow_label = settings.overflow_label
        directory = multiprocess_dir()
        if directory is not None and not os.path.isdir(directory):
            raise ConfigError(
                f"PROMETHEUS_MULTIPROC_DIR={directory!r} is not a directory; create it (empty) "
                "before the workers start, or unset the variable for single-process metrics"
            )
        self._exemplars = settings.exemplars and directory is None
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._route_label_sets: set[tuple[str, str]] = set()
        self._in_progress: dict[str, Callable[[float], None]] = {}
        self._lock = threading.Lock()
        self._duration_bounds = [*settings.duration_buckets, math.inf]
        self._size_bounds = [*settings.size_buckets, math.inf]
        #: The thread allowed lock-free increments: the first one to build a series,
        #: in practice the event loop's.
        self._owner_thread: int | None = None

    def started(self, method: str) -> None:
        add = self._in_progress.get(method)
        if add is None:
            add = self._in_progress[method] = _fast_inc(
                self._instruments.in_progress.labels(method)
            )
        add(1)

    def ended(self, method: str) -> None:
        self._in_progress[method](-1)

    def observe(
        self,
        method: str,
        route: str,
        status: int,
        duration_seconds: float,
        request_bytes: int,
        response_bytes: int,
        trace_id: str | None = None,
    ) -> None:
        """Record one finished request; ``method`` must already be normalized."""
        key = (method, route, str(status))
        series = self._series.get(key)
        if series is None:
            series = self._admit(key)
        cells = series.cells
        if cells is not None and trace_id is None and get_ident() == self._owner_thread:
            cells.count._value += 1
            cells.duration_sum._value += duration_seconds
            cells.duration_buckets[bisect_left(self._duration_bounds, duration_seconds)]._value += 1
            cells.request_sum._value += request_bytes
            cells.request_buckets[bisect_left(self._size_bounds, request_bytes)]._value += 1
            cells.response_sum._value += response_bytes
            cells.response_buckets[bisect_left(self._size_bounds, response_bytes)]._value += 1
            return
        if trace_id is not None and self._exemplars:
            exemplar = {"trace_id": trace_id}
            series.requests.inc(1, exemplar)
            series.duration.observe(duration_seconds, exemplar)
        else:
            series.count(1)
            series.observe_duration(duration_seconds)
        series.observe_request_size(request_bytes)
        series.observe_response_size(response_bytes)

    def _admit(self, key: tuple[str, str, str]) -> _Series:
        method, route, status = key
        with self._lock:
            series = self._series.get(key)
            if series is not None:
                return series
            new_route_set = (method, route) not in self._route_label_sets
            over_histograms = new_route_set and len(self._route_label_sets) >= self._cap
            if over_histograms or len(self._series) >= self._cap:
                return self._overflow(key, histograms=over_histograms)
            series = _Series(self._instruments, method, route, status)
            if self._owner_thread is None:
                self._owner_thread = get_ident()
            self._series[key] = series
            self._route_label_sets.add((method, route))
            return series

    def _overflow(self, key: tuple[str, str, str], *, histograms: bool) -> _Series:
        """The series for an over-cap label set; not cached under ``key`` to stay bounded."""
        method, _route, status = key
        overflow_key = (method, self._overflow_label, status)
        metric = (
            self._instruments.duration._name if histograms else self._instruments.requests._name
        )
        self._instruments.overflow.labels(metric).inc()
        series = self._series.get(overflow_key)
        if series is None:
            series = _Series(self._instruments, method, self._overflow_label, status)
            # Overflow series are few (methods x statuses) and deliberately exceed the cap.
            self._series[overflow_key] = series
            self._route_label_sets.add((method, self._overflow_label))
        return series

    def websocket(self, route: str) -> None:
        self._instruments.websockets.labels(route).inc()

    def instrumentation_error(self, stage: str) -> None:
        self._instruments.errors.labels(stage).inc()


def render_metrics(registry: CollectorRegistry | None, accept: str) -> tuple[bytes, str]:
    """The exposition body and content type for a scrape with ``Accept: accept``.

    OpenMetrics when the scraper asks for it (exemplars are only visible there);
    in multiprocess mode, the aggregate of every worker's files.
    """
    encoder, content_type = choose_encoder(accept)
    directory = multiprocess_dir()
    if directory is None:
        return encoder(REGISTRY if registry is None else registry), content_type
    return _render_multiprocess(encoder, directory), content_type


def _render_multiprocess(encoder: Callable[[CollectorRegistry], bytes], directory: str) -> bytes:
    # A worker that is just starting may have created its file but not yet written
    # its header; reading it then fails. The file is complete microseconds later.
    for attempt in range(_MULTIPROCESS_READ_ATTEMPTS):
        aggregate = CollectorRegistry()
        aggregate.register(_WorkerFiles(directory))
        try:
            return encoder(aggregate)
        except (struct.error, ValueError):
            if attempt == _MULTIPROCESS_READ_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


_MULTIPROCESS_READ_ATTEMPTS = 5
#: A worker's file starts with a 4-byte "used" counter padded to 8 bytes.
_MMAP_HEADER_BYTES = 8


class _WorkerFiles(Collector):
    """The workers' ``*.db`` files merged, skipping files still being created (empty)."""

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def collect(self) -> Iterable[Metric]:
        files = []
        for path in glob.glob(os.path.join(self._directory, "*.db")):
            try:
                if os.path.getsize(path) >= _MMAP_HEADER_BYTES:
                    files.append(path)
            except OSError:
                continue  # a live gauge file removed by child_exit since the glob
        merged: Iterable[Metric] = MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        return merged


def bucket_boundaries(settings: ObservabilitySettings | None = None) -> Sequence[float]:
    """The duration bucket boundaries the middleware exposes (what SLO thresholds must use)."""
    return (settings or ObservabilitySettings()).duration_buckets
