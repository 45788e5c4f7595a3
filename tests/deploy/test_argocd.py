"""The Argo CD Application syncs prod's canary overlay into the namespace it targets."""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.manifests import DEPLOY_DIR, Manifest, find, schema_errors
from tests.support.tools import REPO_ROOT

APPLICATION = DEPLOY_DIR / "argocd" / "shop-prod.yaml"


def _application() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(APPLICATION.read_text())
    return loaded


def test_application_passes_the_argo_cd_schema() -> None:
    application = _application()
    assert (application["apiVersion"], application["kind"]) == (
        "argoproj.io/v1alpha1",
        "Application",
    )
    assert schema_errors(application) == []


def test_application_points_at_the_prod_canary_overlay() -> None:
    """What a promotion pull request changes (overlays/prod/release) is what it syncs."""
    source = _application()["spec"]["source"]
    assert source["path"] == "deploy/kustomize/overlays/prod-canary"
    assert (REPO_ROOT / source["path"] / "kustomization.yaml").is_file()
    assert source["targetRevision"] == "main"


def test_application_deploys_into_the_overlay_namespace(
    renderings: dict[str, list[Manifest]],
) -> None:
    destination = _application()["spec"]["destination"]
    namespace = find(renderings["kustomize-prod-canary"], "Namespace")["metadata"]["name"]
    assert destination["namespace"] == namespace


def test_application_self_heals_prunes_and_applies_server_side() -> None:
    sync = _application()["spec"]["syncPolicy"]
    assert sync["automated"] == {"prune": True, "selfHeal": True}
    assert "ServerSideApply=true" in sync["syncOptions"]


def test_application_leaves_replicas_to_the_autoscaler() -> None:
    ignored = _application()["spec"]["ignoreDifferences"]
    for group, kind in (("argoproj.io", "Rollout"), ("apps", "Deployment")):
        assert {"group": group, "kind": kind, "jsonPointers": ["/spec/replicas"]} in ignored
