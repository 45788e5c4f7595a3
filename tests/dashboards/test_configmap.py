"""The ConfigMap Grafana's dashboard sidecar provisions the dashboards from."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from ouro_obs.slo.conventions import DASHBOARDS_CONFIGMAP_PATH, dashboard_paths
from ouro_obs.slo.dashboards import dashboard_artifacts
from ouro_obs.slo.render import render_document
from ouro_obs.slo.spec import parse_spec
from tests.dashboards.support import SPECS, spec
from tests.deploy.manifests import schema_errors

#: kubectl's client-side apply copies the object into an annotation of at most 256 KiB.
LAST_APPLIED_LIMIT_BYTES = 262_144


def configmap(name: str) -> dict[str, Any]:
    document: dict[str, Any] = dashboard_artifacts(spec(name))[DASHBOARDS_CONFIGMAP_PATH]
    return document


@pytest.mark.parametrize("name", list(SPECS))
def test_is_a_valid_kubernetes_configmap(name: str) -> None:
    assert schema_errors(configmap(name)) == []


@pytest.mark.parametrize("name", list(SPECS))
def test_carries_the_sidecar_label_and_the_manifest_labels(name: str) -> None:
    labels = configmap(name)["metadata"]["labels"]
    assert labels["grafana_dashboard"] == "1"
    assert spec(name).manifest_labels.items() <= labels.items()
    assert labels["app.kubernetes.io/name"] == spec(name).service


def test_takes_the_namespace_from_the_spec_only_when_it_has_one() -> None:
    text = (SPECS["payments"]).read_text()
    assert configmap("payments")["metadata"]["namespace"] == "billing"
    without = parse_spec(text.replace("namespace: billing\n", ""), "no-namespace.yaml")
    metadata = dashboard_artifacts(without)[DASHBOARDS_CONFIGMAP_PATH]["metadata"]
    assert "namespace" not in metadata


@pytest.mark.parametrize("name", list(SPECS))
def test_holds_both_dashboards_exactly_as_the_json_files(name: str) -> None:
    artifacts = dashboard_artifacts(spec(name))
    data = artifacts[DASHBOARDS_CONFIGMAP_PATH]["data"]
    paths = dashboard_paths(spec(name)).values()
    assert data == {
        path.rsplit("/", 1)[1]: render_document(path, artifacts[path]) for path in paths
    }
    for text in data.values():
        assert json.loads(text)["uid"]


@pytest.mark.parametrize("name", list(SPECS))
def test_round_trips_through_yaml_and_fits_kubectl_apply(name: str) -> None:
    text = render_document(DASHBOARDS_CONFIGMAP_PATH, configmap(name))
    assert yaml.safe_load(text) == configmap(name)
    assert len(text.encode()) < LAST_APPLIED_LIMIT_BYTES
