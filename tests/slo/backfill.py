"""A real Prometheus holding synthetic request series, backfilled with promtool.

The series are written as OpenMetrics text and turned into TSDB blocks by
``promtool tsdb create-blocks-from openmetrics``; Prometheus then opens the blocks
like any other data. Each series is a counter growing at a constant rate, so every
``rate()`` over the data is known in advance.

Rules that read other recordings over a long window (the SLO-window budget reads the
short-window rates recorded over weeks) need those recordings in the past as well:
:func:`backfill_history` also evaluates the rules that read raw series over the
backfilled time, with ``promtool tsdb create-blocks-from rules``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ouro_obs.contract import MetricNames
from ouro_obs.slo.promql import le_label, quote
from ouro_obs.slo.spec import LatencySLI, ServiceSpec
from tests.support.processes import PrometheusServer
from tests.support.tools import require_tool

__all__ = [
    "SAMPLE_STEP_SECONDS",
    "Counter",
    "backfill",
    "backfill_history",
    "backfilled_prometheus",
    "openmetrics",
    "request_counters",
]

#: One sample every 15 seconds, as a Prometheus scraping at 15 s would store them.
SAMPLE_STEP_SECONDS = 15


@dataclass(frozen=True, slots=True)
class Counter:
    """A counter series that grows by ``per_second`` from zero at the data's start
    (until ``stops_at``, if given, after which it stays flat)."""

    name: str
    labels: Mapping[str, str]
    per_second: float
    stops_at: int | None = None

    def value(self, start: int, timestamp: int) -> float:
        end = timestamp if self.stops_at is None else min(timestamp, self.stops_at)
        return self.per_second * max(0, end - start)


def _series_text(counter: Counter) -> str:
    labels = ",".join(f"{name}={quote(value)}" for name, value in counter.labels.items())
    return f"{counter.name}{{{labels}}}"


def openmetrics(counters: Sequence[Counter], start: int, end: int) -> str:
    """The samples from ``start`` to ``end`` (seconds), oldest first, in OpenMetrics text."""
    lines = []
    for timestamp in range(start, end + 1, SAMPLE_STEP_SECONDS):
        for counter in counters:
            lines.append(f"{_series_text(counter)} {counter.value(start, timestamp)} {timestamp}")
    return "\n".join([*lines, "# EOF", ""])


def backfill(directory: Path, counters: Sequence[Counter], start: int, end: int) -> Path:
    """TSDB blocks of the counters in ``directory/data``; returns that data directory."""
    promtool = require_tool("promtool")
    source = directory / "series.om"
    source.write_text(openmetrics(counters, start, end))
    data = directory / "data"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(source), str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return data


_RANGE_READ = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\[")


def _history_rules(rule_document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The groups of the recording rules that read raw series and are read over a range.

    Only those need a past: every other rule reads the present of raw series, or of
    recordings Prometheus evaluates from then on.
    """
    rules = [rule for group in rule_document["groups"] for rule in group["rules"]]
    read_over_range = {name for rule in rules for name in _RANGE_READ.findall(rule["expr"])}
    groups = []
    for group in rule_document["groups"]:
        needed = [
            rule
            for rule in group["rules"]
            if rule.get("record") in read_over_range and "slo:" not in rule["expr"]
        ]
        if needed:
            groups.append({"name": group["name"], "rules": needed})
    return groups


def backfill_history(
    directory: Path,
    counters: Sequence[Counter],
    start: int,
    end: int,
    rule_documents: Iterable[Mapping[str, Any]],
) -> None:
    """Blocks in ``directory/data`` of the counters and of the rules that read them.

    The rules are evaluated every ``SAMPLE_STEP_SECONDS``, as often as the samples come.
    """
    promtool = require_tool("promtool")
    raw_rules = directory / "raw-reading.rules.yaml"
    merged = [group for doc in rule_documents for group in _history_rules(doc)]
    raw_rules.write_text(yaml.safe_dump({"groups": merged}, sort_keys=False))
    recorded = directory / "recorded"
    with backfilled_prometheus(directory, counters, start, end) as raw:
        subprocess.run(
            [
                promtool, "tsdb", "create-blocks-from", "rules",
                f"--start={start}", f"--end={end}", f"--eval-interval={SAMPLE_STEP_SECONDS}s",
                f"--url={raw.url}", f"--output-dir={recorded}", str(raw_rules),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )  # fmt: skip
    for block in recorded.iterdir():
        shutil.move(block, directory / "data" / block.name)


def backfilled_prometheus(
    directory: Path,
    counters: Sequence[Counter],
    start: int,
    end: int,
    rule_files: Iterable[Path] = (),
) -> PrometheusServer:
    """A Prometheus (not started yet) over the backfilled counters, scraping nothing."""
    require_tool("prometheus")
    backfill(directory, counters, start, end)
    return PrometheusServer(targets={}, rule_files=tuple(rule_files), workdir=directory)


def request_counters(
    spec: ServiceSpec,
    labels: Mapping[str, str],
    per_second: float,
    error_share: float,
    slow_share: float,
) -> list[Counter]:
    """The series every SLI of ``spec`` reads, for requests at ``per_second``.

    ``error_share`` of them fail with a 500 and ``slow_share`` are slower than the
    latency SLIs' thresholds; all go to the first route of the latency SLOs (or
    ``/items/{item_id}``) with GET.
    """
    names = MetricNames(spec.metrics_namespace)
    routes = [slo.sli.routes[0] for slo in spec.slos if slo.sli.routes]
    request = {**labels, "route": routes[0] if routes else "/items/{item_id}", "method": "GET"}
    counters = [
        Counter(names.requests_total, {**request, "status": "200"}, per_second * (1 - error_share)),
        Counter(names.requests_total, {**request, "status": "500"}, per_second * error_share),
        Counter(f"{names.request_duration}_count", request, per_second),
    ]
    thresholds = {slo.sli.threshold_seconds for slo in spec.slos if isinstance(slo.sli, LatencySLI)}
    counters += [
        Counter(
            f"{names.request_duration}_bucket",
            {**request, "le": le_label(threshold)},
            per_second * (1 - slow_share),
        )
        for threshold in sorted(thresholds)
    ]
    return counters
