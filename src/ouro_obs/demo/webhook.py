"""A webhook receiver on loopback: where the demo's Alertmanager delivers pages and tickets.

A real HTTP server (in a thread of the calling process) that accepts Alertmanager's webhook
notifications (version 4 of its JSON payload: ``receiver``, ``status``, ``alerts`` with
their labels and annotations) on any path, and keeps each with the moment it arrived, so the
demo can say what was delivered to whom and when. Not for production: it keeps everything.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ouro_obs.demo.lifecycle import ServedInThread

__all__ = ["DeliveredAlert", "Notification", "WebhookReceiver"]

_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DeliveredAlert:
    """One alert of a notification: its labels, annotations, and firing or resolved."""

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True, slots=True)
class Notification:
    """One POST from Alertmanager; ``received_at`` is ``time.monotonic()`` on arrival."""

    path: str
    receiver: str
    status: str
    alerts: tuple[DeliveredAlert, ...]
    received_at: float


def _notification(path: str, document: Mapping[str, Any], received_at: float) -> Notification:
    alerts = tuple(
        DeliveredAlert(
            status=str(alert.get("status", "")),
            labels={str(k): str(v) for k, v in (alert.get("labels") or {}).items()},
            annotations={str(k): str(v) for k, v in (alert.get("annotations") or {}).items()},
        )
        for alert in document.get("alerts") or []
    )
    return Notification(
        path=path,
        receiver=str(document.get("receiver", "")),
        status=str(document.get("status", "")),
        alerts=alerts,
        received_at=received_at,
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if not 0 <= length <= _MAX_BODY_BYTES:
            self._answer(413)
            return
        try:
            document = json.loads(self.rfile.read(length))
        except ValueError:
            self._answer(400)
            return
        if not isinstance(document, dict):
            self._answer(400)
            return
        self.server.receive(_notification(self.path, document, time.monotonic()))
        self._answer(200)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None  # the demo's summary says what arrived


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], receiver: WebhookReceiver) -> None:
        super().__init__(address, _Handler)
        self.receive = receiver.receive


class WebhookReceiver(ServedInThread):
    """Receive Alertmanager webhook notifications on ``http://127.0.0.1:<port>/<any path>``."""

    thread_name = "alert-webhook"

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self._notifications: list[Notification] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def make_server(self, address: tuple[str, int]) -> ThreadingHTTPServer:
        return _Server(address, self)

    def receive(self, notification: Notification) -> None:
        with self._lock:
            self._notifications.append(notification)

    @property
    def notifications(self) -> list[Notification]:
        with self._lock:
            return list(self._notifications)
