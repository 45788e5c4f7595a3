"""What a scrape costs: ``/metrics`` after many requests, ouro-obs against the instrumentator.

In-process: each app serves N requests spread over the shop's 21 routes (random ids),
then answers ``GET /metrics`` through its own ASGI app some times; the table gives sample
lines, bytes, label sets (series a user sees: a histogram's buckets, sum and count are
one), bytes per label set, and the render time per sample line. Multiprocess: gunicorn
with 4 uvicorn workers per package, loaded with wrk so every worker writes its files, then
``/metrics`` aggregated from those files, timed from the client.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.apps import Recorded
from benchmarks.contenders import Contender
from benchmarks.inprocess import CHECKED_PATHS, check, drive, get, refuse_silent_variants
from benchmarks.servers import check_recorded, recorded_by, serving
from benchmarks.shop import (
    SHOP_ROUTES,
    Served,
    instrumentator_fastapi,
    ouro_obs_metrics_fastapi,
    shop_paths,
)
from benchmarks.tables import Table, ratio
from benchmarks.wrk import LoadSettings, run_wrk, write_lua

__all__ = [
    "EXPOSITION_APPS",
    "Scrape",
    "exposition_table",
    "label_sets",
    "multiprocess_table",
    "run_exposition",
    "run_multiprocess_exposition",
    "sample_lines",
]

#: The two packages compared, by name: how to build each (FastAPI shop, own registry).
EXPOSITION_APPS: dict[str, Callable[[], Served]] = {
    "ouro-obs": ouro_obs_metrics_fastapi,
    "prometheus-fastapi-instrumentator": instrumentator_fastapi,
}

_SUFFIXES = re.compile(r"_(bucket|count|sum|created|total|gcount|gsum)$")
_LE = re.compile(r'(^|,)(le|quantile)="[^"]*"')


def sample_lines(body: str) -> list[str]:
    return [line for line in body.splitlines() if line and not line.startswith("#")]


def label_sets(body: str) -> int:
    """Distinct (metric, labels) among the samples, a histogram's series counted once."""
    seen: set[tuple[str, str]] = set()
    for line in sample_lines(body):
        name, _, rest = line.partition("{")
        labels = rest.rpartition("}")[0] if rest else ""
        name = name.split(" ")[0]
        seen.add((_SUFFIXES.sub("", name), _LE.sub("", labels).strip(",")))
    return len(seen)


@dataclass
class Scrape:
    """One package's ``/metrics``: the body and how long it took to answer, each time."""

    name: str
    body: str
    seconds: list[float]
    #: Files the multiprocess directory held (0 in-process).
    files: int = 0

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def lines(self) -> int:
        return len(sample_lines(self.body))


async def _get_metrics(app: Served) -> tuple[bytes, float]:
    started = time.perf_counter()
    status, body = await get(app, "/metrics")
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status}")
    return body, elapsed


async def _serve_then_scrape(
    name: str, app: Served, requests: int, paths: Sequence[str], scrapes: int
) -> tuple[Scrape, Recorded]:
    await check(app, name, paths)
    await drive(app, requests, paths)
    counted = app.recorded()  # before the scrapes, which some packages count as requests
    answers = [await _get_metrics(app) for _ in range(scrapes)]
    return Scrape(name, answers[-1][0].decode(), [seconds for _, seconds in answers]), counted


def run_exposition(requests: int = 100_000, scrapes: int = 20) -> list[Scrape]:
    """Serve ``requests`` on the shop's routes through each package, then scrape it."""
    paths = shop_paths(min(requests, 5000))
    results: list[Scrape] = []
    counts: dict[str, Recorded] = {}
    for name, build in EXPOSITION_APPS.items():
        scrape, counts[name] = asyncio.run(
            _serve_then_scrape(name, build(), requests, paths, scrapes)
        )
        results.append(scrape)
    refuse_silent_variants(counts, requests + CHECKED_PATHS)
    return results


