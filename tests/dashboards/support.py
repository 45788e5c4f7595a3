"""What the dashboard tests share: the two specs, their dashboards and the schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

from ouro_obs.slo.conventions import dashboard_paths
from ouro_obs.slo.dashboards import dashboard_artifacts
from ouro_obs.slo.dashboards.grafana_model import iter_panels
from ouro_obs.slo.spec import ServiceSpec, load_spec
from tests.support.tools import REPO_ROOT, schema_path

__all__ = [
    "EXAMPLE_SPEC",
    "SECOND_SPEC",
    "SPECS",
    "TESTDATA",
    "dashboards_of",
    "panels",
    "schema_errors",
    "spec",
    "targets",
]

TESTDATA = Path(__file__).parent / "testdata"
EXAMPLE_SPEC = REPO_ROOT / "examples" / "shop" / "slo.yaml"
SECOND_SPEC = TESTDATA / "in-payments.yaml"
SPECS = {"shop": EXAMPLE_SPEC, "payments": SECOND_SPEC}

Dashboard = dict[str, Any]


def spec(name: str) -> ServiceSpec:
    return load_spec(SPECS[name])


def dashboards_of(service_spec: ServiceSpec) -> dict[str, Dashboard]:
    """Dashboard kind ("overview", "slo") -> the generated dashboard."""
    artifacts = dashboard_artifacts(service_spec)
    return {kind: artifacts[path] for kind, path in dashboard_paths(service_spec).items()}


def panels(dashboard: Dashboard) -> list[dict[str, Any]]:
    """Every panel, rows included."""
    return list(iter_panels(dashboard["panels"]))


def targets(dashboard: Dashboard) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of every panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


@cache
def _validator() -> Draft7Validator:
    schema = json.loads(schema_path("grafana/dashboard.jsonschema.json").read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def schema_errors(dashboard: Dashboard) -> list[str]:
    """Each violation of Grafana's dashboard JSON Schema, as "path: message"."""
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message[:200]}"
        for error in _validator().iter_errors(dashboard)
    ]
