"""The overhead benchmark keeps working: a tiny in-process run yields a complete table.

No timing is asserted (speed is the benchmark's job, not CI's); these tests only prove
that every variant builds, answers, is measured and lands in the Markdown output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.apps import METRICS_VARIANTS, Variant, bare, ouro_obs_metrics
from benchmarks.inprocess import check, drive, in_process_table, run_in_process
from benchmarks.instructions import collected_instructions
from benchmarks.overhead import MODES, main
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from tests.support.tools import REPO_ROOT

VARIANT_NAMES = [variant.name for variant in METRICS_VARIANTS]
TINY_RUN = ("--requests", "20", "--rounds", "2", "--warmup", "2")


def test_a_tiny_in_process_run_measures_every_variant_in_every_round() -> None:
    result = run_in_process(requests=40, rounds=2, warmup=5)

    assert list(result.per_request_ns) == VARIANT_NAMES
    assert all(len(rounds) == 2 for rounds in result.per_request_ns.values())
    assert all(ns > 0 for rounds in result.per_request_ns.values() for ns in rounds)


def test_the_table_has_a_row_per_variant_and_states_the_bar() -> None:
    markdown = in_process_table(run_in_process(requests=40, rounds=2, warmup=5)).markdown()

    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[2:]] == VARIANT_NAMES
    assert "Bar (lower overhead than every peer):" in markdown


def test_a_variant_that_records_nothing_fails_the_run_instead_of_printing_figures() -> None:
    def silent() -> ASGIApp:
        app = bare()
        app.state.bench_recorded = lambda: {"requests counted": 0}  # type: ignore[attr-defined]
        return app

    variants = [METRICS_VARIANTS[0], Variant("silent", silent, "counts nothing", "")]

    with pytest.raises(RuntimeError, match=r"'silent' recorded 0 requests counted for 25 requests"):
        run_in_process(variants, requests=20, rounds=2, warmup=2)


async def test_the_benchmarked_middleware_really_records_the_requests() -> None:
    """A variant that silently skipped its instrumentation would make the figures lie."""
    app = ouro_obs_metrics()
    await check(app, "ouro-obs")
    await drive(app, 30)

    registry = _registry_of(app)
    routes = {
        sample.labels["route"]
        for metric in registry.collect()
        if metric.name == "http_requests"
        for sample in metric.samples
        if sample.name == "http_requests_total"
    }
    total = sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "http_requests_total"
    )
    assert total == 33  # 3 checked + 30 driven
    assert routes == {
        "/items/{item_id}",
        "/users/{user_id}/orders/{order_id}",
        "/api/v1/products/{product_id}",
    }


def _registry_of(app: object) -> CollectorRegistry:
    for middleware in getattr(app, "user_middleware", ()):
        registry = middleware.kwargs.get("registry")
        if isinstance(registry, CollectorRegistry):
            return registry
    raise AssertionError("the ouro-obs variant was built without its own registry")


def test_the_command_line_prints_markdown_and_writes_it_to_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "figures.md"

    assert main(["--mode", "inprocess", *TINY_RUN, "--output", str(output)]) == 0

    printed = capsys.readouterr().out
    assert printed.startswith("### In-process overhead per request")
    assert "| ouro-obs |" in printed
    assert output.read_text() == printed.rstrip("\n") + "\n"


def test_the_full_stack_mode_prints_its_table() -> None:
    """In a child process: the full stack configures logging process-wide."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.overhead", "--mode", "fullstack", *TINY_RUN],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert "### Full stack in-process" in completed.stdout
    assert "| otel-asgi |" in completed.stdout
    assert "25 server spans" in completed.stdout  # 3 checks + 2 warm-up + 2 rounds of 10


def test_the_callgrind_driver_serves_a_variant_without_valgrind() -> None:
    """The internal ``--drive`` entry callgrind runs: it builds, checks and drives one variant."""
    assert main(["--drive", "ouro-obs", "--requests", "10", "--warmup", "2"]) == 0


def test_callgrind_output_is_read_into_an_instruction_count() -> None:
    stderr = (
        "==1== Events    : Ir\n==1== Collected : 1,234,567\n==1==\n==1== I   refs:      1,234,567\n"
    )

    assert collected_instructions(stderr) == 1_234_567


def test_the_help_documents_every_mode() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.overhead", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    for mode in MODES:
        assert f"``{mode}``" in completed.stdout
