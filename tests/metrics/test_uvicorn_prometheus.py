"""Real processes: uvicorn workers on loopback, scraped by a real Prometheus server."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ouro_obs.demo.lifecycle import free_port, http_get
from tests.support.processes import PrometheusServer
from tests.support.shop import shop_process
from tests.support.tools import require_tool

pytestmark = pytest.mark.integration


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(http_get(url).decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )


def test_two_uvicorn_workers_aggregate_their_metrics_in_multiprocess_mode(tmp_path: Path) -> None:
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    port = free_port()
    with shop_process(port, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}):
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(
                pool.map(get, [f"http://127.0.0.1:{port}/items/{i % 3 + 1}" for i in range(300)])
            )
        assert statuses == [200] * 300
        writer_pids = {path.stem.rsplit("_", 1)[-1] for path in multiproc.glob("counter_*.db")}
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert total(samples, "http_requests_total", route="/items/{item_id}", status="200") == 300
        assert (
            total(samples, "http_request_duration_seconds_count", route="/items/{item_id}") == 300
        )

        # A request held open is in flight in one worker; livesum adds the workers up.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            slow = pool.submit(get, f"http://127.0.0.1:{port}/items/1?delay=3")
            in_flight = 0.0
            for _ in range(50):
                in_flight = total(
                    scrape(f"http://127.0.0.1:{port}/metrics"),
                    "http_requests_in_progress",
                    method="GET",
                )
                if in_flight >= 1:
                    break
            assert slow.result() == 200
        assert in_flight == 1.0
        assert total(scrape(f"http://127.0.0.1:{port}/metrics"), "http_requests_in_progress") == 0.0
    assert len(writer_pids) == 2, "both workers served requests"


def test_child_exit_drops_a_dead_workers_in_flight_gauge(tmp_path: Path) -> None:
    script = (
        "from prometheus_client import Gauge\n"
        "g = Gauge('http_requests_in_progress', 'x', ['method'], multiprocess_mode='livesum')\n"
        "g.labels('GET').inc()\n"
        "import os; print(os.getpid())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    pid = int(
        subprocess.run(
            [sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True
        ).stdout
    )
    check = (
        "from prometheus_client import CollectorRegistry, generate_latest\n"
        "from prometheus_client.multiprocess import MultiProcessCollector\n"
        "r = CollectorRegistry(); MultiProcessCollector(r)\n"
        "print(generate_latest(r).decode())\n"
    )
    before = subprocess.run(
        [sys.executable, "-c", check], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'http_requests_in_progress{method="GET"} 1.0' in before

    child_exit_call = (
        "from types import SimpleNamespace\n"
        "from ouro_obs.metrics.multiprocess import child_exit\n"
        f"child_exit(None, SimpleNamespace(pid={pid}))\n"
    )
    subprocess.run([sys.executable, "-c", child_exit_call], env=env, check=True)
    after = subprocess.run(
        [sys.executable, "-c", check], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'http_requests_in_progress{method="GET"}' not in after


def test_prometheus_scrapes_the_example_service_and_sees_route_templates(tmp_path: Path) -> None:
    prometheus = require_tool("prometheus")
    port = free_port()
    with shop_process(port):
        base = f"http://127.0.0.1:{port}"
        with PrometheusServer(
            targets={"shop": [f"127.0.0.1:{port}"]}, workdir=tmp_path, binary=prometheus
        ) as server:
            for round_number in range(6):
                for path in (
                    "/items/1",
                    "/items/2",
                    "/orders/77",
                    "/api/v1/users/u-9/orders/3",
                    "/admin/tenants/t1",
                    f"/random/{round_number}",
                ):
                    get(base + path)
                server.wait_for('up{job="shop"} == 1', timeout=30)
            result = server.wait_for(
                'sum by (route) (rate(http_requests_total{job="shop"}[1m])) > 0', timeout=60
            )
            routes = {sample["metric"]["route"] for sample in result}
    assert routes == {
        "/items/{item_id}",
        "/orders/{order_id}",
        "/api/v1/users/{user_id}/orders/{order_id}",
        "/admin/tenants/{tenant}",
        "<unmatched>",
    }


def test_a_worker_file_still_being_created_does_not_break_the_scrape(tmp_path: Path) -> None:
    writer = (
        "from prometheus_client import Counter\n"
        "Counter('http_requests', 'x', ['method', 'route', 'status']).labels('GET', '/a', '200').inc(3)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", writer], env=env, check=True)
    (tmp_path / "counter_999999.db").write_bytes(b"")  # a worker between open() and its header
    reader = (
        "from ouro_obs.config import ObservabilitySettings\n"
        "from ouro_obs.metrics import render_metrics\n"
        "directory = ObservabilitySettings().multiprocess_dir\n"
        "print(render_metrics(None, '', directory)[0].decode())\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", reader], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'http_requests_total{method="GET",route="/a",status="200"} 3.0' in output


def test_a_missing_multiprocess_directory_is_refused_at_start_up_with_the_fix(
    tmp_path: Path,
) -> None:
    script = (
        "from prometheus_client import CollectorRegistry\n"
        "from ouro_obs import ConfigError, ObservabilityMiddleware\n"
        "try:\n"
        "    ObservabilityMiddleware(lambda *a: None, registry=CollectorRegistry())\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")}
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert "is not a directory; create it (empty) before the workers start" in output


def test_the_multiprocess_launcher_clears_stale_files_then_runs_the_command(tmp_path: Path) -> None:
    (tmp_path / "counter_12345.db").write_bytes(b"\0" * 16)
    (tmp_path / "keep.txt").write_text("not a metrics file")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "ouro_obs.metrics.multiprocess", "ls", str(tmp_path)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert result.stdout.split() == ["keep.txt"]
