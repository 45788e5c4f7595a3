"""The prometheus_client internals the metrics fast path relies on, and what it records.

If the first test fails after a prometheus_client upgrade, adapt
``src/ouro_obs/metrics/fastpath.py`` and ``filecells.py`` (the only modules touching those
internals) or pin the
version it was written for; its message names the attribute and the installed version.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ouro_obs.config import ObservabilitySettings
from ouro_obs.contract import DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS
from ouro_obs.metrics import HttpMetrics, fastpath

#: (method, route, status, duration, request bytes, response bytes): bucket edges included.
REQUESTS = [
    ("GET", "/items/{id}", 200, duration, size, 2 * size)
    for duration, size in zip(
        [0.0, 0.004, 0.005, 0.0051, 0.3, 1.0, 9.999, 10.0, 10.0001, 120.0],
        [0, 1, 99, 100, 101, 4_000, 1_000_000, 10_000_000, 10_000_001, 64_000],
        strict=True,
    )
] + [("POST", "/orders", 201, 0.02, 512, 64), ("GET", "/items/{id}", 404, 0.001, 0, 9)]


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but the ``_created`` timestamps, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def recorded_by_http_metrics() -> tuple[CollectorRegistry, HttpMetrics]:
    registry = CollectorRegistry()
    metrics = HttpMetrics(ObservabilitySettings(), registry)
    for method, route, status, duration, request_bytes, response_bytes in REQUESTS:
        metrics.started(method)
        metrics.observe(method, route, status, duration, request_bytes, response_bytes)
        metrics.ended(method)
    return registry, metrics


def recorded_by_the_public_api() -> CollectorRegistry:
    """The same requests through prometheus_client's public methods only."""
    registry = CollectorRegistry()
    requests = Counter("http_requests", "x", ["method", "route", "status"], registry=registry)
    route_labels = ["method", "route"]
    duration = Histogram(
        "http_request_duration_seconds",
        "x",
        route_labels,
        buckets=DEFAULT_DURATION_BUCKETS,
        registry=registry,
    )
    in_progress = Gauge("http_requests_in_progress", "x", ["method"], registry=registry)
    sizes = {
        name: Histogram(name, "x", route_labels, buckets=DEFAULT_SIZE_BUCKETS, registry=registry)
        for name in ("http_request_size_bytes", "http_response_size_bytes")
    }
    for method, route, status, seconds, request_bytes, response_bytes in REQUESTS:
        in_progress.labels(method).inc()
        requests.labels(method, route, str(status)).inc()
        duration.labels(method, route).observe(seconds)
        sizes["http_request_size_bytes"].labels(method, route).observe(request_bytes)
        sizes["http_response_size_bytes"].labels(method, route).observe(response_bytes)
        in_progress.labels(method).dec()
    return registry


def own_series(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The request series only (HttpMetrics also exposes its overflow and error counters)."""
    reference_names = {name for name, _labels in samples(recorded_by_the_public_api())}
    return {key: value for key, value in samples(registry).items() if key[0] in reference_names}


def test_the_installed_prometheus_client_has_the_internals_the_fast_path_relies_on() -> None:
    problem = fastpath.internals_problem()
    assert problem is None, problem


def test_the_lock_free_path_serves_the_owner_thread_of_this_interpreter() -> None:
    """Here (in-process cells, a GIL build) the lock-free path is the one actually taken."""
    _registry, metrics = recorded_by_http_metrics()
    assert fastpath.LOCK_FREE_SUPPORTED
    assert all(series.cells is not None for series in metrics._series.values())


def test_the_lock_free_path_records_exactly_what_the_public_api_records() -> None:
    registry, _metrics = recorded_by_http_metrics()
    assert own_series(registry) == samples(recorded_by_the_public_api())


def test_the_locked_fallback_records_exactly_what_the_public_api_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastpath, "LOCK_FREE_SUPPORTED", False)
    registry, metrics = recorded_by_http_metrics()
    assert all(series.cells is None for series in metrics._series.values())
    assert own_series(registry) == samples(recorded_by_the_public_api())


def test_another_thread_takes_the_locked_path_and_loses_nothing() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(ObservabilitySettings(), registry)
    metrics.observe("GET", "/r", 200, 0.1, 10, 10)  # this thread owns the lock-free path now
    observations = 2_000

    def record(count: int) -> None:
        for _ in range(count):
            metrics.observe("GET", "/r", 200, 0.1, 10, 10)

    others = [threading.Thread(target=record, args=(observations,)) for _ in range(3)]
    for thread in others:
        thread.start()
    record(observations)
    for thread in others:
        thread.join()
    labels = {"method": "GET", "route": "/r", "status": "200"}
    assert registry.get_sample_value("http_requests_total", labels) == 1 + 4 * observations


def _histograms_with_tuple_bounds(original: Callable[[Any], None]) -> Callable[[Any], None]:
    def metric_init(self: Any) -> None:
        original(self)
        self._upper_bounds = tuple(self._upper_bounds)

    return metric_init


def test_a_changed_internal_is_named_with_the_version_and_the_public_path_takes_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A prometheus_client whose histogram keeps its bounds elsewhere: loud test, right numbers."""
    monkeypatch.setattr(
        Histogram, "_metric_init", _histograms_with_tuple_bounds(Histogram._metric_init)
    )
    problem = fastpath.internals_problem()
    assert problem is not None
    assert "'_upper_bounds'" in problem
    assert f"prometheus_client {importlib.metadata.version('prometheus_client')}" in problem
    registry, metrics = recorded_by_http_metrics()
    assert all(series.cells is None for series in metrics._series.values())
    assert own_series(registry) == samples(recorded_by_the_public_api())
