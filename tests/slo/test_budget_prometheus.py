"""`ouro-obs budget` against a real Prometheus running the generated rules on synthetic data.

One Prometheus holds three hours of backfilled request series of four copies of the shop
(each its own service name, hence its own rules): a healthy one, one that spent its
availability budget an hour ago and has been clean since, one that burns it now fast
enough to page, and one never scraped. The recording rules that read the raw series
are backfilled over the same three hours (the SLO-window budget sums them over the
period); Prometheus then evaluates each copy's whole generated rule file, the 5-minute
interval of the SLO-window group removed so that it is evaluated at once.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ouro_obs import cli
from ouro_obs.demo.lifecycle import free_port
from ouro_obs.slo import budget, conventions
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.rules import AlertRule, events_window, rule_groups
from ouro_obs.slo.spec import ServiceSpec, load_spec
from tests.slo.backfill import Counter, backfill_history, request_counters
from tests.support.processes import PrometheusServer
from tests.support.tools import REPO_ROOT

pytestmark = pytest.mark.integration

EXAMPLE = REPO_ROOT / "examples" / "shop" / "slo.yaml"
COPIES = ("healthy", "spent", "paging", "unscraped")
REQUESTS_PER_SECOND = 10.0
HOURS_OF_DATA = 3


@dataclass(frozen=True, slots=True)
class Gate:
    prometheus: PrometheusServer
    spec_paths: dict[str, Path]

    def run(self, copy: str, *extra: str, url: str | None = None) -> int:
        arguments = ["budget", str(self.spec_paths[copy]), "--prometheus"]
        return cli.main([*arguments, url or self.prometheus.url, *extra])


def _spec_file(directory: Path, copy: str) -> Path:
    text = re.sub(r"^service: shop$", f"service: shop-{copy}", EXAMPLE.read_text(), flags=re.M)
    path = directory / f"{copy}.slo.yaml"
    path.write_text(text)
    return path


def _rules_evaluated_every_second(spec: ServiceSpec) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        generated_files(spec)[conventions.rule_file_path(spec)]
    )
    for group in document["groups"]:
        group.pop("interval", None)
    return document


def _write(directory: Path, name: str, document: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _counters(specs: dict[str, ServiceSpec], start: int, now: int) -> list[Counter]:
    def requests(copy: str, error_share: float) -> list[Counter]:
        labels = {"job": specs[copy].service}
        return request_counters(specs[copy], labels, REQUESTS_PER_SECOND, error_share, 0.005)

    # 2 % errors (20 times the 99.9 % budget) for two hours, then none.
    spent = [
        dataclasses.replace(c, per_second=0.2, stops_at=now - 3600)
        if c.labels.get("status") == "500"
        else c
        for c in requests("spent", 0.0)
    ]
    return [*requests("healthy", 0.0005), *spent, *requests("paging", 0.05)]


def _longest_page_wait(spec: ServiceSpec) -> int:
    pages = {conventions.alert_names(spec, slo).page for slo in spec.slos}
    alerts = [r for g in rule_groups(spec) for r in g.rules if isinstance(r, AlertRule)]
    return max((a.for_.seconds for a in alerts if a.alert in pages and a.for_), default=0)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    directory = tmp_path_factory.mktemp("budget-prometheus")
    spec_paths = {copy: _spec_file(directory, copy) for copy in COPIES}
    specs = {copy: load_spec(path) for copy, path in spec_paths.items()}
    rules = {spec.service: _rules_evaluated_every_second(spec) for spec in specs.values()}
    now = int(time.time())
    start = now - HOURS_OF_DATA * 3600
    backfill_history(directory, _counters(specs, start, now), start, now, rules.values())
    rule_files = [_write(directory, f"{name}.rules.yaml", doc) for name, doc in rules.items()]
    with PrometheusServer(targets={}, rule_files=rule_files, workdir=directory) as prometheus:
        recorded = [specs[copy].service for copy in ("healthy", "spent", "paging")]
        selector = "|".join(recorded)
        prometheus.wait_for(
            f'count(slo:error_budget_remaining:ratio{{service=~"{selector}"}}) == '
            f"{len(recorded) * len(specs['healthy'].slos)}"
        )
        paging = conventions.alert_names(specs["paging"], specs["paging"].slos[0]).page
        prometheus.wait_for(
            f'ALERTS{{alertname="{paging}",alertstate="firing"}}',
            timeout=60 + _longest_page_wait(specs["paging"]),
        )
        yield Gate(prometheus, spec_paths)


def _spec_of(gate: Gate, copy: str) -> ServiceSpec:
    return load_spec(gate.spec_paths[copy])


def _report(gate: Gate, copy: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    status = gate.run(copy, "--json")
    return status, json.loads(capsys.readouterr().out)


def _by_slo(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["slo"]: entry for entry in report["slos"]}


def test_a_healthy_service_opens_the_gate(gate: Gate, capsys: pytest.CaptureFixture[str]) -> None:
    assert gate.run("healthy") == budget.EXIT_OPEN
    text = capsys.readouterr().out
    assert "shop-healthy availability: 99.9 % over 30d" in text
    assert "release gate: open (exit 0)" in text
    status, report = _report(gate, "healthy", capsys)
    assert status == budget.EXIT_OPEN
    assert report["gate"] == "open"
    for entry in report["slos"]:
        assert entry["verdict"] == "ok"
        assert entry["budget_remaining"] == pytest.approx(0.5, abs=0.01)
        assert entry["burn_rates"]["5m"] == pytest.approx(0.5, abs=0.01)
        assert entry["page_firing"] is False


def test_a_spent_budget_closes_the_gate_without_a_page(
    gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    status, report = _report(gate, "spent", capsys)
    assert status == budget.EXIT_CLOSED
    assert report["gate"] == "closed"
    availability = _by_slo(report)["availability"]
    assert availability["verdict"] == "budget spent"
    # 1440 errors in 109440 requests against a budget of 0.001, as the SLO-window ratio
    # sees them: summed from event rates recorded every events interval, it misses at most
    # one recorded window at either end (the first partly empty, the newest not yet
    # recorded), never more.
    window = events_window(_spec_of(gate, "spent").slos[0].window_days).seconds
    errors, total = 0.2 * 7200, 10.0 * 10800 + 0.2 * 7200
    oldest_missed = 1 - (errors - 0.2 * window) / (total - 10.2 * window) / 0.001
    newest_missed = 1 - errors / (total - 10.0 * window) / 0.001
    assert newest_missed <= availability["budget_remaining"] <= oldest_missed
    assert availability["burn_rates"]["5m"] == 0
    assert availability["page_firing"] is False
    assert _by_slo(report)["latency"]["verdict"] == "ok"


def test_a_firing_page_closes_the_gate(gate: Gate, capsys: pytest.CaptureFixture[str]) -> None:
    assert gate.run("paging") == budget.EXIT_CLOSED
    text = capsys.readouterr().out
    assert "page alert ShopPagingAvailabilityErrorBudgetBurnPage: FIRING" in text
    assert "release gate: closed (exit 1)" in text
    _, report = _report(gate, "paging", capsys)
    availability = _by_slo(report)["availability"]
    assert availability["page_firing"] is True
    assert availability["burn_rates"]["5m"] == pytest.approx(50, rel=0.01)
    assert availability["verdict"] == "budget spent, page firing"


def test_no_recorded_budget_is_not_a_pass(gate: Gate, capsys: pytest.CaptureFixture[str]) -> None:
    status, report = _report(gate, "unscraped", capsys)
    assert status == budget.EXIT_NO_DATA
    assert {entry["verdict"] for entry in report["slos"]} == {"no data"}
    gate.run("unscraped")
    assert "are the generated rules loaded" in capsys.readouterr().out


def test_prometheus_unreachable_has_its_own_exit_code_and_says_so(
    gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    assert gate.run("healthy", "--json", url=nowhere) == budget.EXIT_UNREACHABLE
    captured = capsys.readouterr()
    assert f"no answer from Prometheus at {nowhere}" in captured.err
    assert "does not pass (exit 3)" in captured.err
    assert json.loads(captured.out)["gate"] == "unreachable"


def test_a_url_that_is_not_prometheus_is_unreachable_too(
    gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gate.run("healthy", url=f"{gate.prometheus.url}/elsewhere") == budget.EXIT_UNREACHABLE
    captured = capsys.readouterr()
    assert "HTTP 404" in captured.err
    assert captured.out == ""


def test_a_url_without_a_scheme_is_a_usage_error(
    gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    address = gate.prometheus.url.removeprefix("http://")
    assert gate.run("healthy", url=address) == 2
    assert "give the base URL with its scheme" in capsys.readouterr().err
