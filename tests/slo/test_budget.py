"""The release gate's queries and verdicts, from answers written by hand (no Prometheus)."""

from __future__ import annotations

import math

import pytest
import yaml

from ouro_obs import cli
from ouro_obs.slo import budget, conventions
from ouro_obs.slo.budget import Sample, gate_exit_code, slo_budgets
from ouro_obs.slo.spec import ServiceSpec, load_spec
from ouro_obs.slo.windows import period_window
from tests.support.tools import REPO_ROOT

SPEC = REPO_ROOT / "examples" / "shop" / "slo.yaml"


@pytest.fixture(scope="module")
def spec() -> ServiceSpec:
    return load_spec(SPEC)


def _remaining(spec: ServiceSpec, slo_index: int, value: float) -> Sample:
    labels = conventions.slo_labels(spec, spec.slos[slo_index])
    return Sample({"__name__": conventions.BUDGET_REMAINING_RECORD, **labels}, value)


def _burn(spec: ServiceSpec, slo_index: int, value: float) -> Sample:
    slo = spec.slos[slo_index]
    name = conventions.burn_rate_record(period_window(slo.window_days))
    return Sample({"__name__": name, **conventions.slo_labels(spec, slo)}, value)


def _firing(spec: ServiceSpec, slo_index: int) -> Sample:
    page = conventions.alert_names(spec, spec.slos[slo_index]).page
    return Sample({"alertname": page, "alertstate": "firing"}, 1.0)


def _healthy(spec: ServiceSpec) -> list[Sample]:
    return [_remaining(spec, 0, 0.6), _remaining(spec, 1, 0.9)]


def test_the_recordings_query_names_the_records_of_the_conventions(spec: ServiceSpec) -> None:
    query = budget.recordings_query(spec)
    assert query.startswith('{__name__=~"slo:error_budget_remaining:ratio|')
    assert "slo:burn_rate:ratio_rate30d" in query
    assert "slo:burn_rate:ratio_rate28d" in query
    assert query.endswith(',service="shop"}')


def test_the_page_query_asks_for_the_firing_page_alerts_only(spec: ServiceSpec) -> None:
    assert budget.firing_pages_query(spec) == (
        'ALERTS{alertname=~"ShopAvailabilityErrorBudgetBurnPage|'
        'ShopLatencyErrorBudgetBurnPage",alertstate="firing"}'
    )


def test_budget_left_on_every_slo_and_no_page_opens_the_gate(spec: ServiceSpec) -> None:
    budgets = slo_budgets(spec, _healthy(spec), [])
    assert [b.verdict for b in budgets] == ["ok", "ok"]
    assert gate_exit_code(budgets) == budget.EXIT_OPEN


@pytest.mark.parametrize("remaining", [0.0, -0.4])
def test_a_spent_budget_closes_the_gate(spec: ServiceSpec, remaining: float) -> None:
    budgets = slo_budgets(spec, [_remaining(spec, 0, remaining), _remaining(spec, 1, 0.9)], [])
    assert budgets[0].verdict == "budget spent"
    assert gate_exit_code(budgets) == budget.EXIT_CLOSED


def test_a_firing_page_closes_the_gate_with_budget_left(spec: ServiceSpec) -> None:
    budgets = slo_budgets(spec, _healthy(spec), [_firing(spec, 1)])
    assert [b.verdict for b in budgets] == ["ok", "page firing"]
    assert gate_exit_code(budgets) == budget.EXIT_CLOSED


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_budget_that_is_not_a_number_is_no_data(spec: ServiceSpec, value: float) -> None:
    budgets = slo_budgets(spec, [_remaining(spec, 0, value), _remaining(spec, 1, 0.9)], [])
    assert budgets[0].verdict == "no data"
    assert budgets[0].budget_remaining is None
    assert gate_exit_code(budgets) == budget.EXIT_NO_DATA


def test_one_closed_slo_wins_over_another_without_data(spec: ServiceSpec) -> None:
    budgets = slo_budgets(spec, [_remaining(spec, 1, -1.0)], [])
    assert [b.verdict for b in budgets] == ["no data", "budget spent"]
    assert gate_exit_code(budgets) == budget.EXIT_CLOSED


def test_samples_of_another_service_or_slo_are_not_read(spec: ServiceSpec) -> None:
    other = Sample(
        {"__name__": conventions.BUDGET_REMAINING_RECORD, "service": "cart", "slo": "latency"},
        -5.0,
    )
    budgets = slo_budgets(spec, [*_healthy(spec), other], [])
    assert gate_exit_code(budgets) == budget.EXIT_OPEN


def test_the_report_lists_budget_burn_rates_page_and_gate(spec: ServiceSpec) -> None:
    samples = [*_healthy(spec), _burn(spec, 0, 0.4)]
    text = budget.report_text(spec, slo_budgets(spec, samples, []))
    assert text.splitlines()[:5] == [
        "shop availability: 99.9 % over 30d",
        "  budget left: 60.0 %",
        "  burn rate: 30d 0.40",
        "  page alert ShopAvailabilityErrorBudgetBurnPage: not firing",
        "  verdict: ok",
    ]
    assert text.endswith("release gate: open (exit 0)\n")


def test_the_json_report_carries_the_same_verdicts(spec: ServiceSpec) -> None:
    report = budget.report_json(spec, "http://p:9090", slo_budgets(spec, _healthy(spec), []))
    assert report["gate"] == "open"
    assert report["exit_code"] == 0
    assert [entry["verdict"] for entry in report["slos"]] == ["ok", "ok"]
    assert report["slos"][0]["budget_remaining"] == 0.6


def test_the_command_is_in_the_cli_table_and_needs_only_the_generator_extra() -> None:
    entry = cli.COMMANDS["budget"]
    assert (entry.module, entry.extra) == ("ouro_obs.slo.budget_command", "generate")
    args = cli.parse_args(["budget", "spec.yaml", "--prometheus", "http://p:9090", "--json"])
    assert (args.spec, args.prometheus, args.json, args.timeout) == (
        "spec.yaml",
        "http://p:9090",
        True,
        10.0,
    )


def test_the_prometheus_url_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["budget", str(SPEC)])
    assert exit_info.value.code == 2
    assert "--prometheus" in capsys.readouterr().err


def test_the_release_workflow_installs_the_extra_the_gate_needs() -> None:
    """A bare `pip install .` would make the gate exit 2 for the missing extra."""
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "release.yml").read_text())
    extra = cli.COMMANDS["budget"].extra
    gated = []
    for job in workflow["jobs"].values():
        runs = [step.get("run", "") for step in job.get("steps", [])]
        gate_at = next((i for i, run in enumerate(runs) if "ouro-obs budget" in run), None)
        if gate_at is None:
            continue
        gated.append(job)
        installs = [run for run in runs[:gate_at] if "pip install" in run]
        assert any(f"[{extra}]" in run for run in installs), installs
    assert len(gated) == 1
