"""The server benchmark's results as Markdown tables, with issue 16's targets judged."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.contenders import OTEL_SAME_ENCODING, Group
from benchmarks.servers import ServerResults
from benchmarks.shop import SHOP_ROUTES
from benchmarks.tables import Table, ratio, verdict
from benchmarks.wrk import WrkRun

__all__ = ["GOALS", "Goal", "cpu_overhead_us", "per_round", "server_tables"]


def per_round(
    runs: Sequence[WrkRun], bare: Sequence[WrkRun], figure: Callable[[WrkRun], float]
) -> float:
    """Median over rounds of ``figure(run) / figure(bare run)`` in the same round."""
    return statistics.median(
        figure(run) / figure(base) for run, base in zip(runs, bare, strict=True) if figure(base)
    )


def cpu_overhead_us(runs: Sequence[WrkRun], bare: Sequence[WrkRun]) -> float:
    """Median over rounds of the server CPU µs per request beyond the bare app's."""
    return statistics.median(
        run.server_cpu_us_per_request - base.server_cpu_us_per_request
        for run, base in zip(runs, bare, strict=True)
    )


def _rate(run: WrkRun) -> float:
    return run.requests_per_second


def _p50(run: WrkRun) -> float:
    return run.p50_ms


def _p99(run: WrkRun) -> float:
    return run.p99_ms


def _cpu(run: WrkRun) -> float:
    return run.server_cpu_us_per_request


#: The figures of a row: (heading, what is read from a run, its format).
FIGURES: tuple[tuple[str, Callable[[WrkRun], float], str], ...] = (
    ("req/s", _rate, ",.0f"),
    ("p50 ms", _p50, ".2f"),
    ("p99 ms", _p99, ".2f"),
    ("server CPU µs/req", _cpu, ".1f"),
)


@dataclass(frozen=True)
class Goal:
    """A target of issue 16 on one table: ``contender`` at least ``at_least`` x bare (by
    requests/s and by server CPU), or its CPU overhead at most ``fraction`` of ``peer``'s.
    """

    group: str
    contender: str
    text: str
    at_least: float | None = None
    peer: str | None = None
    fraction: float | None = None


GOALS: tuple[Goal, ...] = (
    Goal("starlette-uvloop", "ouro-obs, metrics only", "≥ 0.95x bare Starlette", at_least=0.95),
    Goal("fastapi-uvloop", "ouro-obs, metrics only", "≥ 0.97x bare FastAPI", at_least=0.97),
    Goal(
        "fastapi-uvloop",
        "ouro-obs, the one line (nothing else configured)",
        "the one line ≥ 0.85x bare FastAPI",
        at_least=0.85,
    ),
    Goal("fullstack", "ouro-obs full stack, 100 %", "≥ 0.6x bare FastAPI", at_least=0.6),
    Goal(
        "fullstack",
        "ouro-obs full stack, 100 %",
        "overhead ≤ 1/3 of opentelemetry-instrumentation-asgi's alone",
        peer="otel-asgi alone, 100 %",
        fraction=1 / 3,
    ),
    Goal(
        "fullstack",
        "ouro-obs full stack, 100 %",
        "overhead ≤ 1/3 of opentelemetry-instrumentation-asgi's alone, both with ouro-obs's exporter",
        peer=OTEL_SAME_ENCODING,
        fraction=1 / 3,
    ),
    Goal(
        "multiprocess",
        "ouro-obs, metrics only",
        "overhead ≤ 1/3 of prometheus-fastapi-instrumentator's",
        peer="prometheus-fastapi-instrumentator",
        fraction=1 / 3,
    ),
)


def _judge(goal: Goal, runs: dict[str, list[WrkRun]], bare: list[WrkRun]) -> str:
    ours = runs[goal.contender]
    if goal.at_least is not None:
        by_rate = per_round(ours, bare, _rate)
        by_cpu = 1 / per_round(ours, bare, _cpu)
        return (
            f"Target ({goal.contender}: {goal.text}): {verdict(by_cpu >= goal.at_least)} by "
            f"server CPU ({by_cpu:.2f}x), {verdict(by_rate >= goal.at_least)} by requests/s "
            f"({by_rate:.2f}x)."
        )
    assert goal.peer is not None
    assert goal.fraction is not None
    our_overhead = cpu_overhead_us(ours, bare)
    peer_overhead = cpu_overhead_us(runs[goal.peer], bare)
    return (
        f"Target ({goal.contender}: {goal.text}): "
        f"{verdict(our_overhead <= peer_overhead * goal.fraction)} "
        f"({our_overhead:.1f} µs vs {peer_overhead:.1f} µs of server CPU per request, "
        f"{ratio(our_overhead, peer_overhead)} of it)."
    )


def _row(name: str, runs: list[WrkRun], bare: list[WrkRun], baseline: bool) -> list[str]:
    cells = [name]
    for _heading, figure, spec in FIGURES:
        cells.append(format(statistics.median(figure(run) for run in runs), spec))
        cells.append("1.00" if baseline else f"{per_round(runs, bare, figure):.2f}")
    return cells


def _group_table(group: Group, results: ServerResults) -> Table:
    headers = ["contender"]
    for heading, _figure, _spec in FIGURES:
        headers += [heading, "x bare"]
    table = Table(group.title, headers)
    runs = {c.name: results.runs[(group.key, c.name)] for c in group.contenders}
    bare = runs[group.contenders[0].name]
    for index, contender in enumerate(group.contenders):
        table.rows.append(_row(contender.name, runs[contender.name], bare, index == 0))
    settings = results.settings
    table.notes.append(
        f"`wrk -t{settings.threads} -c{settings.connections} -d{settings.duration_seconds:.0f}s` "
        f"over the shop's {len(SHOP_ROUTES)} routes (random ids), {settings.rounds} round(s) "
        "interleaved with every other table's contenders; x bare = median of per-round "
        "ratios to the bare app in the same round (for req/s higher is better, for latency "
        "and CPU lower is). Client and server share "
        f"{os.cpu_count()} CPUs, so req/s and latency move with whatever else runs; server "
        "CPU per request does not. " + group.setup
    )
    table.notes.append(_recorded_note(group, results))
    table.notes.extend(
        _judge(goal, runs, bare)
        for goal in GOALS
        if goal.group == group.key and goal.contender in runs
    )
    return table


def _recorded_note(group: Group, results: ServerResults) -> str:
    parts = []
    for contender in group.contenders[1:]:
        key = (group.key, contender.name)
        counts = ", ".join(f"{value:,} {what}" for what, value in results.recorded[key].items())
        parts.append(f"{contender.name}: {counts} of {results.served[key]:,} served")
    return "Recorded (checked against what wrk saw served): " + "; ".join(parts) + "."


def server_tables(results: ServerResults) -> list[Table]:
    return [_group_table(group, results) for group in results.groups]
