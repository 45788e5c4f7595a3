"""The per-request :class:`Exchange`: wraps ``receive`` and ``send`` and keeps what passed.

One is made for each observed HTTP request and is never shared. It is the request's
:class:`~ouro_obs.asgi.record.RequestRecord`: it counts the body bytes each way, notes the
status sent, whether the response completed and whether the client left, and adds the
request id header to the response start. When the last body byte has been sent, or the
app returns without it, it is handed to the pipeline exactly once, which settles it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextvars import Token
from time import perf_counter
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from ouro_obs.asgi.record import Outcome, RequestRecord

__all__ = ["Exchange", "with_header"]


class Exchange(RequestRecord):
    """One HTTP request on its way through the app: its record, and the wrapped I/O."""

    __slots__ = (
        "_finish",
        "_receive",
        "_send",
        "finished",
        "request_id_binding",
        "response_header",
        "root_path",
        "span_token",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        method: str,
        root_path: str,
        finish: Callable[[Exchange], None],
    ) -> None:
        self.start_time = perf_counter()
        self.scope = scope
        self._receive = receive
        self._send = send
        self._finish = finish
        self.method = method
        #: The path prefix the server mounted the app under.
        self.root_path = root_path
        self.route = ""
        self.outcome = Outcome.NO_RESPONSE
        self.status = 0
        self.end_time = 0.0
        self.status_sent = None
        self.response_start = None
        self.request_bytes = 0
        self.response_bytes = 0
        self.complete = False
        self.client_gone = False
        self.finished = False
        self.error = None
        self.request_id = None
        #: The structlog context tokens binding the request id, to restore on leaving.
        self.request_id_binding: Mapping[str, Token[Any]] | None = None
        #: Added to the response start unless the app sent that header itself.
        self.response_header: tuple[bytes, bytes] | None = None
        self.user_agent = None
        self.span = None
        self.span_ids = None
        #: The context token that made our span current, to detach when the request leaves.
        self.span_token: object | None = None

    async def receive(self) -> Message:
        message = await self._receive()
        message_type = message["type"]
        if message_type == "http.request":
            self.request_bytes += len(message.get("body", b""))
        elif message_type == "http.disconnect" and not self.complete:
            self.client_gone = True
        return message

    async def send(self, message: Message) -> None:
        message_type = message["type"]
        last = False
        if message_type == "http.response.start":
            if self.response_header is not None:
                message = with_header(message, self.response_header)
            self.status_sent = message["status"]
            self.response_start = message
        elif message_type == "http.response.body":
            self.response_bytes += len(message.get("body", b""))
            last = not message.get("more_body", False)
        elif message_type == "http.response.pathsend":
            self.response_bytes += _file_size(message.get("path", ""))
            last = True
        try:
            await self._send(message)
        except OSError:
            self.client_gone = True
            raise
        if last and not self.finished:
            self.complete = True
            self.end_time = perf_counter()
            self.finished = True
            self._finish(self)

    def cancelled(self) -> None:
        """The request's task was cancelled: the server does that when the client left."""
        if not self.complete:
            self.client_gone = True

    def finish(self) -> None:
        """Hand the request to the pipeline now: the app returned before the last byte.

        At the last byte the exchange hands itself over; either happens once.
        """
        self.finished = True
        self.end_time = perf_counter()
        self._finish(self)


def with_header(message: Message, header: tuple[bytes, bytes]) -> Message:
    """A copy of ``message`` with ``header`` added, unless the app already sent that header.

    A copy: a response object reused across requests must not collect our headers.
    """
    headers = message.get("headers") or ()
    if type(headers) is not list and type(headers) is not tuple:
        headers = list(headers)  # any iterable (a generator) can be read only once
    name = header[0]
    for existing, _value in headers:
        if existing.lower() == name:
            return message
    return {**message, "headers": [*headers, header]}


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
