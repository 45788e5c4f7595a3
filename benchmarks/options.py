"""What each issue-13 option costs against its off state, in callgrind instructions per request.

    .venv/bin/python -m benchmarks.overhead --mode options
    .venv/bin/python -m benchmarks.options --requests 2000 --warmup 500

Every variant is the benchmark's FastAPI app (benchmarks/apps.py) with ouro-obs for metrics
only, set up with one option, or a bare twin of the same shape. Its overhead is its
instructions per request minus its twin's; an option's cost is its variant's overhead minus
the overhead of the same set-up with the option off:

- route resolution of a request answered before routing (an auth layer inside ours sends
  401): off, the router answers; on, the route comes from the app's route tree, for paths
  seen before (cached) and for a new path on every request (a walk each time);
- static labels, request labels (a request header and a response header), exclusions
  (prefixes, a pattern and a method, none matching), the status-class label, buckets of
  a route's own, the in-flight gauge by route (cached paths and a new path each time).

All variants run in ONE valgrind process: callgrind dumps its counts each time the
process calls ``getloadavg`` (``--dump-before=getloadavg``), which the driver does right
before and right after a variant's measured requests, so the dump between holds exactly
those requests, and one start-up serves every variant. Instruction counts do not depend
on what else the machine runs. Before the figures, the driver checks that every ouro-obs
variant counted every request it served on a route template (the 401s too), and left
nothing in flight; a variant that recorded less fails the run. (OpenTelemetry metrics
mode is benchmarked on its own.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Receive, Scope, Send

from benchmarks.apps import REQUEST_PATHS, bare
from benchmarks.inprocess import drive, get
from benchmarks.tables import Table
from ouro_obs import ObservabilityMiddleware
from ouro_obs.config import RequestLabel

__all__ = [
    "CASES",
    "VARIANTS",
    "OptionCase",
    "OptionVariant",
    "drive_all",
    "options_table",
    "run_options",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The libc function whose every call makes callgrind dump (and reset) its counts.
_MARK_FUNCTION = "getloadavg"
_UNMATCHED = "<unmatched>"


def _distinct_paths(first_id: int, count: int) -> tuple[str, ...]:
    """``count`` paths on the three measured routes, each with ids never used before."""
    shapes = ("/items/{0}", "/users/{0}/orders/{0}", "/api/v1/products/{0}")
    return tuple(shapes[k % 3].format(first_id + k) for k in range(count))


#: New paths for every measured request (more than any run sends), and others to warm up.
DISTINCT_PATHS = _distinct_paths(1_000_000, 50_000)
DISTINCT_WARMUP_PATHS = _distinct_paths(0, 5_000)


class _Unauthorized:
    """An auth layer inside ours that answers 401 before the router runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"unauthorized"})


def _recorded(registry: CollectorRegistry) -> dict[str, int]:
    """Requests counted, those of them on a route template, and requests still in flight."""
    counted = routed = in_flight = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "http_requests_total":
                counted += sample.value
                if sample.labels["route"] != _UNMATCHED:
                    routed += sample.value
            elif sample.name == "http_requests_in_progress":
                in_flight += sample.value
    return {"counted": int(counted), "on a route": int(routed), "in flight": int(in_flight)}


def _built(*, answered_before_routing: bool, observed: bool, **options: Any) -> ASGIApp:
    """The benchmark's app, with the 401 layer inside ouro-obs (metrics only) as asked."""
    app = bare()
    assert isinstance(app, FastAPI)
    if answered_before_routing:
        app.add_middleware(_Unauthorized)
    registry = CollectorRegistry()
    if observed:
        app.add_middleware(
            ObservabilityMiddleware,
            registry=registry,
            access_log=False,
            tracing=False,
            request_id_header="",
            **options,
        )
    app.state.bench_recorded = lambda: _recorded(registry)
    return app


@dataclass(frozen=True)
class OptionVariant:
    """One measured app: ``options`` for ouro-obs (None: no ouro-obs), and its bare twin."""

    name: str
    options: Mapping[str, Any] | None
    #: The variant without ouro-obs whose instructions are subtracted; None for a twin.
    twin: str | None = None
    answered_before_routing: bool = False
    #: A path never requested before for every request, instead of the usual 150.
    new_paths: bool = False

    @property
    def paths(self) -> Sequence[str]:
        return DISTINCT_PATHS if self.new_paths else REQUEST_PATHS

    @property
    def warmup_paths(self) -> Sequence[str]:
        return DISTINCT_WARMUP_PATHS if self.new_paths else REQUEST_PATHS

    def build(self) -> ASGIApp:
        return _built(
            answered_before_routing=self.answered_before_routing,
            observed=self.options is not None,
            **(self.options or {}),
        )

    @property
    def status(self) -> int:
        return 401 if self.answered_before_routing else 200


_REQUEST_LABELS = (
    RequestLabel("client", "header:user-agent", max_values=10),
    RequestLabel("cache", "response_header:x-cache", allowed=frozenset({"hit", "miss"})),
)


