"""Reading wrk, writing its request script, and the server CPU time read from ``/proc``."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from benchmarks.shop import SHOP_ROUTES
from benchmarks.wrk import (
    BENCH_USER_AGENT,
    parse_wrk,
    process_cpu_seconds,
    process_group_cpu_seconds,
    write_lua,
)

WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:8000
  Latency Distribution
     50%    4.23ms
     75%    5.01ms
     90%    5.50ms
     99%  612.00us
  59364 requests in 8.00s, 8.32MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   7420.12
Transfer/sec:      1.04MB
"""


def test_wrk_output_is_read_into_counts_rate_percentiles_and_errors() -> None:
    run = parse_wrk(WRK_OUTPUT)

    assert (run.requests, run.requests_per_second, run.p50_ms, run.p99_ms) == (
        59364,
        7420.12,
        4.23,
        0.612,
    )
    assert (run.non_2xx, run.socket_errors) == (7, 5)


def test_server_cpu_time_is_read_from_proc_and_grows_with_work() -> None:
    before = process_cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass

    assert process_cpu_seconds(os.getpid()) >= before + 0.03


def test_a_session_s_cpu_time_counts_its_processes() -> None:
    """The test runner's own session holds this process, so it is at least this one's time."""
    session = os.getsid(0)

    assert process_group_cpu_seconds(session) >= process_cpu_seconds(os.getpid())


def test_the_wrk_script_requests_every_route_with_ids_and_the_benchmark_user_agent(
    tmp_path: Path,
) -> None:
    script = write_lua(tmp_path / "shop.lua", SHOP_ROUTES).read_text()

    routes = re.search(r"local routes = \{(.*)\}\n", script)
    assert routes is not None
    assert routes.group(1).count('{"') == len(SHOP_ROUTES) == 21
    assert '{"/users/", "/orders/", ""}' in script  # /users/{user_id}/orders/{order_id}
    assert f'wrk.headers["User-Agent"] = "{BENCH_USER_AGENT}"' in script
    assert "{" + '"/"' + "}" in script  # the index route, no parameter
