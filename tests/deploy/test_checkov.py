"""checkov finds nothing to fix in the rendered manifests and the Dockerfile.

A check may be skipped only by an inline ``checkov.io/skip`` annotation that says why;
the allowed skips are listed here so a new one is a deliberate change to this file.
checkov knows no Argo Rollouts kinds, so a Rollout is scanned as the Deployment it
replaces: the pod template, which is what its checks judge, is the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import DEPLOYABLE, Manifest, as_deployment
from tests.support.tools import REPO_ROOT, require_tool

#: Each check a manifest may skip inline, and why that is acceptable.
ALLOWED_SKIPS = {
    # Image digest: the release workflow deploys the digest it built, scanned and signed
    # (the overlays' release component); committed manifests carry an immutable tag.
    "CKV_K8S_43",
}


def _scannable(manifest: Manifest) -> Manifest:
    return as_deployment(manifest) if manifest["kind"] == "Rollout" else manifest


@pytest.fixture(scope="module")
def checkov_report(
    renderings: dict[str, list[Manifest]], tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    checkov = require_tool("checkov")
    scanned = tmp_path_factory.mktemp("checkov")
    for name in DEPLOYABLE:
        objects = [_scannable(obj) for obj in renderings[name]]
        (scanned / f"{name}.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
    shutil.copy(REPO_ROOT / "Dockerfile", scanned / "Dockerfile")
    environment = dict(os.environ, BC_SKIP_MAPPING="TRUE", CKV_SKIP_PACKAGE_UPDATE_CHECK="TRUE")
    result = subprocess.run(
        [
            checkov,
            "--directory",
            str(scanned),
            "--framework",
            "kubernetes",
            "dockerfile",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env=environment,
        cwd=scanned,
        check=False,
        timeout=300,
    )
    # Exit 1 means failed checks; the report still says which, so the tests below show them.
    if result.returncode not in (0, 1):
        raise AssertionError(f"checkov exited {result.returncode}:\n{result.stderr[-4000:]}")
    report = json.loads(result.stdout)
    reports: list[dict[str, Any]] = report if isinstance(report, list) else [report]
    return reports


def _by_framework(reports: list[dict[str, Any]], framework: str) -> dict[str, Any]:
    for report in reports:
        if report["check_type"] == framework:
            return report
    raise AssertionError(f"checkov ran no {framework} checks")


@pytest.mark.parametrize("framework", ["kubernetes", "dockerfile"])
def test_checkov_finds_no_failed_check(
    framework: str, checkov_report: list[dict[str, Any]]
) -> None:
    report = _by_framework(checkov_report, framework)
    failed = [
        f"{check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']})"
        for check in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0


def test_checkov_scanned_every_rendering(checkov_report: list[dict[str, Any]]) -> None:
    report = _by_framework(checkov_report, "kubernetes")
    scanned = {Path(check["file_path"]).stem for check in report["results"]["passed_checks"]}
    assert scanned == set(DEPLOYABLE)
    deployments = {
        (check["file_path"], check["resource"])
        for check in report["results"]["passed_checks"]
        if check["check_id"] == "CKV_K8S_22"  # read-only root filesystem
    }
    assert len(deployments) == len(DEPLOYABLE)


def test_every_skip_is_allowed_and_justified(checkov_report: list[dict[str, Any]]) -> None:
    skipped = [check for report in checkov_report for check in report["results"]["skipped_checks"]]
    assert {check["check_id"] for check in skipped} <= ALLOWED_SKIPS
    reasons = [check["check_result"].get("suppress_comment", "") for check in skipped]
    assert all(len(reason) > 20 for reason in reasons), reasons
