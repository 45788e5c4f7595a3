"""deploy/release: the two scripts the release workflow runs, run for real.

set-image.sh pins an environment's image by digest in its release component (the one
file a promotion pull request changes); wait-rollout.sh waits for Argo Rollouts to
finish, here against a stand-in ``kubectl`` that replays Rollout states.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import DEPLOY_DIR, container, kustomize
from tests.support.tools import require_tool

SET_IMAGE = DEPLOY_DIR / "release" / "set-image.sh"
WAIT_ROLLOUT = DEPLOY_DIR / "release" / "wait-rollout.sh"
DIGEST = "sha256:" + "5f" * 32
REPOSITORY = "ghcr.io/acme/shop"


@pytest.fixture
def deploy_copy(tmp_path: Path) -> Path:
    """deploy/kustomize and deploy/generated, copied: the scripts rewrite files."""
    copied = tmp_path / "deploy"
    shutil.copytree(DEPLOY_DIR / "kustomize", copied / "kustomize")
    shutil.copytree(DEPLOY_DIR / "generated", copied / "generated")
    return copied


def _set_image(release_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SET_IMAGE), str(release_dir), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("environment", "overlay"), [("prod", "prod-canary"), ("staging", "staging")]
)
def test_set_image_pins_the_environment_to_the_digest(
    environment: str, overlay: str, deploy_copy: Path
) -> None:
    release = deploy_copy / "kustomize" / "overlays" / environment / "release"
    header = [
        line
        for line in (release / "kustomization.yaml").read_text().splitlines()
        if line.startswith("#")
    ]
    result = _set_image(release, REPOSITORY, DIGEST)
    assert result.returncode == 0, result.stderr
    text = (release / "kustomization.yaml").read_text()
    assert text.splitlines()[: len(header)] == header
    assert "newTag" not in text
    objects = kustomize(deploy_copy / "kustomize" / "overlays" / overlay)
    assert container(objects)["image"] == f"{REPOSITORY}@{DIGEST}"
    assert list(release.iterdir()) == [release / "kustomization.yaml"]


def test_a_promotion_changes_the_release_component_only(deploy_copy: Path) -> None:
    """The pull request's diff: the image lines of one file, nothing else in the tree."""
    before = {p: p.read_bytes() for p in deploy_copy.rglob("*") if p.is_file()}
    release = deploy_copy / "kustomize" / "overlays" / "prod" / "release"
    assert _set_image(release, REPOSITORY, DIGEST).returncode == 0
    after = {p: p.read_bytes() for p in deploy_copy.rglob("*") if p.is_file()}
    assert [p for p in after if after[p] != before.get(p)] == [release / "kustomization.yaml"]


@pytest.mark.parametrize(
    ("repository", "digest", "complaint"),
    [
        (REPOSITORY, "sha256:1234", "not a sha256 digest"),
        (REPOSITORY, "latest", "not a sha256 digest"),
        (f"{REPOSITORY}:1.0", DIGEST, "not an image repository"),
        ("GHCR.IO/Acme/Shop", DIGEST, "not an image repository"),
    ],
    ids=["short-digest", "tag-as-digest", "tagged-repository", "upper-case"],
)
def test_set_image_refuses_a_bad_reference_and_writes_nothing(
    repository: str, digest: str, complaint: str, deploy_copy: Path
) -> None:
    release = deploy_copy / "kustomize" / "overlays" / "prod" / "release"
    before = (release / "kustomization.yaml").read_bytes()
    result = _set_image(release, repository, digest)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert (release / "kustomization.yaml").read_bytes() == before


def test_set_image_refuses_a_directory_that_is_no_release_component(tmp_path: Path) -> None:
    result = _set_image(tmp_path, REPOSITORY, DIGEST)
    assert result.returncode == 2
    assert "does not exist" in result.stderr


# --- wait-rollout.sh -----------------------------------------------------------------


def _rollout(generation: int, observed: int | None, phase: str, message: str = "") -> Any:
    status: dict[str, Any] = {"phase": phase, "message": message}
    if observed is not None:
        status["observedGeneration"] = str(observed)
    return {"metadata": {"name": "shop", "generation": generation}, "status": status}


