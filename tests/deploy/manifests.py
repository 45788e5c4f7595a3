"""Rendering the deployment manifests with the real tools, and validating what they give.

Kustomize overlays go through ``kubectl kustomize``; the Helm chart through the Helm SDK
bundled in helm-python. Built-in kinds are checked with kubernetes-validate in strict
mode (unknown fields are errors); custom kinds (Prometheus Operator, Argo Rollouts,
cert-manager, Argo CD) with the vendored CRD schemas, and a Rollout's pod template also
strictly, as the Deployment it stands for.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import yaml

from tests.support.tools import REPO_ROOT, missing, require_tool, schema_path

__all__ = [
    "BLUE_GREEN_VALUES",
    "CANARY_VALUES",
    "CHART_DIR",
    "CUSTOM_NAMESPACE",
    "CUSTOM_RELEASE",
    "CUSTOM_VALUES",
    "DEPLOYABLE",
    "DEPLOY_DIR",
    "ENVIRONMENTS",
    "GENERATED_DIR",
    "KUBERNETES_VERSION",
    "OVERLAYS",
    "RENDERINGS",
    "ROLLOUT_RENDERINGS",
    "Manifest",
    "as_deployment",
    "container",
    "find",
    "find_all",
    "helm_lint",
    "helm_render",
    "kustomize",
    "merged",
    "pod_spec",
    "prod_values",
    "require_generated",
    "schema_errors",
    "service",
    "workload",
]

Manifest = dict[str, Any]

DEPLOY_DIR = REPO_ROOT / "deploy"
GENERATED_DIR = DEPLOY_DIR / "generated"
CHART_DIR = DEPLOY_DIR / "helm" / "ouro-shop"
OVERLAYS = ("dev", "staging", "prod", "prod-canary", "prod-blue-green")

#: The Kubernetes version every object is validated against (kubernetes-validate ships it).
KUBERNETES_VERSION = "1.35"

_CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "crds/servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "crds/prometheusrule_v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "crds/podmonitor_v1.json",
    ("argoproj.io/v1alpha1", "Rollout"): "crds/rollout_v1alpha1.json",
    ("argoproj.io/v1alpha1", "AnalysisTemplate"): "crds/analysistemplate_v1alpha1.json",
    ("argoproj.io/v1alpha1", "Application"): "crds/application_v1alpha1.json",
    ("cert-manager.io/v1", "Certificate"): "crds/certificate_v1.json",
}
#: The environments of examples/shop/slo.yaml, each with its overlay (and Helm value).
ENVIRONMENTS = ("dev", "staging", "prod")
_GENERATED_FILES = (
    "kustomization.yaml",
    "servicemonitor.yaml",
    *(
        f"{environment}/{name}"
        for environment in ENVIRONMENTS
        for name in ("kustomization.yaml", "prometheusrule.yaml", "grafana-dashboards.yaml")
    ),
)


#: Non-default values: another release name and namespace, a digest, no HPA, no Ingress,
#: other peers and another collector namespace in the NetworkPolicy, no `release` label,
#: the PrometheusRule off.
CUSTOM_VALUES: dict[str, Any] = {
    "fullnameOverride": "storefront",
    "image": {
        "repository": "registry.example.com/team/shop",
        "digest": "sha256:" + "0123456789abcdef" * 4,
        "pullPolicy": "IfNotPresent",
    },
    "autoscaling": {"enabled": False},
    "replicaCount": 3,
    "workers": 4,
    "resources": {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    },
    "ingress": {"enabled": False},
    "podDisruptionBudget": {"enabled": True, "maxUnavailable": "25%"},
    "networkPolicy": {
        "ingressController": {
            "namespace": "traefik",
            "podLabels": {"app.kubernetes.io/name": "traefik"},
        },
        "monitoringNamespace": "observability",
        "otelCollector": {"namespace": "telemetry"},
    },
    "monitoring": {"release": "", "prometheusRule": {"enabled": False}},
    "otel": {"endpoint": "https://collector.telemetry.svc:4318", "sampler": "always_on"},
    "environment": "staging",
    "extraConfig": {"OURO_OBS_MAX_LABEL_SETS": 500},
}
CUSTOM_RELEASE = "web"
CUSTOM_NAMESPACE = "storefront-staging"
#: On top of values-prod.yaml: the twins of overlays/prod-canary and prod-blue-green.
CANARY_VALUES: dict[str, Any] = {"rollout": {"enabled": True, "strategy": "canary"}}
BLUE_GREEN_VALUES: dict[str, Any] = {"rollout": {"enabled": True, "strategy": "blueGreen"}}

#: ``kustomize-<overlay>`` for each overlay, ``kustomize-base`` the base they share;
#: ``helm-default`` is the chart with its own values, ``helm-prod`` with
#: values-prod.yaml, ``helm-canary`` and ``helm-blue-green`` with values-prod.yaml and a
#: Rollout, ``helm-custom`` with CUSTOM_VALUES.
RENDERINGS = (
    "kustomize-base",
    *(f"kustomize-{overlay}" for overlay in OVERLAYS),
    "helm-default",
    "helm-prod",
    "helm-canary",
    "helm-blue-green",
    "helm-custom",
)
#: The renderings a cluster would receive (the base alone has no namespace).
DEPLOYABLE = tuple(name for name in RENDERINGS if name != "kustomize-base")
#: The renderings whose workload is an Argo Rollouts Rollout.
ROLLOUT_RENDERINGS = (
    "kustomize-staging",
    "kustomize-prod-canary",
    "kustomize-prod-blue-green",
    "helm-canary",
    "helm-blue-green",
)


def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, nested mappings key by key (as Helm merges values)."""
    result = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def prod_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART_DIR / "values-prod.yaml").read_text())
    return loaded


