"""The generated AnalysisTemplate's verdicts, from its queries run against a real Prometheus.

Prometheus holds half an hour of synthetic series of several versions of the shop, told
apart by ``rollouts_pod_template_hash`` as the ServiceMonitor labels them. Each metric's
query is sent with the template's arguments substituted, at a fixed time, through the
HTTP API, and its result judged by the template's own success and failure conditions
(:mod:`tests.slo.analysis_verdicts`), as Argo Rollouts would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ouro_obs.slo import conventions
from ouro_obs.slo.analysis import analysis_template
from ouro_obs.slo.spec import ServiceSpec, load_spec
from tests.slo.analysis_verdicts import Phase, measurement_phase, run_phase, substitute_args
from tests.slo.backfill import Counter, backfilled_prometheus, request_counters
from tests.support.processes import PrometheusServer
from tests.support.tools import REPO_ROOT

pytestmark = pytest.mark.integration

SPEC = REPO_ROOT / "examples" / "shop" / "slo.yaml"
NAMESPACE = "shop"
#: Requests per second of the stable version, and of a canary (a tenth of the pods).
STABLE_RPS = 20.0
CANARY_RPS = 2.0
#: The fast page's burn factor and the shop's error budgets (99.9 %: 0.001, 99 %: 0.01).
PAGE_BURN_RATE = 14.4


@dataclass(frozen=True, slots=True)
class Version:
    """One version's traffic: its requests per second and the share of them that are bad,
    as a multiple of each SLO's error budget (1.0 burns exactly the budget)."""

    per_second: float
    burn_rate: float


VERSIONS = {
    "stable": Version(STABLE_RPS, 0.5),
    "healthy": Version(CANARY_RPS, 0.5),
    "burning": Version(CANARY_RPS, 2 * PAGE_BURN_RATE),
    # Below the page rate, but 20 times the stable version's burn.
    "regressed": Version(CANARY_RPS, 10.0),
    # 30 requests in five minutes, every second one bad: too few to judge.
    "trickle": Version(0.1, 500.0),
    # Pods still up after a blue-green switch: series that no longer grow.
    "idle": Version(0.0, 0.0),
}


def _counters(spec: ServiceSpec) -> list[Counter]:
    availability, latency = spec.slos
    counters = []
    for version_hash, version in VERSIONS.items():
        labels = {"job": spec.service, "namespace": NAMESPACE}
        labels[conventions.VERSION_LABEL] = version_hash
        counters += request_counters(
            spec,
            labels,
            version.per_second,
            error_share=min(1.0, version.burn_rate * float(availability.error_budget)),
            slow_share=min(1.0, version.burn_rate * float(latency.error_budget)),
        )
    return counters


@dataclass(frozen=True, slots=True)
class Analysis:
    spec: ServiceSpec
    template: dict[str, Any]
    prometheus: PrometheusServer
    at: int

    def measure(self, metric: dict[str, Any], canary: str, stable: str) -> list[float]:
        args = {
            **{arg["name"]: arg.get("value", "") for arg in self.template["spec"]["args"]},
            conventions.ANALYSIS_ARGS.namespace: NAMESPACE,
            conventions.ANALYSIS_ARGS.canary_hash: canary,
            conventions.ANALYSIS_ARGS.stable_hash: stable,
        }
        query = substitute_args(metric["provider"]["prometheus"]["query"], args)
        data = self.prometheus.api("query", query=query, time=str(self.at))
        assert data["resultType"] == "vector", data
        return [float(sample["value"][1]) for sample in data["result"]]

    def phases(self, canary: str, stable: str) -> dict[str, Phase]:
        """Each metric's phase for one measurement of ``canary`` against ``stable``."""
        return {
            metric["name"]: measurement_phase(metric, self.measure(metric, canary, stable))
            for metric in self.template["spec"]["metrics"]
        }


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Analysis]:
    spec = load_spec(SPEC)
    # Whole minutes an hour back: inside the retention, clear of the head block.
    at = int(time.time()) // 60 * 60 - 3600
    directory = tmp_path_factory.mktemp("analysis-prometheus")
    with backfilled_prometheus(directory, _counters(spec), at - 1800, at) as prometheus:
        yield Analysis(spec, analysis_template(spec), prometheus, at)


def _names(spec: ServiceSpec) -> list[conventions.AnalysisMetricNames]:
    return [conventions.analysis_metric_names(slo) for slo in spec.slos]


def test_a_healthy_canary_passes_every_metric(analysis: Analysis) -> None:
    phases = analysis.phases("healthy", "stable")
    assert set(phases.values()) == {"Successful"}, phases
    assert run_phase(phases.values()) == "Successful"


def test_a_canary_burning_twice_the_page_rate_fails_both_slos(analysis: Analysis) -> None:
    phases = analysis.phases("burning", "stable")
    assert set(phases.values()) == {"Failed"}, phases
    assert run_phase(phases.values()) == "Failed"


def test_a_canary_without_data_is_inconclusive_not_a_pass(analysis: Analysis) -> None:
    phases = analysis.phases("never-scraped", "stable")
    assert set(phases.values()) == {"Inconclusive"}, phases
    assert run_phase(phases.values()) == "Inconclusive"


def test_a_canary_with_too_few_requests_to_judge_is_inconclusive(analysis: Analysis) -> None:
    phases = analysis.phases("trickle", "stable")
    assert set(phases.values()) == {"Inconclusive"}, phases


def test_a_canary_far_worse_than_stable_fails_below_the_page_rate(analysis: Analysis) -> None:
    """The baseline catches what the objective lets through: 10x burn against 0.5x."""
    phases = analysis.phases("regressed", "stable")
    for names in _names(analysis.spec):
        assert phases[names.burn_rate] == "Successful"
        assert phases[names.vs_stable] == "Failed"
    assert run_phase(phases.values()) == "Failed"


@pytest.mark.parametrize("canary", ["healthy", "burning"])
def test_a_stable_version_without_traffic_leaves_the_objective_to_judge(
    analysis: Analysis, canary: str
) -> None:
    """Blue-green after the switch: the old pods are scraped but serve nothing."""
    assert analysis.phases(canary, "idle") == analysis.phases(canary, "stable")


def test_the_vs_stable_measurement_is_the_difference_of_burn_rates(analysis: Analysis) -> None:
    metrics = {metric["name"]: metric for metric in analysis.template["spec"]["metrics"]}
    for names in _names(analysis.spec):
        canary = analysis.measure(metrics[names.burn_rate], "regressed", "stable")
        stable = analysis.measure(metrics[names.burn_rate], "stable", "stable")
        difference = analysis.measure(metrics[names.vs_stable], "regressed", "stable")
        assert canary == [pytest.approx(10.0)]
        assert stable == [pytest.approx(0.5)]
        assert difference == [pytest.approx(9.5)]
