"""Alerts read recordings of their own group, so no group order makes one fire late.

Issue 12 item 17: Prometheus evaluates the rules of a group in order, each seeing the ones
before it at the same timestamp, and orders nothing across groups (promtool picks a random
order). An alert reading another group's recordings may therefore fire one interval late,
and a generated test could pass or fail by luck. The SLO-window group's interval must stay
below the 5-minute lookback, or its series vanish between two evaluations.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ouro_obs.slo.conventions import rule_file_path, rule_test_path
from ouro_obs.slo.rules import PERIOD_GROUP_INTERVAL, AlertRule, RecordingRule, rule_groups
from ouro_obs.slo.spec import load_spec
from tests.slo.support import (
    EXAMPLE_SPEC,
    GOLDEN_NAMES,
    example_spec,
    generate,
    golden_input,
    promtool,
)
from tests.support.tools import REPO_ROOT, require_tool

#: Prometheus's default lookback delta: a query sees no sample older than this.
LOOKBACK_SECONDS = 5 * 60
_RECORD_READ = re.compile(r"\b(slo:[a-z_]+:[a-z0-9_]+)(\{[^}]*\})?")


def _labels(matchers: str | None) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', matchers or ""))


@pytest.mark.parametrize("name", [*GOLDEN_NAMES, "example"])
def test_every_alert_reads_only_recordings_made_before_it_in_its_own_group(name: str) -> None:
    """Also the SLO-window group: its own recordings, or the events its SLO's group records."""
    spec = load_spec(EXAMPLE_SPEC if name == "example" else golden_input(name))
    alerts_read = 0
    earlier: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for group in rule_groups(spec):
        recorded = earlier.setdefault(group.name, [])
        if group.name.endswith("-period"):
            recorded += earlier[group.name.removesuffix("-period") + "-events"]
        for rule in group.rules:
            for record, matchers in _RECORD_READ.findall(rule.expr):
                wanted = _labels(matchers)
                assert any(
                    record == made and wanted.items() <= labels.items() for made, labels in recorded
                ), f"{group.name}: {rule} reads {record} from elsewhere"
                alerts_read += isinstance(rule, AlertRule)
            if isinstance(rule, RecordingRule):
                recorded.append((rule.record, dict(rule.labels)))
    assert alerts_read >= 4 * len(spec.slos)  # short and long window of two conditions each


def test_each_slo_group_holds_its_page_and_ticket_after_its_recordings() -> None:
    spec = load_spec(EXAMPLE_SPEC)
    groups = {group.name: group for group in rule_groups(spec)}
    for slo in spec.slos:
        rules = groups[f"shop-slo-{slo.name}"].rules
        kinds = [isinstance(rule, AlertRule) for rule in rules]
        assert kinds == sorted(kinds), "an alert comes before a recording"
        alerts = [rule.alert for rule in rules if isinstance(rule, AlertRule)]
        assert any(name.endswith("Page") for name in alerts)
        assert any(name.endswith("Ticket") for name in alerts)
    service = [rule for rule in groups["shop-alerts"].rules if isinstance(rule, AlertRule)]
    # The grouped latency SLO's "more groups than it records" ticket reads raw series and
    # must fire while that SLO's own rules fail their limit: not in that SLO's groups.
    assert {rule.alert for rule in service} == {
        "ShopTargetDown",
        "ShopMetricsAbsent",
        "ShopLatencyTooManyGroups",
    }


def test_the_slo_window_group_runs_well_inside_the_lookback() -> None:
    assert PERIOD_GROUP_INTERVAL.seconds * 2 <= LOOKBACK_SECONDS - 60  # a missed run is fine
    rules = yaml.safe_load((REPO_ROOT / rule_file_path(example_spec())).read_text())
    intervals = {g["name"]: g.get("interval") for g in rules["groups"]}
    assert intervals["shop-prod-slo-availability-period"] == "2m"
    assert intervals["shop-prod-slo-availability"] is None


@pytest.mark.integration
def test_the_generated_tests_pass_with_the_groups_in_reverse_order(tmp_path: Path) -> None:
    binary = require_tool("promtool")
    spec_path = golden_input("availability-30d")
    spec = load_spec(spec_path)
    generate(spec_path, tmp_path)
    test_file = tmp_path / rule_test_path(spec)
    document: dict[str, Any] = yaml.safe_load(test_file.read_text())
    # Alerts before the recordings they read: the worst order promtool can pick.
    document["group_eval_order"] = [group.name for group in reversed(rule_groups(spec))]
    document["tests"] = [t for t in document["tests"] if "x burn (" in t["name"]]
    assert len(document["tests"]) == 2
    test_file.write_text(yaml.safe_dump(document, sort_keys=False))
    run = promtool(binary, "test", test_file)
    assert run.returncode == 0, f"{run.command}:\n{run.output}"