def require_generated() -> None:
    """Skip (locally) or fail (CI) when `ouro-obs generate` has not written deploy/generated."""
    absent = [name for name in _GENERATED_FILES if not (GENERATED_DIR / name).is_file()]
    if absent:
        missing(
            f"{GENERATED_DIR} lacks {', '.join(absent)}: "
            "run `ouro-obs generate examples/shop/slo.yaml -o .`"
        )


def _documents(text: str, source: str) -> list[Manifest]:
    objects = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    for index, doc in enumerate(objects):
        if not isinstance(doc, dict) or "kind" not in doc:
            raise AssertionError(f"{source}: document {index} is not a Kubernetes object")
    return objects


def kustomize(directory: Path) -> list[Manifest]:
    """The objects ``kubectl kustomize DIRECTORY`` renders."""
    kubectl = require_tool("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return _documents(result.stdout, str(directory))


def helm_render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "shop",
    namespace: str = "shop",
    chart: Path = CHART_DIR,
) -> list[Manifest]:
    """The objects the chart renders offline; NOTES.txt and empty templates left out."""
    with helm_python.Chart.load(chart) as loaded:
        rendered = loaded.render(
            dict(values) if values is not None else None, name=release, namespace=namespace
        )
    objects: list[Manifest] = []
    for template, text in sorted(rendered.items()):
        if template.endswith((".yaml", ".yml")):
            objects.extend(_documents(text, template))
    return objects


def helm_lint(values: Mapping[str, Any] | None = None) -> list[str]:
    """``helm lint --strict`` findings at warning level or worse, as readable lines."""
    report = helm_python.lint(
        CHART_DIR,
        dict(values) if values is not None else None,
        strict=True,
        namespace="shop",
        kube_version=f"v{KUBERNETES_VERSION}.0",
    )
    findings = [
        f"{message['path']}: {message['error']}"
        for message in report.get("messages") or []
        if int(message["severity"]) >= 2
    ]
    return findings + [str(error) for error in report.get("errors") or []]


@cache
def _crd_schema(relative: str) -> Any:
    return json.loads(schema_path(relative).read_text())


def as_deployment(rollout: Manifest) -> Manifest:
    """The Deployment a Rollout stands for: its metadata, selector and pod template.

    For the checkers that know no Rollout (kubernetes-validate, checkov): the pod
    template is what they judge, and it is the same in both kinds.
    """
    spec = rollout["spec"]
    deployment_spec = {
        key: copy.deepcopy(spec[key])
        for key in ("replicas", "selector", "template", "revisionHistoryLimit")
        if key in spec
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": copy.deepcopy(rollout["metadata"]),
        "spec": deployment_spec,
    }


def _crd_errors(manifest: Manifest, schema: str) -> list[str]:
    kind = manifest.get("kind", "?")
    name = manifest.get("metadata", {}).get("name", "?")
    validator = jsonschema.Draft7Validator(_crd_schema(schema))
    errors = [
        f"{kind}/{name} at {'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(manifest)
    ]
    if kind == "Rollout":
        errors.extend(schema_errors(as_deployment(manifest)))
    return errors


def schema_errors(manifest: Manifest) -> list[str]:
    """Every schema violation of one object: strict Kubernetes schemas or the CRD's."""
    kind = manifest.get("kind", "?")
    name = manifest.get("metadata", {}).get("name", "?")
    crd = _CRD_SCHEMAS.get((manifest.get("apiVersion", ""), kind))
    if crd is not None:
        return _crd_errors(manifest, crd)
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(map(str, error.absolute_path)) or "<root>"
        return [f"{kind}/{name} at {path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{kind}/{name}: {error.message}"]
    return []


def find_all(objects: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj.get("kind") == kind]


def find(objects: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The one object of ``kind`` (and ``name``); fails when there is none or several."""
    matches = [
        obj
        for obj in find_all(objects, kind)
        if name is None or obj.get("metadata", {}).get("name") == name
    ]
    if len(matches) != 1:
        raise AssertionError(f"expected one {kind} named {name or '*'}, found {len(matches)}")
    return matches[0]


def workload(objects: Iterable[Manifest]) -> Manifest:
    """The one object that runs the pods: a Deployment, or the Rollout that replaces it."""
    candidates = [obj for obj in objects if obj.get("kind") in ("Deployment", "Rollout")]
    if len(candidates) != 1:
        kinds = sorted(obj["kind"] for obj in candidates)
        raise AssertionError(f"expected one Deployment or Rollout, found {kinds}")
    return candidates[0]


def service(objects: Iterable[Manifest]) -> Manifest:
    """The Service named like the workload: the one the Ingress and Prometheus use."""
    objects = list(objects)
    found: Manifest = find(objects, "Service", workload(objects)["metadata"]["name"])
    return found


def pod_spec(objects: Iterable[Manifest]) -> Manifest:
    spec: Manifest = workload(objects)["spec"]["template"]["spec"]
    return spec


def container(objects: Iterable[Manifest], name: str = "shop") -> Manifest:
    for candidate in pod_spec(objects)["containers"]:
        if candidate["name"] == name:
            found: Manifest = candidate
            return found
    raise AssertionError(f"the workload has no container named {name}")
