"""The promtool test scenarios, read as data (promtool itself runs them in test_promtool)."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from ouro_obs.slo.promtool import promtool_tests
from ouro_obs.slo.promtool_timing import scenario_timing
from ouro_obs.slo.spec import ServiceSpec, load_spec
from ouro_obs.slo.windows import alert_windows
from tests.slo.support import EXAMPLE_SPEC, golden_input

SCENARIOS = ("x burn (", "x burn (", "0.9x burn never alerts", "at low traffic", "service stops")


def _seconds(duration: str) -> int:
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", duration))


def _per_slo(spec: ServiceSpec, tests: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Each SLO's scenarios: five, then two more for a grouped SLO (one group per page)."""
    found: list[list[dict[str, Any]]] = []
    start = 0
    for slo in spec.slos:
        count = 5 + (2 if slo.group_by else 0)
        found.append(tests[start : start + count])
        start += count
    assert start == len(tests)
    return found


def test_every_slo_gets_the_five_scenarios_in_order() -> None:
    spec = load_spec(EXAMPLE_SPEC)
    tests = promtool_tests(spec, "shop.rules.yaml")["tests"]
    assert any(slo.group_by for slo in spec.slos)
    for slo, scenarios in zip(spec.slos, _per_slo(spec, tests), strict=True):
        own = [t["name"] for t in scenarios]
        assert all(name.startswith(f"{slo.name}: ") for name in own)
        assert "pages" in own[0]
        assert "opens a ticket and never pages" in own[1]
        for fragment, name in zip(SCENARIOS, own[:5], strict=True):
            assert fragment in name
        for name in own[5:]:
            assert "group route=" in name


def test_without_the_low_traffic_guard_there_is_no_low_traffic_scenario() -> None:
    spec = load_spec(golden_input("route-filtered"))
    names = [t["name"] for t in promtool_tests(spec, "shop.rules.yaml")["tests"]]
    assert len(names) == 4
    assert not any("low traffic" in name for name in names)


def test_the_slow_burn_starts_after_clean_history_filling_the_longest_window() -> None:
    spec = load_spec(EXAMPLE_SPEC)
    tests = promtool_tests(spec, "shop.rules.yaml")["tests"]
    slows = [scenarios[1] for scenarios in _per_slo(spec, tests)]
    for slo, slow in zip(spec.slos, slows, strict=True):
        longest = max(a.long_window.seconds for a in alert_windows(slo.window_days))
        first_check = min(_seconds(c["eval_time"]) for c in slow["alert_rule_test"])
        assert first_check >= longest
        assert all(c["exp_alerts"] == [] for c in slow["alert_rule_test"][:3])


def test_evaluation_runs_on_the_shortest_alert_window_in_any_group_order() -> None:
    spec = load_spec(EXAMPLE_SPEC)
    document = promtool_tests(spec, "shop.rules.yaml")
    assert document["evaluation_interval"] == "5m"
    assert "group_eval_order" not in document
    assert scenario_timing(spec, spec.slos[0]).step == 150


def test_counter_values_are_exact_in_binary_floating_point() -> None:
    """Increments like 0.9 drift when promtool adds them up, and drift reads as a reset."""
    for name in ("both-7d", "latency-28d", "availability-30d", "route-filtered"):
        spec = load_spec(golden_input(name))
        for test in promtool_tests(spec, "x.rules.yaml")["tests"]:
            for series in test["input_series"]:
                for number in re.findall(r"[0-9.]+", series["values"]):
                    denominator = Fraction(number).denominator
                    assert denominator & (denominator - 1) == 0, (name, series, number)
