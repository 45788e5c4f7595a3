"""The processes the demo starts: the shop, Prometheus, Alertmanager, an OTLP collector, Locust.

Each runs on loopback in its own process group (:mod:`ouro_obs.demo.lifecycle`); the demo
waits until it answers and stops exactly the group it started. The integration tests
start the same programs through these classes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from ouro_obs.demo.lifecycle import (
    LOOPBACK,
    ManagedProcess,
    ProcessStartError,
    StartStop,
    free_port,
    http_get,
)
from ouro_obs.demo.receiver import OTLPReceiver, ReceivedSpan

__all__ = [
    "ALERTMANAGER_BINARIES",
    "SHOP_APP",
    "AlertmanagerServer",
    "OTLPCollector",
    "PrometheusServer",
    "find_alertmanager",
    "find_prometheus",
    "find_rotel",
    "locust_process",
    "shop_directory",
    "shop_process",
]

#: The example shop, shipped in this package (``examples/shop`` in the repository).
SHOP_PACKAGE = "ouro_obs.demo.shop"
SHOP_APP = f"{SHOP_PACKAGE}.app:app"


@dataclass
class _ServerProcess(StartStop):
    """A server that is one managed child process, started by the subclass's ``start``."""

    _process: ManagedProcess | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return self._process.pid

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()


# --------------------------------------------------------------------------- the shop and Locust


