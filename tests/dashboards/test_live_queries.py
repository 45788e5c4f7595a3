"""Every panel query of the example's dashboards returns data from a real Prometheus.

The shop example runs under uvicorn with traffic that includes server errors, 404s,
unmatched routes and requests slower than the latency SLO's threshold. A real
Prometheus scrapes its metrics port (with the ``namespace`` target label Kubernetes
service discovery would add) and evaluates the rules ``ouro-obs generate`` writes. Each
query is then run as Grafana would send it: template variables replaced the way
Grafana's Prometheus datasource formats them, ``$__rate_interval`` and ``$__range``
replaced by durations.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
import yaml

from ouro_obs.demo.lifecycle import free_port
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.conventions import alert_names, dashboard_paths, rule_file_path
from ouro_obs.slo.dashboards import ALL_VALUE
from ouro_obs.slo.spec import ServiceSpec, load_spec
from tests.dashboards.support import EXAMPLE_SPEC, targets
from tests.support.processes import PrometheusServer
from tests.support.shop import shop_process
from tests.support.tools import require_tool

pytestmark = pytest.mark.integration

#: What Grafana would put in for a short time range at a 1 s scrape interval.
RATE_INTERVAL = "1m"
#: The dashboard's time range; the test's data is younger than this.
RANGE = "5m"
INTERVAL = "15s"
NAMESPACE = "shop"
JOB = "shop"
READY_TIMEOUT_SECONDS = 90.0
JSON_BODY = json.dumps({"sku": "teapot", "quantity": 2}).encode()
#: One round of traffic: every routing case, errors (500 from HTTPException and from an
#: exception), a 404, an unmatched path, and slow requests on the latency SLO's routes.
ROUND: tuple[tuple[str, str, bytes | None], ...] = (
    ("GET", "/", None),
    ("GET", "/items/1", None),
    ("GET", "/items/2", None),
    ("GET", "/items/3", None),
    ("GET", "/items/9", None),
    ("GET", "/items/1?fail=true", None),
    ("GET", "/items/2?delay=0.6", None),
    ("GET", "/items/3?delay=0.6", None),
    ("POST", "/orders", JSON_BODY),
    ("POST", "/orders?fail=true", JSON_BODY),
    ("POST", "/orders?delay=0.6", JSON_BODY),
    ("GET", "/orders/7", None),
    ("GET", "/boom", None),
    ("GET", "/stream?chunks=5", None),
    ("GET", "/admin/stats", None),
    ("GET", "/api/v1/users/ann/orders/3", None),
    ("GET", "/no/such/route", None),
)
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_GRAFANA_REGEX_SPECIALS = re.compile(r"[$^*{}\[\]'+?.()|]")


def grafana_regex_value(value: str) -> str:
    """A selected value of a multi-value variable, as Grafana's Prometheus datasource
    writes it into a query: regex-escaped, then escaped for a PromQL string."""
    escaped = value.replace("\\", "\\\\\\\\")
    return _GRAFANA_REGEX_SPECIALS.sub(lambda match: "\\\\" + match.group(0), escaped)


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """``expr`` with Grafana's built-in and the dashboard's variables replaced."""
    builtins = {"__rate_interval": RATE_INTERVAL, "__range": RANGE, "__interval": INTERVAL}
    values = {**builtins, **variables}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"the query uses ${name}, which the test does not know")
        return values[name]

    return _VARIABLE.sub(replace, expr)


@dataclass
class Traffic:
    """Rounds of :data:`ROUND` from eight threads until stopped; counts every status."""

    base_url: str
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    timeouts: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _send(self, method: str, path: str, body: bytes | None) -> int:
        request = urllib.request.Request(f"{self.base_url}{path}", data=body, method=method)
        if body is not None:
            request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
                status: int = response.status
                return status
        except urllib.error.HTTPError as error:
            with error:  # closed even when reading the error body times out
                error.read()
            return error.code

    def _record(self, error: Exception) -> None:
        reason = getattr(error, "reason", error)  # urllib wraps connect timeouts in URLError
        if isinstance(reason, TimeoutError):
            # A loaded 2-core CI machine can be slow; the queries only need the traffic's
            # shape, which the other requests give.
            self.timeouts += 1
        else:
            self.failures.append(repr(error))

    def _run(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            while not self._stop.is_set():
                futures = [pool.submit(self._send, *request) for request in ROUND]
                for future in futures:
                    try:
                        self.statuses[future.result()] += 1
                    except Exception as error:  # reported by a test, never lost
                        self._record(error)

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="shop-traffic", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


@dataclass
class LiveShop:
    spec: ServiceSpec
    prometheus: PrometheusServer
    dashboards: dict[str, dict[str, Any]]
    traffic: Traffic


def rules_evaluated_every_second(text: str) -> str:
    """The generated rule file with its group intervals removed.

    The SLO-window group is evaluated every 5 minutes in production; Prometheus would
    first evaluate it up to 5 minutes after start. Without the interval it follows the
    test server's 1 s evaluation interval; the rules themselves are unchanged.
    """
    document = yaml.safe_load(text)
    for group in document["groups"]:
        group.pop("interval", None)
    return yaml.safe_dump(document, sort_keys=False)


def wait_until_ready(shop: LiveShop) -> None:
    """Until every SLO has its budget recorded and both page alerts fire."""
    conditions = [
        # One budget per SLO, and per group of a grouped one: count the SLOs.
        f"count(count by (slo) (slo:error_budget_remaining:ratio"
        f'{{service="{shop.spec.service}"}})) == {len(shop.spec.slos)}',
        *(
            f'ALERTS{{alertname="{alert_names(shop.spec, slo).page}",alertstate="firing"}}'
            for slo in shop.spec.slos
        ),
    ]
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    for condition in conditions:
        try:
            shop.prometheus.wait_for(condition, timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            log = (shop.prometheus.workdir or Path()) / "prometheus.log"
            pytest.fail(
                f"{condition} never held; traffic {dict(shop.traffic.statuses)}, "
                f"failures {shop.traffic.failures[:3]}\n"
                f"{log.read_text() if log.exists() else ''}"
            )


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveShop]:
    prometheus_binary = require_tool("prometheus")
    spec = load_spec(EXAMPLE_SPEC)
    files = generated_files(spec)
    workdir = tmp_path_factory.mktemp("live-dashboards")
    rule_path = workdir / "shop.rules.yaml"
    rule_path.write_text(rules_evaluated_every_second(files[rule_file_path(spec)]))
    dashboards: dict[str, dict[str, Any]] = {
        kind: json.loads(files[path]) for kind, path in dashboard_paths(spec).items()
    }
    app_port, metrics_port = free_port(), free_port()
    app = shop_process(
        app_port,
        env={"OURO_OBS_METRICS_PORT": str(metrics_port), "OURO_OBS_METRICS_HOST": "127.0.0.1"},
    )
    prometheus = PrometheusServer(
        targets={JOB: [f"127.0.0.1:{metrics_port}"]},
        rule_files=[rule_path],
        binary=prometheus_binary,
        extra_labels={"namespace": NAMESPACE},
    )
    with app, prometheus, Traffic(f"http://127.0.0.1:{app_port}") as traffic:
        live = LiveShop(spec, prometheus, dashboards, traffic)
        wait_until_ready(live)
        yield live


def values(prometheus: PrometheusServer, expr: str) -> list[float]:
    return [float(sample["value"][1]) for sample in prometheus.query(expr)]


def queries_without_data(
    shop: LiveShop, kinds: tuple[str, ...], variables: Mapping[str, str]
) -> list[str]:
    """ "dashboard / panel [ref]: why" for each query that returns no finite value."""
    problems = []
    for kind in kinds:
        dashboard = shop.dashboards[kind]
        for panel, target in targets(dashboard):
            where = f"{dashboard['title']} / {panel['title']} [{target['refId']}]"
            try:
                expr = substitute(target["expr"], variables)
                result = values(shop.prometheus, expr)
            except (KeyError, OSError, RuntimeError) as error:
                problems.append(f"{where}: {error}")
                continue
            if not any(math.isfinite(value) for value in result):
                problems.append(f"{where}: no data ({result or 'empty'}) for\n    {expr}")
    return problems


def test_the_traffic_had_errors_slow_requests_and_successes(shop: LiveShop) -> None:
    statuses = dict(shop.traffic.statuses)
    assert shop.traffic.failures == [], f"statuses so far: {statuses}"
    assert shop.traffic.timeouts < sum(statuses.values()) / 10, f"statuses so far: {statuses}"
    assert {200, 201, 404, 500} <= statuses.keys()


def test_every_panel_query_returns_data_with_all_filters(shop: LiveShop) -> None:
    every = {"namespace": ALL_VALUE, "job": ALL_VALUE, "route": ALL_VALUE}
    problems = queries_without_data(shop, ("overview", "slo"), every)
    assert problems == [], "panels without data:\n" + "\n".join(problems)


def test_every_overview_query_returns_data_for_one_selected_route(shop: LiveShop) -> None:
    selected = {
        "namespace": grafana_regex_value(NAMESPACE),
        "job": grafana_regex_value(JOB),
        "route": grafana_regex_value("/items/{item_id}"),
    }
    problems = queries_without_data(shop, ("overview",), selected)
    assert problems == [], "panels without data:\n" + "\n".join(problems)


def test_a_route_that_was_never_requested_empties_the_route_panels(shop: LiveShop) -> None:
    """The route filter really filters (the test above could not fail otherwise)."""
    nowhere = {"namespace": ALL_VALUE, "job": ALL_VALUE, "route": "/never"}
    problems = queries_without_data(shop, ("overview",), nowhere)
    assert any("Request rate by route" in problem for problem in problems)
    assert not any("In flight" in problem for problem in problems)


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("namespace", {NAMESPACE}),
        ("job", {JOB}),
        ("route", {"/items/{item_id}", "/orders", "/orders/{order_id}", "/boom", "<unmatched>"}),
    ],
)
def test_the_filter_variables_list_the_services_values(
    shop: LiveShop, variable: str, expected: set[str]
) -> None:
    declared = {v["name"]: v for v in shop.dashboards["overview"]["templating"]["list"]}
    match = re.fullmatch(r"label_values\((.*), (\w+)\)", declared[variable]["query"], re.DOTALL)
    assert match is not None
    assert match.group(2) == variable
    selector = substitute(match.group(1), {"namespace": ALL_VALUE, "job": ALL_VALUE})
    found = set(shop.prometheus.api(f"label/{variable}/values", **{"match[]": selector}))
    assert expected <= found
    if variable != "route":
        assert found == expected


def firing_alerts(prometheus: PrometheusServer) -> set[str]:
    return {s["metric"]["alertname"] for s in prometheus.query('ALERTS{alertstate="firing"}')}


def test_the_alert_state_panels_show_the_alerts_prometheus_fires(shop: LiveShop) -> None:
    before = firing_alerts(shop.prometheus)
    shown = {}
    for panel, target in targets(shop.dashboards["slo"]):
        if panel["type"] == "state-timeline":
            # Every group of a grouped SLO: its variables on "All".
            expr = substitute(target["expr"], {"route": ALL_VALUE, "cluster": ALL_VALUE})
            (state,) = values(shop.prometheus, expr)
            shown[target["legendFormat"]] = state
    after = firing_alerts(shop.prometheus)
    # An alert that started or stopped firing while the panels were read is left out.
    steady = {alert for alert in shown if (alert in before) == (alert in after)}
    pages = {alert_names(shop.spec, slo).page for slo in shop.spec.slos}
    assert pages <= before & steady
    assert {a: shown[a] for a in steady} == {a: 2.0 if a in before else 0.0 for a in steady}
