"""``ouro-obs sidecar``: the command line, and the real process draining on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ouro_obs.cli import main
from ouro_obs.demo.lifecycle import ManagedProcess, free_port
from tests.sidecar.servers import ThreadedUvicorn, UpstreamState

#: No span export from the sidecar processes these tests start.
QUIET = {"OTEL_TRACES_EXPORTER": "none"}


def test_sidecar_is_a_command_of_ouro_obs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sidecar", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--upstream" in out
    assert "--openapi" in out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--upstream", "https://127.0.0.1:8080"], "only plain http://"),
        (["--upstream", "http://127.0.0.1:8080/api"], "a path, query or fragment"),
        (["--upstream", "http://127.0.0.1:8080", "--health-path", "healthz"], "must start"),
    ],
)
def test_a_bad_upstream_setting_exits_2_saying_what_to_write(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sidecar", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_an_openapi_file_without_paths_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = tmp_path / "openapi.json"
    document.write_text('{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}}')
    assert main(["sidecar", "--upstream", "http://127.0.0.1:8080", "--openapi", str(document)]) == 2
    err = capsys.readouterr().err
    assert str(document) in err
    assert "'paths'" in err


def test_openapi_and_routes_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sidecar", "--upstream", "http://x:1", "--openapi", "a", "--routes", "b"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(httpx.get(url).text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def poll(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.integration
def test_sigterm_drains_the_request_in_flight_then_exits_0(
    upstream: ThreadedUvicorn, state: UpstreamState, tmp_path: Path
) -> None:
    routes = tmp_path / "routes.txt"
    routes.write_text("# the upstream's routes\n/slow\n")
    port, metrics_port = free_port(), free_port()
    metrics = f"http://127.0.0.1:{metrics_port}"
    sidecar = ManagedProcess(
        argv=[
            sys.executable, "-m", "ouro_obs", "sidecar",
            "--upstream", upstream.url,
            "--listen", f"127.0.0.1:{port}",
            "--metrics-listen", f"127.0.0.1:{metrics_port}",
            "--routes", str(routes),
            "--log-level", "warning",
        ],
        ready_url=f"{metrics}/health/ready",
        env={**QUIET, "OTEL_SERVICE_NAME": "drain-test"},
        log_path=tmp_path / "sidecar.log",
    )  # fmt: skip
    result: dict[str, httpx.Response] = {}
    with sidecar:
        caller = threading.Thread(
            target=lambda: result.setdefault(
                "response", httpx.get(f"http://127.0.0.1:{port}/slow?seconds=30", timeout=30)
            )
        )
        caller.start()
        in_flight = ("http_requests_in_progress", (("method", "GET"),))
        assert poll(lambda: scrape(f"{metrics}/metrics").get(in_flight) == 1.0)

        os.kill(sidecar.pid, signal.SIGTERM)
        assert poll(lambda: httpx.get(f"{metrics}/health/ready").status_code == 503)
        draining = httpx.get(f"{metrics}/health/ready").json()
        assert poll(lambda: refuses_connections(port))

        state.release.set()
        caller.join(30)
        assert sidecar.process is not None
        exit_code = sidecar.process.wait(timeout=30)
    assert draining["checks"] == {"shutdown": "draining", "upstream": "ok"}
    assert result["response"].status_code == 200
    assert result["response"].text == "slow answer"
    assert exit_code == 0, sidecar.output()


@pytest.mark.integration
def test_a_port_already_taken_exits_1_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable, "-m", "ouro_obs", "sidecar",
                "--upstream", "http://127.0.0.1:9",
                "--listen", f"127.0.0.1:{free_port()}",
                "--metrics-listen", f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **QUIET},
            check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.integration
def test_the_command_traces_each_request_and_the_upstream_joins_that_trace(
    upstream: ThreadedUvicorn, tmp_path: Path
) -> None:
    """With the middleware's own tracing (configure_tracing from OTEL_*), not a test span;
    every line the process writes is JSON, the access line carrying the same ids."""
    port, metrics_port = free_port(), free_port()
    sidecar = ManagedProcess(
        argv=[
            sys.executable, "-m", "ouro_obs", "sidecar",
            "--upstream", upstream.url,
            "--listen", f"127.0.0.1:{port}",
            "--metrics-listen", f"127.0.0.1:{metrics_port}",
        ],
        ready_url=f"http://127.0.0.1:{metrics_port}/health/ready",
        env={**QUIET, "OTEL_SERVICE_NAME": "trace-test"},
        log_path=tmp_path / "sidecar.log",
    )  # fmt: skip
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with sidecar:
        response = httpx.get(f"http://127.0.0.1:{port}/echo", headers={"traceparent": incoming})
    headers = dict(response.json()["headers"])
    version, trace_id, parent_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "01")
    assert parent_id not in ("b7ad6b7169203331", "0" * 16)  # the sidecar's own span
    assert headers["x-request-id"] == response.headers["x-request-id"]
    lines = [json.loads(line) for line in sidecar.output().splitlines() if line.strip()]
    (access,) = [line for line in lines if line.get("event") == "request"]
    assert access["trace_id"] == trace_id
    assert access["request_id"] == response.headers["x-request-id"]
    assert (access["path"], access["status"]) == ("/echo", 200)
