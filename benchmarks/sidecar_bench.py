"""What going through ``ouro-obs sidecar`` costs: wrk against nginx directly and through it.

    .venv/bin/python benchmarks/sidecar_bench.py [--duration 10] [--rounds 2]

Starts Debian's nginx (one worker, a small fixed answer) and the sidecar in front of it
(`python -m ouro_obs sidecar`, its defaults: access log on, route templates from a routes
file), both on loopback, then runs wrk against each in turn, in the same run:

- ``moderate``: 16 connections that each pause 0-20 ms (uniformly random, so they do not
  arrive in bursts) before every request: about 1,500 requests/s, the load a sidecar
  should add little latency to. The added p50/p99 here is the figure the goal is about
  (< 1 ms at p50, < 3 ms at p99).
- ``saturated``: 16 connections without pause: the most each can serve; latency there is
  mostly queueing, so it is reported but it is not the overhead.

Rounds alternate direct and sidecar runs, and the table keeps each figure's median, so
a noisy neighbour on the machine skews both sides alike. Needs ``wrk`` and ``nginx``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ouro_obs.processes import ManagedProcess, free_port

#: Spreads each connection's requests 0-2x the mean pause apart (wrk's delay() hook).
PACED_SCRIPT = """
local mean_pause_ms = {pause_ms}
function delay()
    return math.random(0, 2 * mean_pause_ms)
end
"""

NGINX_CONFIG = """
worker_processes 1;
{user}
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{{"id":42,"name":"kettle"}}';
        }}
    }}
}}
"""

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Requests/s, p50, p99 and error count from ``wrk --latency`` output."""
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if rate is None or set(percentiles) != {"50", "99"}:
        raise ValueError(f"cannot read wrk's output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        p50_ms=_milliseconds(percentiles["50"]),
        p99_ms=_milliseconds(percentiles["99"]),
        errors=errors + (int(non_2xx.group(1)) if non_2xx else 0),
    )


def run_wrk(
    wrk: str, url: str, *, threads: int, connections: int, seconds: int, script: Path | None
) -> WrkResult:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    result = subprocess.run(
        [*argv, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    return parse_wrk(result.stdout)


def _median(results: list[WrkResult]) -> WrkResult:
    return WrkResult(
        requests_per_second=statistics.median(r.requests_per_second for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
    )


def start_nginx(nginx: str, work: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    user = ""
    if os.geteuid() == 0:
        import grp  # noqa: PLC0415 - POSIX only, and only needed as root
        import pwd  # noqa: PLC0415

        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    config = work / "nginx.conf"
    config.write_text(NGINX_CONFIG.format(user=user, work=work, port=port))
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        argv=[nginx, "-p", str(work), "-e", str(work / "error.log"), "-c", str(config),
              "-g", "daemon off;"],
        ready_url=f"{url}/ready",
        log_path=work / "nginx.out",
    )  # fmt: skip
    return process.start(), url


def start_sidecar(
    upstream: str, work: Path, extra_env: dict[str, str]
) -> tuple[ManagedProcess, str]:
    routes = work / "routes.txt"
    routes.write_text("/products/{product_id}\n/products\n")
    port, metrics_port = free_port(), free_port()
    process = ManagedProcess(
        argv=[
            sys.executable, "-m", "ouro_obs", "sidecar",
            "--upstream", upstream,
            "--listen", f"127.0.0.1:{port}",
            "--metrics-listen", f"127.0.0.1:{metrics_port}",
            "--routes", str(routes),
            "--log-level", "warning",
        ],
        ready_url=f"http://127.0.0.1:{metrics_port}/health/ready",
        # The access log is on, as in production; it goes to a file here.
        env={"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "catalog", **extra_env},
        log_path=work / "sidecar.log",
    )  # fmt: skip
    return process.start(), f"http://127.0.0.1:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="direct/sidecar pairs per scenario")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pause-ms", type=int, default=10, help="mean pause, moderate load")
    parser.add_argument(
        "--sidecar-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the sidecar, e.g. OURO_OBS_ACCESS_LOG=false (repeatable)",
    )
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.sidecar_env)
    wrk, nginx = shutil.which("wrk"), shutil.which("nginx", path="/usr/sbin:" + os.environ["PATH"])
    if wrk is None or nginx is None:
        print("needs wrk and nginx on PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ouro-obs-sidecar-bench-") as tmp:
        work = Path(tmp)
        (work / "nginx").mkdir()
        (work / "sidecar").mkdir()
        script = work / "paced.lua"
        script.write_text(PACED_SCRIPT.format(pause_ms=args.pause_ms))
        nginx_process, direct = start_nginx(nginx, work / "nginx")
        try:
            sidecar_process, proxied = start_sidecar(direct, work / "sidecar", extra_env)
            try:
                table = measure(wrk, direct, proxied, script, args)
            finally:
                sidecar_process.stop()
        finally:
            nginx_process.stop()
    print_table(table, args)
    return 0


def measure(
    wrk: str, direct: str, proxied: str, script: Path, args: argparse.Namespace
) -> dict[tuple[str, str], WrkResult]:
    path = "/products/42"
    scenarios = {"moderate": script, "saturated": None}
    runs: dict[tuple[str, str], list[WrkResult]] = {}
    for url in (direct, proxied):  # warm both up: connections, caches, the label series
        run_wrk(wrk, url + path, threads=1, connections=4, seconds=2, script=None)
    for scenario, scenario_script in scenarios.items():
        for _ in range(args.rounds):
            for target, url in (("direct", direct), ("sidecar", proxied)):
                result = run_wrk(
                    wrk,
                    url + path,
                    threads=args.threads,
                    connections=args.connections,
                    seconds=args.duration,
                    script=scenario_script,
                )
                runs.setdefault((scenario, target), []).append(result)
    return {key: _median(results) for key, results in runs.items()}


def print_table(table: dict[tuple[str, str], WrkResult], args: argparse.Namespace) -> None:
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency, median of "
        f"{args.rounds} rounds; moderate: a mean pause of {args.pause_ms} ms per connection"
    )
    if args.sidecar_env:
        print(f"sidecar environment: {' '.join(args.sidecar_env)}")
    print()
    print("| load | target | requests/s | p50 ms | p99 ms | added p50 ms | added p99 ms | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for scenario in ("moderate", "saturated"):
        direct = table[(scenario, "direct")]
        for target in ("direct", "sidecar"):
            result = table[(scenario, target)]
            added = ["", ""]
            if target == "sidecar":
                added = [
                    f"{result.p50_ms - direct.p50_ms:+.3f}",
                    f"{result.p99_ms - direct.p99_ms:+.3f}",
                ]
            cells = [
                scenario,
                target,
                f"{result.requests_per_second:,.0f}",
                f"{result.p50_ms:.3f}",
                f"{result.p99_ms:.3f}",
                *added,
                str(result.errors),
            ]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
