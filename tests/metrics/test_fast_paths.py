"""The metrics hot path records exactly what prometheus_client's public API would."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Histogram

from ouro_obs.config import ObservabilitySettings
from ouro_obs.contract import DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS
from ouro_obs.metrics import HttpMetrics


def buckets(registry: CollectorRegistry, sample_name: str) -> dict[str, float]:
    """Cumulative bucket counts of ``sample_name`` by ``le``."""
    return {
        sample.labels["le"]: sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == sample_name
    }


def test_fast_histogram_observation_lands_in_the_same_buckets_as_observe() -> None:
    values = [0.0, 0.001, *DEFAULT_DURATION_BUCKETS, 0.0051, 0.3, 9.999, 10.0001, 120.0]
    ours = CollectorRegistry()
    metrics = HttpMetrics(ObservabilitySettings(), ours)
    reference_registry = CollectorRegistry()
    reference = Histogram(
        "http_request_duration_seconds",
        "x",
        ["method", "route"],
        buckets=DEFAULT_DURATION_BUCKETS,
        registry=reference_registry,
    )
    for value in values:
        metrics.started("GET")
        metrics.observe("GET", "/r", 200, value, 1, 2)
        metrics.ended("GET")
        reference.labels("GET", "/r").observe(value)

    assert buckets(ours, "http_request_duration_seconds_bucket") == buckets(
        reference_registry, "http_request_duration_seconds_bucket"
    )
    assert ours.get_sample_value(
        "http_request_duration_seconds_sum", {"method": "GET", "route": "/r"}
    ) == sum(values)
    assert ours.get_sample_value(
        "http_requests_total", {"method": "GET", "route": "/r", "status": "200"}
    ) == len(values)
    assert ours.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0


def test_size_histograms_and_a_second_thread_record_exactly_what_the_public_api_would() -> None:
    """The lock-free path serves the first thread; any other thread takes the locked one."""
    sizes = [0, 1, 99, 100, 101, 4_000, 10_000_000, 10_000_001]
    ours = CollectorRegistry()
    metrics = HttpMetrics(ObservabilitySettings(), ours)
    metrics.observe("GET", "/r", 200, 0.1, 0, 0)  # this thread owns the lock-free path now

    def record_elsewhere() -> None:
        for size in sizes:
            metrics.observe("GET", "/r", 200, 0.1, size, size)

    worker = threading.Thread(target=record_elsewhere)
    worker.start()
    worker.join()
    for size in sizes:
        metrics.observe("GET", "/r", 200, 0.1, size, size)
    reference_registry = CollectorRegistry()
    reference = Histogram(
        "http_request_size_bytes",
        "x",
        ["method", "route"],
        buckets=DEFAULT_SIZE_BUCKETS,
        registry=reference_registry,
    )
    for size in [0, *sizes, *sizes]:
        reference.labels("GET", "/r").observe(size)

    assert buckets(ours, "http_request_size_bytes_bucket") == buckets(
        reference_registry, "http_request_size_bytes_bucket"
    )
    labels = {"method": "GET", "route": "/r", "status": "200"}
    assert ours.get_sample_value("http_requests_total", labels) == 1 + 2 * len(sizes)
