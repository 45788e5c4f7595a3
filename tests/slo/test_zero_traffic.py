"""Without traffic every SLI ratio is absent, as the docs say, never NaN (issue 12 item 18).

``0 / 0`` is NaN in PromQL: a service whose series exist but served nothing in a window
used to record NaN ratios, burn rates and budget. The ratios now divide by the events only
where there are some, so the window has no sample; promtool proves it on the rule file.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from ouro_obs.slo import conventions
from ouro_obs.slo.conventions import rule_file_path
from ouro_obs.slo.promql import labelled
from ouro_obs.slo.promtool_traffic import Traffic
from ouro_obs.slo.spec import ServiceSpec, load_spec
from ouro_obs.slo.windows import all_windows
from tests.slo.support import generate, golden_input, promtool
from tests.support.tools import require_tool

pytestmark = pytest.mark.integration

#: One sample a minute for two hours; checks at 1 h, when every short window is full.
STEP, SAMPLES, AT = "1m", 120, "1h"


def _series(spec: ServiceSpec, requests: Decimal) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for slo in spec.slos:
        traffic = Traffic(spec, slo)
        traffic.add(SAMPLES, requests, Decimal(0))
        found += traffic.series()
    return found


def _expectations(spec: ServiceSpec, present: bool) -> list[dict[str, Any]]:
    checks = []
    for slo in spec.slos:
        labels = conventions.slo_labels(spec, slo)
        recorded = conventions.record_labels(spec, slo)
        short = [w for w in all_windows(slo.window_days) if w.minutes <= 60]
        records = [
            *(conventions.sli_error_record(w) for w in short),
            *(conventions.burn_rate_record(w) for w in short),
        ]
        for record in records:
            samples = [{"labels": labelled(record, recorded), "value": 0}] if present else []
            checks.append(
                {"expr": labelled(record, labels), "eval_time": AT, "exp_samples": samples}
            )
    return checks


def _period_checks(spec: ServiceSpec) -> list[dict[str, Any]]:
    records = [conventions.BUDGET_REMAINING_RECORD]
    for slo in spec.slos:
        period = max(all_windows(slo.window_days))
        records += [conventions.sli_error_record(period), conventions.burn_rate_record(period)]
    return [{"expr": record, "eval_time": AT, "exp_samples": []} for record in records]


def test_zero_traffic_leaves_every_ratio_absent_and_some_traffic_records_zero(
    tmp_path: Path,
) -> None:
    binary = require_tool("promtool")
    spec_path = golden_input("both-7d")
    spec = load_spec(spec_path)
    generate(spec_path, tmp_path)
    rules = tmp_path / rule_file_path(spec)
    document = {
        "rule_files": [rules.name],
        "evaluation_interval": STEP,
        "tests": [
            {
                "name": "series exist, no request in any window: no ratio at all",
                "interval": STEP,
                "input_series": _series(spec, Decimal(0)),
                "promql_expr_test": _expectations(spec, present=False) + _period_checks(spec),
            },
            {
                "name": "clean traffic: every ratio is 0",
                "interval": STEP,
                "input_series": _series(spec, Decimal(100)),
                "promql_expr_test": _expectations(spec, present=True),
            },
        ],
    }
    test_file = rules.parent / "zero-traffic.test.yaml"
    test_file.write_text(yaml.safe_dump(document, sort_keys=False))
    run = promtool(binary, "test", test_file)
    assert run.returncode == 0, f"{run.command}:\n{run.output}"
