"""The multiprocess fast path: what it writes to a worker's files, and what a fork does to it.

Each recording runs in a process of its own with ``PROMETHEUS_MULTIPROC_DIR`` set (the
value class is chosen when prometheus_client is imported); the files are then merged here,
as a scrape merges them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

REPO_ROOT = Path(__file__).resolve().parents[2]

#: (method, route, status, seconds, request bytes, response bytes), bucket edges included.
REQUESTS = """
REQUESTS = [
    ("GET", "/items/{id}", 200, seconds, size, 2 * size)
    for seconds, size in zip(
        [0.0, 0.004, 0.005, 0.0051, 0.3, 1.0, 9.999, 10.0, 10.0001, 120.0],
        [0, 1, 99, 100, 101, 4_000, 1_000_000, 10_000_000, 10_000_001, 64_000],
    )
] + [("POST", "/orders", 201, 0.02, 512, 64), ("GET", "/items/{id}", 404, 0.001, 0, 9)]
"""

THROUGH_HTTP_METRICS = (
    REQUESTS
    + """
from prometheus_client import CollectorRegistry
from ouro_obs.config import ObservabilitySettings
from ouro_obs.metrics import HttpMetrics

metrics = HttpMetrics(ObservabilitySettings(), CollectorRegistry())

def record(requests):
    for method, route, status, seconds, request_bytes, response_bytes in requests:
        metrics.in_progress_adder(method)(1)  # what the middleware calls
        metrics.observe(method, route, status, seconds, request_bytes, response_bytes, ending=True)
"""
)

RECORD_ONCE = (
    THROUGH_HTTP_METRICS
    + """
record(REQUESTS)
print(sorted({type(series.cells).__name__ for series in metrics._series.values()}))
"""
)

THROUGH_THE_PUBLIC_API = (
    REQUESTS
    + """
from prometheus_client import Counter, Gauge, Histogram
from ouro_obs.contract import DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS

requests = Counter("http_requests", "x", ["method", "route", "status"])
duration = Histogram(
    "http_request_duration_seconds", "x", ["method", "route"], buckets=DEFAULT_DURATION_BUCKETS
)
sizes = [
    Histogram(name, "x", ["method", "route"], buckets=DEFAULT_SIZE_BUCKETS)
    for name in ("http_request_size_bytes", "http_response_size_bytes")
]
in_progress = Gauge("http_requests_in_progress", "x", ["method"], multiprocess_mode="livesum")
for method, route, status, seconds, request_bytes, response_bytes in REQUESTS:
    in_progress.labels(method).inc()
    requests.labels(method, route, str(status)).inc()
    duration.labels(method, route).observe(seconds)
    sizes[0].labels(method, route).observe(request_bytes)
    sizes[1].labels(method, route).observe(response_bytes)
    in_progress.labels(method).dec()
"""
)

#: Records in the parent, forks, records in the child, then records again in the parent.
ACROSS_A_FORK = (
    THROUGH_HTTP_METRICS
    + """
import os
record(REQUESTS)
child = os.fork()
if child == 0:
    record(REQUESTS * 2)
    os._exit(0)
_, status = os.waitpid(child, 0)
assert status == 0, status
record(REQUESTS * 3)
print(child)
"""
)

SERIES_NAMES = (
    "http_requests_total",
    "http_request_duration_seconds",
    "http_request_size_bytes",
    "http_response_size_bytes",
    "http_requests_in_progress",
)


def run(script: str, directory: Path) -> str:
    directory.mkdir()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "PYTHONPATH": str(REPO_ROOT / "src"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def merged(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The request series of every file in ``directory``, as a scrape merges them."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        if metric.name.removesuffix("_total") + "_total" in SERIES_NAMES
        or metric.name in SERIES_NAMES
        for sample in metric.samples
    }


def requests_in(path: Path) -> float:
    """The sum of every ``http_requests_total`` value one worker's counter file holds."""
    return sum(
        value
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
        if '"http_requests_total"' in key
    )


def test_the_file_cells_write_exactly_what_the_public_api_writes(tmp_path: Path) -> None:
    kinds = run(RECORD_ONCE, tmp_path / "ours")
    run(THROUGH_THE_PUBLIC_API, tmp_path / "public")
    assert kinds == "['FileCells']"  # the fast path was the one taken
    ours, public = merged(tmp_path / "ours"), merged(tmp_path / "public")
    assert ours == public
    assert (
        ours[
            (
                "http_requests_total",
                (("method", "GET"), ("route", "/items/{id}"), ("status", "200")),
            )
        ]
        == 10
    )
    assert ours[("http_requests_in_progress", (("method", "GET"),))] == 0


def test_after_a_fork_each_process_writes_only_its_own_file(tmp_path: Path) -> None:
    directory = tmp_path / "workers"
    child = run(ACROSS_A_FORK, directory)
    per_request = 12  # len(REQUESTS)
    files = {path.name: requests_in(path) for path in directory.glob("counter_*.db")}
    assert files[f"counter_{child}.db"] == 2 * per_request
    (parent,) = set(files) - {f"counter_{child}.db"}
    assert files[parent] == 4 * per_request  # 1x before the fork, 3x after it
    series = merged(directory)
    assert (
        sum(v for (name, _), v in series.items() if name == "http_requests_total")
        == 6 * per_request
    )
    assert series[("http_requests_in_progress", (("method", "GET"),))] == 0
    assert series[("http_requests_in_progress", (("method", "POST"),))] == 0
