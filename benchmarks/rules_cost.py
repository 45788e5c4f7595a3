"""What the SLO-window rules cost a real Prometheus, and how exact their SLI is.

A Prometheus is given ``--days`` of backfilled request counters (``promtool tsdb
create-blocks-from openmetrics``) for N SLOs x M routes x K pods x two statuses. Traffic
follows the case that breaks an average of ratios: for the first half of the window 100
requests a minute per series at 10 % errors, then 900 a minute without errors (the exact
events ratio is 1 %, an average of 5-minute ratios says 5 %).

Three shapes of the SLO-window rule are compared in one run:

* **ouro-obs**: the generated events group (30-minute rates of bad events and events,
  recorded every 15 minutes for 30 days) and SLO-window group (the period ratio summed
  from them, every 2 minutes);
* **raw rate** (the generator before issue 14): ``rate()`` over the period on the raw
  series, every 5 minutes;
* **Sloth**: the average over the period of the recorded 5-minute ratio.

The recorded inputs of the first and the last get the period's history through ``promtool
tsdb create-blocks-from rules`` against the same Prometheus, as if the rules had run for
the whole window. Then every shape's group is evaluated every few seconds, and
``prometheus_rule_group_last_duration_seconds`` gives its cost per evaluation; the cost per
hour multiplies that by the evaluations a production interval makes. Each shape's SLI,
queried at the end of the data, is compared with the exact events ratio.

    python -m benchmarks.rules_cost                 # 2 SLOs x 4 routes x 3 pods, 30 days
    python -m benchmarks.rules_cost --days 2 --slos 1 --routes 1 --pods 1
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ouro_obs.demo.lifecycle import LOOPBACK, ManagedProcess, free_port, http_get
from ouro_obs.slo import conventions, promql
from ouro_obs.slo.render import render_yaml
from ouro_obs.slo.rules import (
    PERIOD_GROUP_INTERVAL,
    RecordingRule,
    RuleGroup,
    events_interval,
    rule_groups,
    sli_error_expr,
)
from ouro_obs.slo.spec import ServiceSpec, parse_spec
from ouro_obs.slo.windows import Window, period_window

__all__ = ["Result", "Shape", "Size", "main", "measure", "results_table", "shapes"]

SECONDS_PER_DAY = 86400
#: The bare rule shapes this benchmark writes record under these names.
RAW_RECORD = "bench_raw:sli_error:ratio_period"
SLOTH_RECORD = "bench_sloth:sli_error:ratio_period"
#: Sloth records its SLI over 5 minutes whatever the period.
SLOTH_RATIO_WINDOW = Window(5)
TARGET_COST_SHARE = 0.1
TARGET_ERROR = 0.001


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    record: str
    #: (group name suffix, seconds between its evaluations in production) per group.
    groups: tuple[tuple[str, int], ...]


def shapes(days: int) -> tuple[Shape, ...]:
    """The compared shapes; ouro-obs's are its generated events and SLO-window groups."""
    return (
        Shape(
            "ouro-obs",
            "slo:sli_error:ratio_rate",
            (
                ("-events-ouro-obs", events_interval(days).seconds),
                ("-period-ouro-obs", PERIOD_GROUP_INTERVAL.seconds),
            ),
        ),
        Shape("raw rate", RAW_RECORD, (("-raw-rate", 300),)),
        Shape("Sloth", SLOTH_RECORD, (("-sloth", 300),)),
    )


@dataclass(frozen=True, slots=True)
class Result:
    shape: Shape
    #: Median duration of one evaluation of each group, summed over groups and SLOs (s).
    per_evaluation: float
    #: Those durations times the evaluations each group makes in an hour in production (s).
    per_hour: float
    sli: float


@dataclass(frozen=True, slots=True)
class Size:
    slos: int
    routes: int
    pods: int
    days: int
    scrape: int

    def spec(self, index: int) -> ServiceSpec:
        return parse_spec(
            f"apiVersion: ouro-obs/v1\nservice: svc{index}\n"
            "runbook_base_url: https://runbooks.example.com\n"
            f"slos: [{{name: availability, objective: 99, window: {self.days}d, "
            "sli: {kind: availability}}]\n"
        )


# --------------------------------------------------------------------------- the data