def exposition_table(scrapes: Sequence[Scrape], requests: int) -> Table:
    table = Table(
        f"/metrics after {requests:,} requests on {len(SHOP_ROUTES)} routes (in-process)",
        (
            "package",
            "sample lines",
            "bytes",
            "label sets",
            "bytes per label set",
            "render ms (median)",
            "render µs per sample line",
        ),
    )
    for scrape in scrapes:
        size = len(scrape.body.encode())
        sets = label_sets(scrape.body)
        table.rows.append(
            (
                scrape.name,
                f"{scrape.lines:,}",
                f"{size:,}",
                f"{sets:,}",
                f"{size / sets:.0f}",
                f"{scrape.median_ms:.2f}",
                f"{scrape.median_ms * 1000 / scrape.lines:.2f}",
            )
        )
    table.notes.append(
        "Each package on the FastAPI shop with its own registry and its defaults (text "
        "format, `_created` series as each package emits them); render time = one "
        f"`GET /metrics` through the app, median of {len(scrapes[0].seconds)}. "
        "A label set is one series a user sees (a histogram's buckets, sum and count "
        "count once)."
    )
    return table


def _scrape_url(url: str, scrapes: int) -> tuple[str, list[float]]:
    seconds: list[float] = []
    body = b""
    for _ in range(scrapes):
        started = time.perf_counter()
        with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
            body = response.read()
        seconds.append(time.perf_counter() - started)
    return body.decode(), seconds


#: wrk runs at most, each on new connections, for every worker to serve some requests.
_LOAD_ATTEMPTS = 10


def _writers(directory: Path) -> int:
    """Workers that wrote a counter file in ``directory`` (each has its own)."""
    return len(list(directory.glob("counter_*.db")))


def run_multiprocess_exposition(
    workers: int = 4,
    scrapes: int = 20,
    settings: LoadSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Scrape]:
    """gunicorn with ``workers`` workers per package, loaded, then ``/metrics`` scraped."""
    settings = settings or LoadSettings(duration_seconds=3.0)
    contenders = [
        Contender(name, build.__name__, workers=workers) for name, build in EXPOSITION_APPS.items()
    ]
    results: list[Scrape] = []
    with tempfile.TemporaryDirectory(prefix="ouro-obs-bench-") as directory:
        workdir = Path(directory)
        script = write_lua(workdir / "shop.lua", SHOP_ROUTES)
        with serving(contenders, workdir) as (servers, _collector):
            for server in servers:
                assert server.multiprocess_dir is not None
                # Which worker accepts a connection is the kernel's choice: load again, on
                # new connections, until every worker has written its files.
                for _ in range(_LOAD_ATTEMPTS):
                    server.runs.append(
                        run_wrk(
                            server.url,
                            threads=settings.threads,
                            connections=settings.connections,
                            seconds=settings.duration_seconds,
                            script=script,
                        )
                    )
                    if _writers(server.multiprocess_dir) >= workers:
                        break
                else:
                    raise RuntimeError(
                        f"{server.contender.name}: {_writers(server.multiprocess_dir)} of "
                        f"{workers} workers served requests in {_LOAD_ATTEMPTS} wrk runs"
                    )
                check_recorded(
                    server.contender, server.runs, recorded_by(server), settings.connections
                )
                body, seconds = _scrape_url(server.url, scrapes)
                files = len(list(server.multiprocess_dir.glob("*.db")))
                results.append(Scrape(server.contender.name, body, seconds, files))
                if progress is not None:
                    progress(f"{server.contender.name}: /metrics of {files} files scraped")
    return results


def multiprocess_table(scrapes: Sequence[Scrape], workers: int) -> Table:
    table = Table(
        f"Multiprocess /metrics aggregation, gunicorn with {workers} uvicorn workers",
        ("package", "files", "sample lines", "bytes", "scrape ms (median)", "x ouro-obs"),
    )
    ours = scrapes[0].median_ms
    for scrape in scrapes:
        table.rows.append(
            (
                scrape.name,
                str(scrape.files),
                f"{scrape.lines:,}",
                f"{len(scrape.body.encode()):,}",
                f"{scrape.median_ms:.2f}",
                ratio(scrape.median_ms, ours),
            )
        )
    table.notes.append(
        "Every worker served part of a wrk run first (each package's counts checked "
        "against what wrk saw served), so the directory holds every worker's files; "
        f"scrape = `GET /metrics` over loopback, timed by the client, median of "
        f"{len(scrapes[0].seconds)}."
    )
    return table