def shop_directory() -> Path:
    """The directory of the shop's ``app.py``, ``slo.yaml`` and ``locustfile.py``."""
    spec = importlib.util.find_spec(SHOP_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ProcessStartError(
            f"{SHOP_PACKAGE} is not installed; reinstall: pip install 'ouro-obs[demo]'"
        )
    return Path(locations[0])


def shop_process(
    port: int,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    ready_path: str = "/health/live",
    ready_timeout: float = 30.0,
) -> ManagedProcess:
    """The example shop under uvicorn on 127.0.0.1:``port``, ready once ``ready_path`` answers."""
    return ManagedProcess(
        argv=[
            sys.executable, "-m", "uvicorn", SHOP_APP,
            "--host", LOOPBACK, "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning",
        ],
        ready_url=f"http://{LOOPBACK}:{port}{ready_path}",
        env=env,
        log_path=log_path,
        ready_timeout=ready_timeout,
    )  # fmt: skip


def locust_process(
    host: str,
    users: int,
    seconds: int,
    csv_prefix: Path,
    shop_options: Sequence[str] = (),
    log_path: Path | None = None,
) -> ManagedProcess:
    """Headless Locust running the shop's locustfile against ``host`` for ``seconds``.

    ``shop_options`` are the locustfile's own flags (``--error-rate`` and so on).
    """
    return ManagedProcess(
        argv=[
            sys.executable, "-m", "locust",
            "-f", str(shop_directory() / "locustfile.py"),
            "--headless", "--only-summary",
            "-u", str(users), "-r", str(users),
            "-t", f"{seconds}s",
            "--host", host,
            "--csv", str(csv_prefix),
            "--exit-code-on-error", "0",
            "--loglevel", "WARNING",
            *shop_options,
        ],
        log_path=log_path,
    )  # fmt: skip


# --------------------------------------------------------------------------- Prometheus


def find_prometheus() -> tuple[str, str] | None:
    """Paths of the ``prometheus`` and ``promtool`` binaries, or None when absent."""
    server = shutil.which("prometheus")
    promtool = shutil.which("promtool")
    if server is None or promtool is None:
        return None
    return server, promtool


@dataclass
class PrometheusServer(_ServerProcess):
    """A real Prometheus server on loopback scraping ``targets`` and loading ``rule_files``.

    ``targets`` maps a job name to ``host:port`` addresses.  ``scrape_interval``
    and ``evaluation_interval`` default to one second so that data shows quickly.
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
    #: Base URLs (``http://host:port``) of the Alertmanagers it sends its alerts to.
    alertmanagers: Sequence[str] = ()

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
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": scrape_configs,
        }
        if self.alertmanagers:
            addresses = [urllib.parse.urlsplit(url).netloc for url in self.alertmanagers]
            targets = [{"targets": addresses}]
            config["alerting"] = {"alertmanagers": [{"static_configs": targets}]}
        return config

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


# --------------------------------------------------------------------------- Alertmanager

#: The Debian package's name for the binary, then upstream's.
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


def find_alertmanager() -> str | None:
    """Path of the Alertmanager binary, or None when absent."""
    for name in ALERTMANAGER_BINARIES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


@dataclass
class AlertmanagerServer(_ServerProcess):
    """A real Alertmanager on loopback running ``config`` (a file), one instance, no gossip."""

    config: Path
    workdir: Path | None = None
    port: int = 0
    binary: str = "prometheus-alertmanager"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="ouro-obs-alertmanager-"))
        if self.port == 0:
            self.port = free_port()
        self._process = ManagedProcess(
            argv=[
                self.binary,
                f"--config.file={self.config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--cluster.listen-address=",  # an empty address: no cluster port at all
                "--log.level=warn",
            ],
            ready_url=f"{self.url}/-/ready",
            log_path=self.workdir / "alertmanager.log",
        ).start()
        return self

    def alerts(self) -> list[dict[str, Any]]:
        """``/api/v2/alerts``: every alert it holds, with ``status.state`` and ``inhibitedBy``."""
        found: list[dict[str, Any]] = json.loads(http_get(f"{self.url}/api/v2/alerts"))
        return found


# --------------------------------------------------------------------------- the OTLP collector


def find_rotel() -> str | None:
    """Path of the rotel collector binary (the ``rotel`` PyPI package ships it), or None."""
    spec = importlib.util.find_spec("rotel")
    for directory in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(directory) / "rotel-agent"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("rotel-agent")


@dataclass
class OTLPCollector(_ServerProcess):
    """A real OTLP collector (rotel) on loopback, receiving OTLP/HTTP on ``endpoint``.

    It forwards what it receives over OTLP/HTTP to ``forward_to`` (a base URL); without
    one it forwards to an in-process :class:`~ouro_obs.demo.receiver.OTLPReceiver` of its
    own, and ``spans`` shows what went through the collector.
    """

    port: int = 0
    forward_to: str | None = None
    workdir: Path | None = None
    binary: str | None = None
    ready_timeout: float = 30.0
    receiver: OTLPReceiver | None = field(default=None, init=False)

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def traces_url(self) -> str:
        return f"{self.endpoint}/v1/traces"

    @property
    def spans(self) -> list[ReceivedSpan]:
        """What the collector forwarded to its own receiver."""
        if self.receiver is None:
            raise RuntimeError("spans are only visible when the collector forwards to its own")
        return self.receiver.spans

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
            self.receiver = OTLPReceiver().start()
            forward_to = self.receiver.endpoint
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
        self._wait_until_ready(self._process)
        return self

    def _wait_until_ready(self, managed: ManagedProcess) -> None:
        """rotel answers no GET; an empty export request (a valid message) gets 200."""
        assert managed.process is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if managed.process.poll() is not None:
                self.stop()
                raise ProcessStartError(f"rotel exited before it answered:\n{managed.output()}")
            request = urllib.request.Request(
                self.traces_url,
                data=b"",
                headers={"content-type": "application/x-protobuf"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=1.0):
                    return
            except (OSError, urllib.error.URLError) as error:
                if isinstance(error, urllib.error.HTTPError):
                    error.close()  # it holds the connection's socket
                if time.monotonic() > deadline:
                    self.stop()
                    raise ProcessStartError(
                        f"rotel did not accept OTLP on {self.traces_url} within "
                        f"{self.ready_timeout:.0f}s:\n{managed.output()}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        super().stop()
        if self.receiver is not None:
            self.receiver.stop()
