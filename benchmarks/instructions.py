"""Instructions per request under valgrind's callgrind: the comparison without timing noise.

Two runs of different length per variant, differenced so start-up cancels out. Each run
is ``python -m benchmarks.overhead --drive VARIANT`` under callgrind, which serves the
requests through :func:`benchmarks.inprocess.drive`.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.apps import Variant, recorded, variant_named
from benchmarks.inprocess import (
    BASELINE,
    CHECKED_PATHS,
    OURS,
    OURS_FULL,
    check,
    drive,
    refuse_silent_variants,
)
from benchmarks.tables import Table, ratio, verdict

__all__ = ["collected_instructions", "drive_one", "run_instructions"]

REPO_ROOT = Path(__file__).resolve().parents[1]
_INSTRUMENTATOR = "instrumentator"


def collected_instructions(stderr: str) -> int:
    match = re.search(r"Collected\s*:\s*([\d,]+)", stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no instruction count:\n{stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def _instructions(variant: Variant, requests: int, warmup: int) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    # Without address randomisation the same build counts the same instructions run after
    # run (with it, dict and allocator layouts move the count by a few thousand).
    setarch = shutil.which("setarch")
    fixed_layout = [setarch, platform.machine(), "--addr-no-randomize"] if setarch else []
    completed = subprocess.run(
        [
            *fixed_layout,
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
    return collected_instructions(completed.stderr)


def run_instructions(
    variants: Sequence[Variant],
    requests: int,
    warmup: int,
    progress: Callable[[str], None] | None = None,
    *,
    peers_judged: bool = True,
) -> Table:
    """Instructions per request: (count at warmup + N) - (count at warmup), divided by N.

    ``peers_judged=False``: the other variants are ouro-obs set up otherwise, not peers,
    so no bar or goal is judged against them.
    """
    if variants[0].name != BASELINE:
        raise ValueError(f"the first variant must be {BASELINE!r}, the baseline")
    per_request: dict[str, float] = {}
    for variant in variants:
        short = _instructions(variant, 0, warmup)
        long = _instructions(variant, requests, warmup)
        per_request[variant.name] = (long - short) / requests
        if progress is not None:
            progress(f"{variant.name}: {per_request[variant.name]:,.0f} instructions/request")
    bare = per_request[BASELINE]
    ours_name = OURS_FULL if OURS_FULL in per_request else OURS
    ours = per_request.get(ours_name, 0.0) - bare
    table = Table(
        "Instructions per request (callgrind, noise-free)",
        ("variant", "instructions/request", "overhead", "overhead vs bare", "ouro-obs ÷ this"),
    )
    peers: dict[str, float] = {}
    for name, count in per_request.items():
        overhead = count - bare
        if name not in (BASELINE, ours_name):
            peers[name] = overhead
        table.rows.append(
            (
                name,
                f"{count:,.0f}",
                "-" if name == BASELINE else f"{overhead:,.0f}",
                "-" if name == BASELINE else f"+{overhead / bare * 100:.1f} %",
                "-" if name in (BASELINE, ours_name) else ratio(ours, overhead),
            )
        )
    table.notes.append(
        f"valgrind --tool=callgrind; {requests} requests after {warmup} warm-up requests, "
        "minus a warm-up-only run, so start-up cancels out. PYTHONHASHSEED=0, address "
        "randomisation off (setarch) where the machine has it."
    )
    if peers and peers_judged:
        fastest = min(peers.values())
        table.notes.append(
            f"Bar (fewer instructions than every peer): {verdict(ours < fastest)}. "
            f"Goal (at most a third of the fastest peer's): {verdict(ours <= fastest / 3)} "
            f"({ratio(ours, fastest)} of it)."
        )
        if _INSTRUMENTATOR in peers:  # issue 16's target for the metrics
            instrumentator = peers[_INSTRUMENTATOR]
            table.notes.append(
                "Target (at most an eighth of prometheus-fastapi-instrumentator's): "
                f"{verdict(ours <= instrumentator / 8)} ({ratio(ours, instrumentator)} of it)."
            )
    return table


def drive_one(name: str, requests: int, warmup: int) -> None:
    """Internal: build one variant, warm it up and serve ``requests`` (callgrind runs).

    Raises unless the variant recorded every request it served, as every mode does.
    """
    app = variant_named(name).build()
    before = recorded(app)

    async def run() -> None:
        await check(app, name)
        await drive(app, warmup)
        await drive(app, requests)

    asyncio.run(run())
    counts = {key: value - before.get(key, 0) for key, value in recorded(app).items()}
    refuse_silent_variants({name: counts}, CHECKED_PATHS + warmup + requests)
