"""One output set per environment a spec declares, laid out for the deploy pieces (pure).

A spec without ``environments`` gives one set. With them, each environment's set is the
spec scoped to it (:func:`ouro_obs.slo.spec.environments.scoped`: its own series, rule
object names, dashboard uids and ``env`` label), and the sets share one tree:

- ``alerts/``, ``dashboards/`` and ``alertmanager/`` hold every environment's files side
  by side: their names carry the scoped service name (``alerts/shop-prod.rules.yaml``);
- ``deploy/generated/<environment>/`` holds its PrometheusRule, dashboards ConfigMap and
  the Kustomization listing them, and its AlertmanagerConfig in ``alertmanager/``: what a
  Kustomize overlay or a Helm release of that environment installs;
- ``deploy/generated/`` itself keeps what every environment shares, from the spec as
  written: the ServiceMonitor (selected by the app name in the namespace it is applied
  to) and the canary AnalysisTemplate in ``rollout/`` (it takes the namespace as an
  argument), so the Kustomize base and the Rollout components stay environment-neutral.

``ouro-obs generate --environment NAME`` writes NAME's files and the shared ones, at the
same paths as a run over every environment.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from ouro_obs.slo import conventions
from ouro_obs.slo.artifacts import generated_documents
from ouro_obs.slo.manifests import kustomization
from ouro_obs.slo.render import render_document
from ouro_obs.slo.spec import ServiceSpec
from ouro_obs.slo.spec.environments import scoped

__all__ = ["environment_dir", "output_documents", "output_files", "output_sets", "shared_path"]


def environment_dir(name: str) -> str:
    """``deploy/generated/<name>``: the Kubernetes objects of one environment."""
    return f"{conventions.GENERATED_DIR}/{name}"


def shared_path(path: str) -> bool:
    """Whether ``path`` is written once for every environment (from the spec as written)."""
    return path == conventions.SERVICE_MONITOR_PATH or path.startswith(
        f"{conventions.ROLLOUT_DIR}/"
    )


def _is_kustomization(path: str) -> bool:
    return PurePosixPath(path).name == "kustomization.yaml"


def output_sets(spec: ServiceSpec, environment: str | None = None) -> list[ServiceSpec]:
    """The spec of each output set; ``ValueError`` names the declared ones for a wrong name."""
    if environment is not None:
        return [scoped(spec, environment)]
    if not spec.environments:
        return [spec]
    return [scoped(spec, e.name) for e in spec.environments]


def _environment_documents(one: ServiceSpec) -> dict[str, Any]:
    """The scoped spec's own documents, the generated ones moved under its directory."""
    prefix = f"{conventions.GENERATED_DIR}/"
    moved: dict[str, Any] = {}
    for path, document in generated_documents(one).items():
        if shared_path(path) or _is_kustomization(path):
            continue
        own = path.removeprefix(prefix)
        moved[f"{environment_dir(one.environment)}/{own}" if own != path else path] = document
    return moved


def _shared_documents(spec: ServiceSpec) -> dict[str, Any]:
    return {
        path: document
        for path, document in generated_documents(spec).items()
        if shared_path(path) and not _is_kustomization(path)
    }


def _with_kustomizations(documents: dict[str, Any]) -> dict[str, Any]:
    """A Kustomization in every directory under ``deploy/generated`` listing its manifests."""
    directories = {
        str(PurePosixPath(path).parent)
        for path in documents
        if path.startswith(f"{conventions.GENERATED_DIR}/")
    }
    for directory in directories:
        manifests = [
            PurePosixPath(path).name
            for path in documents
            if str(PurePosixPath(path).parent) == directory and path.endswith((".yaml", ".yml"))
        ]
        documents[f"{directory}/kustomization.yaml"] = kustomization(manifests)
    return dict(sorted(documents.items()))


def output_documents(spec: ServiceSpec, environment: str | None = None) -> dict[str, Any]:
    """Relative path -> document of every file of every output set."""
    if environment is None and not spec.environments:
        return generated_documents(spec)
    documents = _shared_documents(spec)
    for one in output_sets(spec, environment):
        documents.update(_environment_documents(one))
    return _with_kustomizations(documents)


def output_files(spec: ServiceSpec, environment: str | None = None) -> dict[str, str]:
    """Relative path -> text of every file of every output set."""
    return {
        path: render_document(path, document)
        for path, document in output_documents(spec, environment).items()
    }