def _requests(step: int, steps: int, route: int) -> tuple[int, int]:
    """(good, bad) requests of one series in one scrape step: busy and failing, then clean."""
    per_minute_busy = 100 * (route + 1)
    if step < steps // 2:
        return per_minute_busy * 9 // 10, per_minute_busy // 10
    return 9 * per_minute_busy, 0


def _openmetrics(size: Size, start: int, steps: int) -> Iterator[str]:
    """The counters, series after series, one sample per scrape step from ``start``."""
    yield "# TYPE http_requests counter\n"
    for index in range(size.slos):
        for route in range(size.routes):
            for pod in range(size.pods):
                for status, bad in (("200", False), ("500", True)):
                    labels = (
                        f'job="svc{index}",instance="pod{pod}:9464",method="GET",'
                        f'route="/r{route}",status="{status}"'
                    )
                    value = 0
                    for step in range(steps):
                        good_count, bad_count = _requests(step, steps, route)
                        value += bad_count if bad else good_count
                        yield f"http_requests_total{{{labels}}} {value} {start + step * size.scrape}\n"
    yield "# EOF\n"


def _exact_ratio(size: Size, steps: int, first_step: int) -> float:
    """Bad events over all events in the samples after ``first_step`` (the SLO window)."""
    bad = total = 0
    for route in range(size.routes):
        for step in range(first_step + 1, steps):
            good_count, bad_count = _requests(step, steps, route)
            bad += bad_count
            total += good_count + bad_count
    return bad / total


# --------------------------------------------------------------------------- the rules


def _group(name: str, rules: Sequence[RecordingRule], interval: Window | None = None) -> RuleGroup:
    return RuleGroup(name, tuple(rules), interval)


def _generated_group(spec: ServiceSpec, suffix: str) -> RuleGroup:
    return next(g for g in rule_groups(spec) if g.name.endswith(suffix))


def _sloth_input(spec: ServiceSpec) -> RecordingRule:
    slo = spec.slos[0]
    short = SLOTH_RATIO_WINDOW
    labels = conventions.slo_labels(spec, slo)
    return RecordingRule(
        conventions.sli_error_record(short), sli_error_expr(spec, slo, short), labels
    )


def _measured_groups(spec: ServiceSpec) -> list[RuleGroup]:
    """The three shapes' groups, in :data:`SHAPES` order, at the global interval."""
    slo = spec.slos[0]
    period = period_window(slo.window_days)
    labels = conventions.slo_labels(spec, slo)
    sloth_series = promql.labelled(_sloth_input(spec).record, labels)
    sloth = f"sum_over_time({sloth_series}[{period}])\n/\ncount_over_time({sloth_series}[{period}])"
    events, ours = _generated_group(spec, "-events"), _generated_group(spec, "-period")
    return [
        RuleGroup(f"{ours.name}-ouro-obs", ours.rules),
        RuleGroup(f"{events.name}-ouro-obs", events.rules),
        _group(
            f"{spec.service}-raw-rate",
            [RecordingRule(RAW_RECORD, sli_error_expr(spec, slo, period), labels)],
        ),
        _group(f"{spec.service}-sloth", [RecordingRule(SLOTH_RECORD, sloth, labels)]),
    ]


def _backfilled_groups(spec: ServiceSpec) -> list[RuleGroup]:
    """The recorded inputs: ouro-obs's event rates (as generated), Sloth's 5-minute ratio."""
    return [
        _generated_group(spec, "-events"),
        _group(f"{spec.service}-sloth-inputs", [_sloth_input(spec)], Window(1)),
    ]


def _rule_file(path: Path, groups: Sequence[RuleGroup]) -> Path:
    path.write_text(render_yaml({"groups": list(groups)}, header=False))
    return path


# --------------------------------------------------------------------------- Prometheus


def _run(argv: Sequence[str]) -> None:
    finished = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}:\n{finished.stdout}{finished.stderr}")


def _prometheus(workdir: Path, rule_files: Sequence[Path], interval: str) -> ManagedProcess:
    port = free_port()
    config = workdir / f"prometheus-{port}.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"evaluation_interval": interval},
                "rule_files": [str(path) for path in rule_files],
            }
        )
    )
    return ManagedProcess(
        argv=[
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            "--storage.tsdb.retention.time=400d",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--log.level=warn",
        ],
        ready_url=f"http://{LOOPBACK}:{port}/-/ready",
        log_path=workdir / f"prometheus-{port}.log",
        ready_timeout=120.0,
    ).start()


