"""Each rendering of the deployment (see ``RENDERINGS``), made once per test session."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import (
    BLUE_GREEN_VALUES,
    CANARY_VALUES,
    CUSTOM_NAMESPACE,
    CUSTOM_RELEASE,
    CUSTOM_VALUES,
    DEPLOY_DIR,
    OVERLAYS,
    RENDERINGS,
    Manifest,
    helm_render,
    kustomize,
    merged,
    prod_values,
    require_generated,
)


@pytest.fixture(scope="session")
def renderings() -> dict[str, list[Manifest]]:
    require_generated()
    rendered = {"kustomize-base": kustomize(DEPLOY_DIR / "kustomize" / "base")}
    for overlay in OVERLAYS:
        rendered[f"kustomize-{overlay}"] = kustomize(
            DEPLOY_DIR / "kustomize" / "overlays" / overlay
        )
    rendered["helm-default"] = helm_render()
    rendered["helm-prod"] = helm_render(prod_values())
    rendered["helm-canary"] = helm_render(merged(prod_values(), CANARY_VALUES))
    rendered["helm-blue-green"] = helm_render(merged(prod_values(), BLUE_GREEN_VALUES))
    rendered["helm-custom"] = helm_render(
        CUSTOM_VALUES, release=CUSTOM_RELEASE, namespace=CUSTOM_NAMESPACE
    )
    assert set(rendered) == set(RENDERINGS)
    return rendered


@pytest.fixture(params=RENDERINGS)
def rendering(
    request: pytest.FixtureRequest, renderings: dict[str, list[Manifest]]
) -> list[Manifest]:
    """Each rendering in turn (the test id names it)."""
    objects: list[Manifest] = renderings[request.param]
    return objects
