"""Driving a server with ``wrk`` on loopback, and the CPU time the server spent meanwhile.

One reader of wrk's output and one way to run it, shared by every benchmark that loads a
real server (the server stacks, multiprocess, the sidecar). Runs are bounded in time: wrk
stops itself after its duration, and the call gives up a minute after that.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BENCH_USER_AGENT",
    "LoadSettings",
    "WrkRun",
    "find_wrk",
    "parse_wrk",
    "process_cpu_seconds",
    "process_group_cpu_seconds",
    "run_wrk",
    "write_lua",
]

#: The User-Agent every benchmark request carries, so access lines can be counted.
BENCH_USER_AGENT = "ouro-obs-benchmark/1"

_DURATION_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long wrk loads each server, and how many interleaved rounds."""

    threads: int = 2
    connections: int = 32
    duration_seconds: float = 8.0
    warmup_seconds: float = 2.0
    rounds: int = 3


@dataclass
class WrkRun:
    """One wrk run against one server, and the CPU time that server spent meanwhile."""

    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    #: Connect, read, write and timeout errors wrk counted.
    socket_errors: int = 0
    server_cpu_seconds: float = 0.0

    @property
    def server_cpu_us_per_request(self) -> float:
        return self.server_cpu_seconds / self.requests * 1e6 if self.requests else 0.0


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unreadable wrk duration {text!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkRun:
    """Requests, requests/s, p50, p99, non-2xx and socket errors from ``wrk --latency``."""
    total = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if total is None or rate is None or p50 is None or p99 is None:
        raise RuntimeError(f"wrk output not understood:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:(.*)$", output, re.MULTILINE)
    return WrkRun(
        int(total.group(1)),
        float(rate.group(1)),
        _milliseconds(p50.group(1)),
        _milliseconds(p99.group(1)),
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(n) for n in re.findall(r"\d+", errors.group(1))) if errors else 0,
    )


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    return wrk


def _stat_fields(stat: str) -> list[str]:
    """The fields after the parenthesised command name (state is [0], utime [11])."""
    return stat[stat.rindex(")") + 2 :].split()


def _cpu_seconds(fields: Sequence[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) from ``/proc``."""
    return _cpu_seconds(_stat_fields(Path(f"/proc/{pid}/stat").read_text()))


def _stats() -> Iterable[list[str]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield _stat_fields((entry / "stat").read_text())
            except (FileNotFoundError, ProcessLookupError):
                continue  # it exited between the listing and the read


def process_group_cpu_seconds(session: int) -> float:
    """CPU time of every live process in session ``session``: a server and its workers.

    The servers run in sessions of their own (the leader's PID names it), so gunicorn's
    master and workers are all counted, and nothing else is.
    """
    return sum(_cpu_seconds(fields) for fields in _stats() if int(fields[3]) == session)


def write_lua(path: Path, templates: Sequence[str], seed: int = 1) -> Path:
    """A wrk script requesting ``templates`` at random, each ``{parameter}`` a random id.

    Every request carries :data:`BENCH_USER_AGENT`. The ids are random (seeded) so a
    server cannot cache its way through the run; the routes are what the labels see.
    """
    parts = ", ".join(
        "{" + ", ".join(f'"{piece}"' for piece in re.split(r"\{[^}]+\}", template)) + "}"
        for template in templates
    )
    path.write_text(
        f"math.randomseed({seed})\n"
        f"local routes = {{{parts}}}\n"
        f'wrk.headers["User-Agent"] = "{BENCH_USER_AGENT}"\n'
        "request = function()\n"
        "  local pieces = routes[math.random(#routes)]\n"
        "  local path = pieces[1]\n"
        "  for index = 2, #pieces do\n"
        "    path = path .. math.random(1, 100000) .. pieces[index]\n"
        "  end\n"
        '  return wrk.format("GET", path)\n'
        "end\n"
    )
    return path


def run_wrk(
    url: str,
    *,
    threads: int,
    connections: int,
    seconds: float,
    script: Path | None = None,
    server_session: int | None = None,
) -> WrkRun:
    """One ``wrk --latency`` run; with ``server_session``, that server's CPU time meanwhile."""
    argv = [find_wrk(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    argv.append("--latency")
    if script is not None:
        argv += ["-s", str(script)]
    before = process_group_cpu_seconds(server_session) if server_session is not None else 0.0
    completed = subprocess.run(
        [*argv, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    run = parse_wrk(completed.stdout)
    if server_session is not None:
        run.server_cpu_seconds = process_group_cpu_seconds(server_session) - before
    return run
