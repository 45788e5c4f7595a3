"""Multiprocess mode (several gunicorn or uvicorn workers) for prometheus_client.

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the workers start
(in Kubernetes: an ``emptyDir``); every worker writes its samples there and any
worker's ``/metrics`` returns the aggregate. The in-flight gauge uses the
``livesum`` mode, so a dead worker's in-flight requests stop counting once
:func:`child_exit` marks it dead.

gunicorn: in ``gunicorn.conf.py``::

    from ouro_obs.metrics.multiprocess import child_exit, when_ready  # noqa: F401

A container that restarts inside the same pod keeps its ``emptyDir``, and with it the
dead processes' files; start the server through this module so they are cleared first::

    python -m ouro_obs.metrics.multiprocess uvicorn shop.app:app --workers 2

``when_ready`` serves the shared endpoints (aggregated ``/metrics``, ``/health/live``,
``/health/ready``) from the gunicorn master on ``OURO_OBS_METRICS_PORT`` when it is set,
so the scrape target stays up while workers restart. The directory comes from the
settings (``ObservabilitySettings.multiprocess_dir``), which read the environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

from ouro_obs.asgi.endpoints import ServiceEndpoints
from ouro_obs.asgi.health import ReadinessChecks
from ouro_obs.config import ObservabilitySettings
from ouro_obs.metrics.exposition import MetricsServer

__all__ = ["child_exit", "clear_directory", "main", "master_metrics_server", "when_ready"]

_USAGE = "usage: python -m ouro_obs.metrics.multiprocess COMMAND [ARG ...]"
_master_server: list[MetricsServer] = []


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: drop the live gauges of a worker that exited."""
    del server
    directory = ObservabilitySettings().multiprocess_dir
    if directory is not None:
        multiprocess.mark_process_dead(worker.pid, directory)  # type: ignore[no-untyped-call]


def master_metrics_server(settings: ObservabilitySettings) -> MetricsServer | None:
    """The master's server of the shared endpoints, when ``settings.metrics_port`` asks for one.

    The master runs no application, so no readiness check is registered: it is ready while
    it runs (and reports "draining" never; its workers' ports do).
    """
    if not settings.metrics_port:
        return None
    readiness = ReadinessChecks(timeout_seconds=settings.readiness_timeout_seconds)
    endpoints = ServiceEndpoints.from_settings(settings, registry=None, readiness=readiness)
    return MetricsServer(settings.metrics_host, settings.metrics_port, endpoints)


def when_ready(server: Any) -> None:
    """gunicorn hook: serve the aggregated ``/metrics`` and health from the master process."""
    del server
    metrics_server = master_metrics_server(ObservabilitySettings.from_env())
    if metrics_server is not None and metrics_server.start():
        _master_server.append(metrics_server)


def clear_directory(directory: str | os.PathLike[str] | None = None) -> None:
    """Remove stale ``*.db`` files left by a previous run (call before workers start).

    ``directory`` defaults to the settings' ``multiprocess_dir``; nothing happens when
    there is none or it does not exist.
    """
    if directory is None:
        directory = ObservabilitySettings().multiprocess_dir
    if directory is None or not Path(directory).is_dir():
        return
    for stale in Path(directory).glob("*.db"):
        stale.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Clear the multiprocess directory, then replace this process with ``argv``."""
    command = list(sys.argv[1:] if argv is None else argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print(_USAGE, file=sys.stderr)
        return 2
    directory = ObservabilitySettings().multiprocess_dir
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        clear_directory(directory)
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(f"ouro_obs.metrics.multiprocess: cannot run {command[0]!r}: {error}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - execvp replaced this process


if __name__ == "__main__":
    sys.exit(main())
