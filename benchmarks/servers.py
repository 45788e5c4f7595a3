"""Real servers under wrk: both uvicorn stacks, the full stack with export, multiprocess.

Every contender is served by its own process on loopback, all started at once (an idle
server costs nothing) and loaded in turn with ``wrk`` in interleaved rounds, the order
rotating each round, so drift on a busy machine hits all of them alike. Each round sets a
contender against the bare app of its own table in the same round; a figure is the median
of those per-round ratios. The server's CPU time per request is read from ``/proc`` for
every process of its session (gunicorn's master and workers included): unlike requests/s
it does not move with whatever else runs on the machine.

After the last round each contender must show it recorded every request it served
(counted requests, access lines, spans that reached the collector), or the run fails
instead of printing figures.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from benchmarks.apps import Recorded
from benchmarks.contenders import SPAN_QUEUE_SIZE, STACKS, Contender, Group
from benchmarks.shop import RECORDED_PATH, SHOP_ROUTES
from benchmarks.wrk import BENCH_USER_AGENT, LoadSettings, WrkRun, run_wrk, write_lua
from ouro_obs.demo.lifecycle import ManagedProcess, free_port
from ouro_obs.demo.processes import OTLPCollector

__all__ = [
    "RunningServer",
    "ServerResults",
    "check_recorded",
    "recorded_by",
    "run_servers",
    "serving",
    "start_server",
]

REPO_ROOT = Path(__file__).resolve().parents[1]

_GUNICORN_CONFIG = """\
from prometheus_client import multiprocess


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
"""


# -- starting the servers ---------------------------------------------------------------


@dataclass
class RunningServer:
    """A started contender, its address, and every wrk run it served (warm-up included)."""

    contender: Contender
    process: ManagedProcess
    url: str
    multiprocess_dir: Path | None = None
    runs: list[WrkRun] = field(default_factory=list)

    @property
    def session(self) -> int:
        return self.process.pid


def _span_env(contender: Contender, collector: OTLPCollector | None) -> dict[str, str]:
    if contender.span_service is None:
        return {}
    if collector is None:
        raise RuntimeError(f"{contender.name} exports spans but no collector runs")
    return {
        "OTEL_SERVICE_NAME": contender.span_service,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.traces_url,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": str(contender.sample_ratio),
        "OTEL_BSP_MAX_QUEUE_SIZE": str(SPAN_QUEUE_SIZE),
    }


def _argv(contender: Contender, port: int, workdir: Path) -> list[str]:
    if contender.workers:
        config = workdir / "gunicorn.conf.py"
        config.write_text(_GUNICORN_CONFIG)
        return [
            *(sys.executable, "-m", "gunicorn", "--config", str(config)),
            *("--workers", str(contender.workers), "--worker-class", "uvicorn_worker.UvicornWorker"),
            *("--bind", f"127.0.0.1:{port}", "--log-level", "warning"),
            f"benchmarks.shop:{contender.factory}()",
        ]  # fmt: skip
    return [
        *(sys.executable, "-m", "uvicorn", "--factory", f"benchmarks.shop:{contender.factory}"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--no-access-log", "--log-level", "warning", *STACKS[contender.stack][0]),
    ]  # fmt: skip


def start_server(
    contender: Contender, workdir: Path, collector: OTLPCollector | None = None
) -> RunningServer:
    """Start ``contender`` on a free loopback port; ready once ``/bench/recorded`` answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _span_env(contender, collector)
    multiprocess_dir = None
    if contender.workers:
        multiprocess_dir = workdir / "multiproc"
        multiprocess_dir.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiprocess_dir)
    process = ManagedProcess(
        argv=_argv(contender, port, workdir),
        ready_url=url + RECORDED_PATH,
        env=env,
        cwd=REPO_ROOT,
        log_path=workdir / "server.log",
    ).start()
    return RunningServer(contender, process, url, multiprocess_dir)


@contextmanager
def serving(
    contenders: Sequence[Contender], workdir: Path
) -> Iterator[tuple[list[RunningServer], OTLPCollector | None]]:
    """Every contender started (and a collector when one exports spans); all stopped after."""
    inherited = [
        name
        for name in os.environ
        if name.startswith("OTEL_") or name == "PROMETHEUS_MULTIPROC_DIR"
    ]
    if inherited:
        raise RuntimeError(
            f"unset {', '.join(sorted(inherited))}: every server would inherit it, and the "
            "benchmark sets what each contender needs itself"
        )
    with ExitStack() as stack:
        collector = None
        if any(contender.span_service for contender in contenders):
            (workdir / "collector").mkdir()
            collector = stack.enter_context(OTLPCollector(workdir=workdir / "collector"))
        servers: list[RunningServer] = []
        for index, contender in enumerate(contenders):
            server = start_server(contender, workdir / f"server-{index}", collector)
            stack.callback(server.process.stop)
            servers.append(server)
        yield servers, collector


# -- the run ----------------------------------------------------------------------------


@dataclass
class ServerResults:
    """The measured runs (round by round) and what each contender recorded."""

    groups: list[Group]
    settings: LoadSettings
    #: Measured runs by (group key, contender name), one per round.
    runs: dict[tuple[str, str], list[WrkRun]]
    recorded: dict[tuple[str, str], Recorded]
    served: dict[tuple[str, str], int]


def _load(server: RunningServer, script: Path, settings: LoadSettings, seconds: float) -> WrkRun:
    run = run_wrk(
        server.url,
        threads=settings.threads,
        connections=settings.connections,
        seconds=seconds,
        script=script,
        server_session=server.session,
    )
    server.runs.append(run)
    if run.non_2xx:
        raise RuntimeError(f"{server.contender.name}: {run.non_2xx} non-2xx responses under load")
    return run


