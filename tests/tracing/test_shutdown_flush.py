"""SIGTERM: queued spans are exported at the end of the lifespan, or counted (issue 12, 1).

uvicorn re-raises SIGTERM after its graceful shutdown, so the SDK's ``atexit`` flush never
runs: without a flush at ``lifespan.shutdown`` every queued span is lost, uncounted.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from collections.abc import Iterator

import httpx
import pytest

from ouro_obs.demo.lifecycle import LOOPBACK, ManagedProcess, free_port
from tests.support.processes import OTLPCollector
from tests.support.tools import REPO_ROOT

pytestmark = pytest.mark.integration

REQUESTS = 50
SUMMARY = re.compile(r"ouro-obs span export at shutdown: (\d+) exported, (\d+) dropped")


def traced_server(port: int, env: dict[str, str]) -> ManagedProcess:
    return ManagedProcess(
        argv=[
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "tests.tracing.shutdown_app:create_app",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        ready_url=f"http://{LOOPBACK}:{port}/orders/ready",
        cwd=REPO_ROOT,
        env={**os.environ, "OTEL_TRACES_SAMPLER": "always_on", **env},
    )


def serve_then_sigterm(env: dict[str, str], requests: int) -> str:
    """Start the app, send ``requests`` requests, ``kill -TERM`` it; what it logged."""
    port = free_port()
    server = traced_server(port, env)
    with server:
        with httpx.Client(base_url=f"http://{LOOPBACK}:{port}") as http:
            for number in range(requests):
                assert http.get(f"/orders/{number}").status_code == 200
        os.kill(server.pid, signal.SIGTERM)
        assert server.process is not None
        server.process.wait(timeout=30)
    return server.output()


def test_sigterm_exports_every_queued_span(collector: OTLPCollector) -> None:
    output = serve_then_sigterm(
        {
            "OTEL_SERVICE_NAME": "sigterm-flush",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing leaves before the shutdown
        },
        REQUESTS,
    )
    spans = collector.wait_for(
        lambda span: span.resource.get("service.name") == "sigterm-flush",
        count=REQUESTS + 1,  # the readiness probe's request too
        timeout=20,
    )
    assert len(spans) == REQUESTS + 1, output
    assert {span.name for span in spans} == {"GET /orders/{order_id}"}


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(1024)
        yield listener.getsockname()[1]


def test_a_black_holed_exporter_accounts_for_every_span_made(black_hole: int) -> None:
    requests = 600
    output = serve_then_sigterm(
        {
            "OTEL_SERVICE_NAME": "sigterm-black-hole",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{LOOPBACK}:{black_hole}",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "60",  # the batch is stuck at shutdown
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_BSP_MAX_QUEUE_SIZE": "128",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64",
            "OURO_OBS_SPAN_FLUSH_TIMEOUT_SECONDS": "1",
        },
        requests,
    )
    summary = SUMMARY.search(output)
    assert summary is not None, output
    exported, dropped = int(summary[1]), int(summary[2])
    assert exported == 0
    assert dropped == requests + 1, output  # the readiness probe's span too
    assert "shutdown=" in output
    assert "queue_full=" in output
