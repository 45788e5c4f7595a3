"""End to end: a real Prometheus loads the example spec's rules, scrapes the real
example service driven to 20 % errors and 20 % slow requests, and the SLI recording
rules return 0.2.

The rules are the spec's as written (what the demo runs): the committed ones are each
environment's and select its namespace, a label a bare local scrape does not have.

Tolerance: +-0.02 absolute. Every fifth request fails and another fifth is slow, so the
counted requests hold exactly 20 % of each; what remains is ``rate()``'s extrapolation
at the edge of the data, a fraction of one scrape interval out of the whole run.
"""

from __future__ import annotations

import concurrent.futures
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ouro_obs.demo.lifecycle import free_port
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.conventions import rule_file_path
from ouro_obs.slo.spec import load_spec
from tests.support.processes import PrometheusServer
from tests.support.shop import shop_process
from tests.support.tools import REPO_ROOT, require_tool

pytestmark = pytest.mark.integration

EXAMPLE_SPEC = REPO_ROOT / "examples" / "shop" / "slo.yaml"
REQUESTS = 250
EXPECTED_RATIO = 0.2
TOLERANCE = 0.02
#: Slower than the example's latency threshold (0.5 s), well below the app's cap.
SLOW_SECONDS = 0.6


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def _path(index: int) -> str:
    """Every fifth request fails, the one after it is slow, the rest are fast and fine."""
    if index % 5 == 0:
        return "/items/1?fail=true"
    if index % 5 == 1:
        return f"/items/1?delay={SLOW_SECONDS}"
    return "/items/1"


def _value(server: PrometheusServer, query: str) -> float:
    result = server.query(query)
    assert len(result) == 1, f"{query} returned {result}"
    return float(result[0]["value"][1])


def test_sli_recording_rules_measure_a_twenty_percent_error_rate(tmp_path: Path) -> None:
    prometheus = require_tool("prometheus")
    spec = load_spec(EXAMPLE_SPEC)
    rules = tmp_path / "shop.rules.yaml"
    rules.write_text(generated_files(spec)[rule_file_path(spec)])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = shop_process(port)
    with app:
        # One request of each kind first, so every series exists at the first scrape
        # and rate() sees all the counted requests as increases.
        assert [_get(base + _path(i)) for i in range(3)] == [500, 200, 200]
        with PrometheusServer(
            targets={"shop": [f"127.0.0.1:{port}"]},
            rule_files=[rules],
            workdir=tmp_path,
            binary=prometheus,
        ) as server:
            server.wait_for('up{job="shop"} == 1', timeout=30)
            loaded = {group["name"] for group in server.api("rules")["groups"]}
            assert {"shop-slo-availability", "shop-slo-latency", "shop-alerts"} <= loaded
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(_get, [base + _path(i) for i in range(REQUESTS)]))
            assert statuses.count(500) == REQUESTS // 5
            served = 3 + REQUESTS
            server.wait_for(f'sum(http_requests_total{{job="shop"}}) == {served}', timeout=30)
            time.sleep(2.5)  # two more rule evaluations after the last scrape

            availability = _value(
                server, 'slo:sli_error:ratio_rate5m{service="shop",slo="availability"}'
            )
            latency = _value(server, 'slo:sli_error:ratio_rate5m{service="shop",slo="latency"}')
            burn = _value(server, 'slo:burn_rate:ratio_rate5m{service="shop",slo="availability"}')

    assert availability == pytest.approx(EXPECTED_RATIO, abs=TOLERANCE)
    assert latency == pytest.approx(EXPECTED_RATIO, abs=TOLERANCE)
    # 20 % errors against a 0.1 % budget: 200x the sustainable burn.
    assert burn == pytest.approx(EXPECTED_RATIO / 0.001, abs=TOLERANCE / 0.001)
