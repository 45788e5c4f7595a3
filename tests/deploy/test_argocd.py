"""The Argo CD Application syncs the prod overlay into the namespace that overlay targets."""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.manifests import DEPLOY_DIR, Manifest, find
from tests.support.tools import REPO_ROOT

APPLICATION = DEPLOY_DIR / "argocd" / "shop-prod.yaml"


def _application() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(APPLICATION.read_text())
    return loaded


def test_application_points_at_the_prod_overlay() -> None:
    application = _application()
    assert (application["apiVersion"], application["kind"]) == (
        "argoproj.io/v1alpha1",
        "Application",
    )
    source = application["spec"]["source"]
    assert source["path"] == "deploy/kustomize/overlays/prod"
    assert (REPO_ROOT / source["path"] / "kustomization.yaml").is_file()
    assert source["targetRevision"] == "main"


def test_application_deploys_into_the_overlay_namespace(
    renderings: dict[str, list[Manifest]],
) -> None:
    destination = _application()["spec"]["destination"]
    namespace = find(renderings["kustomize-prod"], "Namespace")["metadata"]["name"]
    assert destination["namespace"] == namespace


def test_application_self_heals_prunes_and_applies_server_side() -> None:
    sync = _application()["spec"]["syncPolicy"]
    assert sync["automated"] == {"prune": True, "selfHeal": True}
    assert "ServerSideApply=true" in sync["syncOptions"]


def test_application_leaves_replicas_to_the_autoscaler() -> None:
    ignored = _application()["spec"]["ignoreDifferences"]
    assert {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]} in ignored
