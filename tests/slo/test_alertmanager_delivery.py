"""A page travels the whole chain: generated rules -> Prometheus -> Alertmanager -> a webhook.

A real Prometheus scrapes an exporter that fails every request and evaluates the rules
generated for the spec with its window compressed to one day (as the demo does, so the
page watches 2m and 1m windows); a real Alertmanager runs the generated configuration
(grouping timers shortened through the spec) and delivers to a webhook receiver on
loopback. The page arrives once, with its ``runbook_url``; the ticket of the same SLO
fires in Prometheus too, and Alertmanager inhibits it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from ouro_obs.contract import METHOD_LABEL, ROUTE_LABEL, STATUS_LABEL, MetricNames
from ouro_obs.demo.lifecycle import LOOPBACK, ManagedProcess, free_port, http_get
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.conventions import alert_names, alertmanager_config_path, rule_file_path
from ouro_obs.slo.conventions import runbook_url as expected_runbook_url
from ouro_obs.slo.render import write_files
from ouro_obs.slo.spec import ServiceSpec, parse_spec
from tests.support.processes import PrometheusServer
from tests.support.tools import require_tool

pytestmark = pytest.mark.integration

#: Both receivers are this test's webhook: a ticket that was not inhibited would arrive too.
SPEC = """\
apiVersion: ouro-obs/v1
service: shop
runbook_base_url: https://runbooks.example.com/shop
labels: {{team: storefront}}
alertmanager:
  page: {{webhook_url: '{hook}/page'}}
  ticket: {{webhook_url: '{hook}/ticket'}}
  group_wait: 5s
  group_interval: 1s
slos:
  - {{name: availability, objective: 99.9, window: 1d, sli: {{kind: availability}}}}
"""
#: Requests per second the exporter counts, every one a 500: enough for the low-traffic guard.
FAILURES_PER_SECOND = 1000
DELIVERY_TIMEOUT = 45.0


# ---------------------------------------------------------------- loopback servers


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access lines on the test's output."""


class _Exporter(ThreadingHTTPServer):
    """``/metrics`` with one request counter growing by FAILURES_PER_SECOND, all 500s."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _ExporterHandler)
        self.started = time.monotonic()

    def exposition(self) -> str:
        name = MetricNames().requests_total
        count = int((time.monotonic() - self.started + 1) * FAILURES_PER_SECOND)
        labels = f'{ROUTE_LABEL}="/orders",{METHOD_LABEL}="GET",{STATUS_LABEL}="500"'
        return f"# TYPE {name} counter\n{name}{{{labels}}} {count}\n"


class _ExporterHandler(_QuietHandler):
    server: _Exporter

    def do_GET(self) -> None:
        body = self.server.exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Webhook(ThreadingHTTPServer):
    """Keeps every notification Alertmanager posts, with the path it posted to."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _WebhookHandler)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def notifications(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for posted, body in self.received if posted == path]


class _WebhookHandler(_QuietHandler):
    server: _Webhook

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        with self.server.lock:
            self.server.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def _serve(server: ThreadingHTTPServer) -> Iterator[None]:
    """Serve ``server`` from a thread until the block ends."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://{LOOPBACK}:{server.server_address[1]}"


# ---------------------------------------------------------------- Prometheus and Alertmanager


@dataclass
class _AlertingPrometheus(PrometheusServer):
    """The tests' Prometheus, sending its alerts to ``alertmanager`` (host:port)."""

    alertmanager: str = ""

    def config(self) -> dict[str, Any]:
        targets = [{"targets": [self.alertmanager]}]
        return {**super().config(), "alerting": {"alertmanagers": [{"static_configs": targets}]}}


def _alertmanager_binary() -> str:
    return shutil.which("alertmanager") or require_tool("prometheus-alertmanager")