def run_servers(
    groups: Sequence[Group],
    settings: LoadSettings,
    progress: Callable[[str], None] | None = None,
) -> ServerResults:
    """Load every contender of every group in one interleaved run, then check what they recorded."""
    say = progress or (lambda message: None)
    keyed = [(group.key, contender) for group in groups for contender in group.contenders]
    with tempfile.TemporaryDirectory(prefix="ouro-obs-bench-") as directory:
        workdir = Path(directory)
        script = write_lua(workdir / "shop.lua", SHOP_ROUTES)
        with serving([contender for _, contender in keyed], workdir) as (servers, collector):
            by_key = {(k, c.name): server for (k, c), server in zip(keyed, servers, strict=True)}
            say(f"{len(servers)} servers up")
            runs = _interleaved(by_key, script, settings, say)
            recorded = _verified(by_key, collector, settings.connections)
    served = {key: sum(run.requests for run in server.runs) for key, server in by_key.items()}
    return ServerResults(list(groups), settings, runs, recorded, served)


def _interleaved(
    servers: dict[tuple[str, str], RunningServer],
    script: Path,
    settings: LoadSettings,
    say: Callable[[str], None],
) -> dict[tuple[str, str], list[WrkRun]]:
    """A warm-up run each, then ``settings.rounds`` rounds, the order rotating each round."""
    for server in servers.values():
        _load(server, script, settings, settings.warmup_seconds)
    runs: dict[tuple[str, str], list[WrkRun]] = {key: [] for key in servers}
    keys = list(servers)
    for round_index in range(settings.rounds):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            run = _load(servers[key], script, settings, settings.duration_seconds)
            runs[key].append(run)
            say(
                f"round {round_index + 1}/{settings.rounds} {key[0]} / {key[1]}: "
                f"{run.requests_per_second:,.0f} req/s, "
                f"{run.server_cpu_us_per_request:.1f} µs CPU/request"
            )
    return runs


def _verified(
    servers: dict[tuple[str, str], RunningServer],
    collector: OTLPCollector | None,
    connections: int,
) -> dict[tuple[str, str], Recorded]:
    """What each server recorded, checked against what wrk saw it serve; stops the servers.

    The counts a server keeps are read while it runs; access lines and spans after it
    stopped, since a clean stop flushes its output and its span processor.
    """
    recorded = {key: recorded_by(server) for key, server in servers.items()}
    for server in servers.values():
        server.process.stop()
    for key, server in servers.items():
        served = sum(run.requests for run in server.runs)
        recorded[key].update(_harness_counts(server, collector, served))
        check_recorded(server.contender, server.runs, recorded[key], connections)
    return recorded


# -- what each contender recorded -------------------------------------------------------


def recorded_by(server: RunningServer) -> Recorded:
    """What the server says it recorded (multiprocess: summed over every worker's files)."""
    if not server.contender.instrumented:
        return {}
    if server.multiprocess_dir is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(server.multiprocess_dir))  # type: ignore[no-untyped-call]
        total = sum(
            sample.value
            for family in registry.collect()
            for sample in family.samples
            if sample.name == "http_requests_total"
        )
        return {"requests counted": int(total)}
    with urllib.request.urlopen(server.url + RECORDED_PATH, timeout=10) as response:
        counts: Recorded = json.load(response)
    return counts


def _access_lines(server: RunningServer) -> int:
    return sum(BENCH_USER_AGENT in line for line in server.process.output().splitlines())


def _server_spans(collector: OTLPCollector, service: str) -> int:
    return sum(
        1 for span in collector.spans if span.kind == "SPAN_KIND_SERVER" and span.service == service
    )


def _harness_counts(
    server: RunningServer, collector: OTLPCollector | None, served: int
) -> Recorded:
    """Access lines in the server's output, and its spans that reached the collector."""
    counts: Recorded = {}
    contender = server.contender
    if contender.access_lines:
        counts["access lines"] = _access_lines(server)
    if contender.span_service is not None and collector is not None:
        low, _high = _span_band(served, contender.sample_ratio, 0)
        deadline = time.monotonic() + 30
        while _server_spans(collector, contender.span_service) < low:
            if time.monotonic() > deadline:
                break
            time.sleep(0.25)
        time.sleep(0.5)  # what is still in the collector's batch
        counts["server spans"] = _server_spans(collector, contender.span_service)
    return counts


def _span_band(served: int, sample_ratio: float, slack: int) -> tuple[float, float]:
    """Spans a contender sampling ``sample_ratio`` of ``served`` requests must have sent:
    six standard deviations of the binomial either side, plus ``slack`` above.
    """
    spread = 6 * math.sqrt(served * sample_ratio * (1 - sample_ratio))
    return served * sample_ratio - spread, (served + slack) * sample_ratio + spread


def check_recorded(
    contender: Contender, runs: Sequence[WrkRun], counts: Recorded, connections: int
) -> None:
    """Raise unless ``contender`` recorded every request wrk saw it serve in ``runs``.

    wrk counts a response when it has read it; the server may have served up to one
    request per connection more when wrk stopped, and one per socket error, so a count
    may exceed wrk's by that slack, never fall short of it.
    """
    if not contender.instrumented:
        return
    if not counts:
        raise RuntimeError(f"{contender.name!r} reports nothing it recorded")
    served = sum(run.requests for run in runs)
    slack = sum(connections + run.socket_errors for run in runs)
    for what, value in counts.items():
        ratio = contender.sample_ratio if what == "server spans" else 1.0
        low, high = _span_band(served, ratio, slack)
        if not low <= value <= high:
            raise RuntimeError(
                f"{contender.name!r} recorded {value} {what} for {served} requests wrk saw "
                f"served (expected {low:.0f} to {high:.0f}): its figures would not measure "
                "real instrumentation"
            )
