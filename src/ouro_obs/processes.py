"""Local processes for the demo and the integration tests.

Starts real programs on loopback (uvicorn, Prometheus, an OTLP collector),
waits until they answer, and stops exactly the process group it started.
Nothing here is imported by the middleware.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from ouro_obs.lifecycle import StartStop

__all__ = [
    "ManagedProcess",
    "OTLPCollector",
    "ProcessStartError",
    "PrometheusServer",
    "find_prometheus",
    "find_rotel",
    "free_port",
    "http_get",
    "wait_for_http",
]

LOOPBACK = "127.0.0.1"


class ProcessStartError(RuntimeError):
    """A managed process exited or never answered; the message carries its output."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None) -> bytes:
    """GET ``url`` and return the body; raises on a non-2xx status."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def wait_for_http(
    url: str,
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll ``url`` until it answers 2xx; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ProcessStartError(
                f"process exited with {process.returncode} before {url} answered"
            )
        try:
            http_get(url, timeout=1.0)
            return
        except (OSError, urllib.error.URLError) as error:
            last_error = error
            time.sleep(0.1)
    raise ProcessStartError(f"{url} did not answer within {timeout:.0f}s: {last_error}")


@dataclass
class ManagedProcess(StartStop):
    """A child process in its own process group, stopped by its own PID on exit.

    Output goes to ``log_path`` so a failing start can show what the program said.
    """

    argv: Sequence[str]
    ready_url: str | None = None
    env: Mapping[str, str] | None = None
    cwd: str | os.PathLike[str] | None = None
    log_path: Path | None = None
    ready_timeout: float = 30.0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Self:
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="ouro-obs-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        environment = dict(os.environ)
        environment.update(self.env or {})
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                cwd=self.cwd,
                start_new_session=True,
            )
        if self.ready_url is not None:
            try:
                wait_for_http(self.ready_url, self.ready_timeout, self.process)
            except ProcessStartError as error:
                self.stop()
                raise ProcessStartError(
                    f"{self.argv[0]}: {error}\n--- output ---\n{self.output()}"
                ) from None
        return self

    def output(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("process not started")
        return self.process.pid

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=grace)
        # Workers that outlived their parent are still in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def find_prometheus() -> tuple[str, str] | None:
    """Paths of the ``prometheus`` and ``promtool`` binaries, or None when absent."""
    server = shutil.which("prometheus")
    promtool = shutil.which("promtool")
    if server is None or promtool is None:
        return None
    return server, promtool


@dataclass
class PrometheusServer(StartStop):
    """A real Prometheus server on loopback scraping ``targets`` and loading ``rule_files``.

    ``targets`` maps a job name to ``host:port`` addresses.  ``scrape_interval``
    and ``evaluation_interval`` default to one second so tests see data quickly.
    """

    targets: Mapping[str, Sequence[str]]
    rule_files: Sequence[Path] = ()
    workdir: Path | None = None
    port: int = 0
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    metrics_path: str = "/metrics"
    binary: str = "prometheus"
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    _process: ManagedProcess | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def config(self) -> dict[str, Any]:
        scrape_configs = [
            {
                "job_name": job,
                "metrics_path": self.metrics_path,
                "static_configs": [{"targets": list(addresses), "labels": dict(self.extra_labels)}],
            }
            for job, addresses in self.targets.items()
        ]
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": scrape_configs,
        }

    def start(self) -> Self:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="ouro-obs-prometheus-"))
        if self.port == 0:
            self.port = free_port()
        config_path = self.workdir / "prometheus.yml"
        # JSON is valid YAML, so no YAML library is needed here.
        config_path.write_text(json.dumps(self.config(), indent=2))
        self._process = ManagedProcess(
            argv=[
                self.binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            ready_url=f"{self.url}/-/ready",
            log_path=self.workdir / "prometheus.log",
        ).start()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def api(self, endpoint: str, **params: str) -> Any:
        """Call ``/api/v1/<endpoint>`` and return its ``data``; raises on an error status."""
        query = urllib.parse.urlencode(params)
        body = http_get(f"{self.url}/api/v1/{endpoint}?{query}", timeout=10.0)
        document = json.loads(body)
        if document.get("status") != "success":
            raise RuntimeError(f"Prometheus {endpoint} failed: {document}")
        return document["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns the result vector (a list of ``{metric, value}``)."""
        data = self.api("query", query=promql)
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(
        self, promql: str, timeout: float = 60.0, interval: float = 0.5
    ) -> list[dict[str, Any]]:
        """Poll ``promql`` until it returns a non-empty vector, and return it."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"no data for {promql!r} within {timeout:.0f}s")
            time.sleep(interval)

    def active_targets(self) -> Iterator[dict[str, Any]]:
        yield from self.api("targets")["activeTargets"]


def find_rotel() -> str | None:
    """Path of the rotel collector binary (the ``rotel`` PyPI package ships it), or None."""
    import importlib.util  # noqa: PLC0415 - only the collector needs it

    spec = importlib.util.find_spec("rotel")
    for directory in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(directory) / "rotel-agent"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("rotel-agent")


@dataclass
class OTLPCollector(StartStop):
    """A real OTLP collector (rotel) on loopback, receiving OTLP/HTTP on ``endpoint``.

    It forwards what it receives over OTLP/HTTP to ``forward_to`` (a base URL); without
    one it forwards to an in-process :class:`ouro_obs.otlp_receiver.OTLPReceiver`, so
    ``spans``/``span_count``/``wait_for`` show what went through the collector.
    """

    port: int = 0
    forward_to: str | None = None
    workdir: Path | None = None
    binary: str | None = None
    ready_timeout: float = 30.0
    _process: ManagedProcess | None = field(default=None, init=False)
    _receiver: Any = field(default=None, init=False)

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def traces_url(self) -> str:
        return f"{self.endpoint}/v1/traces"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("collector not started")
        return self._process.pid

    def start(self) -> Self:
        binary = self.binary or find_rotel()
        if binary is None:
            raise ProcessStartError("rotel is not installed: pip install rotel")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="ouro-obs-rotel-"))
        if self.port == 0:
            self.port = free_port()
        forward_to = self.forward_to
        if forward_to is None:
            from ouro_obs.otlp_receiver import OTLPReceiver  # noqa: PLC0415

            self._receiver = OTLPReceiver().start()
            forward_to = self._receiver.endpoint
        self._process = ManagedProcess(
            argv=[
                binary, "start",
                "--otlp-http-endpoint", f"{LOOPBACK}:{self.port}",
                # rotel always opens a gRPC receiver too: give it a free port of its own.
                "--otlp-grpc-endpoint", f"{LOOPBACK}:{free_port()}",
                "--exporter", "otlp",
                "--otlp-exporter-endpoint", forward_to,
                "--otlp-exporter-protocol", "http",
                "--batch-timeout", "100ms",
                "--pid-file", str(self.workdir / "rotel.pid"),
                "--log-file", str(self.workdir / "rotel.log"),
            ],
            log_path=self.workdir / "rotel.out",
        ).start()  # fmt: skip
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        """rotel answers no GET; an empty export request (a valid message) gets 200."""
        assert self._process is not None
        assert self._process.process is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self._process.process.poll() is not None:
                output = self._process.output()
                self.stop()
                raise ProcessStartError(f"rotel exited before it answered:\n{output}")
            request = urllib.request.Request(
                self.traces_url,
                data=b"",
                headers={"content-type": "application/x-protobuf"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=1.0):
                    return
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    output = self._process.output()
                    self.stop()
                    raise ProcessStartError(
                        f"rotel did not accept OTLP on {self.traces_url} within "
                        f"{self.ready_timeout:.0f}s:\n{output}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
        if self._receiver is not None:
            self._receiver.stop()

    def _received(self) -> Any:
        if self._receiver is None:
            raise RuntimeError(
                "spans are only visible when the collector forwards to its own receiver"
            )
        return self._receiver

    @property
    def spans(self) -> list[Any]:
        return list(self._received().spans)

    def span_count(self, service: str | None = None) -> int:
        return int(self._received().span_count(service))

    def wait_for(self, predicate: Any, count: int = 1, timeout: float = 10.0) -> list[Any]:
        return list(self._received().wait_for(predicate, count, timeout))