#: A stand-in kubectl: records its arguments, answers with the replies in turn (the
#: last one for ever).
REPLAYING_KUBECTL = """#!/usr/bin/env bash
echo "$*" >> "$REPLIES/calls"
next=$(ls "$REPLIES"/*.json | head -n 1)
cat "$next"
[ "$(ls "$REPLIES"/*.json | wc -l)" -gt 1 ] && rm "$next"
exit 0
"""
FAILING_KUBECTL = """#!/usr/bin/env bash
echo 'Error from server (NotFound): rollouts.argoproj.io "shop" not found' >&2
exit 1
"""


def _wait(
    tmp_path: Path, states: list[Any], *args: str, kubectl_script: str = REPLAYING_KUBECTL
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run wait-rollout.sh with a kubectl that answers with ``states`` in turn."""
    require_tool("jq")
    bin_dir, replies = tmp_path / "bin", tmp_path / "replies"
    bin_dir.mkdir()
    replies.mkdir()
    for index, state in enumerate(states):
        (replies / f"{index:03}.json").write_text(json.dumps(state))
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(kubectl_script)
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    environment = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        REPLIES=str(replies),
        WAIT_ROLLOUT_INTERVAL="0",
    )
    result = subprocess.run(
        ["bash", str(WAIT_ROLLOUT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=environment,
    )
    calls_file = replies / "calls"
    calls = calls_file.read_text().splitlines() if calls_file.exists() else []
    return result, calls


def test_wait_ignores_a_status_written_for_the_previous_spec(tmp_path: Path) -> None:
    states = [
        _rollout(2, 1, "Healthy"),  # the controller has not seen the new spec yet
        _rollout(2, 2, "Progressing"),
        _rollout(2, 2, "Healthy"),
    ]
    result, calls = _wait(tmp_path, states, "shop-staging", "shop", "60")
    assert result.returncode == 0, result.stderr
    assert "healthy (generation 2)" in result.stdout
    assert calls == ["--namespace shop-staging get rollout shop --output json"] * 3


def test_wait_fails_when_the_rollout_is_degraded(tmp_path: Path) -> None:
    states = [
        _rollout(3, 3, "Progressing"),
        _rollout(3, 3, "Degraded", "RolloutAborted: metric failed"),
    ]
    result, _ = _wait(tmp_path, states, "shop-staging", "shop", "60")
    assert result.returncode == 1
    assert "degraded: RolloutAborted: metric failed" in result.stderr


def test_wait_gives_up_on_a_rollout_that_does_not_finish(tmp_path: Path) -> None:
    result, _ = _wait(tmp_path, [_rollout(4, 4, "Paused", "CanaryPauseStep")], "ns", "shop", "0")
    assert result.returncode == 3
    assert "still Paused after 0s" in result.stderr


def test_wait_fails_on_its_own_code_when_kubectl_cannot_read_the_rollout(
    tmp_path: Path,
) -> None:
    result, _ = _wait(tmp_path, [], "shop-staging", "shop", "60", kubectl_script=FAILING_KUBECTL)
    assert result.returncode == 4
    assert "NotFound" in result.stderr
    assert "kubectl cannot read it" in result.stderr


def test_wait_keeps_fields_apart_when_the_controller_has_written_no_status(
    tmp_path: Path,
) -> None:
    """No observedGeneration yet: the phase must not slide into its place."""
    states = [_rollout(1, None, "Progressing"), _rollout(1, 1, "Healthy")]
    result, _ = _wait(tmp_path, states, "shop-staging", "shop", "60")
    assert result.returncode == 0, result.stderr
    assert "Progressing (generation 1, observed none)" in result.stdout


def test_wait_refuses_to_run_without_a_rollout_to_wait_for(tmp_path: Path) -> None:
    result, calls = _wait(tmp_path, [_rollout(1, 1, "Healthy")], "shop-staging")
    assert result.returncode == 2
    assert calls == []
