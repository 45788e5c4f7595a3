"""The options benchmark keeps working: every variant records its requests, callgrind counts them.

No figure is asserted (the cost of an option is the benchmark's to show, not CI's).
"""

from __future__ import annotations

import pytest
from benchmarks.options import (
    CASES,
    VARIANTS,
    OptionVariant,
    drive_all,
    options_table,
    run_options,
)

from tests.support.tools import require_tool

REQUESTS, WARMUP = 12, 3
SERVED = 3 + WARMUP + REQUESTS


def test_every_ouro_obs_variant_counts_every_request_on_a_route_and_ends_it() -> None:
    recorded = drive_all(VARIANTS, REQUESTS, WARMUP)

    assert set(recorded) == {variant.name for variant in VARIANTS if variant.options is not None}
    assert all(
        counts == {"counted": SERVED, "on a route": SERVED, "in flight": 0}
        for counts in recorded.values()
    )


def test_a_variant_that_records_nothing_fails_the_run_instead_of_printing_figures() -> None:
    excludes_everything = OptionVariant(
        "excludes everything", {"excluded_path_prefixes": ("/",)}, "bare"
    )

    with pytest.raises(RuntimeError, match=r"'excludes everything' recorded \{'counted': 0"):
        drive_all([VARIANTS[0], excludes_everything], REQUESTS, WARMUP)


def test_every_case_compares_two_variants_against_their_bare_twins() -> None:
    names = {variant.name: variant for variant in VARIANTS}

    for case in CASES:
        on, off = names[case.on], names[case.off]
        assert on.twin in names, case
        assert off.twin in names, case
        assert on.new_paths == off.new_paths, case  # the same requests, on and off


def test_one_callgrind_process_counts_each_variant_between_its_marks() -> None:
    """One case only (its on and off variants and their twin): valgrind's start-up is slow."""
    require_tool("valgrind")

    result = run_options(REQUESTS, WARMUP, names=["in-flight by route"])

    assert list(result.per_request) == ["bare", "defaults", "in-flight by route"]
    assert all(count > 0 for count in result.per_request.values())
    assert set(result.recorded) == {"defaults", "in-flight by route"}
    markdown = options_table(result).markdown()
    rows = [line.split(" | ")[0].lstrip("| ") for line in markdown.splitlines()[4:] if "|" in line]
    assert rows == ["in-flight gauge by route (paths seen before)"]
