"""Recording HTTP requests into the families of :mod:`ouro_obs.metrics.families`, capped.

:class:`HttpMetrics` resolves each label set's children once and never makes more than
``max_label_sets`` of them; the hot path's shortcuts are in :mod:`ouro_obs.metrics.fastpath`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from threading import get_ident

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from ouro_obs.config import ConfigError, ObservabilitySettings
from ouro_obs.metrics.families import Instruments, instruments_for
from ouro_obs.metrics.fastpath import (
    FileCells,
    LockFreeCells,
    fast_inc,
    fast_observe,
    histogram_child,
    lock_free_adder,
    lock_free_cells,
)
from ouro_obs.metrics.labels import RequestLabelValues

__all__ = ["HttpMetrics", "RouteInFlight"]

#: (method, route, status), with the request labels' values appended when declared.
_SeriesKey = tuple[str, str, int] | tuple[str, str, int, tuple[str, ...]]


def _parts(key: _SeriesKey) -> tuple[str, str, int, tuple[str, ...]]:
    if len(key) == 3:
        return (*key, ())
    return key


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

    def __init__(
        self,
        instruments: Instruments,
        method: str,
        route: str,
        status: str,
        extra: tuple[str, ...],
        owner_thread: int,
        duration_buckets: tuple[float, ...] | None,
        in_flight: Gauge | None,
    ):
        self.requests = instruments.requests.labels(method, route, status, *extra)
        if duration_buckets is None:
            self.duration = instruments.duration.labels(method, route, *extra)
        else:  # the route's own buckets, under the same metric name
            label_values = (method, route, *extra)
            self.duration = histogram_child(instruments.duration, label_values, duration_buckets)
        request_size = instruments.request_size.labels(method, route, *extra)
        response_size = instruments.response_size.labels(method, route, *extra)
        self.count = fast_inc(self.requests)
        self.observe_duration = fast_observe(self.duration)
        self.observe_request_size = fast_observe(request_size)
        self.observe_response_size = fast_observe(response_size)
        #: With ``in_flight``, recording through the cells also ends the in-flight count.
        self.cells: LockFreeCells | FileCells | None = lock_free_cells(
            owner_thread, self.requests, self.duration, request_size, response_size, in_flight
        )


def _no_count(amount: float) -> None:
    """The in-flight increment when the gauge counts by route (:class:`RouteInFlight` does)."""


class HttpMetrics:
    """Records finished requests; never creates more than ``max_label_sets`` series per metric.

    A label set beyond the cap has its route replaced by ``overflow_label`` and is counted
    in ``ouro_obs_label_overflow_total{metric=...}``. In multiprocess mode
    (``settings.multiprocess_dir``) the directory must exist, and exemplars are off.
    """

    def __init__(self, settings: ObservabilitySettings, registry: CollectorRegistry | None = None):
        self.registry = REGISTRY if registry is None else registry
        self._instruments = instruments_for(
            self.registry, settings, http=settings.metrics_backend != "opentelemetry"
        )
        self._cap = settings.max_label_sets
        self._overflow_label = settings.overflow_label
        directory = settings.multiprocess_dir
        if directory is not None and not os.path.isdir(directory):
            raise ConfigError(
                f"PROMETHEUS_MULTIPROC_DIR={directory!r} is not a directory; create it (empty) "
                "before the workers start, or unset the variable for single-process metrics"
            )
        self._exemplars = settings.exemplars and directory is None
        #: Record ``status`` as its class: the series key then holds 200 for every 2xx.
        self._status_classes = settings.status_class_label
        self._static_values = tuple(value for _, value in settings.static_label_pairs)
        #: The request labels' values of a finished request; None when none are declared.
        self.request_labels: RequestLabelValues | None = None
        if settings.request_labels:
            self.request_labels = RequestLabelValues(
                settings.request_labels,
                overflow_label=settings.overflow_label,
                count_overflow=self._label_overflowed,
                count_error=self.instrumentation_error,
            )
        #: Duration buckets of the routes that have their own (``route_duration_buckets``).
        self._route_buckets = dict(settings.route_duration_bucket_pairs)
        #: The in-flight gauge by (method, route); None when it is by method only.
        self.route_in_flight: RouteInFlight | None = None
        if settings.inflight_by_route:
            self.route_in_flight = RouteInFlight(
                self._instruments, self._static_values, settings, self.label_sets_overflowed
            )
        self._series: dict[_SeriesKey, _Series] = {}
        self._route_label_sets: set[tuple[str, str, tuple[str, ...]]] = set()
        self._in_progress: dict[str, Callable[[float], None]] = {}
        self._lock = threading.Lock()
        #: The thread allowed lock-free increments: the first one to build a series,
        #: in practice the event loop's.
        self._owner_thread: int | None = None

    def started(self, method: str) -> None:
        """Count a request in flight; by route, :attr:`route_in_flight` does (this does not)."""
        self.in_progress_adder(method)(1)

    def in_progress_adder(self, method: str) -> Callable[[float], None]:
        """What :meth:`started` adds to for ``method`` (nothing when it counts by route)."""
        if self.route_in_flight is not None:
            return _no_count
        add = self._in_progress.get(method)
        return self._in_progress_adder(method) if add is None else add

    def ended(self, method: str) -> None:
        if self.route_in_flight is None:
            self._in_progress[method](-1)

    def _in_progress_adder(self, method: str) -> Callable[[float], None]:
        with self._lock:
            if self._owner_thread is None:
                self._owner_thread = get_ident()
            add = self._in_progress.get(method)
            if add is None:
                gauge = self._in_progress_child(method)
                add = self._in_progress[method] = lock_free_adder(self._owner_thread, gauge)
            return add

    def _in_progress_child(self, method: str) -> Gauge:
        return self._instruments.in_progress.labels(method, *self._static_values)

    def observe(
        self,
        method: str,
        route: str,
        status: int,
        duration_seconds: float,
        request_bytes: int,
        response_bytes: int,
        trace_id: str | None = None,
        labels: tuple[str, ...] = (),
        ending: bool = False,
    ) -> None:
        """Record one finished request; ``method`` must already be normalized.

        ``labels`` are the request labels' values (:attr:`request_labels`), if declared.
        ``ending``: the request also leaves the in-flight count it :meth:`started` (in the
        same step as the rest, through the label set's lock-free cells, when it can).
        """
        if self._status_classes:
            status -= status % 100
        key: _SeriesKey = (method, route, status, labels) if labels else (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._admit(key)
        cells = series.cells
        # The cells leave the in-flight count themselves when it is by method (they hold its
        # cell then); by route, RouteInFlight counts it and :meth:`ended` does nothing.
        if cells is not None and cells.record(
            duration_seconds, request_bytes, response_bytes, ending
        ):
            if trace_id is not None and self._exemplars:
                cells.mark(trace_id, duration_seconds)
            return
        if ending:
            self.ended(method)
        if trace_id is not None and self._exemplars:
            exemplar = {"trace_id": trace_id}
            series.requests.inc(1, exemplar)
            series.duration.observe(duration_seconds, exemplar)
        else:
            series.count(1)
            series.observe_duration(duration_seconds)
        series.observe_request_size(request_bytes)
        series.observe_response_size(response_bytes)

    def _admit(self, key: _SeriesKey) -> _Series:
        method, route, status, labels = _parts(key)
        with self._lock:
            series = self._series.get(key)
            if series is not None:
                return series
            if self._owner_thread is None:
                self._owner_thread = get_ident()
            new_route_set = (method, route, labels) not in self._route_label_sets
            over_histograms = new_route_set and len(self._route_label_sets) >= self._cap
            if over_histograms or len(self._series) >= self._cap:
                return self._overflow(key, histograms=over_histograms)
            series = self._new_series(method, route, status, labels)
            self._series[key] = series
            self._route_label_sets.add((method, route, labels))
            return series

    def _new_series(self, method: str, route: str, status: int, labels: tuple[str, ...]) -> _Series:
        assert self._owner_thread is not None
        extra = self._static_values + labels
        status_label = f"{status // 100}xx" if self._status_classes else str(status)
        buckets = self._route_buckets.get(route)
        in_flight = None if self.route_in_flight is not None else self._in_progress_child(method)
        return _Series(
            self._instruments,
            method,
            route,
            status_label,
            extra,
            self._owner_thread,
            buckets,
            in_flight,
        )

    def _overflow(self, key: _SeriesKey, *, histograms: bool) -> _Series:
        """The series for an over-cap label set; not cached under ``key`` to stay bounded."""
        method, _route, status, labels = _parts(key)
        overflow_key: _SeriesKey = (method, self._overflow_label, status, labels)
        instruments = self._instruments
        metric = instruments.duration_name if histograms else instruments.requests_name
        instruments.overflow.labels(metric).inc()
        series = self._series.get(overflow_key)
        if series is None:
            series = self._new_series(method, self._overflow_label, status, labels)
            # Overflow series are few (methods x statuses x bounded request-label values)
            # and deliberately exceed the cap.
            self._series[overflow_key] = series
            self._route_label_sets.add((method, self._overflow_label, labels))
        return series

    def _label_overflowed(self, label: str) -> None:
        self._instruments.request_label_overflow.labels(label).inc()

    def websocket(self, route: str) -> None:
        """Count an accepted WebSocket connection."""
        self._instruments.websockets.labels(route, *self._static_values).inc()

    def websocket_messages(self, route: str) -> tuple[Callable[[float], None], ...]:
        """The increments of the (received, sent) message counters of ``route``."""
        messages = self._instruments.websocket_messages
        static = self._static_values
        return (
            fast_inc(messages.labels(route, "in", *static)),
            fast_inc(messages.labels(route, "out", *static)),
        )

    def websocket_closed(self, route: str, close_code: str, duration_seconds: float) -> None:
        """Count an ended WebSocket connection and observe how long it lasted."""
        instruments = self._instruments
        static = self._static_values
        instruments.websockets_closed.labels(route, close_code, *static).inc()
        instruments.websocket_duration.labels(route, *static).observe(duration_seconds)

    def instrumentation_error(self, stage: str) -> None:
        self._instruments.errors.labels(stage).inc()

    def label_sets_overflowed(self, metric: str) -> None:
        """Count one observation of ``metric`` sent to the overflow route (another backend's)."""
        self._instruments.overflow.labels(metric).inc()


class RouteInFlight:
    """The in-flight gauge by (method, route): ``settings.inflight_by_route``.

    The pipeline calls :meth:`started` once the route is known (before the app runs) and
    :meth:`ended` with the same labels. At most ``max_label_sets`` (method, route) pairs
    get a series; the others share the overflow route's and are counted in
    ``ouro_obs_label_overflow_total{metric="http_requests_in_progress"}``.
    """

    __slots__ = (
        "_adders",
        "_cap",
        "_count_overflow",
        "_gauge",
        "_lock",
        "_name",
        "_overflow",
        "_static",
    )

    def __init__(
        self,
        instruments: Instruments,
        static_values: tuple[str, ...],
        settings: ObservabilitySettings,
        count_overflow: Callable[[str], None],
    ) -> None:
        self._gauge = instruments.in_progress
        self._name = instruments.in_progress_name
        self._cap = settings.max_label_sets
        self._overflow = settings.overflow_label
        self._count_overflow = count_overflow
        self._static = static_values
        self._adders: dict[tuple[str, str], Callable[[float], None]] = {}
        self._lock = threading.Lock()

    def started(self, method: str, route: str) -> None:
        add = self._adders.get((method, route))
        if add is None:
            add = self._admit(method, route)
        add(1)

    def ended(self, method: str, route: str) -> None:
        add = self._adders.get((method, route))
        if add is None:  # over the cap when it started, so it still is
            add = self._adder(method, self._overflow)
        add(-1)

    def _admit(self, method: str, route: str) -> Callable[[float], None]:
        with self._lock:
            add = self._adders.get((method, route))
            if add is not None:
                return add
            if len(self._adders) < self._cap:
                return self._adder(method, route)
            overflow = self._adder(method, self._overflow)
        self._count_overflow(self._name)
        return overflow

    def _adder(self, method: str, route: str) -> Callable[[float], None]:
        """The (cached) increment of one series; over-cap routes are never cached."""
        add = self._adders.get((method, route))
        if add is None:
            add = fast_inc(self._gauge.labels(method, route, *self._static))
            self._adders[(method, route)] = add
        return add