def _address(server: ManagedProcess) -> str:
    assert server.ready_url is not None
    return server.ready_url.removesuffix("/-/ready")


def _query(server: ManagedProcess, promql_text: str, at: int) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": promql_text, "time": str(at)})
    document = json.loads(http_get(f"{_address(server)}/api/v1/query?{query}", timeout=60.0))
    if document.get("status") != "success":
        raise RuntimeError(f"{promql_text}: {document}")
    result: list[dict[str, Any]] = document["data"]["result"]
    return result


_DURATION = re.compile(
    r'^prometheus_rule_group_last_duration_seconds\{rule_group="[^"]*;([^"]+)"\} (\S+)$', re.M
)
_ITERATIONS = re.compile(
    r'^prometheus_rule_group_iterations_total\{rule_group="[^"]*;([^"]+)"\} (\S+)$', re.M
)


def _group_metrics(server: ManagedProcess) -> tuple[dict[str, float], dict[str, float]]:
    text = http_get(f"{_address(server)}/metrics", timeout=10.0).decode()
    durations = {name: float(value) for name, value in _DURATION.findall(text)}
    return durations, {name: float(value) for name, value in _ITERATIONS.findall(text)}


def _durations(server: ManagedProcess, evaluations: int, timeout: float) -> dict[str, list[float]]:
    """Each group's last duration after each of its next ``evaluations`` evaluations."""
    seen: dict[str, list[float]] = {}
    last: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        durations, iterations = _group_metrics(server)
        for group, count in iterations.items():
            if count > 1 and count != last.get(group):  # the first one warms the caches
                seen.setdefault(group, []).append(durations[group])
            last[group] = count
        if seen and all(len(values) >= evaluations for values in seen.values()):
            return seen
        time.sleep(0.2)
    raise TimeoutError(f"fewer than {evaluations} evaluations of every group in {timeout:.0f}s")


# --------------------------------------------------------------------------- the run


def _backfill(size: Size, workdir: Path, start: int, steps: int) -> None:
    data = workdir / "data"
    metrics = workdir / "input.om"
    with metrics.open("w") as handle:
        handle.writelines(_openmetrics(size, start, steps))
    _run(
        [
            "promtool", "tsdb", "create-blocks-from", "openmetrics",
            "--max-block-duration=744h", str(metrics), str(data),
        ]
    )  # fmt: skip
    metrics.unlink()


def _backfill_rules(size: Size, workdir: Path, start: int, end: int, compact: bool) -> None:
    """History of the recorded inputs, computed by Prometheus from the backfilled data."""
    inputs = [g for i in range(size.slos) for g in _backfilled_groups(size.spec(i))]
    rules = _rule_file(workdir / "inputs.rules.yaml", inputs)
    server = _prometheus(workdir, [], "1m")
    try:
        _run(
            [
                "promtool", "tsdb", "create-blocks-from", "rules", "--quiet",
                f"--url={_address(server)}", f"--start={start}", f"--end={end}",
                f"--output-dir={workdir / 'recorded'}", str(rules),
            ]
        )  # fmt: skip
    finally:
        server.stop()
    for block in (workdir / "recorded").iterdir():
        shutil.move(str(block), workdir / "data" / block.name)
    if compact:
        _compact(workdir)


#: Prometheus compacts a minute after it starts; the backfilled 2-hour blocks of the
#: recorded inputs (hundreds of them) would otherwise dominate every range read.
COMPACTION_TIMEOUT = 900.0


def _blocks(data: Path) -> int:
    """Block directories (named by ULID, 26 characters) in the TSDB directory."""
    return sum(1 for path in data.iterdir() if path.is_dir() and len(path.name) == 26)


def _compact(workdir: Path) -> None:
    """Let Prometheus merge the backfilled blocks, as a long-running server would have."""
    server = _prometheus(workdir, [], "1m")
    try:
        deadline = time.monotonic() + COMPACTION_TIMEOUT
        counts = [_blocks(workdir / "data")]
        while time.monotonic() < deadline:
            time.sleep(1.0)
            counts.append(_blocks(workdir / "data"))
            # Settled: the count dropped (compaction ran) and has not moved for 15 s.
            if min(counts) < counts[0] and len(set(counts[-15:])) == 1 and len(counts) > 15:
                return
    finally:
        server.stop()
    raise TimeoutError(f"the backfilled blocks were not compacted in {COMPACTION_TIMEOUT:.0f}s")


