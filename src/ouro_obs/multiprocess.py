"""Multiprocess mode (several gunicorn or uvicorn workers) for prometheus_client.

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the workers start
(in Kubernetes: an ``emptyDir``); every worker writes its samples there and any
worker's ``/metrics`` returns the aggregate. The in-flight gauge uses the
``livesum`` mode, so a dead worker's in-flight requests stop counting once
:func:`child_exit` marks it dead.

gunicorn: in ``gunicorn.conf.py``::

    from ouro_obs.multiprocess import child_exit, when_ready  # noqa: F401

A container that restarts inside the same pod keeps its ``emptyDir``, and with it the
dead processes' files; start the server through this module so they are cleared first::

    python -m ouro_obs.multiprocess uvicorn shop.app:app --workers 2

``when_ready`` serves ``/metrics`` from the gunicorn master on ``OURO_OBS_METRICS_PORT``
when it is set, so the scrape target stays up while workers restart.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

from ouro_obs.config import ObservabilitySettings
from ouro_obs.exposition import MetricsServer
from ouro_obs.metrics import multiprocess_dir

__all__ = ["child_exit", "clear_directory", "main", "when_ready"]

_master_server: list[MetricsServer] = []


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: drop the live gauges of a worker that exited."""
    del server
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def when_ready(server: Any) -> None:
    """gunicorn hook: serve the aggregated ``/metrics`` from the master process."""
    del server
    settings = ObservabilitySettings.from_env()
    if settings.metrics_port:
        metrics_server = MetricsServer(
            settings.metrics_host, settings.metrics_port, None, settings.metrics_path or "/metrics"
        )
        if metrics_server.start():
            _master_server.append(metrics_server)


def clear_directory(directory: str | os.PathLike[str] | None = None) -> None:
    """Remove stale ``*.db`` files left by a previous run (call before workers start)."""
    path = Path(directory) if directory is not None else Path(multiprocess_dir() or "")
    if not str(path) or not path.is_dir():
        return
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Clear the multiprocess directory, then replace this process with ``argv``."""
    command = list(sys.argv[1:] if argv is None else argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("usage: python -m ouro_obs.multiprocess COMMAND [ARG ...]", file=sys.stderr)
        return 2
    directory = multiprocess_dir()
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        clear_directory(directory)
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(f"ouro_obs.multiprocess: cannot run {command[0]!r}: {error}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - execvp replaced this process


if __name__ == "__main__":
    sys.exit(main())
