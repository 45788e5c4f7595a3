"""Serving ``/metrics`` on a port of its own, so scrapes never go through the Ingress.

A small threaded HTTP server in a daemon thread. In multiprocess mode every worker
tries to bind the port and the first one wins; the others log that and go on, since
any worker's scrape aggregates all workers' files.
"""

from __future__ import annotations

import errno
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from prometheus_client import CollectorRegistry

from ouro_obs.metrics import render_metrics

__all__ = ["MetricsServer"]

_log = logging.getLogger("ouro_obs.exposition")


class _Handler(BaseHTTPRequestHandler):
    registry: ClassVar[CollectorRegistry | None] = None
    metrics_path: ClassVar[str] = "/metrics"
    server_version = "ouro-obs"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == self.metrics_path:
            try:
                body, content_type = render_metrics(self.registry, self.headers.get("Accept", ""))
            except Exception:
                _log.exception("rendering /metrics failed")
                self._reply(
                    500, "text/plain; charset=utf-8", b"metrics unavailable, see the service log\n"
                )
                return
            self._reply(200, content_type, body)
        elif path in {"/health/live", "/health/ready", "/"}:
            self._reply(200, "text/plain; charset=utf-8", b"ok\n")
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found\n")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not access-logged: they would drown the service's own lines."""


class MetricsServer:
    """``/metrics`` on ``host:port`` in a daemon thread; :meth:`start` is idempotent."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry | None,
        metrics_path: str = "/metrics",
    ):
        self.host = host
        self.port = port
        self._handler = type(
            "MetricsHandler", (_Handler,), {"registry": registry, "metrics_path": metrics_path}
        )
        self._server: ThreadingHTTPServer | None = None
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
                server = ThreadingHTTPServer((self.host, self.port), self._handler)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    _log.info(
                        "metrics port %s:%s already served by another worker", self.host, self.port
                    )
                    return False
                raise
            server.daemon_threads = True
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
