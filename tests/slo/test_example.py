"""The example service's committed outputs are exactly what its spec generates."""

from __future__ import annotations

from pathlib import Path

from ouro_obs.slo.spec import load_spec
from tests.slo.support import (
    EXAMPLE_OUTPUT_DIRS,
    EXAMPLE_SPEC,
    files_under,
    generate_every_environment,
)
from tests.support.tools import REPO_ROOT

REGENERATE = "ouro-obs generate examples/shop/slo.yaml -o ."


def test_committed_example_outputs_are_up_to_date(tmp_path: Path) -> None:
    fresh = generate_every_environment(EXAMPLE_SPEC, tmp_path)
    committed = files_under(REPO_ROOT, EXAMPLE_OUTPUT_DIRS)
    missing = sorted(set(fresh) - set(committed))
    assert not missing, f"missing committed files {missing}; run: {REGENERATE}"
    stale = sorted(path for path in fresh if committed[path] != fresh[path])
    assert not stale, f"stale generated files {stale}; run: {REGENERATE}"
    # Files under the generated directories that the spec no longer produces.
    leftovers = sorted(
        path
        for path in set(committed) - set(fresh)
        if path.startswith(("alerts/", "deploy/generated/"))
    )
    assert not leftovers, (
        f"files no longer generated {leftovers}; delete them and run: {REGENERATE}"
    )


def test_the_example_spec_has_the_slos_the_docs_promise() -> None:
    spec = load_spec(EXAMPLE_SPEC)
    kinds = {slo.sli.kind: slo for slo in spec.slos}
    assert set(kinds) == {"availability", "latency"}
    assert str(kinds["availability"].objective) == "99.9"
    assert kinds["availability"].window_days == 30
    assert spec.labels.get("team")
    assert spec.runbook_base_url.startswith("https://")
    assert "release" in spec.manifest_labels
