"""Per-request overhead of ouro-obs against a bare app and its peers, in one run.

    .venv/bin/python -m benchmarks.overhead                      # inprocess+uvicorn+fullstack
    .venv/bin/python -m benchmarks.overhead --mode all           # and instructions
    .venv/bin/python -m benchmarks.overhead --mode inprocess     # ASGI calls, no server
    .venv/bin/python -m benchmarks.overhead --mode uvicorn       # uvicorn + wrk
    .venv/bin/python -m benchmarks.overhead --mode fullstack     # all signals vs OTel ASGI
    .venv/bin/python -m benchmarks.overhead --mode instructions  # callgrind, noise-free

Modes:

``inprocess``
    Calls each variant's ASGI app directly from a minimal server loop (a scope dict, a
    ``receive`` that yields one ``http.request``, a ``send`` that discards). Variants run
    in interleaved rounds, their order rotating each round, so drift on a busy machine
    hits all of them alike; time is the process's CPU time, which other processes do not
    inflate and which includes the variant's own threads (span export). Overhead is the
    median over rounds of (variant - bare) in the same round. Afterwards each variant must
    show it recorded every request (counted requests, access lines, spans), or the run
    fails rather than print figures for instrumentation that did nothing.
``uvicorn``
    Each variant served by its own uvicorn (one worker, no access log) on loopback, driven
    by ``wrk`` over the templated routes, rounds interleaved; throughput relative to bare.
``fullstack``
    ouro-obs with metrics, the JSON access log and a span per request (100 % sampled)
    against opentelemetry-instrumentation-asgi's middleware alone, in-process (and
    through uvicorn with ``--fullstack-uvicorn``). Both use an SDK ``TracerProvider``
    sampling every request into a ``BatchSpanProcessor`` whose exporter only counts.
``instructions``
    Instructions per request under valgrind's callgrind (two runs of different length
    per variant, differenced so start-up cancels out): the same comparison without
    timing noise.

Every table is Markdown, ready for the README. Nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

from benchmarks.apps import (
    FULL_STACK_VARIANTS,
    METRICS_VARIANTS,
    REQUEST_PATHS,
    Recorded,
    Variant,
    full_stack_pending,
    recorded,
    variant_named,
)

__all__ = [
    "InProcessResult",
    "Table",
    "WrkRun",
    "WrkSettings",
    "check",
    "drive",
    "full_stack_table",
    "in_process_table",
    "main",
    "parse_wrk",
    "process_cpu_seconds",
    "run_in_process",
    "run_instructions",
    "run_uvicorn",
    "uvicorn_table",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE = "bare"
OURS = "ouro-obs"
OURS_FULL = "ouro-obs full stack"

# -- tables -----------------------------------------------------------------------------


@dataclass
class Table:
    """A titled Markdown table plus the sentences that read it."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join(" --- " for _ in self.headers) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        for note in self.notes:
            lines.extend(("", note))
        return "\n".join(lines) + "\n"


def _ratio(numerator: float, denominator: float) -> str:
    if denominator <= 0:
        return "n/a"
    return f"{numerator / denominator:.2f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# -- the in-process server loop ---------------------------------------------------------

_SCOPE_TEMPLATE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "query_string": b"",
    "root_path": "",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"ouro-obs-benchmark/1"),
        (b"accept", b"*/*"),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}

#: Requests :func:`check` sends to each variant before it is timed.
CHECKED_PATHS = 3

_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT: Message = {"type": "http.disconnect"}


def _scopes(paths: Sequence[str]) -> list[tuple[str, bytes]]:
    return [(path, path.encode("ascii")) for path in paths]


async def _discard(message: Message) -> None:
    return None


async def drive(app: ASGIApp, requests: int, paths: Sequence[str] = REQUEST_PATHS) -> None:
    """Send ``requests`` GETs through ``app`` as a server would, cycling over ``paths``.

    Each request gets a fresh scope (apps write into it) and a ``receive`` that yields
    the body once, then a disconnect, as uvicorn does.
    """
    encoded = _scopes(paths)
    count = len(encoded)
    template = _SCOPE_TEMPLATE
    for index in range(requests):
        path, raw_path = encoded[index % count]
        scope = {
            **template,
            "path": path,
            "raw_path": raw_path,
            "headers": list(template["headers"]),
        }
        pending = [_DISCONNECT, _REQUEST]

        async def receive(pending: list[Message] = pending) -> Message:
            return pending.pop() if len(pending) > 1 else pending[0]

        await app(scope, receive, _discard)