VARIANTS: tuple[OptionVariant, ...] = (
    OptionVariant("bare", None),
    OptionVariant("bare, new paths", None, new_paths=True),
    OptionVariant("bare, 401 before routing", None, answered_before_routing=True),
    OptionVariant(
        "bare, 401 before routing, new paths", None, answered_before_routing=True, new_paths=True
    ),
    OptionVariant("defaults", {}, "bare"),
    OptionVariant("defaults, new paths", {}, "bare, new paths", new_paths=True),
    OptionVariant(
        "401 before routing", {}, "bare, 401 before routing", answered_before_routing=True
    ),
    OptionVariant(
        "401 before routing, new paths",
        {},
        "bare, 401 before routing, new paths",
        answered_before_routing=True,
        new_paths=True,
    ),
    OptionVariant(
        "static labels", {"static_labels": {"version": "1.4.2", "track": "stable"}}, "bare"
    ),
    OptionVariant("request labels", {"request_labels": _REQUEST_LABELS}, "bare"),
    OptionVariant(
        "exclusions",
        {
            "excluded_path_prefixes": ("/admin", "/internal"),
            "excluded_path_patterns": (r"/debug/.+",),
            "excluded_methods": frozenset({"OPTIONS"}),
        },
        "bare",
    ),
    OptionVariant("status-class label", {"status_class_label": True}, "bare"),
    OptionVariant(
        "route buckets",
        {"route_duration_buckets": {"/items/{item_id}": (0.5, 1, 5, 30, 60, 120)}},
        "bare",
    ),
    OptionVariant("in-flight by route", {"inflight_by_route": True}, "bare"),
    OptionVariant(
        "in-flight by route, new paths",
        {"inflight_by_route": True},
        "bare, new paths",
        new_paths=True,
    ),
)


@dataclass(frozen=True)
class OptionCase:
    """One row: an option, as set up in the ``on`` variant, against the ``off`` one."""

    option: str
    setting: str
    off: str
    on: str


CASES: tuple[OptionCase, ...] = (
    OptionCase(
        "route of a request answered before routing (paths seen before)",
        "always on",
        "defaults",
        "401 before routing",
    ),
    OptionCase(
        "route of a request answered before routing (a new path each time)",
        "always on",
        "defaults, new paths",
        "401 before routing, new paths",
    ),
    OptionCase("static labels", "static_labels (2)", "defaults", "static labels"),
    OptionCase(
        "request labels",
        "request_labels (a header, a response header)",
        "defaults",
        "request labels",
    ),
    OptionCase(
        "exclusions",
        "excluded_path_prefixes (2), excluded_path_patterns (1), excluded_methods (1)",
        "defaults",
        "exclusions",
    ),
    OptionCase("status-class label", "status_class_label=True", "defaults", "status-class label"),
    OptionCase(
        "buckets of a route's own",
        "route_duration_buckets (1 route)",
        "defaults",
        "route buckets",
    ),
    OptionCase(
        "in-flight gauge by route (paths seen before)",
        "inflight_by_route=True",
        "defaults",
        "in-flight by route",
    ),
    OptionCase(
        "in-flight gauge by route (a new path each time)",
        "inflight_by_route=True",
        "defaults, new paths",
        "in-flight by route, new paths",
    ),
)


def variants_named(names: Sequence[str] | None) -> list[OptionVariant]:
    """The named variants (all when None), with what they are measured against: the off
    variant of their case and every variant's bare twin, in :data:`VARIANTS` order."""
    if names is None:
        return list(VARIANTS)
    by_name = {variant.name: variant for variant in VARIANTS}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise KeyError(f"unknown variant(s) {unknown}; known: {', '.join(by_name)}")
    wanted = set(names) | {case.off for case in CASES if case.on in names}
    wanted |= {twin for name in wanted if (twin := by_name[name].twin) is not None}
    return [variant for variant in VARIANTS if variant.name in wanted]


def _mark() -> None:
    """Make callgrind dump its counts (``--dump-before=getloadavg``); harmless without it."""
    os.getloadavg()


async def _check(app: ASGIApp, variant: OptionVariant) -> None:
    for path in variant.warmup_paths[:3]:
        status, _body = await get(app, path)
        if status != variant.status:
            raise RuntimeError(f"variant {variant.name!r}: GET {path} answered {status}")


