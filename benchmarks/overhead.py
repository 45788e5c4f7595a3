"""Per-request overhead of ouro-obs against a bare app and its peers, in one run.

    .venv/bin/python -m benchmarks.overhead                      # inprocess, fullstack, servers, exposition
    .venv/bin/python -m benchmarks.overhead --mode all           # and instructions and sidecar
    .venv/bin/python -m benchmarks.overhead --mode inprocess     # ASGI calls, no server
    .venv/bin/python -m benchmarks.overhead --mode fullstack     # all signals vs OTel ASGI, in-process
    .venv/bin/python -m benchmarks.overhead --mode instructions  # callgrind, noise-free
    .venv/bin/python -m benchmarks.overhead --mode servers       # uvicorn (h11, uvloop), gunicorn + wrk
    .venv/bin/python -m benchmarks.overhead --mode exposition    # /metrics size and render time
    .venv/bin/python -m benchmarks.overhead --mode sidecar       # wrk on nginx, direct and through it
    .venv/bin/python -m benchmarks.overhead --mode options       # each issue-13 option vs off, callgrind

Modes:

``inprocess``
    Calls each variant's ASGI app (benchmarks/apps.py: one FastAPI app, 8 routes) directly
    from a minimal server loop, in interleaved rounds timed in process CPU time; overhead
    is the median over rounds of (variant - bare) in the same round.
``fullstack``
    ouro-obs with metrics, the JSON access log and a span per request (100 % sampled)
    against opentelemetry-instrumentation-asgi's middleware alone, in-process, both into an
    SDK ``BatchSpanProcessor`` whose exporter only counts.
``instructions``
    Instructions per request under valgrind's callgrind (two runs of different length per
    variant, differenced so start-up cancels out): the in-process comparison without timing
    noise (``--instructions-variants oneline`` for the one line with nothing else
    configured, ``fullstack`` for the full-stack variants).
``servers``
    Every contender served by its own process on loopback and loaded by ``wrk`` over the
    shop's 21 routes (benchmarks/shop.py, Starlette and FastAPI), all in ONE interleaved
    run: metrics only on uvicorn with h11 and with httptools + uvloop, the one-line default,
    the full stack exporting over OTLP/HTTP to a rotel collector (100 % and 10 % sampled)
    against opentelemetry-instrumentation-asgi, and gunicorn with 2 uvicorn workers in
    multiprocess mode. req/s, p50/p99 and server CPU µs per request, as ratios to the bare
    app of the same framework (``--servers`` and ``--stacks`` pick a subset).
``exposition``
    ``/metrics`` after N requests on the 21 routes, ouro-obs against
    prometheus-fastapi-instrumentator: sample lines, bytes, bytes per label set, render time
    per sample line; then multiprocess aggregation with gunicorn and 4 workers.
``sidecar``
    What going through ``ouro-obs sidecar`` costs (benchmarks/sidecar_bench.py).
``options``
    What each option of issue 13 costs against its off state, in callgrind instructions
    per request, all variants in one valgrind process (benchmarks/options.py): route
    resolution of a request answered before routing, static and request labels,
    exclusions, the status-class label, buckets of a route's own, the in-flight gauge by
    route (``--instructions-requests`` and ``--warmup`` size it).

Every mode checks that each variant recorded every request it served (counted requests,
access lines, spans) and fails instead of printing figures when one did not. Every table
is Markdown, ready for the README and docs/performance.md. Nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from benchmarks.apps import (
    FULL_STACK_VARIANTS,
    METRICS_VARIANTS,
    ONE_LINE_VARIANTS,
    OTEL_METRICS_VARIANTS,
    full_stack_pending,
)
from benchmarks.inprocess import OURS_FULL, full_stack_table, in_process_table, run_in_process
from benchmarks.tables import Table
from benchmarks.wrk import LoadSettings

__all__ = ["MODES", "main"]

#: Every mode, in the order a run prints them; the default is the first four.
MODES = ("inprocess", "fullstack", "servers", "exposition", "instructions", "sidecar", "options")


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The modes' description as written, and every option's default that has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS) or action.help is None:
            return action.help
        return f"{action.help} (default: %(default)s)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("Modes:", 1)[1],
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--mode",
        action="append",
        choices=(*MODES, "all"),
        help="what to run (repeatable; without it: inprocess, fullstack, servers, exposition)",
    )
    inprocess = parser.add_argument_group("in-process and callgrind")
    inprocess.add_argument("--requests", type=int, default=20_000, help="requests per variant")
    inprocess.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    inprocess.add_argument("--warmup", type=int, default=500, help="warm-up requests per variant")
    inprocess.add_argument(
        "--instructions-requests", type=int, default=2000, help="requests per callgrind run"
    )
    inprocess.add_argument(
        "--instructions-variants",
        choices=("metrics", "oneline", "fullstack", "otelmetrics"),
        default="metrics",
        help="which in-process variants callgrind counts",
    )
    servers = parser.add_argument_group("servers and sidecar (wrk on loopback)")
    servers.add_argument("--threads", type=int, default=2, help="wrk threads")
    servers.add_argument("--connections", type=int, default=32, help="wrk connections")
    servers.add_argument("--duration", type=float, default=8.0, help="wrk seconds per run")
    servers.add_argument("--warmup-seconds", type=float, default=2.0, help="wrk warm-up run")
    servers.add_argument("--wrk-rounds", type=int, default=3, help="wrk runs per contender")
    servers.add_argument(
        "--servers",
        type=_csv,
        default="starlette,fastapi,fullstack,multiprocess",
        help="server tables to run, comma-separated",
    )
    servers.add_argument(
        "--stacks", type=_csv, default="h11,uvloop", help="uvicorn stacks for the metrics tables"
    )
    exposition = parser.add_argument_group("exposition")
    exposition.add_argument(
        "--exposition-requests", type=int, default=100_000, help="requests before the scrape"
    )
    exposition.add_argument("--scrapes", type=int, default=20, help="scrapes timed per package")
    exposition.add_argument(
        "--multiprocess-workers", type=int, default=4, help="gunicorn workers for aggregation"
    )
    parser.add_argument("--output", type=Path, help="also write every table to this Markdown file")
    parser.add_argument("--drive", metavar="VARIANT", help=argparse.SUPPRESS)
    return parser


def _in_process(args: argparse.Namespace) -> list[Table]:
    result = run_in_process(
        requests=args.requests, rounds=args.rounds, warmup=args.warmup, progress=_progress
    )
    return [in_process_table(result)]


def _full_stack(args: argparse.Namespace) -> list[Table]:
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
    return [full_stack_table(result, pending)]


def _load_settings(args: argparse.Namespace) -> LoadSettings:
    return LoadSettings(
        args.threads, args.connections, args.duration, args.warmup_seconds, args.wrk_rounds
    )


def _servers(args: argparse.Namespace) -> list[Table]:
    from benchmarks.contenders import server_groups  # noqa: PLC0415
    from benchmarks.server_tables import server_tables  # noqa: PLC0415
    from benchmarks.servers import run_servers  # noqa: PLC0415

    groups = server_groups(args.servers, args.stacks)
    return server_tables(run_servers(groups, _load_settings(args), _progress))


def _exposition(args: argparse.Namespace) -> list[Table]:
    from benchmarks import exposition  # noqa: PLC0415

    scrapes = exposition.run_exposition(args.exposition_requests, args.scrapes)
    workers = args.multiprocess_workers
    aggregated = exposition.run_multiprocess_exposition(
        workers, args.scrapes, _load_settings(args), _progress
    )
    return [
        exposition.exposition_table(scrapes, args.exposition_requests),
        exposition.multiprocess_table(aggregated, workers),
    ]


def _instructions(args: argparse.Namespace) -> list[Table]:
    from benchmarks.instructions import run_instructions  # noqa: PLC0415

    variants = {
        "metrics": METRICS_VARIANTS,
        "oneline": ONE_LINE_VARIANTS,
        "fullstack": FULL_STACK_VARIANTS,
        "otelmetrics": OTEL_METRICS_VARIANTS,
    }[args.instructions_variants]
    judged = args.instructions_variants not in {"oneline", "otelmetrics"}
    return [
        run_instructions(
            variants, args.instructions_requests, args.warmup, _progress, peers_judged=judged
        )
    ]


def _sidecar(args: argparse.Namespace) -> list[Table]:
    from benchmarks import sidecar_bench  # noqa: PLC0415

    load = replace(
        sidecar_bench.SIDECAR_LOAD, duration_seconds=args.duration, rounds=args.wrk_rounds
    )
    return [sidecar_bench.run(sidecar_bench.SidecarSettings(load))]


def _options(args: argparse.Namespace) -> list[Table]:
    from benchmarks import options  # noqa: PLC0415

    result = options.run_options(args.instructions_requests, args.warmup, progress=_progress)
    return [options.options_table(result)]


_RUNNERS: dict[str, Callable[[argparse.Namespace], list[Table]]] = {
    "inprocess": _in_process,
    "fullstack": _full_stack,
    "servers": _servers,
    "exposition": _exposition,
    "instructions": _instructions,
    "sidecar": _sidecar,
    "options": _options,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.drive:
        from benchmarks.instructions import drive_one  # noqa: PLC0415

        drive_one(args.drive, args.requests, args.warmup)
        return 0
    chosen = set(args.mode or MODES[:4])
    modes = MODES if "all" in chosen else [mode for mode in MODES if mode in chosen]
    tables: list[Table] = []
    for mode in modes:
        for table in _RUNNERS[mode](args):
            tables.append(table)
            print(table.markdown(), flush=True)
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
