"""Every rendered object is one a current Kubernetes API server (or the CRDs of the
Prometheus Operator, Argo Rollouts and cert-manager) would accept: strict schemas, so a
misspelt field is an error."""

from __future__ import annotations

import copy

from tests.deploy.manifests import Manifest, find, schema_errors, workload


def test_every_object_passes_its_schema(rendering: list[Manifest]) -> None:
    errors = [error for manifest in rendering for error in schema_errors(manifest)]
    assert errors == []


def test_rendering_is_not_empty(rendering: list[Manifest]) -> None:
    kinds = {manifest["kind"] for manifest in rendering}
    assert {"Service", "ConfigMap", "ServiceMonitor"} <= kinds
    assert workload(rendering)["kind"] in {"Deployment", "Rollout"}


def test_strict_validation_rejects_a_misspelt_container_field(
    renderings: dict[str, list[Manifest]],
) -> None:
    deployment = copy.deepcopy(find(renderings["kustomize-prod"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    assert any("readinessprobe" in error for error in schema_errors(deployment))


def test_a_rollouts_pod_template_is_validated_as_strictly_as_a_deployments(
    renderings: dict[str, list[Manifest]],
) -> None:
    rollout = copy.deepcopy(find(renderings["kustomize-prod-canary"], "Rollout"))
    rollout["spec"]["template"]["spec"]["containers"][0]["securitycontext"] = {}
    assert any("securitycontext" in error for error in schema_errors(rollout))


def test_crd_schema_rejects_a_misspelt_rollout_step(
    renderings: dict[str, list[Manifest]],
) -> None:
    rollout = copy.deepcopy(find(renderings["kustomize-prod-canary"], "Rollout"))
    rollout["spec"]["strategy"]["canary"]["steps"][0] = {"setWieght": 10}
    assert any("setWieght" in error for error in schema_errors(rollout))


def test_crd_schema_rejects_a_misspelt_servicemonitor_field(
    renderings: dict[str, list[Manifest]],
) -> None:
    monitor = copy.deepcopy(find(renderings["kustomize-prod"], "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    assert any("intervall" in error for error in schema_errors(monitor))


def test_crd_schema_rejects_a_misspelt_certificate_field(
    renderings: dict[str, list[Manifest]],
) -> None:
    certificate = copy.deepcopy(find(renderings["kustomize-prod"], "Certificate"))
    certificate["spec"]["dnsName"] = certificate["spec"].pop("dnsNames")
    assert any("dnsName" in error for error in schema_errors(certificate))
