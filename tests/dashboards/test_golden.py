"""Golden files: the second spec's dashboards and ConfigMap, byte for byte.

After an intended change, rewrite them and review the diff:
    OURO_OBS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/dashboards/test_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ouro_obs.slo.dashboards import dashboard_artifacts
from ouro_obs.slo.render import render_document
from tests.dashboards.support import SECOND_SPEC, TESTDATA, spec

UPDATE = os.environ.get("OURO_OBS_UPDATE_GOLDEN", "") == "1"
SERVICE = "payments"


def golden_files() -> dict[str, str]:
    """Golden file name (out-<service>-<file name>) -> generated text."""
    return {
        f"out-{SERVICE}-{Path(path).name.removeprefix(f'{SERVICE}-')}": render_document(path, doc)
        for path, doc in dashboard_artifacts(spec(SERVICE)).items()
    }


@pytest.mark.parametrize("name", sorted(golden_files()))
def test_output_matches_the_golden_file(name: str) -> None:
    text = golden_files()[name]
    golden = TESTDATA / name
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"{golden} is missing; run with OURO_OBS_UPDATE_GOLDEN=1"
    assert golden.read_text(encoding="utf-8") == text, (
        f"{golden.name} differs from what {SECOND_SPEC.name} generates; if the change is "
        "intended, rerun with OURO_OBS_UPDATE_GOLDEN=1 and review the diff"
    )


def test_no_stale_golden_files_are_left() -> None:
    expected = set(golden_files())
    present = {path.name for path in TESTDATA.glob(f"out-{SERVICE}-*")}
    assert present == expected