def drive_all(
    variants: Sequence[OptionVariant], requests: int, warmup: int
) -> dict[str, dict[str, int]]:
    """Build, check and warm up each variant, then serve ``requests`` between two marks.

    Returns what each ouro-obs variant recorded; raises when one did not count every
    request it served on a route template, or left requests in flight.
    """
    built = [(variant, variant.build()) for variant in variants]

    async def run() -> None:
        for variant, app in built:
            # New paths: as many as requests, since drive() encodes all of them up front.
            paths = variant.paths[:requests] if variant.new_paths else variant.paths
            await _check(app, variant)
            await drive(app, warmup, variant.warmup_paths)
            gc.collect()
            _mark()
            await drive(app, requests, paths)
            _mark()

    asyncio.run(run())
    served = 3 + warmup + requests
    recorded: dict[str, dict[str, int]] = {}
    for variant, app in built:
        if variant.options is None:
            continue
        counts: dict[str, int] = app.state.bench_recorded()  # type: ignore[attr-defined]
        expected = {"counted": served, "on a route": served, "in flight": 0}
        if counts != expected:
            raise RuntimeError(
                f"variant {variant.name!r} recorded {counts} for {served} requests "
                f"(expected {expected}): its figures would not measure real instrumentation"
            )
        recorded[variant.name] = counts
    return recorded


def _dump_totals(directory: Path) -> list[int]:
    """The instruction totals of callgrind's numbered dumps, in order."""
    dumps = sorted(
        (path for path in directory.glob("callgrind.out.*") if path.suffix[1:].isdigit()),
        key=lambda path: int(path.suffix[1:]),
    )
    totals = []
    for path in dumps:
        match = re.search(r"^(?:summary|totals):\s*(\d+)", path.read_text(), re.MULTILINE)
        if match is None:
            raise RuntimeError(f"{path.name}: callgrind wrote no instruction total")
        totals.append(int(match.group(1)))
    return totals


@dataclass
class OptionsResult:
    """Instructions per request of each variant, and what each ouro-obs variant recorded."""

    per_request: dict[str, float]
    recorded: dict[str, dict[str, int]]
    requests: int
    warmup: int

    def overhead(self, name: str) -> float:
        variant = next(v for v in VARIANTS if v.name == name)
        assert variant.twin is not None
        return self.per_request[name] - self.per_request[variant.twin]


def run_options(
    requests: int,
    warmup: int,
    names: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> OptionsResult:
    """Every variant (or the ``names``d ones and their twins) in one callgrind process."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    variants = variants_named(names)
    command = [sys.executable, "-m", "benchmarks.options", "--drive-all"]
    command += ["--requests", str(requests), "--warmup", str(warmup)]
    command += ["--variants", json.dumps([variant.name for variant in variants])]
    if progress is not None:
        progress(f"callgrind: {len(variants)} variants in one process")
    with tempfile.TemporaryDirectory(prefix="ouro-obs-callgrind-") as directory:
        completed = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={directory}/callgrind.out",
                f"--dump-before={_MARK_FUNCTION}",
                *command,
            ],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": "0"},
            timeout=3600,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"the callgrind run failed:\n{completed.stderr[-4000:]}")
        totals = _dump_totals(Path(directory))
    if len(totals) != 2 * len(variants):
        raise RuntimeError(
            f"callgrind dumped {len(totals)} times for {len(variants)} variants (expected "
            f"two marks each): something else called {_MARK_FUNCTION}()"
        )
    per_request = {
        variant.name: totals[2 * index + 1] / requests for index, variant in enumerate(variants)
    }
    recorded = json.loads(completed.stdout.strip().splitlines()[-1])
    return OptionsResult(per_request, recorded, requests, warmup)


def options_table(result: OptionsResult) -> Table:
    table = Table(
        "What each option costs (callgrind instructions per request, metrics only)",
        (
            "option",
            "setting",
            "ouro-obs overhead, off",
            "ouro-obs overhead, on",
            "cost of the option",
            "cost vs off",
        ),
    )
    for case in CASES:
        if case.on not in result.per_request or case.off not in result.per_request:
            continue
        off = result.overhead(case.off)
        on = result.overhead(case.on)
        table.rows.append(
            (
                case.option,
                case.setting,
                f"{off:,.0f}",
                f"{on:,.0f}",
                f"{on - off:+,.0f}",
                f"{(on - off) / off * 100:+.1f} %" if off > 0 else "n/a",
            )
        )
    served = 3 + result.warmup + result.requests
    table.notes.append(
        f"valgrind --tool=callgrind, one process for every variant; {result.requests} "
        f"requests per variant after {result.warmup} warm-up requests, counted between two "
        f"dumps (--dump-before={_MARK_FUNCTION}). Overhead: the variant's instructions per "
        "request minus its bare twin's (the same app, the 401 layer included, no ouro-obs). "
        f"Every ouro-obs variant counted all {served:,} requests it served on a route "
        "template and left none in flight. PYTHONHASHSEED=0; "
        f"Python {sys.version.split()[0]}."
    )
    return table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.options", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per variant")
    parser.add_argument("--warmup", type=int, default=500, help="warm-up requests per variant")
    parser.add_argument("--variants", type=json.loads, help=argparse.SUPPRESS)
    parser.add_argument("--drive-all", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.drive_all:  # inside valgrind
        recorded = drive_all(variants_named(args.variants), args.requests, args.warmup)
        print(json.dumps(recorded), flush=True)
        return 0
    result = run_options(args.requests, args.warmup, progress=_progress)
    print(options_table(result).markdown(), flush=True)
    return 0


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
