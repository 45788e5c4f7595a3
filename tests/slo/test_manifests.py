"""PrometheusRule, ServiceMonitor and the Kustomization under deploy/generated."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ouro_obs.slo.conventions import rule_file_path
from ouro_obs.slo.spec import load_spec
from tests.slo.support import EXAMPLE_SPEC, GOLDEN_NAMES, golden_input, golden_output
from tests.support.tools import REPO_ROOT, require_tool, schema_path

#: (label, directory holding deploy/generated, spec) for every golden output and the example.
TARGETS = [
    *((name, golden_output(name), golden_input(name)) for name in GOLDEN_NAMES),
    ("example", REPO_ROOT, EXAMPLE_SPEC),
]
LABELS = [label for label, _, _ in TARGETS]


def _target(label: str) -> tuple[Path, Path]:
    for name, directory, spec in TARGETS:
        if name == label:
            return directory, spec
    raise KeyError(label)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _schema_errors(schema_name: str, document: Any) -> list[str]:
    schema = json.loads(schema_path(f"crds/{schema_name}").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("label", LABELS)
def test_the_prometheusrule_validates_against_the_operator_crd(label: str) -> None:
    directory, _ = _target(label)
    rule = _load(directory / "deploy/generated/prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert _schema_errors("prometheusrule_v1.json", rule) == []


@pytest.mark.parametrize("label", LABELS)
def test_the_servicemonitor_validates_against_the_operator_crd(label: str) -> None:
    directory, _ = _target(label)
    monitor = _load(directory / "deploy/generated/servicemonitor.yaml")
    assert monitor["kind"] == "ServiceMonitor"
    assert _schema_errors("servicemonitor_v1.json", monitor) == []


def test_the_crd_schemas_catch_a_broken_manifest() -> None:
    rule = _load(REPO_ROOT / "deploy/generated/prometheusrule.yaml")
    rule["spec"]["groups"][0]["rules"][0]["expression"] = "up"
    assert _schema_errors("prometheusrule_v1.json", rule) != []


@pytest.mark.parametrize("label", LABELS)
def test_the_prometheusrule_holds_the_plain_rule_file_groups(label: str) -> None:
    directory, spec_path = _target(label)
    spec = load_spec(spec_path)
    plain = _load(directory / rule_file_path(spec))
    rule = _load(directory / "deploy/generated/prometheusrule.yaml")
    assert rule["spec"]["groups"] == plain["groups"]
    assert rule["metadata"]["labels"].items() >= spec.manifest_labels.items()
    if spec.namespace:
        assert rule["metadata"]["namespace"] == spec.namespace
    else:
        assert "namespace" not in rule["metadata"]


def test_manifest_labels_reach_every_manifest_of_the_example() -> None:
    for name in ("prometheusrule.yaml", "servicemonitor.yaml"):
        labels = _load(REPO_ROOT / "deploy/generated" / name)["metadata"]["labels"]
        assert labels["release"] == "kube-prometheus-stack"
        assert labels["app.kubernetes.io/name"] == "shop"


def test_the_servicemonitor_job_label_matches_the_rules_selector() -> None:
    spec = load_spec(EXAMPLE_SPEC)
    monitor = _load(REPO_ROOT / "deploy/generated/servicemonitor.yaml")["spec"]
    assert monitor["jobLabel"] == "app.kubernetes.io/name"
    assert monitor["selector"]["matchLabels"] == {"app.kubernetes.io/name": "shop"}
    assert spec.effective_selector == {"job": "shop"}
    assert monitor["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]


@pytest.mark.parametrize("label", LABELS)
def test_the_kustomization_lists_every_yaml_in_its_directory(label: str) -> None:
    directory, _ = _target(label)
    generated = directory / "deploy/generated"
    kustomization = _load(generated / "kustomization.yaml")
    on_disk = sorted(
        p.name
        for p in generated.iterdir()
        if p.suffix == ".yaml" and p.name != "kustomization.yaml"
    )
    assert kustomization["resources"] == on_disk


@pytest.mark.integration
def test_kubectl_kustomize_builds_the_generated_directory() -> None:
    kubectl = require_tool("kubectl")
    built = subprocess.run(
        [kubectl, "kustomize", str(REPO_ROOT / "deploy/generated")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert built.returncode == 0, built.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(built.stdout)}
    assert {"PrometheusRule", "ServiceMonitor"} <= kinds
