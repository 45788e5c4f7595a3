"""The AnalysisTemplate `ouro-obs generate` writes: its shape, names, thresholds and conditions."""

from __future__ import annotations

import dataclasses
import json
import math
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
import yaml

from ouro_obs.slo import conventions
from ouro_obs.slo.analysis import AnalysisThresholds, analysis_template, analysis_thresholds
from ouro_obs.slo.artifacts import generated_documents, generated_files
from ouro_obs.slo.spec import ServiceSpec, load_spec
from ouro_obs.slo.windows import Window
from tests.slo.analysis_verdicts import (
    UnsupportedConditionError,
    evaluate_condition,
    measurement_phase,
)
from tests.support.tools import REPO_ROOT, schema_path

SPEC = REPO_ROOT / "examples" / "shop" / "slo.yaml"


@pytest.fixture(scope="module")
def spec() -> ServiceSpec:
    return load_spec(SPEC)


@pytest.fixture(scope="module")
def template(spec: ServiceSpec) -> dict[str, Any]:
    text = generated_files(spec)[conventions.ANALYSIS_TEMPLATE_PATH]
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def _metrics(template: dict[str, Any]) -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = template["spec"]["metrics"]
    return metrics


def test_the_template_is_valid_against_the_argo_rollouts_crd(template: dict[str, Any]) -> None:
    schema = json.loads(schema_path("crds/analysistemplate_v1alpha1.json").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(template), key=str)
    assert [error.message for error in errors] == []


def test_the_template_is_named_as_the_rollouts_refer_to_it(
    spec: ServiceSpec, template: dict[str, Any]
) -> None:
    assert template["metadata"]["name"] == "shop-slo-canary"
    assert conventions.analysis_template_name(spec) == "shop-slo-canary"


def test_each_slo_is_judged_against_the_objective_and_against_stable(
    spec: ServiceSpec, template: dict[str, Any]
) -> None:
    assert [metric["name"] for metric in _metrics(template)] == [
        "availability-burn-rate",
        "availability-vs-stable",
        "latency-burn-rate",
        "latency-vs-stable",
    ]
    for metric in _metrics(template):
        query = metric["provider"]["prometheus"]["query"]
        assert 'namespace="{{args.namespace}}"' in query
        assert 'rollouts_pod_template_hash="{{args.canary-hash}}"' in query
        assert ("{{args.stable-hash}}" in query) == metric["name"].endswith("-vs-stable")
        assert metric["provider"]["prometheus"]["address"] == "{{args.prometheus-address}}"
        assert metric["count"] == 1


def test_the_thresholds_are_the_page_burn_factors_over_the_fast_page_short_window(
    spec: ServiceSpec, template: dict[str, Any]
) -> None:
    for slo in spec.slos:
        assert analysis_thresholds(slo) == AnalysisThresholds(
            window=Window(5), burn_rate=Decimal("14.4"), vs_stable=Decimal(6)
        )
    conditions = {
        m["name"]: (m["successCondition"], m["failureCondition"]) for m in _metrics(template)
    }
    assert conditions["availability-burn-rate"] == (
        "len(result) == 1 && result[0] <= 14.4",
        "len(result) == 1 && result[0] > 14.4",
    )
    assert conditions["latency-vs-stable"] == (
        "len(result) == 1 && result[0] <= 6",
        "len(result) == 1 && result[0] > 6",
    )
    assert "[5m]" in _metrics(template)[0]["provider"]["prometheus"]["query"]


def test_a_seven_day_slo_is_measured_over_its_own_scaled_window(spec: ServiceSpec) -> None:
    weekly = dataclasses.replace(spec.slos[0], window_days=7)
    assert analysis_thresholds(weekly).window == Window(1)
    template = analysis_template(dataclasses.replace(spec, slos=(weekly,)))
    assert "[1m]" in template["spec"]["metrics"][0]["provider"]["prometheus"]["query"]


def test_the_low_traffic_guard_is_the_page_guard_of_the_spec(spec: ServiceSpec) -> None:
    guarded = analysis_template(spec)["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
    assert guarded.rstrip().endswith(">= 100")
    unguarded_spec = dataclasses.replace(spec, page_min_requests=0)
    unguarded = analysis_template(unguarded_spec)["spec"]["metrics"][0]
    assert "and on ()" not in unguarded["provider"]["prometheus"]["query"]


@pytest.mark.parametrize(
    ("result", "phase"),
    [
        ([], "Inconclusive"),
        ([math.nan], "Inconclusive"),
        ([1.0, 2.0], "Inconclusive"),
        ([0.0], "Successful"),
        ([14.4], "Successful"),
        ([14.5], "Failed"),
        ([math.inf], "Failed"),
    ],
)
def test_only_one_finite_sample_passes_or_fails(
    template: dict[str, Any], result: list[float], phase: str
) -> None:
    assert measurement_phase(_metrics(template)[0], result) == phase


def test_every_condition_is_in_the_documented_subset(template: dict[str, Any]) -> None:
    for metric in _metrics(template):
        for key in ("successCondition", "failureCondition"):
            evaluate_condition(metric[key], [1.0])  # raises outside the subset


def test_the_evaluator_rejects_what_the_subset_does_not_have() -> None:
    with pytest.raises(UnsupportedConditionError):
        evaluate_condition("isNaN(result[0])", [1.0])
    with pytest.raises(IndexError):
        evaluate_condition("result[0] > 1", [])


def test_the_template_has_its_own_kustomization_outside_the_generated_one(
    spec: ServiceSpec,
) -> None:
    documents = generated_documents(spec)
    assert documents[conventions.ROLLOUT_KUSTOMIZATION_PATH]["resources"] == [
        "analysistemplate.yaml"
    ]
    main = documents[conventions.KUSTOMIZATION_PATH]["resources"]
    assert not [resource for resource in main if "rollout" in resource]


def test_the_committed_template_is_what_the_generator_writes(spec: ServiceSpec) -> None:
    for path in (conventions.ANALYSIS_TEMPLATE_PATH, conventions.ROLLOUT_KUSTOMIZATION_PATH):
        assert (REPO_ROOT / path).read_text() == generated_files(spec)[path]
