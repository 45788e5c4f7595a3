"""The generate, check and schema commands, run as the installed CLI would run them."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ouro_obs.slo import commands
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.spec import load_spec
from tests.slo.support import files_under, golden_input
from tests.support.tools import require_tool


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ouro_obs", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )


def test_generate_writes_rules_tests_and_manifests_under_the_output_directory(
    tmp_path: Path,
) -> None:
    finished = _cli("generate", str(golden_input("availability-30d")), "-o", str(tmp_path))
    assert finished.returncode == 0, finished.stderr
    assert set(files_under(tmp_path)) >= {
        "alerts/checkout.rules.yaml",
        "alerts/checkout.rules.test.yaml",
        "deploy/generated/prometheusrule.yaml",
        "deploy/generated/servicemonitor.yaml",
        "deploy/generated/kustomization.yaml",
    }
    assert f"wrote {tmp_path / 'alerts/checkout.rules.yaml'}" in finished.stdout


def test_generate_check_reports_stale_files_and_the_command_to_fix_them(tmp_path: Path) -> None:
    spec = str(golden_input("availability-30d"))
    assert _cli("generate", spec, "-o", str(tmp_path)).returncode == 0
    assert _cli("generate", spec, "-o", str(tmp_path), "--check").returncode == 0
    rules = tmp_path / "alerts/checkout.rules.yaml"
    rules.write_text(rules.read_text().replace("0.0144", "0.02"))
    finished = _cli("generate", spec, "-o", str(tmp_path), "--check")
    assert finished.returncode == 1
    assert f"stale: {rules}" in finished.stderr
    assert f"run: ouro-obs generate {spec} -o {tmp_path}" in finished.stderr
    assert "0.02" in rules.read_text()  # --check never writes


@pytest.mark.integration
def test_check_runs_promtool_check_and_test_on_the_generated_rules(tmp_path: Path) -> None:
    require_tool("promtool")
    # A one-day SLO: its windows are minutes long, so promtool is done in a moment.
    spec = tmp_path / "daily.yaml"
    spec.write_text(
        golden_input("availability-30d")
        .read_text()
        .replace("objective: 99.9", "objective: 99.9\n    window: 1d")
    )
    count = len(generated_files(load_spec(spec)))
    finished = _cli("check", str(spec))
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines() == [
        f"{spec}: the spec is valid (1 SLO, {count} files)",
        "promtool check rules alerts/checkout.rules.yaml: passed",
        "promtool test rules alerts/checkout.rules.test.yaml: passed",
    ]


def test_check_without_promtool_validates_and_says_what_it_skipped(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    finished = _cli("check", str(golden_input("availability-30d")), env=env)
    assert finished.returncode == 0, finished.stderr
    assert "the spec is valid" in finished.stdout
    assert "promtool not found: rules not checked" in finished.stderr


def test_check_with_a_promtool_path_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    finished = _cli(
        "check", str(golden_input("availability-30d")), "--promtool", str(tmp_path / "nope")
    )
    assert finished.returncode == 2
    assert f"{tmp_path / 'nope'}: no such promtool" in finished.stderr


def test_check_fails_when_promtool_rejects_the_rules(tmp_path: Path) -> None:
    fake = tmp_path / "promtool"
    fake.write_text('#!/bin/sh\necho "FAILED: $*"\nexit 1\n')
    fake.chmod(0o755)
    finished = _cli("check", str(golden_input("availability-30d")), "--promtool", str(fake))
    assert finished.returncode == 1
    assert "promtool check rules alerts/checkout.rules.yaml: FAILED" in finished.stdout
    assert "FAILED: check rules alerts/checkout.rules.yaml" in finished.stderr


@pytest.mark.parametrize("name", ["generate", "check", "schema"])
def test_configure_adds_the_command_arguments_and_its_handler(name: str) -> None:
    parser = argparse.ArgumentParser(prog=f"ouro-obs {name}")
    commands.configure(name, parser)
    args = parser.parse_args([] if name == "schema" else ["slo.yaml"])
    assert callable(args.handler)
    assert parser.description


def test_configure_refuses_a_command_it_does_not_provide() -> None:
    with pytest.raises(ValueError, match="no command 'sidecar'"):
        commands.configure("sidecar", argparse.ArgumentParser())
