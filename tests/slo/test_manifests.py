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
from ouro_obs.slo.spec import ServiceSpec, load_spec
from tests.slo.support import (
    EXAMPLE_ENVIRONMENTS,
    EXAMPLE_SPEC,
    GOLDEN_NAMES,
    example_generated,
    example_spec,
    golden_input,
    golden_output,
)
from tests.support.tools import REPO_ROOT, require_tool, schema_path

#: (label, directory holding deploy/generated, spec) for every golden output and the example.
TARGETS = [
    *((name, golden_output(name), golden_input(name)) for name in GOLDEN_NAMES),
    *((f"example-{env}", REPO_ROOT, EXAMPLE_SPEC) for env in EXAMPLE_ENVIRONMENTS),
]
LABELS = [label for label, _, _ in TARGETS]


def _target(label: str) -> tuple[Path, Path, ServiceSpec]:
    """The output root, the directory of the target's own objects, and its spec.

    The example's objects are per environment (deploy/generated/<env>); its ServiceMonitor
    is shared by all of them, in deploy/generated itself.
    """
    if label.startswith("example-"):
        environment = label.removeprefix("example-")
        return REPO_ROOT, example_generated(environment), example_spec(environment)
    for name, directory, spec in TARGETS:
        if name == label:
            return directory, directory / "deploy/generated", load_spec(spec)
    raise KeyError(label)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _schema_errors(schema_name: str, document: Any) -> list[str]:
    schema = json.loads(schema_path(f"crds/{schema_name}").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("label", LABELS)
def test_the_prometheusrule_validates_against_the_operator_crd(label: str) -> None:
    _, generated, _ = _target(label)
    rule = _load(generated / "prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert _schema_errors("prometheusrule_v1.json", rule) == []


@pytest.mark.parametrize("label", LABELS)
def test_the_servicemonitor_validates_against_the_operator_crd(label: str) -> None:
    directory, _, _ = _target(label)
    monitor = _load(directory / "deploy/generated/servicemonitor.yaml")
    assert monitor["kind"] == "ServiceMonitor"
    assert _schema_errors("servicemonitor_v1.json", monitor) == []


def test_the_crd_schemas_catch_a_broken_manifest() -> None:
    rule = _load(example_generated() / "prometheusrule.yaml")
    rule["spec"]["groups"][0]["rules"][0]["expression"] = "up"
    assert _schema_errors("prometheusrule_v1.json", rule) != []


@pytest.mark.parametrize("label", LABELS)
def test_the_prometheusrule_holds_the_plain_rule_file_groups(label: str) -> None:
    directory, generated, spec = _target(label)
    plain = _load(directory / rule_file_path(spec))
    rule = _load(generated / "prometheusrule.yaml")
    assert rule["spec"]["groups"] == plain["groups"]
    assert rule["metadata"]["labels"].items() >= spec.manifest_labels.items()
    if spec.namespace:
        assert rule["metadata"]["namespace"] == spec.namespace
    else:
        assert "namespace" not in rule["metadata"]


def test_manifest_labels_reach_every_manifest_of_the_example() -> None:
    paths = [
        REPO_ROOT / "deploy/generated/servicemonitor.yaml",
        *(example_generated(env) / "prometheusrule.yaml" for env in EXAMPLE_ENVIRONMENTS),
        *(example_generated(env) / "grafana-dashboards.yaml" for env in EXAMPLE_ENVIRONMENTS),
    ]
    for path in paths:
        labels = _load(path)["metadata"]["labels"]
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
    _, generated, _ = _target(label)
    kustomization = _load(generated / "kustomization.yaml")
    on_disk = sorted(
        p.name
        for p in generated.iterdir()
        if p.suffix == ".yaml" and p.name != "kustomization.yaml"
    )
    assert kustomization["resources"] == on_disk


def test_the_shared_kustomization_lists_the_servicemonitor_only() -> None:
    """What every environment shares; their rules and dashboards are in their own."""
    kustomization = _load(REPO_ROOT / "deploy/generated/kustomization.yaml")
    assert kustomization["resources"] == ["servicemonitor.yaml"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("directory", "kinds"),
    [
        ("deploy/generated", {"ServiceMonitor"}),
        *(
            (f"deploy/generated/{env}", {"PrometheusRule", "ConfigMap"})
            for env in EXAMPLE_ENVIRONMENTS
        ),
    ],
)
def test_kubectl_kustomize_builds_the_generated_directory(directory: str, kinds: set[str]) -> None:
    kubectl = require_tool("kubectl")
    built = subprocess.run(
        [kubectl, "kustomize", str(REPO_ROOT / directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert built.returncode == 0, built.stderr
    assert {doc["kind"] for doc in yaml.safe_load_all(built.stdout)} == kinds
