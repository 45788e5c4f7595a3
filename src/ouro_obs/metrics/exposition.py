"""The exposition body of a scrape, and the endpoints on a port of their own.

:func:`render_metrics` picks the format the scraper asks for and, in multiprocess mode,
merges every worker's files. :class:`MetricsServer` serves
:class:`~ouro_obs.asgi.endpoints.ServiceEndpoints` on a separate port from a daemon thread,
so scrapes never go through the Ingress. In multiprocess mode every worker tries to bind
that port and the first one wins; the others log that and go on, since any worker's scrape
aggregates all workers' files.
"""

from __future__ import annotations

import asyncio
import errno
import glob
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ouro_obs.asgi.endpoints import EndpointResponse, ServiceEndpoints

__all__ = ["MetricsServer", "render_metrics"]

_log = logging.getLogger(__name__)

_MULTIPROCESS_READ_ATTEMPTS = 5
#: A worker's file starts with a 4-byte "used" counter padded to 8 bytes.
_MMAP_HEADER_BYTES = 8


def render_metrics(
    registry: CollectorRegistry | None,
    accept: str,
    multiprocess_dir: str | None = None,
    *,
    created_series: bool = False,
) -> tuple[bytes, str]:
    """The exposition body and content type for a scrape with ``Accept: accept``.

    OpenMetrics when the scraper asks for it (exemplars are only visible there); with
    ``multiprocess_dir``, the aggregate of every worker's files in it (``registry`` unused).
    The ``<name>_created`` samples of counters and histograms are left out unless
    ``created_series`` (for this scrape only: prometheus_client's own switch,
    ``disable_created_metrics()``, is process-wide).
    """
    encoder, content_type = choose_encoder(accept)
    if multiprocess_dir is None:
        source: Collector = REGISTRY if registry is None else registry
        return encoder(source if created_series else _WithoutCreated(source)), content_type
    return _render_multiprocess(encoder, multiprocess_dir), content_type


#: Families whose ``<name>_created`` sample is the creation time, not a metric of its own.
_CREATED_TYPES = frozenset({"counter", "histogram", "summary", "gaugehistogram"})


class _WithoutCreated(Collector):
    """``source``'s families without their ``<name>_created`` samples; the rest as they are.

    Only the creation-time samples of the families that have one: a gauge a user named
    ``orders_created`` stays. A family is copied only when it loses a sample.
    """

    def __init__(self, source: Collector) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        for metric in self._source.collect():
            if metric.type not in _CREATED_TYPES:
                yield metric
                continue
            created = metric.name + "_created"
            samples = [sample for sample in metric.samples if sample.name != created]
            if len(samples) == len(metric.samples):
                yield metric
                continue
            kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            kept.samples = samples
            yield kept


def _render_multiprocess(encoder: Callable[[CollectorRegistry], bytes], directory: str) -> bytes:
    # A worker that is just starting may have created its file but not yet written
    # its header; reading it then fails. The file is complete microseconds later.
    for attempt in range(_MULTIPROCESS_READ_ATTEMPTS):
        aggregate = CollectorRegistry()
        aggregate.register(_WorkerFiles(directory))
        try:
            return encoder(aggregate)
        except (struct.error, ValueError):
            if attempt == _MULTIPROCESS_READ_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


class _WorkerFiles(Collector):
    """The workers' ``*.db`` files merged, skipping files still being created (empty)."""

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def collect(self) -> Iterable[Metric]:
        files = []
        for path in glob.glob(os.path.join(self._directory, "*.db")):
            try:
                if os.path.getsize(path) >= _MMAP_HEADER_BYTES:
                    files.append(path)
            except OSError:
                continue  # a live gauge file removed by child_exit since the glob
        merged: Iterable[Metric] = MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        return merged


class _Handler(BaseHTTPRequestHandler):
    """Every request answered by the server's :class:`ServiceEndpoints`."""

    server: _EndpointsHTTPServer
    server_version = "ouro-obs"

    def _answer(self) -> None:
        path = self.path.split("?", 1)[0]
        response = self.server.answer(path, self.command, self.headers.get("Accept", ""))
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name.decode("latin-1"), value.decode("latin-1"))
        self.end_headers()
        if response.body:
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not access-logged: they would drown the service's own lines."""


class _EndpointsHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        endpoints: ServiceEndpoints,
        checks_loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        super().__init__(address, _Handler)
        self.endpoints = endpoints
        self.checks_loop = checks_loop

    def answer(self, path: str, method: str, accept: str) -> EndpointResponse:
        """The endpoints' answer, computed on a short-lived event loop of this thread."""
        return asyncio.run(
            self.endpoints.answer(path, method, accept, checks_loop=self.checks_loop)
        )


class MetricsServer:
    """:class:`ServiceEndpoints` on ``host:port`` in a daemon thread; :meth:`start` is idempotent.

    Readiness checks are coroutines that may hold resources of the app's event loop: when
    :meth:`start` is called on a running loop (the app's lifespan start-up), every readiness
    run happens on that loop, bounded by the checks' timeout; started without one (the
    gunicorn master), the checks run on the server thread's own loop.
    """

    def __init__(self, host: str, port: int, endpoints: ServiceEndpoints) -> None:
        self.host = host
        #: The port asked for until :meth:`start` binds, then the bound one (for port 0).
        self.port = port
        self.endpoints = endpoints
        self._server: _EndpointsHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> bool:
        """Bind and serve; False when another worker already holds the port."""
        with self._lock:
            if self._server is not None:
                return True
            try:
                checks_loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                checks_loop = None
            try:
                server = _EndpointsHTTPServer((self.host, self.port), self.endpoints, checks_loop)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    _log.info(
                        "metrics port %s:%s already served by another worker", self.host, self.port
                    )
                    return False
                raise
            self.port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever, name="ouro-obs-metrics", daemon=True
            )
            thread.start()
            self._server = server
            return True

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