async def check(app: ASGIApp, name: str, paths: Sequence[str] = REQUEST_PATHS) -> None:
    """Fail loudly unless the benchmark paths answer 200 "ok" (a broken variant is no data)."""
    for path in paths[:CHECKED_PATHS]:
        sent: list[Message] = []

        async def record(message: Message, sent: list[Message] = sent) -> None:
            sent.append(message)

        async def receive() -> Message:
            return _REQUEST

        scope = {**_SCOPE_TEMPLATE, "path": path, "raw_path": path.encode("ascii")}
        await app(scope, receive, record)
        status = next((m["status"] for m in sent if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        if status != 200 or body != b"ok":
            raise RuntimeError(f"variant {name!r}: GET {path} answered {status} {body[:80]!r}")


@dataclass
class InProcessResult:
    """Per-request nanoseconds of each variant, one value per round."""

    title: str
    per_request_ns: dict[str, list[float]]
    requests_per_round: int
    #: Requests each variant served in all (checks, warm-up and rounds).
    requests_served: int = 0
    #: What each variant's instrumentation recorded during the run.
    recorded: dict[str, Recorded] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.per_request_ns[name])

    def overhead(self, name: str) -> float:
        """Median over rounds of (variant - bare) in the same round, in nanoseconds."""
        pairs = zip(self.per_request_ns[name], self.per_request_ns[BASELINE], strict=True)
        return statistics.median(variant - bare for variant, bare in pairs)

    def spread(self, name: str) -> float:
        """Half the interquartile range of the paired overhead (its noise), in nanoseconds."""
        pairs = zip(self.per_request_ns[name], self.per_request_ns[BASELINE], strict=True)
        overheads = sorted(variant - bare for variant, bare in pairs)
        if len(overheads) < 4:
            return (overheads[-1] - overheads[0]) / 2
        quartiles = statistics.quantiles(overheads, n=4)
        return (quartiles[2] - quartiles[0]) / 2


def run_in_process(
    variants: Sequence[Variant] = METRICS_VARIANTS,
    *,
    requests: int = 20_000,
    rounds: int = 10,
    warmup: int = 500,
    title: str = "In-process overhead per request",
    progress: Callable[[str], None] | None = None,
) -> InProcessResult:
    """Time ``requests`` requests per variant, split into ``rounds`` interleaved rounds."""
    if variants[0].name != BASELINE:
        raise ValueError(f"the first variant must be {BASELINE!r}, the baseline")
    per_round = max(1, requests // rounds)
    apps = {variant.name: variant.build() for variant in variants}
    before = {name: recorded(app) for name, app in apps.items()}
    timings: dict[str, list[float]] = {name: [] for name in apps}

    async def measure() -> None:
        for name, app in apps.items():
            await check(app, name)
            await drive(app, warmup)
        names = list(apps)
        for round_index in range(rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                gc.collect()
                started = time.process_time_ns()
                await drive(apps[name], per_round)
                timings[name].append((time.process_time_ns() - started) / per_round)
            if progress is not None:
                progress(f"round {round_index + 1}/{rounds} done")

    asyncio.run(measure())
    served = CHECKED_PATHS + warmup + rounds * per_round
    counts = {
        name: {key: value - before[name].get(key, 0) for key, value in recorded(app).items()}
        for name, app in apps.items()
    }
    _refuse_silent_variants(counts, served)
    return InProcessResult(title, timings, per_round, served, counts)


def _refuse_silent_variants(counts: dict[str, Recorded], served: int) -> None:
    """Raise unless every instrumented variant recorded every request it served."""
    for name, recorded_counts in counts.items():
        if name == BASELINE:
            continue
        if not recorded_counts:
            raise RuntimeError(f"variant {name!r} reports nothing it recorded")
        for what, value in recorded_counts.items():
            if value != served:
                raise RuntimeError(
                    f"variant {name!r} recorded {value} {what} for {served} requests: "
                    "its figures would not measure real instrumentation"
                )


def in_process_table(
    result: InProcessResult, peers_of: str = OURS, *, peer_verdict: bool = True
) -> Table:
    """The result as a table; ``peers_of`` is the variant whose overhead the others are set
    against, and with ``peer_verdict`` the notes say whether it beats them as issue 2 asks.
    """
    bare_us = result.median(BASELINE) / 1000
    ours_overhead = result.overhead(peers_of) / 1000
    table = Table(
        result.title,
        (
            "variant",
            "µs/request (median)",
            "overhead µs (± noise)",
            "overhead vs bare",
            f"{peers_of} overhead ÷ this overhead",
        ),
    )
    peers: dict[str, float] = {}
    for name in result.per_request_ns:
        median_us = result.median(name) / 1000
        if name == BASELINE:
            table.rows.append((name, f"{median_us:.1f}", "-", "-", "-"))
            continue
        overhead_us = result.overhead(name) / 1000
        spread_us = result.spread(name) / 1000
        if name != peers_of:
            peers[name] = overhead_us
        table.rows.append(
            (
                name,
                f"{median_us:.1f}",
                f"{overhead_us:.1f} (± {spread_us:.1f})",
                f"+{overhead_us / bare_us * 100:.1f} %",
                "-" if name == peers_of else _ratio(ours_overhead, overhead_us),
            )
        )
    table.notes.append(
        f"{len(result.per_request_ns[BASELINE])} interleaved rounds of "
        f"{result.requests_per_round} requests per variant, timed in process CPU time (all "
        "threads, so span export counts; other processes on the machine do not); overhead = "
        "median over rounds of (variant - bare) in the same round; noise = half the "
        "interquartile range. "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs."
    )
    if result.recorded:
        table.notes.append(_recorded_note(result))
    if peers and peer_verdict:
        fastest_name = min(peers, key=lambda name: peers[name])
        fastest = peers[fastest_name]
        table.notes.append(
            f"Bar (lower overhead than every peer): {_verdict(ours_overhead < fastest)}. "
            f"Goal (at most a third of the fastest peer's, {fastest_name} {fastest:.1f} µs): "
            f"{_verdict(ours_overhead <= fastest / 3)} ({peers_of} {ours_overhead:.1f} µs = "
            f"{_ratio(ours_overhead, fastest)} of it)."
        )
    return table


def _recorded_note(result: InProcessResult) -> str:
    parts = [
        f"{name}: " + ", ".join(f"{value:,} {what}" for what, value in counts.items())
        for name, counts in result.recorded.items()
        if counts
    ]
    return (
        f"Recorded while serving {result.requests_served:,} requests each: "
        + "; ".join(parts)
        + "."
    )


def full_stack_table(result: InProcessResult, pending: str | None = None) -> Table:
    """Our whole stack against OpenTelemetry's middleware; ``pending`` says why ours is absent."""
    setup = (
        "Both trace every request (ALWAYS_ON) into an SDK BatchSpanProcessor whose exporter "
        "only counts; ours also records the metrics and writes one JSON access line per "
        "request (to an in-memory sink)."
    )
    if pending is not None:
        table = in_process_table(result, peers_of="otel-asgi", peer_verdict=False)
        table.headers = table.headers[:-1]
        table.rows = [row[:-1] for row in table.rows]
        table.rows.append((OURS_FULL, f"pending: {pending}", "-", "-"))
        table.notes.append(setup)
        return table
    table = in_process_table(result, peers_of=OURS_FULL, peer_verdict=False)
    ours = result.overhead(OURS_FULL)
    otel = result.overhead("otel-asgi")
    table.notes.append(setup)
    table.notes.append(
        f"Bar and goal (our whole stack costs less than OpenTelemetry's middleware alone): "
        f"{_verdict(ours < otel)} ({ours / 1000:.1f} µs vs {otel / 1000:.1f} µs, "
        f"{_ratio(ours, otel)}x)."
    )
    return table


# -- uvicorn + wrk ----------------------------------------------------------------------


@dataclass(frozen=True)
class WrkSettings:
    threads: int = 2
    connections: int = 32
    duration_seconds: float = 8.0
    warmup_seconds: float = 2.0
    rounds: int = 3
    http: str = "auto"


@dataclass
class WrkRun:
    """One wrk run against one server, and the CPU time that server spent meanwhile."""

    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    server_cpu_seconds: float = 0.0

    @property
    def server_cpu_us_per_request(self) -> float:
        return self.server_cpu_seconds / self.requests * 1e6 if self.requests else 0.0


_DURATION_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unreadable wrk duration {text!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkRun:
    """Requests, requests/s, p50, p99 and non-2xx count from ``wrk --latency`` output."""
    total = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if total is None or rate is None or p50 is None or p99 is None:
        raise RuntimeError(f"wrk output not understood:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return WrkRun(
        int(total.group(1)),
        float(rate.group(1)),
        _milliseconds(p50.group(1)),
        _milliseconds(p99.group(1)),
        int(non_2xx.group(1)) if non_2xx else 0,
    )


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) from ``/proc``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk_script(directory: Path, paths: Sequence[str]) -> Path:
    """A wrk Lua script cycling over ``paths``, so every request resolves a template."""
    quoted = ", ".join(f'"{path}"' for path in paths)
    script = directory / "paths.lua"
    script.write_text(
        f"local paths = {{{quoted}}}\n"
        "local index = 0\n"
        "request = function()\n"
        "  index = index % #paths + 1\n"
        '  return wrk.format("GET", paths[index])\n'
        "end\n"
    )
    return script


def _wrk(
    wrk: str, url: str, script: Path, settings: WrkSettings, seconds: float, pid: int
) -> WrkRun:
    cpu_before = process_cpu_seconds(pid)
    completed = subprocess.run(
        [
            wrk,
            f"-t{settings.threads}",
            f"-c{settings.connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    run = parse_wrk(completed.stdout)
    run.server_cpu_seconds = process_cpu_seconds(pid) - cpu_before
    return run


def _uvicorn_argv(variant: Variant, port: int, http: str) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "--factory", variant.factory),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--no-access-log", "--log-level", "warning", "--http", http),
    ]


def run_uvicorn(
    variants: Sequence[Variant],
    settings: WrkSettings,
    progress: Callable[[str], None] | None = None,
) -> dict[str, list[WrkRun]]:
    """Serve every variant at once (idle servers cost nothing) and load them in turn."""
    from ouro_obs.processes import ManagedProcess, free_port  # noqa: PLC0415

    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    results: dict[str, list[WrkRun]] = {variant.name: [] for variant in variants}
    servers: dict[str, tuple[ManagedProcess, str]] = {}
    with tempfile.TemporaryDirectory(prefix="ouro-obs-bench-") as workdir:
        script = _wrk_script(Path(workdir), REQUEST_PATHS)
        try:
            for variant in variants:
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                process = ManagedProcess(
                    argv=_uvicorn_argv(variant, port, settings.http),
                    ready_url=f"{url}{REQUEST_PATHS[0]}",
                    cwd=REPO_ROOT,
                    log_path=Path(workdir) / f"{variant.factory.rsplit(':', 1)[1]}.log",
                )
                servers[variant.name] = (process.start(), url)
            for name, (process, url) in servers.items():
                _wrk(wrk, url, script, settings, settings.warmup_seconds, process.pid)
                if progress is not None:
                    progress(f"warmed up {name}")
            names = list(servers)
            for round_index in range(settings.rounds):
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    process, url = servers[name]
                    run = _wrk(wrk, url, script, settings, settings.duration_seconds, process.pid)
                    if run.non_2xx:
                        raise RuntimeError(f"{name}: {run.non_2xx} non-2xx responses under load")
                    results[name].append(run)
                    if progress is not None:
                        progress(
                            f"round {round_index + 1}/{settings.rounds} {name}: "
                            f"{run.requests_per_second:.0f} req/s, "
                            f"{run.server_cpu_us_per_request:.1f} µs server CPU/request"
                        )
        finally:
            for process, _url in servers.values():
                process.stop()
    return results


def uvicorn_table(
    results: dict[str, list[WrkRun]], settings: WrkSettings, title: str, ours: str = OURS
) -> Table:
    """Throughput and server CPU per request; the 95 % goal is judged on both."""
    table = Table(
        title,
        (
            "variant",
            "requests/s (median)",
            "throughput vs bare",
            "server CPU µs/request",
            "CPU-bound throughput vs bare",
            "p50 ms",
            "p99 ms",
        ),
    )
    bare_runs = results[BASELINE]
    measured: dict[str, tuple[float, float]] = {}
    for name, runs in results.items():
        pairs = list(zip(runs, bare_runs, strict=True))
        rate_ratio = statistics.median(
            run.requests_per_second / bare.requests_per_second for run, bare in pairs
        )
        cpu_ratio = statistics.median(
            bare.server_cpu_us_per_request / run.server_cpu_us_per_request for run, bare in pairs
        )
        measured[name] = (rate_ratio, cpu_ratio)
        table.rows.append(
            (
                name,
                f"{statistics.median(run.requests_per_second for run in runs):,.0f}",
                "100 %" if name == BASELINE else f"{rate_ratio * 100:.1f} %",
                f"{statistics.median(run.server_cpu_us_per_request for run in runs):.1f}",
                "100 %" if name == BASELINE else f"{cpu_ratio * 100:.1f} %",
                f"{statistics.median(run.p50_ms for run in runs):.2f}",
                f"{statistics.median(run.p99_ms for run in runs):.2f}",
            )
        )
    table.notes.append(
        f"uvicorn, 1 worker, --no-access-log, --http {settings.http}; "
        f"`wrk -t{settings.threads} -c{settings.connections} -d{settings.duration_seconds:.0f}s` "
        f"over {len(REQUEST_PATHS)} templated paths, {settings.rounds} interleaved rounds "
        "(ratios = median of per-round ratios). Client and server share "
        f"{os.cpu_count()} CPUs, so requests/s moves with whatever else runs; the server's "
        "own CPU time per request does not, and a CPU-bound server's throughput is its "
        "inverse (bare CPU ÷ variant CPU)."
    )
    if ours in measured and ours == OURS:
        rate_ratio, cpu_ratio = measured[ours]
        table.notes.append(
            f"Goal (throughput with ouro-obs at least 95 % of bare): "
            f"{_verdict(cpu_ratio >= 0.95)} by server CPU ({cpu_ratio * 100:.1f} %), "
            f"{_verdict(rate_ratio >= 0.95)} by requests/s ({rate_ratio * 100:.1f} %)."
        )
    return table


# -- callgrind instruction counts -------------------------------------------------------


def _collected_instructions(stderr: str) -> int:
    match = re.search(r"Collected\s*:\s*([\d,]+)", stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no instruction count:\n{stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def _instructions(variant: Variant, requests: int, warmup: int) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    completed = subprocess.run(
        [
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks.overhead",
            "--drive",
            variant.name,
            "--requests",
            str(requests),
            "--warmup",
            str(warmup),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=True,
        timeout=1800,
    )
    return _collected_instructions(completed.stderr)


def run_instructions(
    variants: Sequence[Variant],
    requests: int,
    warmup: int,
    progress: Callable[[str], None] | None = None,
) -> Table:
    """Instructions per request: (count at warmup + N) - (count at warmup), divided by N."""
    per_request: dict[str, float] = {}
    for variant in variants:
        short = _instructions(variant, 0, warmup)
        long = _instructions(variant, requests, warmup)
        per_request[variant.name] = (long - short) / requests
        if progress is not None:
            progress(f"{variant.name}: {per_request[variant.name]:,.0f} instructions/request")
    bare = per_request[BASELINE]
    ours = per_request.get(OURS, 0.0) - bare
    table = Table(
        "Instructions per request (callgrind, noise-free)",
        ("variant", "instructions/request", "overhead", "overhead vs bare", "ouro-obs ÷ this"),
    )
    peers: dict[str, float] = {}
    for name, count in per_request.items():
        overhead = count - bare
        if name not in (BASELINE, OURS):
            peers[name] = overhead
        table.rows.append(
            (
                name,
                f"{count:,.0f}",
                "-" if name == BASELINE else f"{overhead:,.0f}",
                "-" if name == BASELINE else f"+{overhead / bare * 100:.1f} %",
                "-" if name in (BASELINE, OURS) else _ratio(ours, overhead),
            )
        )
    table.notes.append(
        f"valgrind --tool=callgrind; {requests} requests after {warmup} warm-up requests, "
        "minus a warm-up-only run, so start-up cancels out. PYTHONHASHSEED=0."
    )
    if peers:
        fastest = min(peers.values())
        table.notes.append(
            f"Bar (fewer instructions than every peer): {_verdict(ours < fastest)}. "
            f"Goal (at most a third of the fastest peer's): {_verdict(ours <= fastest / 3)} "
            f"({_ratio(ours, fastest)} of it)."
        )
    return table


# -- command line -----------------------------------------------------------------------


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def _drive_one(name: str, requests: int, warmup: int) -> None:
    """Internal: build one variant, warm it up and serve ``requests`` (callgrind runs)."""
    app = variant_named(name).build()

    async def run() -> None:
        await check(app, name)
        await drive(app, warmup)
        await drive(app, requests)

    asyncio.run(run())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--mode",
        action="append",
        choices=("inprocess", "uvicorn", "fullstack", "instructions", "all"),
        help="what to run (repeatable; default: inprocess, uvicorn and fullstack)",
    )
    parser.add_argument(
        "--requests", type=int, default=20_000, help="in-process requests per variant"
    )
    parser.add_argument("--rounds", type=int, default=10, help="in-process interleaved rounds")
    parser.add_argument("--warmup", type=int, default=500, help="warm-up requests per variant")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--duration", type=float, default=8.0, help="wrk seconds per run")
    parser.add_argument("--wrk-rounds", type=int, default=3, help="wrk runs per variant")
    parser.add_argument("--http", default="auto", help="uvicorn --http implementation")
    parser.add_argument(
        "--instructions-requests", type=int, default=2000, help="requests per callgrind run"
    )
    parser.add_argument(
        "--fullstack-uvicorn", action="store_true", help="also load the full stack through uvicorn"
    )
    parser.add_argument("--output", type=Path, help="also write every table to this Markdown file")
    parser.add_argument("--drive", metavar="VARIANT", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.drive:
        _drive_one(args.drive, args.requests, args.warmup)
        return 0
    modes = set(args.mode or ["inprocess", "uvicorn", "fullstack"])
    if "all" in modes:
        modes = {"inprocess", "uvicorn", "fullstack", "instructions"}
    tables: list[Table] = []

    def emit(table: Table) -> None:
        tables.append(table)
        print(table.markdown(), flush=True)

    if "inprocess" in modes:
        result = run_in_process(
            requests=args.requests, rounds=args.rounds, warmup=args.warmup, progress=_progress
        )
        emit(in_process_table(result))
    if "uvicorn" in modes:
        settings = WrkSettings(
            args.threads, args.connections, args.duration, rounds=args.wrk_rounds, http=args.http
        )
        results = run_uvicorn(METRICS_VARIANTS, settings, _progress)
        emit(uvicorn_table(results, settings, "Throughput through uvicorn + wrk"))
    if "fullstack" in modes:
        pending = full_stack_pending()
        variants = [v for v in FULL_STACK_VARIANTS if pending is None or v.name != OURS_FULL]
        result = run_in_process(
            variants,
            requests=args.requests,
            rounds=args.rounds,
            warmup=args.warmup,
            title="Full stack in-process: metrics + JSON access log + span per request",
            progress=_progress,
        )
        emit(full_stack_table(result, pending))
        if args.fullstack_uvicorn and pending is None:
            settings = WrkSettings(
                args.threads,
                args.connections,
                args.duration,
                rounds=args.wrk_rounds,
                http=args.http,
            )
            results = run_uvicorn(FULL_STACK_VARIANTS, settings, _progress)
            emit(uvicorn_table(results, settings, "Full stack through uvicorn + wrk"))
    if "instructions" in modes:
        emit(run_instructions(METRICS_VARIANTS, args.instructions_requests, args.warmup, _progress))
    if args.output is not None:
        _write_atomically(args.output, "\n".join(table.markdown() for table in tables))
    return 0


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    raise SystemExit(main())
