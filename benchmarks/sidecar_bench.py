"""What going through ``ouro-obs sidecar`` costs: wrk against nginx directly and through it.

    .venv/bin/python -m benchmarks.sidecar_bench [--duration 10] [--rounds 2]
    .venv/bin/python -m benchmarks.overhead --mode sidecar

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
import shutil
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.tables import Table
from benchmarks.wrk import LoadSettings, WrkRun, run_wrk
from ouro_obs.demo.lifecycle import ManagedProcess, free_port

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


def _median(results: list[WrkRun]) -> WrkRun:
    return WrkRun(
        requests=int(statistics.median(r.requests for r in results)),
        requests_per_second=statistics.median(r.requests_per_second for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
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


@dataclass
class Sidecar:
    process: ManagedProcess
    url: str
    metrics_url: str

    def requests_counted(self) -> int:
        """``http_requests_total`` summed over every series the sidecar's admin port shows."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            text = response.read().decode()
        return int(
            sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "http_requests_total"
            )
        )


def start_sidecar(upstream: str, work: Path, extra_env: Mapping[str, str]) -> Sidecar:
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
    return Sidecar(
        process.start(), f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
    )


#: 16 connections: the moderate scenario's pauses are per connection.
SIDECAR_LOAD = LoadSettings(connections=16, duration_seconds=10.0, rounds=2)


@dataclass(frozen=True)
class SidecarSettings:
    load: LoadSettings = SIDECAR_LOAD
    pause_ms: int = 10
    sidecar_env: Mapping[str, str] = field(default_factory=dict)


def run(settings: SidecarSettings) -> Table:
    """Start nginx and the sidecar in front of it, measure both, stop both."""
    nginx = shutil.which("nginx", path="/usr/sbin:" + os.environ["PATH"])
    if nginx is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx)")
    with tempfile.TemporaryDirectory(prefix="ouro-obs-sidecar-bench-") as tmp:
        work = Path(tmp)
        (work / "nginx").mkdir()
        (work / "sidecar").mkdir()
        script = work / "paced.lua"
        script.write_text(PACED_SCRIPT.format(pause_ms=settings.pause_ms))
        nginx_process, direct = start_nginx(nginx, work / "nginx")
        try:
            sidecar = start_sidecar(direct, work / "sidecar", settings.sidecar_env)
            try:
                medians = measure(direct, sidecar, script, settings)
            finally:
                sidecar.process.stop()
        finally:
            nginx_process.stop()
    return sidecar_table(medians, settings)


def measure(
    direct: str, sidecar: Sidecar, script: Path, settings: SidecarSettings
) -> dict[tuple[str, str], WrkRun]:
    """Median runs by (scenario, target); fails unless the sidecar counted every request."""
    path = "/products/42"
    load = settings.load
    scenarios = {"moderate": script, "saturated": None}
    runs: dict[tuple[str, str], list[WrkRun]] = {}
    through_sidecar: list[WrkRun] = []
    for url in (direct, sidecar.url):  # warm both up: connections, caches, the label series
        warmup = run_wrk(url + path, threads=1, connections=4, seconds=2)
        if url == sidecar.url:
            through_sidecar.append(warmup)
    for scenario, scenario_script in scenarios.items():
        for _ in range(load.rounds):
            for target, url in (("direct", direct), ("sidecar", sidecar.url)):
                result = run_wrk(
                    url + path,
                    threads=load.threads,
                    connections=load.connections,
                    seconds=load.duration_seconds,
                    script=scenario_script,
                )
                runs.setdefault((scenario, target), []).append(result)
                if target == "sidecar":
                    through_sidecar.append(result)
    _refuse_uncounted(sidecar, through_sidecar, load.connections)
    return {key: _median(results) for key, results in runs.items()}


def _refuse_uncounted(sidecar: Sidecar, runs: list[WrkRun], connections: int) -> None:
    served = sum(run.requests for run in runs)
    slack = sum(connections + run.socket_errors for run in runs)
    counted = sidecar.requests_counted()
    if not served <= counted <= served + slack:
        raise RuntimeError(
            f"the sidecar counted {counted} requests for {served} wrk saw served: "
            "its figures would not measure real instrumentation"
        )


def sidecar_table(medians: dict[tuple[str, str], WrkRun], settings: SidecarSettings) -> Table:
    load = settings.load
    table = Table(
        "Through the sidecar: wrk against nginx directly and through `ouro-obs sidecar`",
        ("load", "target", "requests/s", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms",
         "errors"),
    )  # fmt: skip
    for scenario in ("moderate", "saturated"):
        direct = medians[(scenario, "direct")]
        for target in ("direct", "sidecar"):
            result = medians[(scenario, target)]
            added = ["", ""]
            if target == "sidecar":
                added = [
                    f"{result.p50_ms - direct.p50_ms:+.3f}",
                    f"{result.p99_ms - direct.p99_ms:+.3f}",
                ]
            table.rows.append(
                (
                    scenario,
                    target,
                    f"{result.requests_per_second:,.0f}",
                    f"{result.p50_ms:.3f}",
                    f"{result.p99_ms:.3f}",
                    *added,
                    str(result.non_2xx + result.socket_errors),
                )
            )
    table.notes.append(
        f"wrk -t{load.threads} -c{load.connections} -d{load.duration_seconds:.0f}s "
        f"--latency, median of {load.rounds} rounds; moderate: a mean pause of "
        f"{settings.pause_ms} ms per connection. The sidecar's own http_requests_total was "
        "checked against every request wrk saw it serve."
    )
    if settings.sidecar_env:
        pairs = " ".join(f"{name}={value}" for name, value in settings.sidecar_env.items())
        table.notes.append(f"Sidecar environment: {pairs}.")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
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
    settings = SidecarSettings(
        LoadSettings(args.threads, args.connections, args.duration, rounds=args.rounds),
        args.pause_ms,
        dict(item.split("=", 1) for item in args.sidecar_env),
    )
    print(run(settings).markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
