"""Prometheus holds what the spec says of each SLO (issue 14 item 5).

An info series per SLO (objective, window, SLI kind and the spec's labels), the window
in seconds, and the spec's labels on every recording: dashboards and other tools read
the SLO from Prometheus instead of from the spec file. promtool evaluates the rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ouro_obs.slo import conventions
from ouro_obs.slo.conventions import rule_file_path
from ouro_obs.slo.promql import labelled
from ouro_obs.slo.rules import RecordingRule, rule_groups
from ouro_obs.slo.spec import load_spec, parse_spec
from tests.slo.support import EXAMPLE_SPEC, generate, promtool
from tests.support.tools import require_tool

SPEC_LABELS = {"team": "storefront", "owner": "shop-oncall"}


def test_every_recording_carries_the_spec_labels() -> None:
    spec = load_spec(EXAMPLE_SPEC)
    assert dict(spec.labels) == SPEC_LABELS
    recordings = [
        rule
        for group in rule_groups(spec)
        for rule in group.rules
        if isinstance(rule, RecordingRule)
    ]
    assert len(recordings) > 30
    for rule in recordings:
        assert SPEC_LABELS.items() <= rule.labels.items(), rule.record


@pytest.mark.parametrize("label", conventions.INFO_LABELS)
def test_the_info_labels_are_reserved_in_the_spec(label: str) -> None:
    with pytest.raises(ValueError, match=f"'{label}' is set by ouro-obs"):
        parse_spec(
            "apiVersion: ouro-obs/v1\nservice: a\nrunbook_base_url: https://r.example.com\n"
            f"labels: {{{label}: x}}\n"
            "slos: [{name: x, objective: 99.9, sli: {kind: availability}}]\n"
        )


@pytest.mark.integration
def test_promtool_reads_the_info_and_period_series_of_every_slo(tmp_path: Path) -> None:
    binary = require_tool("promtool")
    spec = load_spec(EXAMPLE_SPEC)
    generate(EXAMPLE_SPEC, tmp_path)
    rules = tmp_path / rule_file_path(spec)
    expected = {
        "availability": ({"objective": "99.9", "window": "30d", "sli": "availability"}, 30),
        "latency": ({"objective": "99", "window": "28d", "sli": "latency"}, 28),
    }
    checks = []
    for slo in spec.slos:
        described, days = expected[slo.name]
        labels = {**conventions.slo_labels(spec, slo), **SPEC_LABELS}
        info = {"__name__": conventions.INFO_RECORD, **labels, **described}
        checks += [
            {
                "expr": labelled(conventions.INFO_RECORD, conventions.slo_labels(spec, slo)),
                "eval_time": "1m",
                "exp_samples": [{"labels": _series_text(info), "value": 1}],
            },
            {
                "expr": labelled(conventions.PERIOD_RECORD, conventions.slo_labels(spec, slo)),
                "eval_time": "1m",
                "exp_samples": [
                    {
                        "labels": labelled(conventions.PERIOD_RECORD, labels),
                        "value": days * 86400,
                    }
                ],
            },
        ]
    document = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {"name": "metadata", "interval": "1m", "input_series": [], "promql_expr_test": checks}
        ],
    }
    test_file = rules.parent / "metadata.test.yaml"
    test_file.write_text(yaml.safe_dump(document, sort_keys=False))
    run = promtool(binary, "test", test_file)
    assert run.returncode == 0, f"{run.command}:\n{run.output}"


def _series_text(labels: dict[str, str]) -> str:
    name = labels.pop("__name__")
    return labelled(name, labels)
