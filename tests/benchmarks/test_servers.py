"""The server benchmarks run end to end, and refuse figures from a contender that recorded less.

The integration tests start real servers (uvicorn, gunicorn, rotel, nginx) on loopback
for a second of wrk each: they prove every table is produced and its honesty checks pass,
never how fast anything is.
"""

from __future__ import annotations

import re

import pytest
from benchmarks.contenders import Contender, server_groups
from benchmarks.overhead import main
from benchmarks.servers import check_recorded
from benchmarks.wrk import WrkRun

from tests.support.tools import require_tool

TINY_LOAD = (
    *("--duration", "1", "--warmup-seconds", "1", "--wrk-rounds", "1"),
    *("--threads", "1", "--connections", "4"),
)


def runs(*requests: int) -> list[WrkRun]:
    """wrk runs that saw ``requests`` served, one run per number."""
    return [WrkRun(count, 1000.0, 1.0, 2.0, 0) for count in requests]


def test_one_run_holds_both_stacks_the_full_stack_and_multiprocess() -> None:
    keys = [group.key for group in server_groups()]

    assert keys == [
        "starlette-h11",
        "fastapi-h11",
        "starlette-uvloop",
        "fastapi-uvloop",
        "fullstack",
        "multiprocess",
    ]
    assert all(group.contenders[0].factory.startswith("bare_") for group in server_groups())


def test_a_contender_that_recorded_fewer_requests_than_it_served_fails_the_run() -> None:
    ours = Contender("ouro-obs", "ouro_obs_metrics_fastapi")

    with pytest.raises(RuntimeError, match=r"'ouro-obs' recorded 149 requests counted for 150"):
        check_recorded(ours, runs(100, 50), {"requests counted": 149}, connections=4)


def test_requests_in_flight_when_wrk_stopped_are_allowed_and_no_more() -> None:
    ours = Contender("ouro-obs", "ouro_obs_metrics_fastapi")

    check_recorded(ours, runs(100, 50), {"requests counted": 158, "access lines": 150}, 4)
    with pytest.raises(RuntimeError, match="159 requests counted"):
        check_recorded(ours, runs(100, 50), {"requests counted": 159}, connections=4)


def test_ten_percent_sampling_must_send_about_a_tenth_of_the_spans() -> None:
    contender = Contender("otel", "otel_asgi_full_fastapi", span_service="s", sample_ratio=0.1)
    check_recorded(contender, runs(10_000), {"server spans": 1_040}, connections=4)
    with pytest.raises(RuntimeError, match="600 server spans"):
        check_recorded(contender, runs(10_000), {"server spans": 600}, connections=4)


def test_a_contender_reporting_nothing_fails_and_a_bare_app_needs_nothing() -> None:
    check_recorded(Contender("bare", "bare_fastapi"), runs(10), {}, connections=4)
    with pytest.raises(RuntimeError, match="reports nothing"):
        check_recorded(Contender("x", "instrumentator_fastapi"), runs(10), {}, connections=4)


@pytest.mark.integration
def test_a_tiny_server_run_prints_every_table_with_its_recorded_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_tool("wrk")
    argv = ["--mode", "servers", "--servers", "fastapi,fullstack,multiprocess"]

    assert main([*argv, "--stacks", "uvloop", *TINY_LOAD]) == 0

    printed = capsys.readouterr().out
    titles = re.findall(r"^### (.*)$", printed, re.MULTILINE)
    assert [title.split(",")[0] for title in titles] == [
        "Metrics only",
        "Full stack with export",
        "Multiprocess: gunicorn",
    ]
    assert "| ouro-obs, the one line (nothing else configured) |" in printed
    assert re.search(r"ouro-obs full stack, 100 %: [\d,]+ requests counted, [\d,]+ access lines, "
                     r"[\d,]+ server spans of [\d,]+ served", printed)  # fmt: skip
    assert "Target (ouro-obs, metrics only: overhead ≤ 1/3 of" in printed


@pytest.mark.integration
def test_the_exposition_mode_compares_scrapes_in_process_and_multiprocess(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_tool("wrk")
    argv = ["--mode", "exposition", "--exposition-requests", "500", "--scrapes", "2"]

    assert main([*argv, "--multiprocess-workers", "2", *TINY_LOAD]) == 0

    printed = capsys.readouterr().out
    assert "### /metrics after 500 requests on 21 routes (in-process)" in printed
    assert "### Multiprocess /metrics aggregation, gunicorn with 2 uvicorn workers" in printed
    assert printed.count("| prometheus-fastapi-instrumentator |") == 2


@pytest.mark.integration
def test_the_sidecar_mode_measures_nginx_directly_and_through_the_sidecar(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_tool("wrk")
    require_tool("nginx")

    assert main(["--mode", "sidecar", "--duration", "1", "--wrk-rounds", "1"]) == 0

    printed = capsys.readouterr().out
    assert "| moderate | sidecar |" in printed
    assert "| saturated | direct |" in printed
