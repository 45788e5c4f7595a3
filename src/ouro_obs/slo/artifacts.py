"""Spec -> every generated file: relative path -> document, or -> text (pure).

This is what ``ouro-obs generate`` writes and ``ouro-obs check`` tests, and what the
demo loads into Prometheus: the rule file and its promtool tests, the dashboards, and
the Kubernetes manifests with the Kustomization that lists them, and the Argo Rollouts
AnalysisTemplate in a directory and Kustomization of its own (``deploy/generated/rollout``),
which only clusters with Argo Rollouts include; likewise the AlertmanagerConfig
(``deploy/generated/alertmanager``), beside the plain Alertmanager configuration.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from ouro_obs.slo import conventions
from ouro_obs.slo.alertmanager import alertmanager_config, alertmanager_config_object
from ouro_obs.slo.analysis import analysis_template
from ouro_obs.slo.dashboards import dashboard_artifacts
from ouro_obs.slo.manifests import kustomization, prometheus_rule, service_monitor
from ouro_obs.slo.promtool import promtool_tests
from ouro_obs.slo.render import render_document
from ouro_obs.slo.rules import rule_groups
from ouro_obs.slo.spec import ServiceSpec

__all__ = ["generated_documents", "generated_files"]


def _kustomization_resources(paths: list[str], directory: str) -> list[str]:
    """The manifests directly in ``directory`` (not in its subdirectories), by file name."""
    prefix = f"{directory}/"
    return [
        path.removeprefix(prefix)
        for path in paths
        if path.startswith(prefix)
        and "/" not in path.removeprefix(prefix)
        and path.endswith((".yaml", ".yml"))
    ]


def generated_documents(spec: ServiceSpec) -> dict[str, Any]:
    """Every generated file as data, sorted by path."""
    groups = rule_groups(spec)
    rules_path = conventions.rule_file_path(spec)
    documents: dict[str, Any] = {
        rules_path: {"groups": groups},
        conventions.rule_test_path(spec): promtool_tests(spec, PurePosixPath(rules_path).name),
        conventions.PROMETHEUS_RULE_PATH: prometheus_rule(spec, groups),
        conventions.SERVICE_MONITOR_PATH: service_monitor(spec),
        conventions.ANALYSIS_TEMPLATE_PATH: analysis_template(spec),
        conventions.alertmanager_config_path(spec): alertmanager_config(spec),
        conventions.ALERTMANAGER_CONFIG_CRD_PATH: alertmanager_config_object(spec),
    }
    for path, document in sorted(dashboard_artifacts(spec).items()):
        if path in documents:
            raise ValueError(f"the dashboards generator also writes {path}")
        documents[path] = document
    for directory, path in (
        (conventions.GENERATED_DIR, conventions.KUSTOMIZATION_PATH),
        (conventions.ROLLOUT_DIR, conventions.ROLLOUT_KUSTOMIZATION_PATH),
        (conventions.ALERTMANAGER_DIR, conventions.ALERTMANAGER_KUSTOMIZATION_PATH),
    ):
        documents[path] = kustomization(_kustomization_resources(list(documents), directory))
    return dict(sorted(documents.items()))


def generated_files(spec: ServiceSpec) -> dict[str, str]:
    """Every generated file as text, sorted by path (deterministic: same spec, same bytes)."""
    return {path: render_document(path, doc) for path, doc in generated_documents(spec).items()}
