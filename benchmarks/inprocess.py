"""In-process benchmarks: each variant's ASGI app called directly from a minimal server loop.

A scope dict, a ``receive`` that yields one ``http.request``, a ``send`` that discards.
Variants run in interleaved rounds, their order rotating each round, so drift on a busy
machine hits all of them alike; time is the process's CPU time, which other processes do
not inflate and which includes the variant's own threads (span export). Overhead is the
median over rounds of (variant - bare) in the same round. Afterwards each variant must
show it recorded every request (counted requests, access lines, spans), or the run fails
rather than print figures for instrumentation that did nothing.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message

from benchmarks.apps import METRICS_VARIANTS, REQUEST_PATHS, Recorded, Variant, recorded
from benchmarks.tables import Table, ratio, verdict

__all__ = [
    "BASELINE",
    "CHECKED_PATHS",
    "OURS",
    "OURS_FULL",
    "InProcessResult",
    "check",
    "drive",
    "full_stack_table",
    "get",
    "in_process_table",
    "refuse_silent_variants",
    "run_in_process",
]

BASELINE = "bare"
OURS = "ouro-obs"
OURS_FULL = "ouro-obs full stack"

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


async def get(app: ASGIApp, path: str) -> tuple[int | None, bytes]:
    """``GET path`` through ``app`` as a server would: the status sent and the whole body."""
    sent: list[Message] = []

    async def record(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return _REQUEST

    scope = {**_SCOPE_TEMPLATE, "path": path, "raw_path": path.encode("ascii")}
    await app(scope, receive, record)
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), None)
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def check(app: ASGIApp, name: str, paths: Sequence[str] = REQUEST_PATHS) -> None:
    """Fail loudly unless the benchmark paths answer 200 "ok" (a broken variant is no data)."""
    for path in paths[:CHECKED_PATHS]:
        status, body = await get(app, path)
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
    refuse_silent_variants(counts, served)
    return InProcessResult(title, timings, per_round, served, counts)


def refuse_silent_variants(counts: dict[str, Recorded], served: int) -> None:
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
                "-" if name == peers_of else ratio(ours_overhead, overhead_us),
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
            f"Bar (lower overhead than every peer): {verdict(ours_overhead < fastest)}. "
            f"Goal (at most a third of the fastest peer's, {fastest_name} {fastest:.1f} µs): "
            f"{verdict(ours_overhead <= fastest / 3)} ({peers_of} {ours_overhead:.1f} µs = "
            f"{ratio(ours_overhead, fastest)} of it)."
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
        f"{verdict(ours < otel)} ({ours / 1000:.1f} µs vs {otel / 1000:.1f} µs, "
        f"{ratio(ours, otel)}x)."
    )
    return table