@dataclass
class _Alertmanager:
    config: Path
    workdir: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def process(self) -> ManagedProcess:
        return ManagedProcess(
            argv=[
                _alertmanager_binary(),
                f"--config.file={self.config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--cluster.listen-address=",  # one instance: no gossip port
                "--log.level=warn",
            ],
            ready_url=f"{self.url}/-/ready",
            log_path=self.workdir / "alertmanager.log",
        )

    def alerts(self, alertname: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"'})
        found: list[dict[str, Any]] = json.loads(http_get(f"{self.url}/api/v2/alerts?{query}"))
        return found


def _rules_without_intervals(rule_file: Path, target: Path) -> Path:
    """The generated rules with every group on the global 1s interval, as the demo loads them."""
    document = yaml.safe_load(rule_file.read_text(encoding="utf-8"))
    for group in document["groups"]:
        group.pop("interval", None)
    target.write_text(yaml.safe_dump(document), encoding="utf-8")
    return target


# ---------------------------------------------------------------- the chain


@dataclass
class _Chain:
    spec: ServiceSpec
    webhook: _Webhook
    prometheus: _AlertingPrometheus
    alertmanager: _Alertmanager


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f}s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Chain]:
    """Exporter, webhook, Alertmanager and Prometheus, until the first page arrived."""
    require_tool("prometheus")
    workdir = tmp_path_factory.mktemp("alert-chain")
    exporter = _Exporter((LOOPBACK, 0))
    webhook = _Webhook((LOOPBACK, 0))
    with contextlib.ExitStack() as stack:
        stack.enter_context(_serve(exporter))
        stack.enter_context(_serve(webhook))
        spec = parse_spec(SPEC.format(hook=_url(webhook)))
        write_files(workdir, generated_files(spec))
        alertmanager = _Alertmanager(workdir / alertmanager_config_path(spec), workdir)
        stack.enter_context(alertmanager.process())
        rules = _rules_without_intervals(workdir / rule_file_path(spec), workdir / "rules.yaml")
        prometheus = _AlertingPrometheus(
            targets={spec.service: [f"{LOOPBACK}:{exporter.server_address[1]}"]},
            rule_files=[rules],
            workdir=workdir / "prometheus",
            alertmanager=f"{LOOPBACK}:{alertmanager.port}",
        )
        (workdir / "prometheus").mkdir()
        stack.enter_context(prometheus)
        chain = _Chain(spec, webhook, prometheus, alertmanager)
        _wait(lambda: bool(webhook.notifications("/page")), DELIVERY_TIMEOUT, "no page arrived")
        yield chain


def _page_alerts(chain: _Chain) -> list[dict[str, Any]]:
    page = alert_names(chain.spec, chain.spec.slos[0]).page
    return [
        alert
        for notification in chain.webhook.notifications("/page")
        for alert in notification["alerts"]
        if alert["labels"]["alertname"] == page
    ]


def test_the_page_arrives_at_the_team_s_page_receiver_with_its_runbook(chain: _Chain) -> None:
    page = alert_names(chain.spec, chain.spec.slos[0]).page
    (notification, *_) = chain.webhook.notifications("/page")
    assert notification["receiver"] == "storefront-page"
    assert notification["status"] == "firing"
    (alert,) = _page_alerts(chain)
    assert alert["labels"]["urgency"] == "page"
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["runbook_url"] == expected_runbook_url(chain.spec, page)


def test_the_ticket_fires_in_prometheus_and_alertmanager_inhibits_it(chain: _Chain) -> None:
    ticket = alert_names(chain.spec, chain.spec.slos[0]).ticket
    firing = f'ALERTS{{alertname="{ticket}",alertstate="firing"}}'
    assert chain.prometheus.wait_for(firing, timeout=10)

    def suppressed() -> bool:
        alerts = chain.alertmanager.alerts(ticket)
        return bool(alerts) and all(a["status"]["inhibitedBy"] for a in alerts)

    _wait(suppressed, 10, "Alertmanager did not inhibit the ticket")
    (alert,) = chain.alertmanager.alerts(ticket)
    assert alert["status"]["state"] == "suppressed"
    assert chain.webhook.notifications("/ticket") == []


def test_the_page_is_delivered_once(chain: _Chain) -> None:
    """Several group intervals and Prometheus evaluations later, still one notification."""
    time.sleep(4)
    assert len(_page_alerts(chain)) == 1
    assert chain.webhook.notifications("/ticket") == []