def measure(
    size: Size, evaluations: int = 5, interval_seconds: int = 5, compact: bool = True
) -> list[Result]:
    """One run: backfill, record the inputs' history, evaluate all three shapes.

    Without ``compact`` the costs read hundreds of 2-hour blocks (quicker, for a smoke run).
    """
    window = size.days * SECONDS_PER_DAY
    margin = 3600  # raw data before the window, so the first rates have samples
    end = (int(time.time()) // 60) * 60 - 120
    steps = (window + margin) // size.scrape + 1
    start = end - (steps - 1) * size.scrape
    with tempfile.TemporaryDirectory(prefix="ouro-obs-rules-cost-") as directory:
        workdir = Path(directory)
        _backfill(size, workdir, start, steps)
        _backfill_rules(size, workdir, end - window - 600, end, compact)
        groups = [g for i in range(size.slos) for g in _measured_groups(size.spec(i))]
        rules = _rule_file(workdir / "measured.rules.yaml", groups)
        compared = shapes(size.days)
        server = _prometheus(workdir, [rules], f"{interval_seconds}s")
        try:
            durations = _durations(server, evaluations, timeout=60.0 + 30 * evaluations)
            slis = {shape.name: _sli(server, shape, size, end) for shape in compared}
        finally:
            server.stop()
    exact = _exact_ratio(size, steps, steps - 1 - window // size.scrape)
    results = []
    for shape in compared:
        per_evaluation = per_hour = 0.0
        for suffix, interval in shape.groups:
            medians = [
                statistics.median(v) for name, v in durations.items() if name.endswith(suffix)
            ]
            per_evaluation += sum(medians)
            per_hour += sum(medians) * 3600 / interval
        results.append(Result(shape, per_evaluation, per_hour, slis[shape.name]))
    return [*results, Result(Shape("exact", "", ()), 0.0, 0.0, exact)]


def _sli(server: ManagedProcess, shape: Shape, size: Size, at: int) -> float:
    """The shape's SLI of the first SLO at ``at``, from its rule's expression."""
    rules = [r for g in _measured_groups(size.spec(0)) for r in g.rules]
    # The ouro-obs ratio reads its recorded rates: their backfilled history up to ``at``.
    expr = next(
        r.expr for r in rules if isinstance(r, RecordingRule) and r.record.startswith(shape.record)
    )
    found = _query(server, expr, at)
    if len(found) != 1:
        raise RuntimeError(f"{shape.name}: {expr} gave {found}")
    return float(found[0]["value"][1])


def results_table(results: Sequence[Result], size: Size) -> str:
    exact = results[-1].sli
    raw = next(r for r in results if r.shape.name == "raw rate")
    lines = [
        f"SLO-window rules, {size.slos} SLOs x {size.routes} routes x {size.pods} pods x 2 "
        f"statuses, {size.days} days of data scraped every {size.scrape} s "
        f"(exact events ratio {exact:.6f}).",
        "",
        "| shape | per evaluation (ms) | intervals | per hour (ms) | vs raw rate | SLI | vs exact |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results[:-1]:
        error = abs(result.sli - exact) / exact
        lines.append(
            f"| {result.shape.name} | {result.per_evaluation * 1000:.2f} | "
            f"{', '.join(promql.duration(seconds) for _, seconds in result.shape.groups)} | "
            f"{result.per_hour * 1000:.1f} | {result.per_hour / raw.per_hour:.3f} | "
            f"{result.sli:.6f} | {error:+.4%} |"
        )
    ours = results[0]
    lines += [
        "",
        f"Target: ouro-obs at most {TARGET_COST_SHARE:.0%} of the raw rate's cost per hour "
        f"({ours.per_hour / raw.per_hour:.1%}) and within {TARGET_ERROR:.1%} of the exact "
        f"ratio ({abs(ours.sli - exact) / exact:.4%}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slos", type=int, default=2)
    parser.add_argument("--routes", type=int, default=4)
    parser.add_argument("--pods", type=int, default=3)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scrape", type=int, default=60, help="seconds between samples")
    parser.add_argument("--evaluations", type=int, default=5)
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    size = Size(args.slos, args.routes, args.pods, args.days, args.scrape)
    table = results_table(measure(size, args.evaluations), size)
    print(table, end="")
    if args.output is not None:
        args.output.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
