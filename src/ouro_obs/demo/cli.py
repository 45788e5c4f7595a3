"""``ouro-obs demo``: its command line (the ``demo`` extra installs what it runs)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import fields
from pathlib import Path

from ouro_obs.demo.options import DEMO_WINDOW_DAYS, SLOW_REQUEST_SECONDS, DemoError, DemoOptions
from ouro_obs.demo.run import run_demo

__all__ = ["configure", "require_demo_modules"]

#: What the shop and the traffic run on; the demo extra installs them.
DEMO_MODULES = ("uvicorn", "fastapi", "locust")

#: flag, type, metavar, help of every option that takes a value (defaults: DemoOptions).
_OPTIONS: tuple[tuple[str, type, str | None, str], ...] = (
    ("--duration", int, "SECONDS", "seconds of traffic (default %(default)s)"),
    ("--error-rate", float, "SHARE", "share of failing requests during the error burst, on "
     "the routes that accept ?fail=true (default %(default)s)"),
    ("--slow-rate", float, "SHARE", f"share of item and order requests slowed to "
     f"{SLOW_REQUEST_SECONDS} s (default %(default)s)"),
    ("--users", int, None, "Locust users (default %(default)s)"),
    ("--workers", int, None, "uvicorn workers (default %(default)s)"),
    ("--port", int, None, "the shop's port, 0 for any free one (default %(default)s)"),
    ("--prometheus-port", int, None, "Prometheus's port, 0 for any free one (default %(default)s)"),
    ("--alertmanager-port", int, None, "Alertmanager's port, 0 for any free one (default "
     "%(default)s)"),
    ("--collector-port", int, None, "OTLP/HTTP collector's port (default: any free one)"),
    ("--workdir", Path, None, "where generated files, logs and data go (default %(default)s)"),
    ("--summary-json", Path, "FILE", "also write the summary as JSON to FILE"),
)  # fmt: skip


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser`` (the ``ouro-obs`` command ``name``)."""
    parser.description = (
        "Generate rules and dashboards from the example spec, start the example service "
        "(multiprocess), an OTLP collector, a real Prometheus and a real Alertmanager, drive "
        "traffic with Locust including an error burst, and print what Prometheus saw and "
        "what Alertmanager delivered. SLO windows are "
        f"compressed to {DEMO_WINDOW_DAYS}d so that alerts fire in minutes."
    )
    defaults = DemoOptions()
    for flag, kind, metavar, text in _OPTIONS:
        default = getattr(defaults, flag.removeprefix("--").replace("-", "_"))
        parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the summary, keep everything up until Ctrl-C",
    )
    parser.set_defaults(handler=_handle)


def require_demo_modules() -> None:
    """Raise ModuleNotFoundError naming the first module of the demo extra that is missing.

    The shop and Locust run in child processes, where a missing module would only show
    as a failed start; checking here lets ``ouro-obs`` name the extra to install.
    """
    for module in DEMO_MODULES:
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)


def _handle(args: argparse.Namespace) -> int:
    require_demo_modules()
    try:
        options = DemoOptions(**{f.name: getattr(args, f.name) for f in fields(DemoOptions)})
    except DemoError as error:
        print(f"ouro-obs demo: error: {error}", file=sys.stderr)
        return 2
    return run_demo(options)
