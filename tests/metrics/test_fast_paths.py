"""The metrics hot path records exactly what prometheus_client's public API would."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Histogram

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


def test_an_ending_observation_records_what_the_public_api_would_and_ends_the_in_flight() -> None:
    """The one-step path (the in-flight count, the first buckets by one comparison) on the
    owner thread, and the locked path on another, around the first bounds."""
    cases = [(0.0, 0, 0), (0.005, 100, 100), (0.0051, 101, 99), (0.3, 4_000, 1), (11.0, 0, 5)]
    ours = CollectorRegistry()
    metrics = HttpMetrics(ObservabilitySettings(), ours)

    def serve() -> None:
        for duration, request_bytes, response_bytes in cases:
            metrics.started("GET")
            metrics.observe("GET", "/r", 200, duration, request_bytes, response_bytes, ending=True)

    serve()  # the first thread to record owns the lock-free path
    metrics.started("GET")
    assert ours.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 1
    worker = threading.Thread(target=serve)
    worker.start()
    worker.join()
    metrics.observe("GET", "/r", 200, 0.1, 0, 0, ending=True)
    reference_registry = CollectorRegistry()
    durations, requests, responses = (
        Histogram(name, "x", ["method", "route"], buckets=bounds, registry=reference_registry)
        for name, bounds in [
            ("http_request_duration_seconds", DEFAULT_DURATION_BUCKETS),
            ("http_request_size_bytes", DEFAULT_SIZE_BUCKETS),
            ("http_response_size_bytes", DEFAULT_SIZE_BUCKETS),
        ]
    )
    for duration, request_bytes, response_bytes in [*cases, *cases, (0.1, 0, 0)]:
        durations.labels("GET", "/r").observe(duration)
        requests.labels("GET", "/r").observe(request_bytes)
        responses.labels("GET", "/r").observe(response_bytes)

    for name in ("duration_seconds", "size_bytes"):
        sample = f"http_request_{name}_bucket"
        assert buckets(ours, sample) == buckets(reference_registry, sample)
    sample = "http_response_size_bytes_bucket"
    assert buckets(ours, sample) == buckets(reference_registry, sample)
    assert ours.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0
    labels = {"method": "GET", "route": "/r", "status": "200"}
    assert ours.get_sample_value("http_requests_total", labels) == 2 * len(cases) + 1


def exemplars(registry: CollectorRegistry) -> dict[tuple[str, str], tuple[dict[str, str], float]]:
    """Each sample's exemplar (labels, value) by sample name and ``le``; times left out."""
    return {
        (sample.name, sample.labels.get("le", "")): (sample.exemplar.labels, sample.exemplar.value)
        for metric in registry.collect()
        for sample in metric.samples
        if sample.exemplar is not None
    }


def test_exemplars_are_what_the_public_api_sets_on_the_owner_thread_and_off_it() -> None:
    """A sampled request's exemplars (count, duration bucket), lock-free on the owner thread
    and locked on another, around the first bound and up to +Inf; the latest one wins."""
    cases: list[tuple[float, str | None]] = [
        (0.0, "a" * 32),
        (0.005, "b" * 32),
        (0.0051, "c" * 32),
        (0.3, "d" * 32),
    ]
    last = (11.0, "e" * 32)
    ours = CollectorRegistry()
    metrics = HttpMetrics(ObservabilitySettings(), ours)
    for duration, trace_id in cases:
        metrics.observe("GET", "/r", 200, duration, 0, 0, trace_id)
    worker = threading.Thread(target=metrics.observe, args=("GET", "/r", 200, *last[:1], 0, 0))
    worker.start()
    worker.join()
    elsewhere = threading.Thread(
        target=metrics.observe, args=("GET", "/r", 200, 0.3, 0, 0, "f" * 32)
    )
    elsewhere.start()
    elsewhere.join()
    metrics.observe("GET", "/r", 200, *last[:1], 0, 0, last[1])
    reference_registry = CollectorRegistry()
    requests = Counter(
        "http_requests", "x", ["method", "route", "status"], registry=reference_registry
    )
    durations = Histogram(
        "http_request_duration_seconds",
        "x",
        ["method", "route"],
        buckets=DEFAULT_DURATION_BUCKETS,
        registry=reference_registry,
    )
    for duration, trace_id in [*cases, (last[0], None), (0.3, "f" * 32), last]:
        exemplar = None if trace_id is None else {"trace_id": trace_id}
        requests.labels("GET", "/r", "200").inc(1, exemplar)
        durations.labels("GET", "/r").observe(duration, exemplar)

    found = exemplars(ours)
    assert found == exemplars(reference_registry)
    assert found[("http_requests_total", "")] == ({"trace_id": "e" * 32}, 1)
    assert found[("http_request_duration_seconds_bucket", "0.005")] == (
        {"trace_id": "b" * 32},
        0.005,
    )
    assert found[("http_request_duration_seconds_bucket", "+Inf")] == ({"trace_id": "e" * 32}, 11.0)
