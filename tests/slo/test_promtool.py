"""promtool accepts every generated rule file and passes every generated test file.

Also the other way round: the generated tests fail when the rules they prove are
broken, so a passing run means something.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ouro_obs.slo.conventions import rule_file_path, rule_test_path
from ouro_obs.slo.spec import ServiceSpec, load_spec
from tests.slo.support import (
    EXAMPLE_ENVIRONMENTS,
    EXAMPLE_SPEC,
    GOLDEN_NAMES,
    PromtoolRun,
    example_spec,
    golden_input,
    golden_output,
    promtool,
    promtool_many,
)
from tests.support.tools import REPO_ROOT, require_tool

pytestmark = pytest.mark.integration

#: (label, directory holding alerts/, spec) for every golden output and the example.
TARGETS = [
    *((name, golden_output(name), golden_input(name)) for name in GOLDEN_NAMES),
    *((f"example-{env}", REPO_ROOT, EXAMPLE_SPEC) for env in EXAMPLE_ENVIRONMENTS),
]


def _target_spec(label: str, spec_path: Path) -> ServiceSpec:
    """The spec a target's files come from: the example's are one environment's each."""
    if label.startswith("example-"):
        return example_spec(label.removeprefix("example-"))
    return load_spec(spec_path)


@pytest.fixture(scope="module")
def promtool_runs() -> dict[str, tuple[PromtoolRun, PromtoolRun]]:
    """`promtool check rules` and `promtool test rules` on every target, run concurrently."""
    binary = require_tool("promtool")
    jobs: list[tuple[str, Path]] = []
    for label, directory, spec_path in TARGETS:
        spec = _target_spec(label, spec_path)
        rules, tests = directory / rule_file_path(spec), directory / rule_test_path(spec)
        if not rules.is_file() or not tests.is_file():
            pytest.fail(f"{rules} or {tests} is missing: generate it first")
        jobs += [("check", rules), ("test", tests)]
    runs = promtool_many(binary, jobs)
    return {
        label: (runs[2 * index], runs[2 * index + 1]) for index, (label, _, _) in enumerate(TARGETS)
    }


@pytest.mark.parametrize("label", [label for label, _, _ in TARGETS])
def test_promtool_check_rules_accepts_the_rule_file(
    label: str, promtool_runs: dict[str, tuple[PromtoolRun, PromtoolRun]]
) -> None:
    check, _ = promtool_runs[label]
    assert check.returncode == 0, f"{check.command}:\n{check.output}"
    assert "SUCCESS" in check.output


@pytest.mark.parametrize("label", [label for label, _, _ in TARGETS])
def test_promtool_test_rules_passes_the_generated_tests(
    label: str, promtool_runs: dict[str, tuple[PromtoolRun, PromtoolRun]]
) -> None:
    _, test = promtool_runs[label]
    assert test.returncode == 0, f"{test.command}:\n{test.output}"
    assert "SUCCESS" in test.output


# --------------------------------------------------------------------------- mutations


def _subset(tests_path: Path, fragment: str) -> dict[str, Any]:
    """The generated test file with only the test groups whose name contains ``fragment``."""
    document: dict[str, Any] = yaml.safe_load(tests_path.read_text())
    document["tests"] = [t for t in document["tests"] if fragment in t["name"]]
    assert document["tests"], f"no generated test named like {fragment!r}"
    return document


Mutation = tuple[tuple[str, str], ...]


def _run_mutated(tmp_path: Path, mutation: Mutation, fragment: str) -> PromtoolRun:
    """The test groups matching ``fragment`` against the mutated rules.

    The intact rules pass the same groups: ``test_promtool_test_rules_passes_the_generated_tests``.
    """
    binary = require_tool("promtool")
    name = "availability-30d"
    spec = load_spec(golden_input(name))
    rules = golden_output(name) / rule_file_path(spec)
    mutated = original = rules.read_text()
    for old, new in mutation:
        assert old in original, f"{old!r} is not in the generated rules"
        mutated = mutated.replace(old, new)
    (tmp_path / rules.name).write_text(mutated)
    subset = _subset(golden_output(name) / rule_test_path(spec), fragment)
    test_file = tmp_path / "subset.test.yaml"
    test_file.write_text(yaml.safe_dump(subset, sort_keys=False))
    return promtool(binary, "test", test_file)


@pytest.mark.parametrize(
    ("mutation", "fragment"),
    [
        pytest.param(((" > 0.0144", " > 0.0288"),), "100x burn", id="page-threshold-doubled"),
        pytest.param(((" > 0.0144", " > 0.0072"),), "100x burn", id="page-threshold-halved"),
        # Both ticket conditions fire once 10 % of the budget is spent, so a 5x burn
        # reaches them at the same moment: only moving both is visible.
        pytest.param(
            ((" > 0.003\n", " > 0.006\n"), (" > 0.001\n", " > 0.002\n")),
            "5x burn",
            id="ticket-thresholds-doubled",
        ),
        pytest.param(((" > 0.001\n", " > 0.0008\n"),), "0.9x burn", id="ticket-below-budget"),
        pytest.param(((" >= 100\n", " >= 10\n"),), "low traffic", id="low-traffic-guard-weak"),
        pytest.param((("for: 10m", "for: 20m"),), "service stops", id="absent-alert-slower"),
    ],
)
def test_generated_tests_fail_when_the_rules_are_broken(
    tmp_path: Path, mutation: Mutation, fragment: str
) -> None:
    broken = _run_mutated(tmp_path, mutation, fragment)
    assert broken.returncode != 0, f"the mutation {mutation} went unnoticed:\n{broken.output}"
    assert "FAILED" in broken.output
    assert "alertname: Checkout" in broken.output, broken.output
