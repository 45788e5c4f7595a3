"""Loading the spec into the typed model, its JSON Schema, and the OpenSLO import."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
import yaml

from ouro_obs.slo.spec import (
    AvailabilitySLI,
    LatencySLI,
    SpecError,
    load_spec,
    parse_spec,
    spec_json_schema,
)
from tests.slo.support import EXAMPLE_SPEC, GOLDEN_NAMES, TESTDATA, golden_input


def test_the_example_spec_loads_into_the_typed_model() -> None:
    spec = load_spec(EXAMPLE_SPEC)
    assert spec.service == "shop"
    assert spec.effective_selector == {"job": "shop"}
    assert spec.labels["team"] == "storefront"
    assert spec.runbook_base_url == "https://runbooks.example.com/shop"
    assert spec.manifest_labels == {"release": "kube-prometheus-stack"}
    availability, latency = spec.slos
    assert (availability.objective, availability.window_days) == (Decimal("99.9"), 30)
    assert availability.error_budget == Decimal("0.001")
    assert isinstance(availability.sli, AvailabilitySLI)
    assert isinstance(latency.sli, LatencySLI)
    assert latency.sli.threshold_seconds == Decimal("0.5")


def test_objectives_keep_the_digits_as_written() -> None:
    spec = parse_spec(
        "apiVersion: ouro-obs/v1\nservice: a\nrunbook_base_url: https://r.example.com\n"
        "slos: [{name: x, objective: 99.95, sli: {kind: availability}}]\n"
    )
    assert spec.slos[0].objective == Decimal("99.95")
    assert str(spec.slos[0].error_budget) == "0.0005"


def test_defaults_fill_what_the_spec_leaves_out() -> None:
    spec = load_spec(golden_input("availability-30d"))
    assert spec.slos[0].window_days == 30
    assert spec.slos[0].sli == AvailabilitySLI(error_status_regex="5..")
    assert spec.page_labels == {"severity": "critical"}
    assert spec.ticket_labels == {"severity": "warning"}
    assert spec.page_min_requests == 100
    assert spec.grafana_url == ""


def test_trailing_slashes_are_dropped_from_urls() -> None:
    assert load_spec(golden_input("latency-28d")).grafana_url == "https://grafana.example.com"


# --------------------------------------------------------------------------- JSON Schema


def _validator() -> jsonschema.Draft7Validator:
    schema = spec_json_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("path", [EXAMPLE_SPEC, *(golden_input(n) for n in GOLDEN_NAMES)])
def test_every_valid_spec_passes_the_json_schema(path: Path) -> None:
    document = json.loads(json.dumps(yaml.safe_load(path.read_text())))
    errors = [error.message for error in _validator().iter_errors(document)]
    assert errors == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"slos": []}, "should be non-empty"),
        ({"objetive": 1}, "Additional properties"),
        ({"apiVersion": "ouro-obs/v2"}, "was expected"),
        (
            {
                "slos": [
                    {
                        "name": "x",
                        "objective": 99.9,
                        "sli": {"kind": "latency", "threshold_seconds": 0.3},
                    }
                ]
            },
            "is not valid under any",
        ),
    ],
)
def test_the_json_schema_rejects_what_the_loader_rejects(
    change: dict[str, object], complaint: str
) -> None:
    document = {**yaml.safe_load(EXAMPLE_SPEC.read_text()), **change}
    messages = " | ".join(error.message for error in _validator().iter_errors(document))
    assert complaint in messages


def test_the_schema_command_prints_the_schema_as_json() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "ouro_obs", "schema"], capture_output=True, text=True, check=True
    )
    assert json.loads(finished.stdout) == spec_json_schema()


# --------------------------------------------------------------------------- OpenSLO


def test_an_openslo_file_imports_as_the_same_spec_as_its_native_twin() -> None:
    imported = load_spec(TESTDATA / "openslo" / "shop.openslo.yaml")
    native = load_spec(TESTDATA / "openslo" / "shop.native.yaml")
    assert imported == native


OPENSLO_RUNBOOK = "    ouro-obs.dev/runbook-base-url: https://runbooks.example.com/shop\n"


def test_an_openslo_slos_grouping_comes_from_its_annotations() -> None:
    text = (TESTDATA / "openslo" / "shop.openslo.yaml").read_text()
    grouped = text.replace(
        OPENSLO_RUNBOOK,
        OPENSLO_RUNBOOK
        + "    ouro-obs.dev/group-by: route, method\n    ouro-obs.dev/max-groups: '50'\n",
        1,
    )
    native = (TESTDATA / "openslo" / "shop.native.yaml").read_text()
    native_grouped = native.replace(
        "    window: 28d\n", "    window: 28d\n    group_by: [route, method]\n    max_groups: 50\n"
    )
    imported = parse_spec(grouped, "shop.openslo.yaml")
    assert imported == parse_spec(native_grouped, "shop.yaml")
    assert imported.slos[0].group_by == ("route", "method")
    assert imported.slos[1].group_by == ()


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param(
            "    ouro-obs.dev/group-by: route\n    ouro-obs.dev/max-groups: lots\n",
            "shop.openslo.yaml:11: metadata.annotations.ouro-obs.dev/max-groups: "
            "must be a whole number of groups, e.g. 100",
            id="max-groups not a number",
        ),
        pytest.param(
            "    ouro-obs.dev/max-groups: '50'\n",
            "shop.openslo.yaml:10: metadata.annotations.ouro-obs.dev/max-groups: "
            "only applies to a grouped SLO; add metadata.annotations.ouro-obs.dev/group-by",
            id="max-groups without group-by names the annotation to add",
        ),
    ],
)
def test_a_bad_grouping_annotation_is_refused_with_its_place(
    annotations: str, expected: str
) -> None:
    text = (TESTDATA / "openslo" / "shop.openslo.yaml").read_text()
    broken = text.replace(OPENSLO_RUNBOOK, OPENSLO_RUNBOOK + annotations, 1)
    with pytest.raises(SpecError) as raised:
        parse_spec(broken, "shop.openslo.yaml")
    assert str(raised.value) == expected


def test_an_openslo_query_ouro_obs_cannot_map_is_refused_with_its_place() -> None:
    text = (TESTDATA / "openslo" / "shop.openslo.yaml").read_text()
    broken = text.replace('status!~"5.."', 'code!~"5.."')
    with pytest.raises(SpecError) as raised:
        parse_spec(broken, "shop.openslo.yaml")
    assert str(raised.value) == (
        "shop.openslo.yaml:19: spec.indicator.spec.ratioMetric.good: must be the total "
        'selector plus status!~"<regex>" (e.g. status!~"5..")'
    )
