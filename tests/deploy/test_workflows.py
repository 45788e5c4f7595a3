"""The GitHub Actions workflows pass actionlint and do what the release process needs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import REPO_ROOT, missing, require_tool

WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
ACTIONLINT = REPO_ROOT / "scripts" / "actionlint.sh"
ACTIONLINT_PACKAGE = (
    REPO_ROOT / "tools" / "actionlint" / "node_modules" / "@tktco" / "node-actionlint"
)
#: A release tag (v1.2.3, 0.30.0) or a full commit SHA; never a branch or a major-only tag.
PINNED = re.compile(r"@(v?\d+\.\d+\.\d+|[0-9a-f]{40})$")


def _actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    require_tool("node")
    if not ACTIONLINT_PACKAGE.is_dir():
        missing(
            "actionlint is not installed: npm ci --prefix tools/actionlint --no-audit --no-fund"
        )
    return subprocess.run(
        ["bash", str(ACTIONLINT), *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((WORKFLOWS_DIR / name).read_text())
    return loaded


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _runs(workflow: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in _steps(workflow))


def _step_using(workflow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in _steps(workflow) if step.get("uses", "").startswith(f"{action}@")]


def test_actionlint_passes_every_workflow() -> None:
    workflows = sorted(WORKFLOWS_DIR.glob("*.yml"))
    assert workflows
    result = _actionlint(*workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo ${{ github.evnt.name }}\n"
    )
    result = _actionlint(broken)
    assert result.returncode == 1
    assert '"evnt" is not defined' in result.stdout


def test_actionlint_refuses_to_check_nothing(tmp_path: Path) -> None:
    result = _actionlint(tmp_path / "absent.yml")
    assert result.returncode == 2


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_every_action_is_pinned_to_a_release(name: str) -> None:
    uses = [step["uses"] for step in _steps(_load(name)) if "uses" in step]
    assert uses
    assert [use for use in uses if not PINNED.search(use)] == []


def test_ci_runs_the_test_suite_and_fails_on_stale_generated_files() -> None:
    ci = _load("ci.yml")
    runs = _runs(ci)
    assert "./scripts/test.sh" in runs or "bash .ci/run" in runs
    assert "ouro-obs generate examples/shop/slo.yaml -o ." in runs
    assert re.search(r"git diff --exit-code .*deploy/generated", runs)
    assert "kubectl kustomize" in runs


def test_release_scans_before_pushing_and_fails_on_high_or_critical() -> None:
    release = _load("release.yml")
    steps = _steps(release)
    builds = _step_using(release, "docker/build-push-action")
    scans = _step_using(release, "aquasecurity/trivy-action")
    assert len(scans) == 1
    scan = scans[0]["with"]
    assert scan["severity"] == "HIGH,CRITICAL"
    assert str(scan["exit-code"]) == "1"
    load, push = builds
    assert load["with"]["load"] is True
    assert load["with"]["push"] is False
    assert push["with"]["push"] is True
    assert steps.index(load) < steps.index(scans[0]) < steps.index(push)
    assert load["with"]["cache-to"].startswith("type=gha")
    assert all(build["with"]["cache-from"] == "type=gha" for build in builds)


def test_release_deploys_the_scanned_digest_atomically() -> None:
    release = _load("release.yml")
    script = next(
        step["run"] for step in _steps(release) if "helm upgrade --install" in step.get("run", "")
    )
    command = " ".join(script.replace("\\\n", " ").split())
    for flag in ("--wait", "--atomic", "--timeout", "deploy/helm/ouro-shop"):
        assert flag in command
    assert 'image.digest="$IMAGE_DIGEST"' in command
    deploy = release["jobs"]["deploy-staging"]
    assert deploy["needs"] == "image"
    assert deploy["if"] == "github.ref == 'refs/heads/main'"
    assert "steps.push.outputs.digest" in release["jobs"]["image"]["outputs"]["digest"]
